package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/adapters/importer"
	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// housingLines returns the housing bureau's events of a synthetic
// population (300 persons over 12 months, seed 7), each encoded as one
// JSON line the way a department's export file holds them.
func housingLines(t *testing.T) []string {
	t.Helper()
	var lines []string
	err := synth.Generate(context.Background(), synth.Config{Persons: 300, Months: 12, Seed: 7}, func(ev schemas.Event) error {
		if ev.Source != schemas.Housing {
			return nil
		}
		v, err := schemas.Encode(ev)
		lines = append(lines, string(v))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestImportCommand runs `pophub import` as a department would: every bad
// line is printed, a summary ends the run, the exit status says whether
// lines were rejected, and a refused import neither sends anything nor
// suggests running again to resume.
func TestImportCommand(t *testing.T) {
	lines := housingLines(t)
	if len(lines) < 20 {
		t.Fatalf("the population has %d housing events, too few to test with", len(lines))
	}
	good := len(lines)
	bad := append(append([]string{}, lines...), "not json", strings.Replace(lines[0], `"source":"housing"`, `"source":"tax"`, 1))
	many := append([]string{}, lines...)
	for range 1005 {
		many = append(many, "not json")
	}

	for _, tc := range []struct {
		name    string
		lines   []string
		flags   []string
		exit1   bool   // exit status 1, for rejected lines
		errText string // else an error saying this
		is      error  // which is this error, if set
		sent    int
		output  []string
	}{
		{"clean file", lines, nil, false, "", nil, good,
			[]string{fmt.Sprintf("%d read, %d valid, %d sent, 0 rejected", good, good, good)}},
		{"bad lines", bad, nil, true, "", nil, good,
			[]string{fmt.Sprintf("line %d: not_json", good+1), fmt.Sprintf("line %d: source_mismatch", good+2),
				fmt.Sprintf("%d sent, 2 rejected (not_json 1, source_mismatch 1)", good), "rejected lines written to"}},
		{"under the reject limit", bad, []string{"--reject-limit", "3"}, true, "", nil, good,
			[]string{fmt.Sprintf("%d sent, 2 rejected", good)}},
		{"at the reject limit", bad, []string{"--reject-limit", "2"}, false, "reject limit reached: 2 of", importer.ErrTooManyRejects, 0,
			[]string{"refused at the reject limit of 2: nothing sent", "rejected lines written to"}},
		{"more bad lines than are listed", many, nil, true, "", nil, good,
			[]string{fmt.Sprintf("line %d: not_json", good+1000), "… and 5 more rejected lines, listed in the rejects file",
				fmt.Sprintf("%d sent, 1005 rejected (not_json 1005)", good)}},
		{"dry run", bad, []string{"--dry-run"}, true, "", nil, 0,
			[]string{"dry run: nothing sent, 2 rejected"}},
		{"streamed", bad, []string{"--stream"}, true, "", nil, good,
			[]string{fmt.Sprintf("line %d: not_json", good+1), fmt.Sprintf("%d sent, 2 rejected", good), "rejected lines written to"}},
		{"streamed at a reject limit", bad, []string{"--stream", "--reject-limit", "2"}, false,
			"a streamed import cannot refuse a file at a reject limit", nil, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := testenv.Kafka(t, 3)
			file := filepath.Join(t.TempDir(), "housing.jsonl")
			if err := os.WriteFile(file, []byte(strings.Join(tc.lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"--source", "housing", "--file", file, "--kafka", addr}, tc.flags...)
			out, err := execute(t, importCommand(func() *slog.Logger { return testLogger(t) }), args...)
			switch {
			case tc.exit1:
				if !errors.Is(err, exitError(1)) {
					t.Errorf("error %v, want exit status 1\n%s", err, out)
				}
			case tc.errText != "":
				if err == nil || !strings.Contains(err.Error(), tc.errText) || strings.Contains(err.Error(), "resume") {
					t.Errorf("error %v, want one saying %q and not suggesting a resume", err, tc.errText)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("error %v is not %v", err, tc.is)
				}
			default:
				if err != nil {
					t.Errorf("error %v\n%s", err, out)
				}
			}
			for _, want := range tc.output {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if n := testenv.RecordCount(t, addr, schemas.Topic(schemas.Housing)); n != int64(tc.sent) {
				t.Errorf("%d records on the topic, want %d", n, tc.sent)
			}
		})
	}

	// Only an import that stopped while sending is resumed by running it
	// again; one that could not read or map its file has nothing to resume.
	garbage := string([]byte{0x00, 0xff, 0xfe, 0x01}) + "\x89PNG\r\n\x1a\n"
	for _, tc := range []struct {
		name, file, content string
		kafka               []kfake.Opt
		errText             string
		resume              bool
	}{
		{"missing file", "missing.csv", "", nil, "no such file", false},
		{"garbage header", "housing.csv", garbage + "\n1,2,3\n", nil, "reading header: column 1 is not valid gbk", false},
		{"not a workbook", "housing.xlsx", "PK not really a zip", nil, "opening workbook", false},
		{"columns missing", "housing.csv", "编号,姓名\n1,张三\n", nil, `column "业务类型" is not in the header`, false},
		{"sending fails", "housing.jsonl", strings.Join(lines, "\n"), []kfake.Opt{kfake.BrokerConfigs(map[string]string{"message.max.bytes": "100"})},
			"sending lines 1–", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := testenv.Kafka(t, 3, tc.kafka...)
			file := filepath.Join(t.TempDir(), tc.file)
			if tc.content != "" {
				if err := os.WriteFile(file, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out, err := execute(t, importCommand(func() *slog.Logger { return testLogger(t) }), "--source", "housing", "--file", file, "--kafka", addr)
			if err == nil || !strings.Contains(err.Error(), tc.errText) {
				t.Fatalf("error %v, want one saying %q\n%s", err, tc.errText, out)
			}
			if got := strings.HasSuffix(err.Error(), "(run again to resume)"); got != tc.resume {
				t.Errorf("error %q; suggests a resume: %v, want %v", err, got, tc.resume)
			}
		})
	}
}

// TestImportSummaryWhenStopped: the summary of an import that stopped
// understated what was sent (Report.Sent counts the acknowledgements that
// came back, not the records of the chunk in flight, which the broker may
// have written) and gave counts that did not add up (a rejects file that
// could not be created stopped the check of a chunk already counted as
// read). Whatever it claims now holds: read = valid + rejected + not
// checked, and the records on the topic lie within what it says was sent.
func TestImportSummaryWhenStopped(t *testing.T) {
	lines := housingLines(t)
	topic := schemas.Topic(schemas.Housing)
	for _, tc := range []struct {
		name    string
		lines   []string
		flags   func(dir string) []string
		fault   *kfake.Fault // on the broker
		errText string
		want    string // in the summary
	}{
		{"rejects file cannot be created", []string{lines[0], "not json", lines[1]},
			func(dir string) []string { return []string{"--rejects", filepath.Join(dir, "missing", "r.csv")} }, nil,
			"creating rejects file", "stopped: 3 read: 1 valid, 1 rejected (not_json 1), 1 not checked; nothing sent"},
		{"one partition refuses the chunk", lines, nil,
			&kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Partitions: []int32{2}, Err: kerr.MessageTooLarge, Count: -1},
			"sending lines 1–", fmt.Sprintf("stopped: %d read: %d valid, 0 rejected; at least 0 acknowledged, up to %d more may have been sent", len(lines), len(lines), len(lines))},
		{"streamed, one partition refuses", lines, func(string) []string { return []string{"--stream"} },
			&kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Partitions: []int32{2}, Err: kerr.MessageTooLarge, Count: -1},
			"sending lines 1–", "at least 0 acknowledged, up to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			if tc.fault != nil {
				h := c.Fault(*tc.fault)
				defer func() {
					if h.Hits() == 0 {
						t.Errorf("no request met the fault")
					}
				}()
			}
			addr := c.ListenAddrs()[0]
			dir := t.TempDir()
			file := filepath.Join(dir, "housing.jsonl")
			if err := os.WriteFile(file, []byte(strings.Join(tc.lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"--source", "housing", "--file", file, "--kafka", addr}
			if tc.flags != nil {
				args = append(args, tc.flags(dir)...)
			}
			out, err := execute(t, importCommand(func() *slog.Logger { return testLogger(t) }), args...)
			if err == nil || !strings.Contains(err.Error(), tc.errText) {
				t.Fatalf("error %v, want one saying %q\n%s", err, tc.errText, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("summary lacks %q:\n%s", tc.want, out)
			}
			onTopic := int(testenv.RecordCount(t, addr, topic))
			if tc.fault != nil && onTopic == 0 {
				t.Errorf("no record on the topic: the other partitions' records, written though the chunk failed, were what to account for")
			}
			t.Logf("%d records on the topic\n%s", onTopic, out)
			checkStoppedSummary(t, out, onTopic)
		})
	}
}

var (
	stoppedCounts = regexp.MustCompile(`stopped: (\d+) read: (\d+) valid, (\d+) rejected(?: \([^)]*\))?(?:, (\d+) not checked)?; `)
	sentExactly   = regexp.MustCompile(`; (\d+) sent`)
	sentBetween   = regexp.MustCompile(`; at least (\d+) acknowledged, up to (\d+) more may have been sent`)
)

// checkStoppedSummary checks that the summary out of a stopped import
// adds up, and that onTopic records lie within what it says was sent.
func checkStoppedSummary(t *testing.T, out string, onTopic int) {
	t.Helper()
	atoi := func(s string) int {
		n, _ := strconv.Atoi(s)
		return n
	}
	m := stoppedCounts.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no account of a stopped import:\n%s", out)
	}
	if read, sum := atoi(m[1]), atoi(m[2])+atoi(m[3])+atoi(m[4]); read != sum {
		t.Errorf("%d read, but %d valid, rejected or not checked:\n%s", read, sum, out)
	}
	lo, hi := 0, 0
	switch {
	case strings.Contains(out, "; nothing sent"):
	case sentExactly.MatchString(out):
		lo = atoi(sentExactly.FindStringSubmatch(out)[1])
		hi = lo
	case sentBetween.MatchString(out):
		b := sentBetween.FindStringSubmatch(out)
		lo, hi = atoi(b[1]), atoi(b[1])+atoi(b[2])
	default:
		t.Fatalf("the summary does not say what was sent:\n%s", out)
	}
	if onTopic < lo || onTopic > hi {
		t.Errorf("%d records on the topic; the summary says from %d to %d:\n%s", onTopic, lo, hi, out)
	}
}
