package audit

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"strings"
	"sync"

	"github.com/pophub/pophub/internal/durable"
	"github.com/pophub/pophub/schemas/citizenid"
)

// MinKeyBytes is the shortest audit key accepted.
const MinKeyBytes = 32

// Key is the hub's audit key. Two HMAC-SHA-256 keys are derived from the
// secret the caller gives: one for Subject (the keyed hash that stands for
// a citizen ID) and one for the Seal of each chain hash. The zero Key is
// valid only for Verify, which then checks the SHA-256 chain and not the
// seals. A Key is a value and safe for concurrent use.
type Key struct {
	subject []byte
	seal    []byte
	// macs holds HMAC states keyed for Subject: every audited read
	// computes one, and a fresh state costs two hash setups.
	macs *sync.Pool
}

// NewKey derives the audit keys from a secret of at least MinKeyBytes
// bytes.
func NewKey(secret []byte) (Key, error) {
	if len(secret) < MinKeyBytes {
		return Key{}, fmt.Errorf("audit key: %d bytes, want at least %d", len(secret), MinKeyBytes)
	}
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	subject := derive("pophub audit subject v1")
	return Key{subject: subject, seal: derive("pophub audit seal v1"),
		macs: &sync.Pool{New: func() any { return hmac.New(sha256.New, subject) }}}, nil
}

// ParseKey reads a key written as hex (surrounding white space ignored),
// the form of a key file and of POPHUB_AUDIT_KEY.
func ParseKey(text string) (Key, error) {
	secret, err := hex.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return Key{}, errors.New("audit key: not hex")
	}
	return NewKey(secret)
}

// LoadKey reads a key file: the secret as hex on one line. It refuses a
// file that others can read, as the sealing key files are refused: with
// the key, a local user could confirm a guessed citizen ID against the
// log's keyed hashes, and seal a forged entry. The hub cannot start
// without its key, so an error names the file and says what to do.
func LoadKey(path string) (Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Key{}, fmt.Errorf("reading audit key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Key{}, fmt.Errorf("reading audit key %s: mode %v lets others read it; chmod 600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("reading audit key: %w", err)
	}
	if len(b) == 0 {
		// What a first start killed while creating it left before key
		// files were written whole (GenerateKeyFile).
		return Key{}, fmt.Errorf("audit key file %s is empty, most likely left by a first start that was interrupted while creating it; "+
			"nothing can have been sealed with an empty key file, so remove it and start again (or 'pophub audit keygen --key-file %s'); "+
			"if it held a key before, restore it from the backup instead", path, path)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		// It may have sealed entries: only the backup can bring it back.
		return Key{}, fmt.Errorf("audit key file %s is damaged (%w): restore it from the backup", path, err)
	}
	return k, nil
}

// GenerateKeyFile writes a new random 32-byte key as hex to path, which
// must not exist (else an error wrapping fs.ErrExist), readable by its
// owner only. The file appears whole or not at all (durable.CreateNew): a
// first start killed, or out of disk space, while creating it leaves no
// empty key file to stop the next start. The file and its directory are
// synced before it returns: a key lost to a power failure after the first
// entries were sealed with it would leave the log unverifiable.
func GenerateKeyFile(path string) error {
	secret := make([]byte, MinKeyBytes)
	rand.Read(secret)
	err := durable.CreateNew(path, func(f *os.File) error {
		_, err := f.WriteString(hex.EncodeToString(secret) + "\n")
		return err
	})
	if err != nil {
		return fmt.Errorf("audit key: %w", err)
	}
	return nil
}

// IsZero reports whether k is the zero Key.
func (k Key) IsZero() bool { return k.seal == nil }

// Subject is the keyed hash that stands for a citizen ID in the log: the
// hex HMAC-SHA-256 of the 18 characters. It returns "" for the zero ID
// and panics on the zero Key.
func (k Key) Subject(id citizenid.ID) string {
	if id == "" {
		return ""
	}
	if k.IsZero() {
		panic("audit: Subject with the zero Key")
	}
	m := k.macs.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(id))
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	k.macs.Put(m)
	return hex.EncodeToString(sum[:])
}

// chainer links entries: Seq, Prev, Hash and Seal. Not safe for
// concurrent use (it reuses one HMAC state and one buffer).
type chainer struct {
	mac hash.Hash // nil without a key
	buf []byte
}

func newChainer(k Key) *chainer {
	c := &chainer{buf: make([]byte, 0, 512)}
	if !k.IsZero() {
		c.mac = hmac.New(sha256.New, k.seal)
	}
	return c
}

// hash computes SHA-256(prev || Canonical(e)).
func (c *chainer) hash(prev Sum, e *Entry) Sum {
	c.buf = append(c.buf[:0], prev[:]...)
	c.buf = Canonical(c.buf, e)
	return sha256.Sum256(c.buf)
}

// seal computes HMAC-SHA-256(seal key, h); the zero Sum without a key.
func (c *chainer) seal(h Sum) Sum {
	var s Sum
	if c.mac == nil {
		return s
	}
	c.mac.Reset()
	c.mac.Write(h[:])
	c.mac.Sum(s[:0])
	return s
}

// link chains batch after head, in place, and returns the new head.
func (c *chainer) link(head Link, batch []Entry) Link {
	for i := range batch {
		e := &batch[i]
		normalize(e)
		e.Redacted = false
		e.Seq = head.Seq + 1
		e.Prev = head.Hash
		e.Hash = c.hash(e.Prev, e)
		e.Seal = c.seal(e.Hash)
		head = e.link()
	}
	return head
}

// ErrKeyMismatch is what CheckKey returns, wrapped, for a key other than
// the one a log is sealed with.
var ErrKeyMismatch = errors.New("the audit key does not match the one this log is sealed with")

// Seals reports whether l's Seal is the HMAC of its Hash under k: whether
// k is the key that sealed the entry (or anchor) at l. False for the zero
// Key.
func (k Key) Seals(l Link) bool {
	if k.IsZero() {
		return false
	}
	return newChainer(k).seal(l.Hash) == l.Seal
}

// Header is what CheckKey reads; every Store is one.
type Header interface {
	Head(ctx context.Context) (Link, error)
}

// CheckKey checks that k sealed the head of the log s (or its purge
// anchor when every entry was purged); an empty log takes any key. A
// writer must check before appending: entries sealed with another key
// leave a log that verifies under neither, and subjects hashed with
// another key are never found by who-read.
func CheckKey(ctx context.Context, s Header, k Key) error {
	head, err := s.Head(ctx)
	if err != nil {
		return fmt.Errorf("checking the audit key: %w", err)
	}
	if head.Seq == 0 && head.Hash.IsZero() {
		return nil
	}
	if !k.Seals(head) {
		return fmt.Errorf("%w (seq %d's seal differs)", ErrKeyMismatch, head.Seq)
	}
	return nil
}
