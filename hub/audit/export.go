package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pophub/pophub/internal/durable"
)

// ExportFormat names the archive format in its manifest.
const ExportFormat = "pophub-audit-export/1"

// ExportFormatRedacted names the format of an archive holding stubs
// (lines with "redacted":true, whose hash is taken as stored): a
// verifier that knows only ExportFormat refuses it by name rather than
// reporting every stub as changed. An archive without stubs keeps
// ExportFormat.
const ExportFormatRedacted = "pophub-audit-export/2"

// Manifest describes an export archive: the entries of one contiguous
// stretch of the chain, as JSON lines (the Entry JSON form, one per line).
// The manifest is signed with Ed25519 by a detached signature over its
// exact bytes, so a regulator can check it with any Ed25519 tool, e.g.
//
//	openssl pkeyutl -verify -pubin -inkey audit-signing.pub -rawin \
//	    -in export.jsonl.manifest.json -sigfile export.jsonl.manifest.json.sig
//
// and then the archive's SHA-256 (sha256sum) and, if it wishes, the chain:
// each line's hash is SHA-256(prev || Canonical(entry)) (see Canonical),
// the first line's prev is Prev and the last line's hash is Head. In
// format ExportFormatRedacted, a line with "redacted": true is a stub a
// retention purge emptied: its hash is taken as stored (the next line's
// prev must still equal it).
type Manifest struct {
	Format string `json:"format"`
	// From and To are the requested time range (From <= Time < To).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// FirstSeq..LastSeq are the exported entries: every entry between the
	// first and the last one in the range, so that the stretch is a chain.
	FirstSeq int64 `json:"first_seq"`
	LastSeq  int64 `json:"last_seq"`
	Count    int64 `json:"count"`
	// Prev is the hash the first entry is chained to; Head is the last
	// entry's hash, the chain head at the end of the range.
	Prev Sum `json:"prev"`
	Head Sum `json:"head"`
	// ArchiveSHA256 is the SHA-256 of the archive file.
	ArchiveSHA256 Sum       `json:"archive_sha256"`
	Created       time.Time `json:"created"`
	// PublicKey identifies the signing key (base64 of the 32-byte Ed25519
	// public key). A verifier trusts the key it was given, not this one.
	PublicKey string `json:"public_key,omitempty"`
}

// ErrEmptyRange is returned by Export when no entry lies in the range.
var ErrEmptyRange = errors.New("no audit entries in the range")

// Export writes the entries with from <= Time < to (and any entry stored
// between them) to archive as JSON lines, checking their chain on the way,
// and returns the unsigned manifest. With the audit key (non-zero) it
// checks every entry's seal too, and the anchor's when the stretch starts
// at it: the SHA-256 chain alone is recomputed by whoever rewrites an
// entry, and a manifest signed over a forged stretch would vouch for it.
// It fails, writing a partial archive, when the stretch does not verify:
// run Verify to see where.
func Export(ctx context.Context, s Store, from, to time.Time, archive io.Writer, key Key) (Manifest, error) {
	m := Manifest{Format: ExportFormat, From: from.UTC(), To: to.UTC(), Created: time.Now().UTC().Truncate(time.Second)}
	first, last, ok, err := s.SeqRange(ctx, from, to)
	if err != nil {
		return m, err
	}
	if !ok {
		return m, ErrEmptyRange
	}
	anchor, err := s.Anchor(ctx)
	if err != nil {
		return m, fmt.Errorf("exporting: reading anchor: %w", err)
	}
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(archive, sum), 1<<20)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	var v *Verifier
	err = s.Scan(ctx, first, last, func(e *Entry) error {
		if v == nil {
			m.FirstSeq, m.Prev = e.Seq, e.Prev
			start, atAnchor := exportStart(anchor, e)
			v = newVerifier(start, VerifyOptions{Key: key}, atAnchor)
		}
		v.Add(e)
		m.Count++
		if e.Redacted {
			m.Format = ExportFormatRedacted
		}
		return enc.Encode(e)
	})
	if err != nil {
		return m, fmt.Errorf("exporting: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return m, fmt.Errorf("writing archive: %w", err)
	}
	if v == nil {
		return m, ErrEmptyRange
	}
	rep := v.Finish()
	if !rep.OK() {
		return m, fmt.Errorf("exporting: the log does not verify: %s", rep.Problems[0])
	}
	m.LastSeq, m.Head = rep.Head.Seq, rep.Head.Hash
	copy(m.ArchiveSHA256[:], sum.Sum(nil))
	return m, nil
}

