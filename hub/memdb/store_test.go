package memdb

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
)

func open(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) hub.Store { return open(t, "") })
}

func TestConformancePersisted(t *testing.T) {
	storetest.Run(t, func(t *testing.T) hub.Store { return open(t, t.TempDir()) })
}

// crash drops s as kill -9 would: without Close and so without a final
// snapshot (once a background snapshot, if any, is written), its
// directory lock released as the kernel releases it. Close is a no-op
// afterwards.
func crash(s *Store) {
	s.mu.Lock()
	done := s.snapshotDone
	s.mu.Unlock()
	if done != nil {
		<-done
	}
	s.wal.f.Close()
	s.lock.Close()
	s.closeOnce.Do(func() { s.closed = true })
}

func apply(t testing.TB, s *Store, in []hub.Input, batch int) {
	t.Helper()
	for i := 0; i < len(in); i += batch {
		if _, err := s.Apply(context.Background(), in[i:min(i+batch, len(in))]); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRecovery reopens a store from its log alone, from a snapshot plus a
// log, and after outbox entries were published.
func TestRecovery(t *testing.T) {
	in := storetest.Population(t, 80, 21)
	want := storetest.Expected(in)
	tests := []struct {
		name     string
		snapshot int
	}{
		{"log only", 1 << 30},
		{"snapshot and log", 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(context.Background(), Config{Dir: dir, SnapshotEvery: tc.snapshot})
			if err != nil {
				t.Fatal(err)
			}
			apply(t, s, in, 97)
			pending, _ := s.PendingOutbox(context.Background(), 0, 1<<20)
			var seqs []int64
			for _, e := range pending[:len(pending)/2] {
				seqs = append(seqs, e.Seq)
			}
			if err := s.MarkPublished(context.Background(), seqs); err != nil {
				t.Fatal(err)
			}
			before, _ := s.Stats(context.Background())
			crash(s)

			r := open(t, dir)
			storetest.CompareRecords(t, r, want)
			storetest.CompareHistory(t, r, storetest.ExpectedHistory(in))
			// Counters are rebuilt from the snapshot's persons and the log.
			regions := []string{"11", "23", "2301", "230102", "31", "44", "51", "43"}
			for _, day := range []string{"2016-06-30", "2020-12-31", "2024-12-31"} {
				q := hub.CountQuery{Regions: regions, AsOf: day}
				was, err1 := s.Counts(context.Background(), q)
				got, err2 := r.Counts(context.Background(), q)
				if err1 != nil || err2 != nil || !reflect.DeepEqual(was, got) {
					t.Fatalf("counts as of %s before the crash %v (%v), after recovery %v (%v)", day, was, err1, got, err2)
				}
			}
			after, _ := r.Stats(context.Background())
			if after != before {
				t.Errorf("stats after recovery %+v, before %+v", after, before)
			}
			res, err := r.Apply(context.Background(), in)
			if err != nil || res.Applied != 0 || res.Duplicates != len(in) {
				t.Errorf("re-delivery after recovery: %+v, %v; want all duplicates", res, err)
			}
		})
	}
}

// TestFilesAreOwnerOnly: the snapshot, the log and the lock file hold or
// guard personal data, so only the hub's own user may read them, whatever
// the umask.
func TestFilesAreOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), Config{Dir: dir, SnapshotEvery: 50})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, storetest.Population(t, 30, 3), 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	snapshot := false
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		snapshot = snapshot || e.Name() == snapshotName
		if info.Mode().IsRegular() && info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v; want no access for group or others", e.Name(), info.Mode().Perm())
		}
	}
	if !snapshot {
		t.Fatalf("no snapshot written in %v", entries)
	}
}

