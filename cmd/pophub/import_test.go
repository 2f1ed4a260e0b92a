package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"golang.org/x/text/encoding/simplifiedchinese"

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
	// The shipped housing mapping reads GBK: a UTF-8 file would be refused
	// for its encoding before its header is read.
	otherColumns, err := simplifiedchinese.GBK.NewEncoder().String("编号,姓名\n1,张三\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, content string
		kafka               []kfake.Opt
		errText             string
		resume              bool
	}{
		{"missing file", "missing.csv", "", nil, "no such file", false},
		{"garbage header", "housing.csv", garbage + "\n1,2,3\n", nil, "reading header: column 1 is not valid gbk", false},
		{"not a workbook", "housing.xlsx", "PK not really a zip", nil, "opening workbook", false},
		{"columns missing", "housing.csv", otherColumns, nil, `column "业务类型" is not in the header`, false},
		{"utf-8 read as gbk", "housing.csv", "编号,姓名\n1,张三\n", nil, "the file is UTF-8, but gbk is set as its encoding", false},
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
// read). Whatever it claims now holds: read = valid + rejected +
// repeated + not checked, and the records on the topic lie within what it
// says was sent.
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
		{"repeated lines, one partition refuses", append(append([]string{lines[0]}, lines...), lines[3]), nil,
			&kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Partitions: []int32{2}, Err: kerr.MessageTooLarge, Count: -1},
			"sending lines 1–", fmt.Sprintf("stopped: %d read: %d valid, 0 rejected, 2 repeated (the same row as an earlier line: not sent twice, nothing to fix); at least 0 acknowledged, up to %d more may have been sent", len(lines)+2, len(lines), len(lines))},
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
	stoppedCounts = regexp.MustCompile(`stopped: (\d+) read: (\d+) valid, (\d+) rejected(?: \([^)]*\))?(?:, (\d+) repeated \([^)]*\))?(?:, (\d+) not checked)?; `)
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
	if read, sum := atoi(m[1]), atoi(m[2])+atoi(m[3])+atoi(m[4])+atoi(m[5]); read != sum {
		t.Errorf("%d read, but %d valid, rejected, repeated or not checked:\n%s", read, sum, out)
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

// housingCSV renders the rental registrations among the housing events of
// lines as the rows of the housing bureau's export (the shipped example
// mapping's columns), one per event, in GBK.
func housingCSV(t *testing.T, lines []string) (header []string, rows [][]string) {
	t.Helper()
	header = []string{"业务类型", "权利人身份证号", "登记时间", "业务编号", "版本号", "不动产单元号", "房屋坐落区划代码", "取得方式", "建筑面积", "租赁合同编号", "租期起", "租期止"}
	china := time.FixedZone("CST", 8*3600)
	date := func(s string) string {
		if s == "" {
			return ""
		}
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return d.Format("2006/1/2")
	}
	for _, l := range lines {
		ev, err := schemas.Decode(schemas.Input{Value: []byte(l)})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type != "housing.rental_registered" {
			continue
		}
		var d struct {
			LeaseID     string `json:"lease_id"`
			AddressCode string `json:"address_code"`
			Start       string `json:"start"`
			End         string `json:"end"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, []string{"租赁登记备案", string(ev.Subject), ev.Time.In(china).Format(time.DateTime), ev.ID, "1", "",
			d.AddressCode, "", "", d.LeaseID, date(d.Start), date(d.End)})
	}
	return header, rows
}

// writeHousingCSV writes header and rows as a GBK CSV file.
func writeHousingCSV(t *testing.T, file string, header []string, rows [][]string) {
	t.Helper()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(header)
	w.WriteAll(rows)
	b, err := simplifiedchinese.GBK.NewEncoder().Bytes(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestImportRepeats: a line repeated exactly (the same event id and the
// same event as an earlier line) is what `pophub publish` calls a repeat:
// sent once, listed and counted as repeated, kept out of the rejects file,
// counted toward no --reject-limit, and no reason for exit status 1 (a
// department's nightly export with a duplicated row failed every night).
// A line with the same id and other content stays a duplicate_id reject.
func TestImportRepeats(t *testing.T) {
	lines := housingLines(t)
	header, rows := housingCSV(t, lines)
	if len(rows) < 10 {
		t.Fatalf("the population has %d rental registrations, too few to test with", len(rows))
	}
	// lines[0] (rows[0]) is there twice, lines[3] (rows[3]) is repeated at
	// the end, and the changed line after it reuses the id of lines[2]
	// (rows[2]) with another time (end of lease).
	jsonlRepeats := append(append([]string{lines[0]}, lines...), lines[3])
	ev, err := schemas.Decode(schemas.Input{Value: []byte(lines[2])})
	if err != nil {
		t.Fatal(err)
	}
	ev.Time = ev.Time.Add(time.Hour)
	other, err := schemas.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	jsonlChanged := append(append([]string{}, jsonlRepeats...), string(other))
	csvRepeats := append(append([][]string{rows[0]}, rows...), rows[3])
	changed := append([]string(nil), rows[2]...)
	changed[len(changed)-1] = "2099/1/1"
	csvChanged := append(append([][]string{}, csvRepeats...), changed)

	const repeated = "2 repeated (the same row as an earlier line: sent once, nothing to fix)"
	for _, tc := range []struct {
		name     string
		format   string
		jsonl    []string   // the file's lines, for jsonl
		csv      [][]string // its rows, for csv
		flags    []string
		exit1    bool
		sent     int
		rejected int // lines in the rejects file
		output   []string
	}{
		{"jsonl", "jsonl", jsonlRepeats, nil, []string{"--reject-limit", "1"}, false, len(lines), 0,
			[]string{"line 2: repeats line 1 exactly", fmt.Sprintf("line %d: repeats line 5 exactly", len(lines)+2),
				fmt.Sprintf("%d valid, %d sent, 0 rejected, %s", len(lines), len(lines), repeated)}},
		{"csv", "csv", nil, csvRepeats, []string{"--reject-limit", "1"}, false, len(rows), 0,
			[]string{"line 3: repeats line 2 exactly", fmt.Sprintf("line %d: repeats line 6 exactly", len(rows)+3),
				fmt.Sprintf("%d valid, %d sent, 0 rejected, %s", len(rows), len(rows), repeated)}},
		{"csv, dry run", "csv", nil, csvRepeats, []string{"--dry-run"}, false, 0, 0,
			[]string{"line 3: repeats line 2 exactly", "dry run: nothing sent, 0 rejected, 2 repeated"}},
		{"jsonl, and a changed line", "jsonl", jsonlChanged, nil, nil, true, len(lines), 1,
			[]string{"line 2: repeats line 1 exactly", fmt.Sprintf("line %d: duplicate_id: id: line 4 has the same event id and other content (time)", len(lines)+3),
				fmt.Sprintf("1 rejected (duplicate_id 1), %s", repeated), "rejected lines written to"}},
		{"csv, and a changed line", "csv", nil, csvChanged, nil, true, len(rows), 1,
			[]string{"line 3: repeats line 2 exactly", fmt.Sprintf("line %d: duplicate_id: id (column 版本号): the same 业务编号 and 版本号 as line 5 but other cells (租期止)", len(rows)+4),
				fmt.Sprintf("1 rejected (duplicate_id 1), %s", repeated), "rejected lines written to"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := testenv.Kafka(t, 3)
			file := filepath.Join(t.TempDir(), "housing."+tc.format)
			if tc.format == "csv" {
				writeHousingCSV(t, file, header, tc.csv)
			} else if err := os.WriteFile(file, []byte(strings.Join(tc.jsonl, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"--source", "housing", "--file", file, "--kafka", addr}, tc.flags...)
			out, err := execute(t, importCommand(func() *slog.Logger { return testLogger(t) }), args...)
			if tc.exit1 {
				if !errors.Is(err, exitError(1)) {
					t.Errorf("error %v, want exit status 1\n%s", err, out)
				}
			} else if err != nil {
				t.Errorf("error %v, want exit status 0\n%s", err, out)
			}
			for _, want := range tc.output {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if n := testenv.RecordCount(t, addr, schemas.Topic(schemas.Housing)); n != int64(tc.sent) {
				t.Errorf("%d records on the topic, want %d", n, tc.sent)
			}
			b, err := os.ReadFile(file + ".rejects.csv")
			switch {
			case tc.rejected == 0 && !errors.Is(err, os.ErrNotExist):
				t.Errorf("a rejects file (%v):\n%s", err, b)
			case tc.rejected > 0 && err != nil:
				t.Error(err)
			case tc.rejected > 0:
				recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
				if err != nil {
					t.Fatal(err)
				}
				if len(recs) != 1+tc.rejected || recs[1][1] != importer.ReasonDuplicateID {
					t.Errorf("rejects file:\n%s\nwant the header and %d duplicate_id line", b, tc.rejected)
				}
			}
		})
	}
}

// TestImportSpanCountsRepeats: the import's span counts the repeated
// lines apart from the rejected ones.
func TestImportSpanCountsRepeats(t *testing.T) {
	lines := housingLines(t)
	file := filepath.Join(t.TempDir(), "housing.jsonl")
	content := append(append([]string{lines[0]}, lines...), lines[3], "not json")
	if err := os.WriteFile(file, []byte(strings.Join(content, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	rep, err := runImport(context.Background(), tp.Tracer("test"), importer.Config{Source: schemas.Housing, File: file, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	got := map[string]int64{}
	for _, a := range spans[0].Attributes() {
		if strings.HasPrefix(string(a.Key), "pophub.import.") && a.Value.Type() == attribute.INT64 {
			got[string(a.Key)] = a.Value.AsInt64()
		}
	}
	want := map[string]int64{"pophub.import.read": int64(len(content)), "pophub.import.rejected": 1, "pophub.import.repeated": 2, "pophub.import.sent": 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("span attributes %v, want %v (%s)", got, want, rep.Summary())
	}
}
