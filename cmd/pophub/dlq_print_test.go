package main

import (
	"bytes"
	"strings"
	"testing"
	"unicode"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/dlq"
)

// TestDLQPrintMasksIDInField: a reject's field may name a member a
// producer named with a citizen ID (records rejected before the decoder
// masked such names are still in the DLQ). 'dlq list' and 'dlq show'
// without --reveal mask it as they mask the error text; --reveal shows it.
func TestDLQPrintMasksIDInField(t *testing.T) {
	const id = "110105194912310021"
	rec := dlq.Record{Topic: "pop.events.marriage", Reason: "invalid_data",
		Field: "data." + id, Error: "invalid_data: data." + id + ": unknown field"}
	tests := []struct {
		name     string
		print    func(*bytes.Buffer)
		wantFull bool // the ID printed in full
	}{
		{"dlq list", func(b *bytes.Buffer) { printList(b, []dlq.Record{rec}) }, false},
		{"dlq show", func(b *bytes.Buffer) { printRecord(b, rec, false) }, false},
		{"dlq show --reveal", func(b *bytes.Buffer) { printRecord(b, rec, true) }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tc.print(&b)
			out := b.String()
			if got := strings.Contains(out, id); got != tc.wantFull {
				t.Errorf("ID in full: %v, want %v; output:\n%s", got, tc.wantFull, out)
			}
			if !tc.wantFull && !strings.Contains(out, "data.1101**********0021") {
				t.Errorf("field not shown masked; output:\n%s", out)
			}
		})
	}
}

// TestDLQPrintEscapesControls: a department fills a record's headers,
// names and values alike, and ingest copies them to the DLQ; copies
// written by older releases may carry anything in the pophub-* headers
// too. Nothing 'dlq list', 'dlq show' or 'dlq replay' prints from a record
// reaches the terminal with a control character in it: an escape sequence
// there would clear the screen, set the title or fake lines of output.
func TestDLQPrintEscapesControls(t *testing.T) {
	const esc = "\x1b]0;owned\a\x1b[2J\x1b[1;1Hreason: ok\r\x9b31m\x7f"
	tests := []struct {
		name string
		rec  dlq.Record
	}{
		{"header name", dlq.Record{Headers: []kafka.Header{{Key: "x" + esc, Value: []byte("v")}}}},
		{"header value", dlq.Record{Headers: []kafka.Header{{Key: "x", Value: []byte("v" + esc)}}}},
		{"reason", dlq.Record{Reason: "not_json" + esc}},
		{"field", dlq.Record{Field: "data." + esc}},
		{"error", dlq.Record{Error: "not_json: " + esc}},
		{"topic", dlq.Record{Topic: "pop.events.tax" + esc}},
		{"replay of", dlq.Record{ReplayOf: "0:1" + esc}},
		{"replay claim", dlq.Record{ReplayClaim: "0:1" + esc}},
		{"dropped", dlq.Record{Dropped: "value" + esc}},
		{"key", dlq.Record{Key: []byte(esc)}},
		{"value, not JSON", dlq.Record{Value: []byte(esc)}},
		{"value, JSON", dlq.Record{Value: []byte(`{"name":"\u009b31m` + "\u009b31m\x7f" + `"}`)}},
	}
	for _, tc := range tests {
		rec := tc.rec
		rec.Partition, rec.Offset = 0, 3
		prints := map[string]func(*bytes.Buffer){
			"dlq list":          func(b *bytes.Buffer) { printList(b, []dlq.Record{rec}) },
			"dlq show":          func(b *bytes.Buffer) { printRecord(b, rec, false) },
			"dlq show --reveal": func(b *bytes.Buffer) { printRecord(b, rec, true) },
			"dlq replay": func(b *bytes.Buffer) {
				printReplay(b, dlq.ReplayResult{Chosen: []dlq.Record{rec}, Sent: []dlq.Record{rec}})
			},
		}
		for cmd, print := range prints {
			t.Run(tc.name+"/"+cmd, func(t *testing.T) {
				var b bytes.Buffer
				print(&b)
				if i := strings.IndexFunc(b.String(), func(r rune) bool { return unicode.IsControl(r) && r != '\n' }); i >= 0 {
					t.Errorf("control character %q at byte %d; output:\n%q", []rune(b.String()[i:])[0], i, b.String())
				}
			})
		}
	}
}

// TestDLQPrintReplayClaim: a pophub-replay-of the replay ledger does not
// confirm may be the department's own header; 'dlq list' and 'dlq show'
// print it as a claim, never as "replay of".
func TestDLQPrintReplayClaim(t *testing.T) {
	rec := dlq.Record{Topic: "pop.events.marriage", Reason: "not_json", Error: "not_json: x", ReplayClaim: "0:0",
		Headers: []kafka.Header{{Key: dlq.HeaderReplayOf, Value: []byte("0:0")}}}
	tests := []struct {
		name  string
		print func(*bytes.Buffer)
		want  string
	}{
		{"dlq list", func(b *bytes.Buffer) { printList(b, []dlq.Record{rec}) }, "claims to be a replay of 0:0; the replay ledger does not confirm it"},
		{"dlq show", func(b *bytes.Buffer) { printRecord(b, rec, false) }, "replay claim:  0:0 (not confirmed by the replay ledger"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tc.print(&b)
			if out := b.String(); !strings.Contains(out, tc.want) || strings.Contains(out, "replay of:") || strings.Contains(out, "(replay of") {
				t.Errorf("output:\n%s\nwant it to say %q and name no replay", out, tc.want)
			}
		})
	}
}

// TestDLQPrintKeepsText: what is only text (Chinese with its full-width
// spaces, quotation marks) is printed as it is; a bidi override, which
// would reorder what the operator reads, is quoted like a control
// character; a JSON value's trailing line break is not shown as \u000d.
func TestDLQPrintKeepsText(t *testing.T) {
	tests := []struct {
		name    string
		rec     dlq.Record
		want    []string
		wantNot []string
	}{
		{"full-width space", dlq.Record{Error: "invalid_data: 北京市　朝阳区 is not an address code"},
			[]string{"北京市　朝阳区 is not an address code"}, []string{`\u3000`}},
		{"quotation marks", dlq.Record{Field: `data."name"`}, []string{`data."name"`}, []string{`\"`}},
		{"bidi override", dlq.Record{Error: "invalid_data: abc\u202edcba"}, []string{`\u202e`}, []string{"\u202e"}},
		{"JSON value ending in CRLF", dlq.Record{Value: []byte("{\"name\":\"张　三\"}\r\n")},
			[]string{`"name": "张　三"`}, []string{`\u000d`, `\r`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := tc.rec
			rec.Partition, rec.Offset = 0, 3
			var b bytes.Buffer
			printRecord(&b, rec, true)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output does not hold %q:\n%s", w, b.String())
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(b.String(), w) {
					t.Errorf("output holds %q:\n%s", w, b.String())
				}
			}
		})
	}
}
