// Package sealing protects personal data at rest: it derives the storage
// key of a person from the citizen ID with a keyed hash, so that no store
// holds the ID in clear as a key, and seals (encrypts and authenticates)
// the blobs that hold IDs and names with AES-256-GCM.
//
// A Keyring holds one HMAC-SHA-256 key and one or more versioned data
// keys. The HMAC key is not rotated: person keys are looked up by value,
// so changing it would mean rekeying every row of every table at once,
// and a leaked HMAC key alone reveals nothing without the sealed data
// (the ID space is small, so it does allow confirming a guessed ID — keep
// it as secret as the data keys). Data keys are rotated by adding a new
// version: the newest seals, every version still opens, and the stores
// re-seal old blobs in the background.
//
// The keys live outside the store: in a key file (mode 0600) or an
// environment variable in development, behind a KeySource that a KMS or
// HSM client implements in production. The package does no other I/O.
package sealing

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
)

// A sealed blob is: format byte, key version (uint32, big-endian, so that
// byte order equals numeric order in SQL), nonce, ciphertext and tag.
const (
	formatV1   = 0xA7
	headerLen  = 1 + 4
	nonceLen   = 12
	keyLen     = 32
	minBlobLen = headerLen + nonceLen + 16
)

// ErrUnknownVersion reports a blob sealed with a data key the keyring
// does not hold (a key file older than the data, or another deployment's).
var ErrUnknownVersion = errors.New("sealing: blob sealed with an unknown key version")

// ErrTampered reports a blob that does not authenticate: altered, moved to
// another row (wrong associated data) or sealed with another key of the
// same version.
var ErrTampered = errors.New("sealing: blob does not authenticate (tampered, misplaced or wrong key)")

// ErrNotSealed reports bytes that are not a sealed blob at all.
var ErrNotSealed = errors.New("sealing: not a sealed blob")

// Material is the secret content of a keyring, as a KeySource returns it
// and a key file stores it (JSON, keys in base64).
type Material struct {
	// HMAC keys person keys; never rotated (see the package comment).
	HMAC []byte `json:"hmac"`
	// Data are the data keys; the highest version seals.
	Data []DataKey `json:"data"`
}

// DataKey is one version of the AES-256-GCM data key.
type DataKey struct {
	Version uint32 `json:"version"`
	Key     []byte `json:"key"`
}

// Generate returns fresh material: a random HMAC key and data key
// version 1.
func Generate() (Material, error) {
	m := Material{HMAC: make([]byte, keyLen)}
	if _, err := rand.Read(m.HMAC); err != nil {
		return Material{}, fmt.Errorf("generating HMAC key: %w", err)
	}
	if err := m.AddDataKey(); err != nil {
		return Material{}, err
	}
	return m, nil
}

// AddDataKey adds a random data key with the next version, which then
// seals everything new.
func (m *Material) AddDataKey() error {
	var next uint32 = 1
	for _, d := range m.Data {
		next = max(next, d.Version+1)
	}
	k := make([]byte, keyLen)
	if _, err := rand.Read(k); err != nil {
		return fmt.Errorf("generating data key: %w", err)
	}
	m.Data = append(m.Data, DataKey{Version: next, Key: k})
	return nil
}

// Keyring seals and opens blobs and derives person keys. It is immutable
// and safe for concurrent use.
type Keyring struct {
	mac     []byte
	aeads   map[uint32]cipher.AEAD
	checks  map[uint32]string // VersionCheck of each data key
	newest  uint32
	version []uint32 // sorted
}

