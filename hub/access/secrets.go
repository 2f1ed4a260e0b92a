package access

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// HashToken is the SHA-256 (lower-case hex) under which a bearer token is
// configured. The same as adapters/gateway.HashToken.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// TokenPrefix starts every token NewToken makes, so that secret scanners
// can recognise a leaked one.
const TokenPrefix = "pophub_"

// NewToken returns a new bearer token (256 random bits) and its hash.
func NewToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("reading random bytes: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashPassword is the bcrypt hash (cost 11) nats-server accepts for a
// password.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), 11)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	return string(h), nil
}

// MinSCRAMIterations is RFC 7677's minimum iteration count; Kafka requires
// at least 4096 for SCRAM-SHA-512 too.
const MinSCRAMIterations = 4096

// NewSCRAMKeys derives the stored form of a SCRAM-SHA-512 password with a
// new random salt.
func NewSCRAMKeys(password string, iterations int) (SCRAMKeys, error) {
	salt := make([]byte, 24)
	if _, err := rand.Read(salt); err != nil {
		return SCRAMKeys{}, fmt.Errorf("reading random bytes: %w", err)
	}
	return scramKeys(password, salt, iterations)
}

func scramKeys(password string, salt []byte, iterations int) (SCRAMKeys, error) {
	if iterations < MinSCRAMIterations {
		return SCRAMKeys{}, fmt.Errorf("SCRAM iterations %d below %d", iterations, MinSCRAMIterations)
	}
	salted, err := pbkdf2.Key(sha512.New, password, salt, iterations, sha512.Size)
	if err != nil {
		return SCRAMKeys{}, fmt.Errorf("deriving SCRAM keys: %w", err)
	}
	stored := sha512.Sum512(hmacSHA512(salted, "Client Key"))
	return SCRAMKeys{
		Salt:       base64.StdEncoding.EncodeToString(salt),
		Iterations: iterations,
		StoredKey:  base64.StdEncoding.EncodeToString(stored[:]),
		ServerKey:  base64.StdEncoding.EncodeToString(hmacSHA512(salted, "Server Key")),
	}, nil
}

// Verify reports whether password is the one these keys were derived from.
func (k SCRAMKeys) Verify(password string) bool {
	salt, err := base64.StdEncoding.DecodeString(k.Salt)
	if err != nil {
		return false
	}
	got, err := scramKeys(password, salt, k.Iterations)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got.StoredKey), []byte(k.StoredKey)) == 1 &&
		subtle.ConstantTimeCompare([]byte(got.ServerKey), []byte(k.ServerKey)) == 1
}

func hmacSHA512(key []byte, msg string) []byte {
	m := hmac.New(sha512.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// Resolver turns a secret reference (env:NAME, file:PATH) into the secret.
type Resolver func(ref string) (string, error)

// ResolveSecret reads env:NAME from the environment and file:PATH from a
// file (trailing newlines dropped). Empty secrets are errors.
func ResolveSecret(ref string) (string, error) {
	scheme, rest, _ := strings.Cut(ref, ":")
	var v string
	switch scheme {
	case "env":
		var ok bool
		if v, ok = os.LookupEnv(rest); !ok {
			return "", fmt.Errorf("resolving %s: the variable is not set", ref)
		}
	case "file":
		b, err := os.ReadFile(rest)
		if err != nil {
			return "", fmt.Errorf("resolving %s: %w", ref, err)
		}
		v = strings.TrimRight(string(b), "\r\n")
	default:
		return "", fmt.Errorf("resolving %q: not an env: or file: reference", ref)
	}
	if v == "" {
		return "", fmt.Errorf("resolving %s: the secret is empty", ref)
	}
	return v, nil
}

// DemoSecret derives a demo secret from a name, deterministically. The
// secrets of ops/policy.example.yaml are DemoSecret("token:<identity>")
// for bearer tokens, DemoSecret("nats:<identity>") for NATS passwords and
// DemoSecret(<reference>) for Kafka passwords (DemoResolver). They are
// public — anyone can compute them — and only for the demo and tests.
func DemoSecret(name string) string {
	h := sha256.Sum256([]byte("pophub demo secret, never for production: " + name))
	return "demo_" + base64.RawURLEncoding.EncodeToString(h[:18])
}

// DemoResolver resolves any reference to DemoSecret(reference), so that
// the example policy runs without secrets set. For `pophub demo` and tests
// only.
func DemoResolver(ref string) (string, error) { return DemoSecret(ref), nil }

// VerifySecrets resolves every Kafka password reference and checks it
// against the identity's SCRAM keys when both are given. It reports every
// mismatch and every reference that does not resolve.
func (p *Policy) VerifySecrets(resolve Resolver) error {
	var errs []error
	for _, id := range p.Identities {
		k := id.Credentials.Kafka
		if k == nil || k.Password == "" {
			continue
		}
		pw, err := resolve(k.Password)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id.Name, err))
			continue
		}
		if err := k.CheckPassword(pw); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id.Name, err))
		}
	}
	return errors.Join(errs...)
}

// CheckPassword reports a password, read through the credential's reference,
// that is not the one its SCRAM keys are of: a rotation half done (new
// keys in the policy while the reference still holds the old password, or
// the other way round). Installed as it is, the old password would go on
// working while the policy, and the audit trail's record of the change,
// say it was replaced.
func (k *KafkaCredential) CheckPassword(pw string) error {
	if k.SCRAM == nil || k.SCRAM.Verify(pw) {
		return nil
	}
	return fmt.Errorf("the password %s holds is not the one credentials.kafka.scram_sha512 is of: "+
		"after rotating it, set the new password where %s points, or put back the keys of the old one", k.Password, k.Password)
}

// CheckNATSPassword reports whether password is the one the identity's
// credentials.nats.password_bcrypt is of; an identity without a bcrypt
// hash (none, or an nkey) has no password that could be right. It is slow
// (bcrypt, on purpose): call it to explain a login the server refused.
func (id Identity) CheckNATSPassword(password string) error {
	n := id.Credentials.NATS
	if n == nil || n.PasswordBcrypt == "" {
		return fmt.Errorf("%s has no credentials.nats.password_bcrypt: no NATS password is its", id.Name)
	}
	if bcrypt.CompareHashAndPassword([]byte(n.PasswordBcrypt), []byte(password)) != nil {
		return fmt.Errorf("the NATS password given to %s is not the one its credentials.nats.password_bcrypt is of", id.Name)
	}
	return nil
}
