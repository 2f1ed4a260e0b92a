package ingest

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/schemas"
)

// TestClipHeader: a reject's field and error text are cut to a bound on a
// UTF-8 boundary, with a marker naming the full length; text within the
// bound is kept as it is.
func TestClipHeader(t *testing.T) {
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"short", "data.spouse_id", 256, "data.spouse_id"},
		{"exactly the bound", strings.Repeat("a", 16), 16, strings.Repeat("a", 16)},
		{"long", strings.Repeat("a", 20), 16, strings.Repeat("a", 16) + "…(20 bytes)"},
		// "名" is three bytes: the cut falls inside the sixth and moves
		// back to its start.
		{"cut inside a rune", strings.Repeat("名", 7), 16, strings.Repeat("名", 5) + "…(21 bytes)"},
		{"empty", "", 16, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := clipText(tc.in, tc.max)
			if got != tc.want {
				t.Errorf("clipText(%.40q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("clipText returned invalid UTF-8 %q", got)
			}
		})
	}
}

// maxDLQOverhead bounds what dlqRecord adds to a record without pophub-*
// headers of its own: six headers (with dlqSize's 24 bytes each and their
// names), a reason, the field and error text at their bounds with
// markers, a topic name at Kafka's longest (249), a partition and an
// offset.
const maxDLQOverhead = 6*(24+16) + 32 + maxRejectField + maxRejectError + 2*24 + 249 + 10 + 20

// TestDLQCopyOverheadIsBounded: whatever the reject's field name, a DLQ
// copy weighs at most the original plus a fixed overhead, so that a
// record the source topic took fits the DLQ with its value.
func TestDLQCopyOverheadIsBounded(t *testing.T) {
	value := []byte(strings.Repeat("v", 1000))
	orig := kafka.Message{Topic: marriageTopic, Partition: 7, Offset: 1 << 40, Key: []byte(idA), Value: value,
		Headers: []kafka.Header{{Key: "origin", Value: []byte("test")}}}
	for _, n := range []int{0, 10, 300, 5000, 600_000} {
		field := "data." + strings.Repeat("名", n/3)
		re := &schemas.RejectError{Reason: schemas.ReasonInvalidData, Field: field, Detail: "unknown field"}
		cp := dlqRecord(orig, re)
		if over := dlqSize(cp) - dlqSize(orig); over > maxDLQOverhead {
			t.Errorf("field of %d bytes: the copy is %d bytes over the original, want at most %d", len(field), over, maxDLQOverhead)
		}
		for h, bound := range map[string]int{HeaderField: maxRejectField, HeaderError: maxRejectError} {
			if v := header(cp, h); !utf8.ValidString(v) || len(v) > bound+len("…(1234567890 bytes)") {
				t.Errorf("field of %d bytes: header %s has %d bytes, want at most %d and a marker", len(field), h, len(v), bound)
			}
		}
		if got := header(cp, HeaderError); !strings.HasPrefix(got, schemas.ReasonInvalidData+": data.") {
			t.Errorf("field of %d bytes: header %s = %.80q, want the reason and the field's start", len(field), HeaderError, got)
		}
	}
}

// TestLongFieldNameRejectKeepsItsValue: an event of normal size whose data
// has an unknown member with a very long name is copied to the DLQ whole,
// its value byte for byte: the reject's field and error text used to be
// copied into the headers unbounded, which pushed the copy over 1 MiB, so
// it lost its value (a 400 KB name) or was not copied at all (600 KB).
func TestLongFieldNameRejectKeepsItsValue(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nameLen int
	}{
		{"400 KB name", 400_000},
		{"600 KB name", 600_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := broker(t)
			bad := cloudEvent("m-long", "marriage", "marriage.registered", idA,
				`{"spouse_id":"`+idB+`","`+strings.Repeat("n", tc.nameLen)+`":1}`)
			good := cloudEvent("m-1", "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`)
			writeRecords(t, k.Addr(),
				kafka.Message{Topic: marriageTopic, Key: []byte(idA), Value: []byte(bad)},
				kafka.Message{Topic: marriageTopic, Key: []byte(idA), Value: []byte(good)})
			a := &recordingApplier{}
			c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "long-field"}, a)
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, c)
			waitUntil(t, "the records committed", func() bool { return c.Counts().Consumed == 2 })
			stop()
			if got := c.Counts().Rejected[schemas.ReasonInvalidData]; got != 1 {
				t.Fatalf("rejected invalid_data = %d, want 1", got)
			}
			// The batch commits after its rejects are written.
			if n := dlqRecords(t, k.Addr()); n != 1 {
				t.Fatalf("the DLQ holds %d records, want the reject's copy", n)
			}
			m := readTopic(t, k.Addr(), schemas.DLQTopic, 1)[0]
			if string(m.Value) != bad || string(m.Key) != idA {
				t.Errorf("DLQ copy: key %q, %d bytes of value; want the original's %d bytes", m.Key, len(m.Value), len(bad))
			}
			if d := header(m, HeaderDropped); d != "" {
				t.Errorf("DLQ copy marked %s: %q, want it whole", HeaderDropped, d)
			}
			if f := header(m, HeaderField); !strings.HasPrefix(f, "data.nnn") || len(f) > 300 {
				t.Errorf("header %s = %.60q (%d bytes), want the field's start, bounded", HeaderField, f, len(f))
			}
		})
	}
}