// New builds a keyring from material, checking key sizes and versions.
func New(m Material) (*Keyring, error) {
	if len(m.HMAC) != keyLen {
		return nil, fmt.Errorf("sealing: HMAC key must be %d bytes, not %d", keyLen, len(m.HMAC))
	}
	if len(m.Data) == 0 {
		return nil, errors.New("sealing: no data key")
	}
	k := &Keyring{mac: slices.Clone(m.HMAC), aeads: make(map[uint32]cipher.AEAD, len(m.Data)), checks: make(map[uint32]string, len(m.Data))}
	for _, d := range m.Data {
		if d.Version == 0 {
			return nil, errors.New("sealing: data key version 0 is reserved")
		}
		if len(d.Key) != keyLen {
			return nil, fmt.Errorf("sealing: data key version %d must be %d bytes, not %d", d.Version, keyLen, len(d.Key))
		}
		if _, dup := k.aeads[d.Version]; dup {
			return nil, fmt.Errorf("sealing: data key version %d given twice", d.Version)
		}
		block, err := aes.NewCipher(d.Key)
		if err != nil {
			return nil, fmt.Errorf("sealing: data key version %d: %w", d.Version, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("sealing: data key version %d: %w", d.Version, err)
		}
		k.aeads[d.Version] = aead
		k.checks[d.Version] = dataKeyCheck(d.Key)
		k.version = append(k.version, d.Version)
		k.newest = max(k.newest, d.Version)
	}
	slices.Sort(k.version)
	return k, nil
}

// Newest is the version of the data key that seals.
func (k *Keyring) Newest() uint32 { return k.newest }

// Versions lists the data key versions held, oldest first.
func (k *Keyring) Versions() []uint32 { return slices.Clone(k.version) }

// Seal encrypts plaintext with the newest data key and a random nonce,
// binding it to associatedData (for instance the row's person key, so
// that a blob moved to another row does not open). The result is
// len(plaintext)+33 bytes.
func (k *Keyring) Seal(plaintext, associatedData []byte) []byte {
	out := make([]byte, headerLen+nonceLen, headerLen+nonceLen+len(plaintext)+16)
	out[0] = formatV1
	binary.BigEndian.PutUint32(out[1:5], k.newest)
	if _, err := rand.Read(out[headerLen:]); err != nil {
		// crypto/rand does not fail on supported platforms; a nonce that
		// could repeat must never be used.
		panic(fmt.Sprintf("sealing: reading random nonce: %v", err))
	}
	return k.aeads[k.newest].Seal(out, out[headerLen:], plaintext, associatedData)
}

// Open authenticates and decrypts a blob made by Seal with any version
// this keyring holds and the same associated data.
func (k *Keyring) Open(blob, associatedData []byte) ([]byte, error) {
	v, err := Version(blob)
	if err != nil {
		return nil, err
	}
	aead, ok := k.aeads[v]
	if !ok {
		return nil, fmt.Errorf("%w: version %d (held: %v)", ErrUnknownVersion, v, k.version)
	}
	pt, err := aead.Open(nil, blob[headerLen:headerLen+nonceLen], blob[headerLen+nonceLen:], associatedData)
	if err != nil {
		return nil, fmt.Errorf("%w: version %d", ErrTampered, v)
	}
	return pt, nil
}

// Version returns the data key version a blob was sealed with.
func Version(blob []byte) (uint32, error) {
	if len(blob) < minBlobLen || blob[0] != formatV1 {
		return 0, ErrNotSealed
	}
	return binary.BigEndian.Uint32(blob[1:5]), nil
}

// IsSealed reports whether b looks like a sealed blob.
func IsSealed(b []byte) bool {
	_, err := Version(b)
	return err == nil
}

// PersonKey returns the storage key of a citizen ID: the hex HMAC-SHA-256
// of it. Equal IDs give equal keys; the key reveals nothing of the ID
// without the HMAC key.
func (k *Keyring) PersonKey(id string) string {
	m := hmac.New(sha256.New, k.mac)
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

// IsPersonKey reports whether k has the shape of a store's person keys: a
// citizen ID (17 digits, then a digit or X) in the clear, the 64
// lower-case hex digits of PersonKey when sealed. The stores judge a walk's
// cursor by it, which must be a key they made.
func IsPersonKey(k string, sealed bool) bool {
	isDigit := func(c byte) bool { return '0' <= c && c <= '9' }
	if !sealed {
		if len(k) != 18 || k[17] != 'X' && !isDigit(k[17]) {
			return false
		}
		for i := 0; i < 17; i++ {
			if !isDigit(k[i]) {
				return false
			}
		}
		return true
	}
	if len(k) != 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isDigit(k[i]) && (k[i] < 'a' || k[i] > 'f') {
			return false
		}
	}
	return true
}

// Check is a fingerprint of the HMAC key that a store records, so that it
// can refuse a keyring other than the one it was sealed with before
// writing anything. It reveals nothing of the key.
func (k *Keyring) Check() string {
	return k.PersonKey("\x00pophub key check")[:16]
}

// ErrVersionMismatch is what CheckVersions returns, wrapped, for a
// keyring whose data keys are not the ones a store recorded.
var ErrVersionMismatch = errors.New("sealing: the data keys do not match the ones the store recorded")

// dataKeyCheck is the fingerprint of a data key: HMAC-SHA-256 under the
// key of a fixed label, shortened. It reveals nothing of the key.
func dataKeyCheck(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("\x00pophub data key check"))
	return hex.EncodeToString(m.Sum(nil))[:16]
}

// VersionCheck is the fingerprint of data key version v, which a store
// records next to Check: two key files with the same HMAC key may hold
// different keys under one version (copies that each ran `keys add`),
// and rows one sealed do not open with the other.
func (k *Keyring) VersionCheck(v uint32) (string, bool) {
	c, ok := k.checks[v]
	return c, ok
}

// VersionChecks maps every data key version held to its VersionCheck.
func (k *Keyring) VersionChecks() map[uint32]string {
	out := make(map[uint32]string, len(k.checks))
	for v, c := range k.checks {
		out[v] = c
	}
	return out
}

// CheckVersions compares a store's recorded fingerprints (version →
// VersionCheck) with k. It refuses k when it holds a recorded version
// under another key, or lacks the newest recorded version (rows sealed
// with it would not open, and k would seal new ones with an older key).
// Older recorded versions k lacks are allowed: a rotation retires them.
func CheckVersions(recorded map[uint32]string, k *Keyring) error {
	var newest uint32
	for v, want := range recorded {
		newest = max(newest, v)
		if got, ok := k.checks[v]; ok && got != want {
			return fmt.Errorf("%w: data key version %d is not the key the store recorded under that version; "+
				"another copy of the key file added its own version %d: give the key file the store was written with", ErrVersionMismatch, v, v)
		}
	}
	if _, ok := k.checks[newest]; newest > 0 && !ok {
		return fmt.Errorf("%w: the keys lack data key version %d, the newest the store recorded (held: %v): give the key file with it",
			ErrVersionMismatch, newest, k.version)
	}
	return nil
}
