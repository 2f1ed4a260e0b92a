package memdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/internal/durable"
	"github.com/pophub/pophub/schemas/citizenid"
)

// With a keyring (Config.Keys) nothing the store writes to Dir holds an ID
// or a name in clear: persons and history rows are keyed by the keyed hash
// of the ID, every log frame's payload is sealed with its generation and
// index in the file as associated data (so frames cannot be dropped from
// the middle, reordered or moved between files unnoticed; a torn last
// frame still fails its CRC and is truncated as before), and the snapshot
// is a sequence of sealed chunks numbered the same way, the last one
// marked, so that a truncated snapshot is refused. Memory holds plaintext.
//
// A key file checkName in Dir records the keyring's check value; a store
// directory without it that holds a log or snapshot is in clear. Open
// refuses keys for a directory in clear, no keys for a sealed one, and
// keys other than those it was sealed with.
//
// Rotation needs no background work: the newest data key seals everything
// written from the next open on, and the first snapshot after that (at
// the latest the one Close writes) replaces the older log generations, so
// the old key can be retired once the store has been closed once.
const checkName = "keys.check"

// personKey derives the storage key of a person: the ID in clear, or its
// keyed hash when the store has keys.
func (s *Store) personKey(id citizenid.ID) string {
	if s.cfg.Keys == nil {
		return string(id)
	}
	return s.cfg.Keys.PersonKey(string(id))
}

// checkSealing compares the directory's sealing mode with the keyring and
// records it in a new directory.
func (s *Store) checkSealing() error {
	path := filepath.Join(s.cfg.Dir, checkName)
	got, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		gens, err := walGens(s.cfg.Dir)
		if err != nil {
			return fmt.Errorf("listing log files: %w", err)
		}
		_, serr := os.Stat(filepath.Join(s.cfg.Dir, snapshotName))
		if len(gens) > 0 || serr == nil {
			if s.cfg.Keys != nil {
				return errors.New("opening store: the directory holds personal data in clear and cannot be opened with keys")
			}
			return nil
		}
		if s.cfg.Keys == nil {
			return nil
		}
		// The file's content is synced as well as its name: an empty
		// keys.check after a power loss would refuse the right keys.
		if err := writeSynced(path, []byte(s.cfg.Keys.Check()+"\n")); err != nil {
			return fmt.Errorf("recording sealing mode: %w", err)
		}
		if err := durable.SyncDir(s.cfg.Dir); err != nil {
			return err
		}
		return s.checkVersions()
	case err != nil:
		return fmt.Errorf("reading sealing mode: %w", err)
	case s.cfg.Keys == nil:
		return errors.New("opening store: the directory is sealed; give its keys (--keys)")
	case string(got) != s.cfg.Keys.Check()+"\n":
		return errors.New("opening store: the keys do not match the ones the directory is sealed with")
	}
	return s.checkVersions()
}

// versionsName is the file in Dir that records the fingerprint of each
// data-key version a sealed directory was opened with, one "version
// fingerprint" line each (sealing.Keyring.VersionCheck). keys.check
// fingerprints only the HMAC key, which two copies of a key file that
// each added their own version 2 (`keys add`) share.
const versionsName = "keys.versions"

// checkVersions refuses a keyring whose data keys are not the ones the
// directory recorded (sealing.CheckVersions), then records the versions
// it holds that the directory has not seen. A directory sealed before
// the file existed records the keyring's versions as they are.
func (s *Store) checkVersions() error {
	path := filepath.Join(s.cfg.Dir, versionsName)
	recorded, err := readVersions(path)
	if err != nil {
		return err
	}
	if err := sealing.CheckVersions(recorded, s.cfg.Keys); err != nil {
		return fmt.Errorf("opening store: %w", err)
	}
	all := s.cfg.Keys.VersionChecks()
	grew := false
	for v, c := range recorded {
		all[v] = c
	}
	for v := range all {
		if _, ok := recorded[v]; !ok {
			grew = true
		}
	}
	if !grew {
		return nil
	}
	if err := writeVersions(path, all); err != nil {
		return fmt.Errorf("recording data key fingerprints: %w", err)
	}
	return durable.SyncDir(s.cfg.Dir)
}

