// Package bearer reads the bearer token of an HTTP Authorization header
// (RFC 6750), the one credential every pophub API takes.
package bearer

import "strings"

// Token returns the token of an Authorization header value of the form
// "Bearer <token>". The scheme is case-insensitive (RFC 9110 §11.1: a
// client may send "bearer"); spaces around the token are not part of it.
// ok is false for another scheme or an empty token.
func Token(header string) (token string, ok bool) {
	scheme, rest, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(rest)
	return token, token != ""
}
