package citizenid

import (
	"strings"
	"unicode"
)

// TrimTyped trims what a clerk cannot see at the edges of a value typed
// or pasted: white space (ideographic spaces too), and characters that
// show as nothing — zero-width space, non-joiner and joiner, word joiner,
// and a byte order mark, which an export joining files leaves at the
// start of any line or cell. Copied from web pages and chat messages,
// they stick to IDs, names and column names. pophub import and pophub cdc
// read every ID through it.
func TrimTyped(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || zeroWidth(r) })
}

// zeroWidth reports whether r is one of the characters TrimTyped trims
// that show as nothing.
func zeroWidth(r rune) bool {
	switch r {
	case '\u200b', '\u200c', '\u200d', '\u2060', '\ufeff':
		return true
	}
	return false
}

// Invisible returns the first character of s that shows as nothing: one
// TrimTyped trims at the edges, or another format character (a direction
// mark, a soft hyphen); 0 if none. Inside an ID it is refused, named, as
// a clerk looking at the value cannot see it.
func Invisible(s string) rune {
	for _, r := range s {
		if zeroWidth(r) || unicode.Is(unicode.Cf, r) {
			return r
		}
	}
	return 0
}