// readVersions reads a versionsName file; none is an empty record.
func readVersions(path string) (map[uint32]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[uint32]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading data key fingerprints: %w", err)
	}
	out := make(map[uint32]string)
	for line := range strings.Lines(string(b)) {
		var v uint32
		var c string
		if _, err := fmt.Sscanf(line, "%d %s", &v, &c); err != nil {
			return nil, fmt.Errorf("reading data key fingerprints %s: line %q: %w", path, strings.TrimSpace(line), err)
		}
		out[v] = c
	}
	return out, nil
}

// writeVersions replaces a versionsName file atomically (a new file
// synced, then renamed over the old), oldest version first.
func writeVersions(path string, checks map[uint32]string) error {
	var b strings.Builder
	for _, v := range slices.Sorted(maps.Keys(checks)) {
		fmt.Fprintf(&b, "%d %s\n", v, checks[v])
	}
	tmp := path + ".tmp"
	if err := writeSynced(tmp, []byte(b.String())); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// frameAD is the associated data of log frame index of generation gen.
func frameAD(gen, index uint64) []byte {
	b := append(make([]byte, 0, 17), 'L')
	b = binary.BigEndian.AppendUint64(b, gen)
	return binary.BigEndian.AppendUint64(b, index)
}

// chunkAD is the associated data of snapshot chunk index.
func chunkAD(index uint64, last bool) []byte {
	b := append(make([]byte, 0, 10), 'S')
	b = binary.BigEndian.AppendUint64(b, index)
	if last {
		return append(b, 1)
	}
	return append(b, 0)
}

// snapshotChunk is how much plaintext a sealed snapshot chunk holds.
const snapshotChunk = 1 << 20

// chunkWriter seals what is written to it in chunks: flag byte (1 on the
// last chunk), length (uint32), sealed chunk. Close writes the last one.
type chunkWriter struct {
	w     *bufio.Writer
	k     *sealing.Keyring
	buf   []byte
	index uint64
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		take := min(len(p), snapshotChunk-len(c.buf))
		c.buf = append(c.buf, p[:take]...)
		p = p[take:]
		if len(c.buf) == snapshotChunk {
			if err := c.flush(false); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (c *chunkWriter) flush(last bool) error {
	blob := c.k.Seal(c.buf, chunkAD(c.index, last))
	c.index++
	c.buf = c.buf[:0]
	var hdr [5]byte
	if last {
		hdr[0] = 1
	}
	binary.LittleEndian.PutUint32(hdr[1:], uint32(len(blob)))
	if _, err := c.w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := c.w.Write(blob)
	return err
}

// Close seals the last chunk (possibly empty); it does not flush w.
func (c *chunkWriter) Close() error { return c.flush(true) }

// chunkReader opens what a chunkWriter wrote.
type chunkReader struct {
	r     *bufio.Reader
	k     *sealing.Keyring
	buf   []byte
	index uint64
	done  bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.done {
			return 0, io.EOF
		}
		var hdr [5]byte
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			return 0, fmt.Errorf("reading sealed snapshot chunk %d: %w (truncated)", c.index, io.ErrUnexpectedEOF)
		}
		last := hdr[0] == 1
		blob := make([]byte, binary.LittleEndian.Uint32(hdr[1:]))
		if _, err := io.ReadFull(c.r, blob); err != nil {
			return 0, fmt.Errorf("reading sealed snapshot chunk %d: %w (truncated)", c.index, io.ErrUnexpectedEOF)
		}
		raw, err := c.k.Open(blob, chunkAD(c.index, last))
		if err != nil {
			return 0, fmt.Errorf("opening snapshot chunk %d: %w", c.index, err)
		}
		c.index++
		c.buf, c.done = raw, last
		if last {
			if _, err := c.r.Peek(1); err != io.EOF {
				return 0, errors.New("reading sealed snapshot: data after the last chunk")
			}
		}
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

// writeSynced writes a new file and syncs its content.
func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}
