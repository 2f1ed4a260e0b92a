package main

import (
	"bytes"
	"strings"
	"testing"

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