// exportStart is the position an export's first entry e is checked
// against: the anchor when e follows it (so that a key checks the
// anchor's seal too), else e's own link back, which the entries before
// the stretch vouch for, not the export.
func exportStart(anchor Link, e *Entry) (start Link, atAnchor bool) {
	if anchor.Seq > 0 && anchor.Seq == e.Seq-1 {
		return anchor, true
	}
	return Link{Seq: e.Seq - 1, Hash: e.Prev}, false
}

// Sign sets m.PublicKey and returns the manifest's bytes and their
// detached Ed25519 signature, to be written side by side.
func (m Manifest) Sign(priv ed25519.PrivateKey) (manifest, sig []byte, err error) {
	m.PublicKey = base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
	manifest, err = json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("encoding manifest: %w", err)
	}
	manifest = append(manifest, '\n')
	return manifest, ed25519.Sign(priv, manifest), nil
}

// VerifyExport checks a signed export: the signature of the manifest
// bytes under pub, the archive's SHA-256, and the chain of its entries
// from Prev to Head with the manifest's count and sequence numbers. The
// Report lists chain problems; the error is non-nil when anything fails.
func VerifyExport(manifest, sig []byte, pub ed25519.PublicKey, archive io.Reader) (Manifest, Report, error) {
	m, err := VerifyManifest(manifest, sig, pub)
	if err != nil {
		return m, Report{}, err
	}
	sum := sha256.New()
	rep, err := verifyArchive(io.TeeReader(archive, sum), m)
	if err != nil {
		return m, rep, err
	}
	var got Sum
	copy(got[:], sum.Sum(nil))
	switch {
	case got != m.ArchiveSHA256:
		return m, rep, fmt.Errorf("verifying export: the archive's SHA-256 is %s, the manifest says %s", got, m.ArchiveSHA256)
	case !rep.OK():
		return m, rep, fmt.Errorf("verifying export: %d problems, first %s", rep.NumProblems, rep.Problems[0])
	case rep.Entries != m.Count || rep.Head.Seq != m.LastSeq || rep.Head.Hash != m.Head:
		return m, rep, fmt.Errorf("verifying export: the archive holds %d entries up to seq %d (%s), the manifest says %d up to %d (%s)",
			rep.Entries, rep.Head.Seq, rep.Head.Hash, m.Count, m.LastSeq, m.Head)
	}
	return m, rep, nil
}

// VerifyManifest checks the manifest's signature under pub and decodes
// it.
func VerifyManifest(manifest, sig []byte, pub ed25519.PublicKey) (Manifest, error) {
	var m Manifest
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, manifest, sig) {
		return m, errors.New("verifying export: the manifest's signature does not verify under the given key")
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return m, fmt.Errorf("verifying export: decoding manifest: %w", err)
	}
	if m.Format != ExportFormat && m.Format != ExportFormatRedacted {
		return m, fmt.Errorf("verifying export: format %q, want %q or %q", m.Format, ExportFormat, ExportFormatRedacted)
	}
	return m, nil
}

func verifyArchive(r io.Reader, m Manifest) (Report, error) {
	v := NewVerifier(Link{Seq: m.FirstSeq - 1, Hash: m.Prev}, VerifyOptions{})
	br := bufio.NewReaderSize(r, 1<<20)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var e Entry
			if err := json.Unmarshal(line, &e); err != nil {
				return Report{}, fmt.Errorf("verifying export: archive line %d: %w", n, err)
			}
			v.Add(&e)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Report{}, fmt.Errorf("verifying export: reading archive: %w", err)
		}
	}
	return v.Finish(), nil
}

// GenerateSigningKey writes a new Ed25519 key pair: the private key to
// path (PEM, PKCS #8, readable by its owner only; it must not exist) and
// the public key to path+".pub" (PEM, PKIX), which is what a regulator is
// given.
func GenerateSigningKey(path string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encoding signing key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	// Whole or not at all: an empty key file left by a crash would be
	// refused at the next export, and the name not free for a new one.
	if err := durable.CreateNew(path, func(f *os.File) error {
		return pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if err := os.WriteFile(path+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return nil, fmt.Errorf("writing public key: %w", err)
	}
	return pub, nil
}

// LoadSigningKey reads a private key written by GenerateSigningKey (or
// `openssl genpkey -algorithm ed25519`).
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parsing signing key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("parsing signing key: not an Ed25519 key")
	}
	return priv, nil
}

// LoadPublicKey reads a public key written by GenerateSigningKey (or
// `openssl pkey -pubout`).
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("parsing public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("parsing public key: not an Ed25519 key")
	}
	return pub, nil
}

func readPEM(path, typ string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != typ {
		return nil, fmt.Errorf("reading key %s: no PEM block of type %s", path, typ)
	}
	return blk.Bytes, nil
}
