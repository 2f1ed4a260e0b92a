package main

import (
	"bufio"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestCrashImport kills `pophub import` of a JSONL file with SIGKILL at
// random moments, mid-send included, and runs it again on the same file
// after each kill until it completes, spooled and with --stream. What a
// user relies on (the README: an interrupted import "continues where it
// stopped when run again on the same file, without sending a line twice"):
// each line's event is on the topic exactly once, even after kill -9, and
// nothing else is.
func TestCrashImport(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	if out, err := exec.Command(bin, "synth", "--persons", "6000", "--out", dir).CombinedOutput(); err != nil {
		t.Fatalf("synth: %v\n%s", err, out)
	}
	want := eventIDs(t, filepath.Join(dir, "social_insurance.jsonl"))
	topic := schemas.Topic(schemas.SocialInsurance)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"spooled", nil},
		{"stream", []string{"--stream"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broker := testenv.KafkaProcess(t, faultPartitions)
			// A copy of the file per case: the import keeps its checkpoint
			// beside it.
			file := filepath.Join(t.TempDir(), "social_insurance.jsonl")
			b, err := os.ReadFile(filepath.Join(dir, "social_insurance.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, b, 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"import", "--source", "social_insurance", "--file", file, "--kafka", broker, "--log-level", "warn"}, tc.args...)
			progress := func() int64 { return testenv.RecordCount(t, broker, topic) }
			r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
			const kills = 4
			for kill := 0; kill < kills; kill++ {
				c := startChild(t, bin, args...)
				when, killed := killAtRandom(t, r, c, kill, int64(len(want)), progress)
				if !killed {
					t.Logf("kill %d: the import completed first", kill)
					break
				}
				t.Logf("kill %d %s; %d records on the topic", kill, when, progress())
			}
			c := startChild(t, bin, args...)
			<-c.done
			if c.err != nil {
				t.Fatalf("the import after the kills: %v; its log:\n%s", c.err, c.output())
			}

			got := map[string]int{}
			for _, rec := range testenv.Records(t, broker, topic) {
				var ev struct{ ID string }
				if err := json.Unmarshal(rec.Value, &ev); err != nil {
					t.Fatal(err)
				}
				got[ev.ID]++
			}
			missing, twice, stray := 0, 0, 0
			for id := range want {
				if got[id] == 0 {
					missing++
				}
			}
			for id, n := range got {
				if !want[id] {
					stray++
				}
				if n > 1 {
					twice++
				}
			}
			t.Logf("%d lines, %d distinct events on the topic", len(want), len(got))
			if missing > 0 || twice > 0 || stray > 0 {
				t.Errorf("after %d kills: %d events missing, %d sent more than once, %d not in the file", kills, missing, twice, stray)
			}
		})
	}
}

// eventIDs reads the event ids of a JSONL file of events.
func eventIDs(t testing.TB, file string) map[string]bool {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev struct{ ID string }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		ids[ev.ID] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}
