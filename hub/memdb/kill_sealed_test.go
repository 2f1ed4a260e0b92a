package memdb

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/hub/storetest"
)

// Sizes shared by TestKill9Sealed and its child process.
const (
	sealedPersons = 200
	sealedSeed    = 29
	sealedBatch   = 40
)

// TestKill9Sealed kills a process applying batches to a sealed store that
// snapshots every 100 events and, between batches, marks its outbox
// published and deletes what was published, as the relay does. The kills
// are SIGKILLs at random moments, before the first acknowledgement (at
// open, while the log is replayed) or up to 300 ms after it (mid-batch,
// mid-snapshot, mid-outbox update). What a user relies on: the store opens
// after every kill, every batch acknowledged before a kill is there exactly
// once, finishing the run gives the records of an undisturbed one, and the
// statistics counters equal a recount.
func TestKill9Sealed(t *testing.T) {
	if dir := os.Getenv("POPHUB_MEMDB_SEALED_CHILD"); dir != "" {
		childApplySealed(dir, os.Getenv("POPHUB_MEMDB_SEALED_KEYS"))
		return
	}
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "keys")
	if err := sealing.CreateFile(keyFile); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	acked := 0
	const kills = 8
	for kill := 0; kill < kills; kill++ {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestKill9Sealed$")
		cmd.Env = append(os.Environ(), "POPHUB_MEMDB_SEALED_CHILD="+dir, "POPHUB_MEMDB_SEALED_KEYS="+keyFile)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Killed when the test ends, whatever the outcome.
		t.Cleanup(func() { cmd.Process.Kill() })
		lines := make(chan string, 200) // more than the child prints
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// One kill in four lands 0–300 ms after the child starts opening
		// the store (while it replays the log), the others as long after
		// the first acknowledgement.
		var timer <-chan time.Time
		arm := func() {
			if timer == nil {
				timer = time.After(time.Duration(r.IntN(300)) * time.Millisecond)
			}
		}
	run:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break run
				}
				if line == "opening" {
					if kill%4 == 0 {
						arm()
					}
					continue
				}
				n, isAck := strings.CutPrefix(line, "acked ")
				if !isAck {
					cmd.Process.Kill()
					t.Fatalf("kill %d: the child says %s", kill, line)
				}
				// The child starts over each time, re-applying what
				// survived as duplicates: batches 1..n are acknowledged.
				k, _ := strconv.Atoi(n)
				acked = max(acked, k)
				arm()
			case <-timer:
				cmd.Process.Kill()
				timer = nil
			}
		}
		cmd.Wait()
	}
	keys, err := sealing.Load(context.Background(), sealing.File(keyFile))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Config{Dir: dir, Keys: keys})
	if err != nil {
		t.Fatalf("opening after %d kills: %v", kills, err)
	}
	t.Cleanup(func() { s.Close() })
	in := storetest.Population(t, sealedPersons, sealedSeed)
	st, _ := s.Stats(context.Background())
	t.Logf("after %d kills: %d batches of %d acknowledged, %d changes recovered", kills, acked, sealedBatch, st.Changes)
	if st.Changes < int64(min(acked*sealedBatch, len(in))) {
		t.Fatalf("%d changes survived, %d batches of %d were acknowledged", st.Changes, acked, sealedBatch)
	}
	apply(t, s, in, sealedBatch)
	storetest.CompareRecords(t, s, storetest.Expected(in))
	st, _ = s.Stats(context.Background())
	if st.Changes != int64(len(in)) {
		t.Fatalf("%d changes after finishing, want %d", st.Changes, len(in))
	}
	if diffs, err := s.VerifyCounters(context.Background()); err != nil || len(diffs) > 0 {
		t.Fatalf("counters differ from a recount: %v %v", diffs, err)
	}
}

// childApplySealed is the killed process: it applies the population in
// batches to the sealed store in dir, printing "opening" before it opens
// the store and "acked n" after batch n, and updates the outbox between
// batches as the relay would. Anything else it prints is an error.
func childApplySealed(dir, keyFile string) {
	fail := func(what string, err error) {
		fmt.Printf("%s: %v\n", what, err)
		os.Exit(2)
	}
	ctx := context.Background()
	keys, err := sealing.Load(ctx, sealing.File(keyFile))
	if err != nil {
		fail("loading keys", err)
	}
	in, err := storetest.PopulationEvents(sealedPersons, sealedSeed)
	if err != nil {
		fail("generating", err)
	}
	fmt.Println("opening")
	s, err := Open(ctx, Config{Dir: dir, Keys: keys, SnapshotEvery: 100})
	if err != nil {
		fail("opening", err)
	}
	for i := 0; i*sealedBatch < len(in); i++ {
		if _, err := s.Apply(ctx, in[i*sealedBatch:min((i+1)*sealedBatch, len(in))]); err != nil {
			fail("applying", err)
		}
		fmt.Printf("acked %d\n", i+1)
		pending, err := s.PendingOutbox(ctx, 0, 50)
		if err != nil {
			fail("reading the outbox", err)
		}
		seqs := make([]int64, 0, len(pending))
		for _, e := range pending {
			seqs = append(seqs, e.Seq)
		}
		if len(seqs) > 0 {
			if err := s.MarkPublished(ctx, seqs); err != nil {
				fail("marking published", err)
			}
		}
		if i%5 == 0 {
			if err := s.DeletePublished(ctx, 0); err != nil {
				fail("deleting published", err)
			}
		}
	}
	os.Exit(0)
}
