package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/dlq"
)

// TestDLQShowDroppedCopy: dlq show of a copy too large for the DLQ says
// that its original stays at its origin only until the source topic's
// retention deletes it, and, once the source partition no longer holds
// it, that what the copy left out is lost; when the source partition
// could not be looked at, that this is unknown. Never that the original
// is whole.
func TestDLQShowDroppedCopy(t *testing.T) {
	tests := []struct {
		name    string
		gone    bool
		unknown string
		want    string
	}{
		{"original held", false, "", "the original is at its origin only until the topic's retention deletes it"},
		{"original deleted", true, "", "what was left out is lost"},
		{"source partition unavailable", false, "could not check the source partition: Leader Not Available",
			"whether its origin still holds the original is unknown: could not check the source partition: Leader Not Available"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := dlq.Record{Topic: "pop.events.marriage", Partition: 0, Offset: 3, Reason: "not_json", Dropped: "value", OriginalGone: tc.gone, OriginalUnknown: tc.unknown}
			var b bytes.Buffer
			printRecord(&b, rec, false)
			if !strings.Contains(b.String(), tc.want) || strings.Contains(b.String(), "whole") {
				t.Errorf("dlq show printed\n%s\nwant it to say %q", b.String(), tc.want)
			}
		})
	}
}
