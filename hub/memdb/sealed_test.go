package memdb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/hub/storetest"
)

func openSealed(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("opening sealed store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformanceSealed(t *testing.T) {
	k := storetest.Keyring(t, storetest.Keys(t))
	storetest.Run(t, func(t *testing.T) hub.Store { return openSealed(t, Config{Dir: t.TempDir(), Keys: k}) })
}

// waitSnapshot waits for a background snapshot, if one runs, to finish.
func waitSnapshot(s *Store) {
	s.mu.Lock()
	done := s.snapshotDone
	s.mu.Unlock()
	if done != nil {
		<-done
	}
}

// readDir returns every byte of every file under dir.
func readDir(t testing.TB, dir string) []byte {
	t.Helper()
	var out []byte
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		out = append(out, b...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNoPersonalDataAtRest looks for a marked person's ID and names in
// the log and the snapshot: found in a directory in clear (which shows
// the test would see them), absent from a sealed one, before and after a
// snapshot and a key rotation.
func TestNoPersonalDataAtRest(t *testing.T) {
	ctx := context.Background()
	m := storetest.MarkedPerson(t)
	want := storetest.Expected(m.In)

	clearDir := t.TempDir()
	c := openSealed(t, Config{Dir: clearDir})
	storetest.ApplyAll(t, c, m.In, 40)
	if leaks := m.Leaks(readDir(t, clearDir)); len(leaks) != len(m.Secrets()) {
		t.Fatalf("a directory in clear shows %d of the %d secrets; the test misses something", len(leaks), len(m.Secrets()))
	}

	mat := storetest.Keys(t)
	dir := t.TempDir()
	s := openSealed(t, Config{Dir: dir, Keys: storetest.Keyring(t, mat), SnapshotEvery: 200})
	storetest.ApplyAll(t, s, m.In, 40) // log and background snapshots
	waitSnapshot(s)                    // it removes old logs while the directory is read
	if leaks := m.Leaks(readDir(t, dir)); len(leaks) > 0 {
		t.Fatalf("the log holds in clear: %q", leaks)
	}
	if err := s.Close(); err != nil { // final snapshot
		t.Fatal(err)
	}
	if leaks := m.Leaks(readDir(t, dir)); len(leaks) > 0 {
		t.Fatalf("the snapshot holds in clear: %q", leaks)
	}

	// Rotation: reopened with a new data key, the store replays what the
	// old one sealed and writes with the new one; after one close nothing
	// needs the old key, so it opens with that key removed.
	if err := mat.AddDataKey(); err != nil {
		t.Fatal(err)
	}
	r := openSealed(t, Config{Dir: dir, Keys: storetest.Keyring(t, mat)})
	storetest.CompareRecords(t, r, want)
	extra := storetest.Population(t, 5, 78)
	storetest.ApplyAll(t, r, extra, 40)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	newOnly := mat
	newOnly.Data = mat.Data[1:]
	n := openSealed(t, Config{Dir: dir, Keys: storetest.Keyring(t, newOnly)})
	storetest.CompareRecords(t, n, want)
	if leaks := m.Leaks(readDir(t, dir)); len(leaks) > 0 {
		t.Fatalf("the directory holds in clear after rotation: %q", leaks)
	}
	if _, err := n.Person(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
}

// TestSealingModeIsChecked opens directories with the wrong keys or none,
// and with a log frame moved.
func TestSealingModeIsChecked(t *testing.T) {
	ctx := context.Background()
	m := storetest.MarkedPerson(t)
	k := storetest.Keyring(t, storetest.Keys(t))
	sealed := t.TempDir()
	s := openSealed(t, Config{Dir: sealed, Keys: k, SnapshotEvery: 1 << 30})
	storetest.ApplyAll(t, s, m.In, 40)
	crash(s) // the log is all there is
	clear := t.TempDir()
	c := openSealed(t, Config{Dir: clear})
	storetest.ApplyAll(t, c, m.In[:2], 10)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		dir  string
		keys *sealing.Keyring
		want string
	}{
		{"sealed without keys", sealed, nil, "is sealed"},
		{"sealed with other keys", sealed, storetest.Keyring(t, storetest.Keys(t)), "do not match"},
		{"clear with keys", clear, k, "in clear"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(ctx, Config{Dir: tc.dir, Keys: tc.keys})
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}

	// Swap the first two frames of the log: each still passes its CRC,
	// but not its place.
	path := walPath(sealed, s.wal.gen)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	frame := func(off int) int {
		return 8 + int(uint32(b[off])|uint32(b[off+1])<<8|uint32(b[off+2])<<16|uint32(b[off+3])<<24)
	}
	n1 := frame(0)
	n2 := frame(n1)
	swapped := append(append(append([]byte{}, b[n1:n1+n2]...), b[:n1]...), b[n1+n2:]...)
	if err := os.WriteFile(path, swapped, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Config{Dir: sealed, Keys: k}); !errors.Is(err, sealing.ErrTampered) {
		t.Fatalf("opening a log with frames swapped: %v, want ErrTampered", err)
	}
}

// TestSealedSnapshotChunks round-trips the chunked snapshot format and
// refuses a cut or reordered one.
func TestSealedSnapshotChunks(t *testing.T) {
	k := storetest.Keyring(t, storetest.Keys(t))
	plain := []byte(strings.Repeat("0123456789abcdef", snapshotChunk/16*2+100)) // three chunks
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	w := &chunkWriter{w: bw, k: k}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	sealed := buf.Bytes()
	chunk := 5 + int(binary.LittleEndian.Uint32(sealed[1:5]))
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"whole", sealed, true},
		{"last chunk cut off", sealed[:2*chunk], false},
		{"cut inside a chunk", sealed[:chunk+10], false},
		{"first chunk dropped", sealed[chunk:], false},
		{"chunks swapped", append(append(append([]byte{}, sealed[chunk:2*chunk]...), sealed[:chunk]...), sealed[2*chunk:]...), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := io.ReadAll(&chunkReader{r: bufio.NewReader(bytes.NewReader(tc.in)), k: k})
			if tc.ok != (err == nil) {
				t.Fatalf("reading: %v, want ok %v", err, tc.ok)
			}
			if tc.ok && !bytes.Equal(got, plain) {
				t.Fatal("read back differs")
			}
		})
	}
}
