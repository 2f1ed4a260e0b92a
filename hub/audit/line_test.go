package audit

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestLineAsEncodingJSON: the hand-written line of a log file reads back
// as the entry it was written from, and has the same fields, in the same
// order, as encoding/json's form of it.
func TestLineAsEncodingJSON(t *testing.T) {
	sum := func(b byte) Sum { return Sum(bytes.Repeat([]byte{b}, 32)) }
	for _, tc := range []struct {
		name string
		e    Entry
	}{
		{"read", Entry{Seq: 1, Time: time.Date(2026, 12, 3, 8, 1, 2, 345678000, time.UTC), Identity: "public_security",
			Action: ActionReadRecord, Subject: "ab12", Sections: []string{"identity", "hukou"}, Purpose: "registration",
			Status: 200, Result: "ok", Prev: sum(1), Hash: sum(2), Seal: sum(3)}},
		{"empty optional fields", Entry{Seq: 9_000_000_000, Time: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), Identity: "pophub",
			Action: ActionPolicyChange, Result: "ok", Detail: "identity x added"}},
		{"escapes and non-ASCII", Entry{Seq: 3, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("CST", 8*3600)),
			Identity: "统计局 <bureau> & \"co\"", Action: Action("custom\naction"), Purpose: "a\u2028b\x01\xff",
			Result: "denied", Detail: "tab\there", Status: 403}},
		{"stub", Entry{Seq: 5, Time: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Action: ActionReadRecord,
			Prev: sum(4), Hash: sum(5), Seal: sum(6), Redacted: true}},
		{"zone with seconds", Entry{Seq: 4, Time: time.Date(1900, 1, 1, 0, 0, 0, 0, time.FixedZone("LMT", 8*3600+5*60+43)),
			Identity: "x", Action: ActionStatsPull, Result: "ok"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := appendLine(nil, &tc.e)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(got, []byte("\n")) || bytes.Count(got, []byte("\n")) != 1 {
				t.Fatalf("not one line: %q", got)
			}
			var back Entry
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("%s: %v", got, err)
			}
			want := tc.e
			var wantBack Entry
			std, _ := json.Marshal(&want)
			if err := json.Unmarshal(std, &wantBack); err != nil {
				t.Fatal(err)
			}
			if !back.Time.Equal(wantBack.Time) {
				t.Errorf("time %v, encoding/json's line reads %v", back.Time, wantBack.Time)
			}
			back.Time, wantBack.Time = time.Time{}, time.Time{}
			if !reflect.DeepEqual(back, wantBack) {
				t.Errorf("read back\n %+v\nwant\n %+v", back, wantBack)
			}
			// Same keys in the same order.
			if k, w := keys(t, got), keys(t, std); !reflect.DeepEqual(k, w) {
				t.Errorf("keys %v, encoding/json writes %v", k, w)
			}
		})
	}
}

func keys(t *testing.T, line []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.Token()
	var out []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func BenchmarkLine(b *testing.B) {
	e := Entry{Seq: 1, Time: time.Now().UTC(), Identity: "public_security", Action: ActionReadRecord, Subject: "ab12cd",
		Sections: []string{"identity", "hukou"}, Purpose: "registration", Status: 200, Result: "ok"}
	b.Run("hand", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = appendLine(buf[:0], &e)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.Encode(&e)
		}
	})
}