// TestDamagedLogFrameRefused: one damaged byte inside the log, with
// frames after it, is damage, not a torn tail: those frames hold
// acknowledged batches whose Kafka offsets are committed. The store
// refuses to open, names the file and offset, and leaves the file alone.
func TestDamagedLogFrameRefused(t *testing.T) {
	in := storetest.Population(t, 30, 22)
	dir := t.TempDir()
	s, err := Open(context.Background(), Config{Dir: dir, SnapshotEvery: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	third := len(in) / 3
	apply(t, s, in[:third], third)
	info, err := s.wal.f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	second := info.Size() // the second frame starts here
	apply(t, s, in[third:2*third], third)
	apply(t, s, in[2*third:], len(in)-2*third)
	path := walPath(dir, s.wal.gen)
	crash(s)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[second+100] ^= 0x01 // one bit inside the second frame's payload
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Open(context.Background(), Config{Dir: dir})
	if err == nil {
		r.Close()
		t.Fatal("opened a store whose log is damaged before two acknowledged batches")
	}
	if want := fmt.Sprintf("is damaged at offset %d", second); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	after, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(after, data) {
		t.Errorf("the damaged log was changed (%d bytes, was %d): %v", len(after), len(data), err)
	}
}

// TestDamagedLengthFieldRefused: a damaged length field in a frame with
// frames after it makes the frame seem to run past the end of the file,
// as the last frame of a crash mid-write does. Whole frames follow it,
// though, holding acknowledged batches: the store refuses to open, names
// the file and offset, and leaves the file alone.
func TestDamagedLengthFieldRefused(t *testing.T) {
	in := storetest.Population(t, 30, 22)
	dir := t.TempDir()
	s, err := Open(context.Background(), Config{Dir: dir, SnapshotEvery: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	third := len(in) / 3
	apply(t, s, in[:third], third)
	info, err := s.wal.f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	second := info.Size() // the second frame starts here
	apply(t, s, in[third:2*third], third)
	apply(t, s, in[2*third:], len(in)-2*third)
	gen := s.wal.gen
	crash(s)
	clean, err := os.ReadFile(walPath(dir, gen))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		byte int  // of the length field, little-endian
		flip byte // bits flipped
	}{
		{0, 0x80}, // 128 bytes longer or shorter
		{1, 0x80}, // 32 KiB
		{2, 0x01}, // 64 KiB: past the end
		{2, 0x80}, // 8 MiB
		{3, 0x01}, // 16 MiB
		{3, 0x80}, // 2 GiB
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("byte %d ^ %#x", tc.byte, tc.flip), func(t *testing.T) {
			d := t.TempDir()
			path := walPath(d, gen)
			data := bytes.Clone(clean)
			data[second+int64(tc.byte)] ^= tc.flip
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := Open(context.Background(), Config{Dir: d})
			if err == nil {
				after, _ := os.ReadFile(path)
				r.Close()
				t.Fatalf("opened the store: log cut from %d to %d bytes, two acknowledged batches dropped", len(data), len(after))
			}
			t.Log(err)
			for _, want := range []string{filepath.Base(path), fmt.Sprintf("is damaged at offset %d", second), "restore the data directory from a backup"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			after, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(after, data) {
				t.Errorf("the damaged log was changed (%d bytes, was %d): %v", len(after), len(data), err)
			}
		})
	}
}

// TestRecoveryIsLogged: opening a store with data logs that it is
// recovering, and how far a long replay has come, before it logs that it
// has recovered; an operator watching a restart sees why the hub is not
// serving yet.
func TestRecoveryIsLogged(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	apply(t, s, storetest.Population(t, 20, 5), 10)
	crash(s)

	was := recoveryReportEvery
	recoveryReportEvery = 0 // report at every frame
	t.Cleanup(func() { recoveryReportEvery = was })
	var buf bytes.Buffer
	r, err := Open(context.Background(), Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	log := buf.String()
	start := strings.Index(log, "memdb store recovering: loading snapshot and replaying log")
	progress := strings.Index(log, "memdb store recovering: replaying log")
	done := strings.Index(log, "memdb store recovered")
	if start < 0 || progress < start || done < progress {
		t.Fatalf("recovery log lacks a start, progress and end in that order:\n%s", log)
	}

	// An empty directory is a new store, not a recovery.
	buf.Reset()
	e, err := Open(context.Background(), Config{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	if strings.Contains(buf.String(), "recovering") {
		t.Errorf("a new store logged a recovery:\n%s", buf.String())
	}
}

// TestSnapshotHistoryInAnyOrder: a snapshot's history lines may come in
// any order and after all persons (as snapshots written before history
// moved into the person records have them); loading links each person's
// history in version order and knows every event again.
func TestSnapshotHistoryInAnyOrder(t *testing.T) {
	in := storetest.Population(t, 40, 5)
	dir, path, data := closedSnapshot(t, in)
	data = releasedFormat(t, data) // whose lines may be rearranged
	var head, hist []string
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if strings.HasPrefix(line, `{"k":"h"`) {
			hist = append(hist, line)
		} else if line != "" {
			head = append(head, line)
		}
	}
	if len(hist) < len(in)/2 {
		t.Fatalf("snapshot has %d history lines for %d events", len(hist), len(in))
	}
	slices.Reverse(hist)
	if err := os.WriteFile(path, []byte(strings.Join(append(head, hist...), "")), 0o600); err != nil {
		t.Fatal(err)
	}
	r := open(t, dir)
	storetest.CompareRecords(t, r, storetest.Expected(in))
	storetest.CompareHistory(t, r, storetest.ExpectedHistory(in))
	res, err := r.Apply(context.Background(), in)
	if err != nil || res.Applied != 0 || res.Duplicates != len(in) {
		t.Errorf("re-delivery after loading: %+v, %v; want all duplicates", res, err)
	}
}

// TestSnapshotOfEarlierReleaseReadsInCST: a snapshot written before event
// times were kept in China Standard Time holds history times in the
// offset the department wrote and applied_at to the nanosecond; loaded,
// its history reads as the store now writes it, as PostgreSQL's does.
func TestSnapshotOfEarlierReleaseReadsInCST(t *testing.T) {
	in := storetest.Population(t, 20, 5)
	dir, path, data := closedSnapshot(t, in)
	data = releasedFormat(t, data)
	cst := regexp.MustCompile(`"time":"([^"]+)"`)
	applied := regexp.MustCompile(`"applied_at":"([^"]+)Z"`)
	var rewritten int
	lines := strings.SplitAfter(string(data), "\n")
	for i, line := range lines {
		if !strings.HasPrefix(line, `{"k":"h"`) {
			continue
		}
		line = cst.ReplaceAllStringFunc(line, func(m string) string {
			at, err := time.Parse(time.RFC3339Nano, cst.FindStringSubmatch(m)[1])
			if err != nil {
				t.Fatal(err)
			}
			return `"time":"` + at.UTC().Format(time.RFC3339Nano) + `"`
		})
		lines[i] = applied.ReplaceAllString(line, `"applied_at":"${1}123Z"`)
		rewritten++
	}
	if rewritten < len(in)/2 {
		t.Fatalf("snapshot has %d history lines for %d events", rewritten, len(in))
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	storetest.CompareHistory(t, open(t, dir), storetest.ExpectedHistory(in))
}

// closedSnapshot applies in to a store in a new directory, closes it (which
// writes its snapshot) and returns the directory, the snapshot's path and
// its contents.
func closedSnapshot(t *testing.T, in []hub.Input) (dir, path string, data []byte) {
	t.Helper()
	dir = t.TempDir()
	s := open(t, dir)
	apply(t, s, in, 50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, snapshotName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return dir, path, data
}

func storeStats(t *testing.T, s *Store) hub.StoreStats {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestTornLogTail cuts the log at every byte of its last frame: the store
// must open, keep every complete batch and drop only the torn one.
func TestTornLogTail(t *testing.T) {
	in := storetest.Population(t, 20, 22)
	dir := t.TempDir()
	s, err := Open(context.Background(), Config{Dir: dir, SnapshotEvery: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	first, last := in[:len(in)-5], in[len(in)-5:]
	apply(t, s, first, len(first))
	info, _ := s.wal.f.Stat()
	cut := info.Size()
	apply(t, s, last, len(last))
	s.wal.f.Close()
	gen := s.wal.gen
	full, err := os.ReadFile(walPath(dir, gen))
	if err != nil {
		t.Fatal(err)
	}
	want := storetest.Expected(first)
	for n := cut; n < int64(len(full)); n += 7 {
		d := t.TempDir()
		if err := os.WriteFile(walPath(d, gen), full[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := Open(context.Background(), Config{Dir: d})
		if err != nil {
			t.Fatalf("open with log cut at %d of %d: %v", n, len(full), err)
		}
		storetest.CompareRecords(t, r, want)
		st, _ := r.Stats(context.Background())
		if st.Changes != int64(len(first)) {
			t.Fatalf("cut at %d: %d changes, want %d", n, st.Changes, len(first))
		}
		r.Close()
	}
}

// TestZeroFilledLogTail: zeros past the last frame (blocks a crash left
// allocated but unwritten, as XFS or ext4 with data=writeback can) end the
// log like a torn frame. An empty payload's CRC-32C is 0, so they once
// read as an empty frame and the store refused to open.
func TestZeroFilledLogTail(t *testing.T) {
	in := storetest.Population(t, 20, 22)
	dir := t.TempDir()
	s, err := Open(context.Background(), Config{Dir: dir, SnapshotEvery: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, in, len(in))
	gen := s.wal.gen
	crash(s)
	f, err := os.OpenFile(walPath(dir, gen), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatalf("reopening after a zero-filled tail: %v", err)
	}
	defer r.Close()
	storetest.CompareRecords(t, r, storetest.Expected(in))
}

// TestKill9 applies batches in a child process that reports each
// acknowledged batch, kills it with SIGKILL at random moments, reopens the
// store and checks that every acknowledged batch is there exactly once.
func TestKill9(t *testing.T) {
	if os.Getenv("POPHUB_MEMDB_CHILD") != "" {
		childApply(os.Getenv("POPHUB_MEMDB_CHILD"))
		return
	}
	dir := t.TempDir()
	in := storetest.Population(t, 300, 23)
	const batch = 50
	acked := 0
	kills := 0
	for round := 0; round < 4 && acked*batch < len(in); round++ {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestKill9$")
		cmd.Env = append(os.Environ(), "POPHUB_MEMDB_CHILD="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		killAfter := 2 + round*3
		seen := 0
		for sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(line, "acked "); ok {
				// The child starts over each time (re-applying what survived
				// as duplicates); batches 1..n are acknowledged.
				k, _ := strconv.Atoi(n)
				acked = max(acked, k)
				seen++
				if seen == killAfter {
					cmd.Process.Kill() // SIGKILL
					kills++
					break
				}
			}
		}
		cmd.Wait()
	}
	s := open(t, dir)
	st, _ := s.Stats(context.Background())
	t.Logf("after %d kills: %d batches of %d acknowledged, %d changes recovered", kills, acked, batch, st.Changes)
	if kills == 0 {
		t.Fatal("the child was never killed")
	}
	if st.Changes < int64(min(acked*batch, len(in))) {
		t.Fatalf("%d changes survived, %d batches of %d were acknowledged", st.Changes, acked, batch)
	}
	// Everything acknowledged is there exactly once; finishing the run
	// gives the records of an undisturbed run.
	apply(t, s, in, batch)
	storetest.CompareRecords(t, s, storetest.Expected(in))
	st, _ = s.Stats(context.Background())
	if st.Changes != int64(len(in)) {
		t.Fatalf("%d changes after finishing, want %d", st.Changes, len(in))
	}
}

// TestDirInUse: a second store on a directory in use is refused, since
// the two would delete each other's log files and lose applied events;
// once the first is closed the directory opens again. (TestKill9 shows
// that a killed holder's lock goes with it.)
func TestDirInUse(t *testing.T) {
	dir := t.TempDir()
	first := open(t, dir)
	apply(t, first, storetest.Population(t, 5, 3), 10)

	second, err := Open(context.Background(), Config{Dir: dir})
	if err == nil {
		second.Close()
		t.Fatal("a second store opened a directory in use")
	}
	if want := "data directory " + dir + " is in use by another pophub process"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to say %q", err, want)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again := open(t, dir)
	if st, _ := again.Stats(context.Background()); st.Changes == 0 {
		t.Error("the reopened store lost the first one's changes")
	}
}

// childApply runs in the child: applies the population batch by batch,
// printing "acked N" after the Nth batch was acknowledged, slowly enough
// for the parent to kill it mid-run.
func childApply(dir string) {
	s, err := Open(context.Background(), Config{Dir: dir, SnapshotEvery: 400})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	in, err := storetest.PopulationEvents(300, 23)
	if err != nil {
		fmt.Println("population:", err)
		os.Exit(2)
	}
	const batch = 50
	for i := 0; i*batch < len(in); i++ {
		if _, err := s.Apply(context.Background(), in[i*batch:min((i+1)*batch, len(in))]); err != nil {
			fmt.Println("apply:", err)
			os.Exit(2)
		}
		fmt.Printf("acked %d\n", i+1)
		time.Sleep(2 * time.Millisecond)
	}
	os.Exit(0)
}

// TestReplayDoesNotRevalidate: an event applied under older, looser rules
// stays in the log; tightening validation later must not keep the store
// from opening.
func TestReplayDoesNotRevalidate(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), Config{Dir: dir, SnapshotEvery: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	in := storetest.Population(t, 2, 61)
	late := in[0]
	late.Event.ID = "future-1"
	late.Event.Time = time.Now().AddDate(5, 0, 0) // today's rules reject this
	if _, err := s.Apply(context.Background(), append(in, late)); err != nil {
		t.Fatal(err)
	}
	crash(s)
	r := open(t, dir)
	st, _ := r.Stats(context.Background())
	if st.Changes != int64(len(in)+1) {
		t.Fatalf("%d changes after replay, want %d", st.Changes, len(in)+1)
	}
}
