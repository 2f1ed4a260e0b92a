package memdb

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// TestReplayKeepsMicrosecondTimes: events whose times differ only below
// the microsecond are equal in time on the live path (schemas.Decode keeps
// microseconds, PostgreSQL's resolution), so the later one applied wins.
// The log holds the records' raw bytes with the full fraction; replaying
// it after a crash must normalise the times the same way, or the earlier
// event would win after the restart and the golden record, its provenance
// and its history would change.
func TestReplayKeepsMicrosecondTimes(t *testing.T) {
	const subject = "230102199001011230"
	event := func(id, at, name string) hub.Input {
		t.Helper()
		raw := []byte(`{"specversion":"1.0","id":"` + id + `","source":"public_security","type":"identity.corrected","subject":"` + subject +
			`","time":"` + at + `","datacontenttype":"application/json","data":{"name":"` + name + `"}}`)
		ev, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(schemas.PublicSecurity), Key: []byte(subject), Value: raw, FromKafka: true})
		if err != nil {
			t.Fatal(err)
		}
		return hub.Input{Event: ev, Raw: raw}
	}
	// Both are 00:00:00.000000 once truncated; b is applied last.
	a := event("ps-a", "2026-03-01T00:00:00.000000900+08:00", "甲")
	b := event("ps-b", "2026-03-01T00:00:00.000000100+08:00", "乙")

	dir := t.TempDir()
	live, err := Open(context.Background(), Config{Dir: dir, SnapshotEvery: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []hub.Input{a, b} {
		if _, err := live.Apply(context.Background(), []hub.Input{in}); err != nil {
			t.Fatal(err)
		}
	}
	type view struct {
		Record  hub.Record
		History []hub.Change
	}
	snapshot := func(s *Store) view {
		t.Helper()
		r, err := s.Person(context.Background(), subject)
		if err != nil {
			t.Fatal(err)
		}
		h, err := s.History(context.Background(), subject)
		if err != nil {
			t.Fatal(err)
		}
		return view{r, h}
	}
	want := snapshot(live)
	if got := want.Record.Provenance["identity"].EventID; got != "ps-b" {
		t.Fatalf("live store: identity from %s, want ps-b (the later of two equal times)", got)
	}
	crash(live)

	got := snapshot(open(t, dir))
	wj, _ := json.Marshal(want)
	gj, _ := json.Marshal(got)
	if string(wj) != string(gj) {
		t.Errorf("after replaying the log:\n%s\nwant what the live store had:\n%s", gj, wj)
	}
}

// TestReplayAcceptedTimeForms: an event whose time the live path accepts
// replays from the log after a crash to the same record and history. The
// log was decoded with time.Time's UnmarshalJSON, which neither unescapes
// the JSON string nor takes every form schemas.Decode takes: the event was
// applied live, and then the store would not open.
func TestReplayAcceptedTimeForms(t *testing.T) {
	const subject = "230102199001011230"
	tests := []struct {
		name, at string // at as written in the JSON document
	}{
		{"offset", `2026-03-01T09:00:00+08:00`},
		{"utc fraction", `2026-03-01T01:00:00.123456789Z`},
		{"escaped plus", `2026-03-01T09:00:00\u002B08:00`},
		{"escaped T and Z", `2026-03-01\u005401:00:00\u005A`},
		{"escaped fraction", `2026-03-01T09:00:00\u002e5+08:00`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			raw := []byte(`{"specversion":"1.0","id":"ps-a","source":"public_security","type":"identity.corrected","subject":"` + subject +
				`","time":"` + tc.at + `","datacontenttype":"application/json","data":{"name":"甲"}}`)
			ev, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(schemas.PublicSecurity), Key: []byte(subject), Value: raw, FromKafka: true})
			if err != nil {
				t.Fatalf("the live path rejects %s: %v", tc.at, err)
			}
			dir := t.TempDir()
			live, err := Open(ctx, Config{Dir: dir, SnapshotEvery: 1 << 30})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := live.Apply(ctx, []hub.Input{{Event: ev, Raw: raw}}); err != nil {
				t.Fatal(err)
			}
			view := func(s *Store) string {
				t.Helper()
				r, err := s.Person(ctx, subject)
				if err != nil {
					t.Fatal(err)
				}
				h, err := s.History(ctx, subject)
				if err != nil {
					t.Fatal(err)
				}
				b, err := json.Marshal(struct {
					Record  hub.Record
					History []hub.Change
				}{r, h})
				if err != nil {
					t.Fatal(err)
				}
				return string(b)
			}
			want := view(live)
			crash(live)
			s, err := Open(ctx, Config{Dir: dir})
			if err != nil {
				t.Fatalf("applied live (time %v), but the store no longer opens: %v", ev.Time, err)
			}
			defer s.Close()
			if got := view(s); got != want {
				t.Errorf("after replaying the log:\n%s\nwant what the live store had:\n%s", got, want)
			}
		})
	}
}

// TestLoggedTimeTakesEarlierForms: a log written by an earlier version
// holds times the live path took then and refuses now (a one-digit hour,
// which only RFC 3339's shape check refuses): replaying them must not keep
// the store from opening.
func TestLoggedTimeTakesEarlierForms(t *testing.T) {
	for _, at := range []string{`2026-03-01T9:00:00+08:00`, `2026-03-01T09:00:00+08:00`} {
		got, err := loggedTime(at)
		if err != nil || !got.Equal(time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)) {
			t.Errorf("loggedTime(%s) = %v, %v; want 2026-03-01T01:00:00Z", at, got, err)
		}
	}
}
