package merge

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// permutations returns every order of events.
func permutations(events []hub.Input) [][]hub.Input {
	if len(events) <= 1 {
		return [][]hub.Input{append([]hub.Input(nil), events...)}
	}
	var out [][]hub.Input
	for i := range events {
		rest := append(append([]hub.Input(nil), events[:i]...), events[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]hub.Input{events[i]}, p...))
		}
	}
	return out
}

// maritalArrivals returns every order of events one by one, the events in
// one batch, and every order split into a batch of the first two and one
// of the rest.
func maritalArrivals(events []hub.Input) map[string][][]hub.Input {
	out := map[string][][]hub.Input{"one batch": {events}}
	for i, p := range permutations(events) {
		out[fmt.Sprintf("order %d one by one", i)] = oneByOne(p)
		if len(p) > 2 {
			out[fmt.Sprintf("order %d in two batches", i)] = [][]hub.Input{p[:2], p[2:]}
		}
	}
	return out
}

// TestDivorceEndsOnlyTheMarriageItNames: a divorce ends the marriage to
// the spouse it names, if that marriage is the latest and the divorce
// took effect after it; one naming a former spouse leaves the current
// marriage, and goes into history changing no section. The record and
// its provenance are the same in every arrival order and batching.
func TestDivorceEndsOnlyTheMarriageItNames(t *testing.T) {
	p := id(t, male)
	a, b := id(t, female), id(t, "23010219850303124")
	marry := func(eid, when string, spouse citizenid.ID) hub.Input {
		return ev(t, schemas.MarriageRegistered, p, eid, when, map[string]any{"spouse_id": string(spouse)})
	}
	divorce := func(eid, when string, spouse citizenid.ID) hub.Input {
		return ev(t, schemas.MarriageDivorced, p, eid, when, map[string]any{"spouse_id": string(spouse)})
	}
	marryA := marry("m-a", "2010-05-20T09:00:00+08:00", a)
	divorceA := divorce("d-a", "2012-03-01T09:00:00+08:00", a)
	marryB := marry("m-b", "2018-08-08T09:00:00+08:00", b)
	tests := []struct {
		name   string
		events []hub.Input
		// quiet: the last event, applied last, changes no section.
		want     *hub.Marital
		wantProv string // event id the marital provenance names
		quiet    bool
	}{
		{"a divorce naming a former spouse leaves the current marriage",
			[]hub.Input{marryA, marryB, divorce("d-a2", "2019-01-10T09:00:00+08:00", a)},
			&hub.Marital{Status: "20", SpouseID: b, Since: "2018-08-08"}, "m-b", true},
		{"a divorce naming the spouse ends the marriage",
			[]hub.Input{marryA, divorceA},
			&hub.Marital{Status: "40", Since: "2012-03-01"}, "d-a", false},
		{"a remarriage to the same spouse after the divorce",
			[]hub.Input{marryA, divorceA, marry("m-a2", "2015-10-01T09:00:00+08:00", a)},
			&hub.Marital{Status: "20", SpouseID: a, Since: "2015-10-01"}, "m-a2", false},
		{"a divorce naming A with only a later marriage to B known",
			[]hub.Input{marryB, divorceA},
			&hub.Marital{Status: "20", SpouseID: b, Since: "2018-08-08"}, "m-b", true},
		{"a divorce with no marriage known",
			[]hub.Input{divorceA},
			&hub.Marital{Status: "40", Since: "2012-03-01"}, "d-a", false},
		{"a divorce older than the marriage to the spouse it names",
			[]hub.Input{marryB, divorce("d-b", "2016-01-01T09:00:00+08:00", b)},
			&hub.Marital{Status: "20", SpouseID: b, Since: "2018-08-08"}, "m-b", true},
		{"the current spouse's divorce after a former spouse's",
			[]hub.Input{marryA, divorceA, marryB, divorce("d-b", "2020-02-02T09:00:00+08:00", b)},
			&hub.Marital{Status: "40", Since: "2020-02-02"}, "d-b", false},
		{"a former spouse's divorce after the current spouse's changes nothing",
			[]hub.Input{marryA, marryB, divorce("d-b", "2020-02-02T09:00:00+08:00", b), divorce("d-a2", "2021-01-10T09:00:00+08:00", a)},
			&hub.Marital{Status: "40", Since: "2020-02-02"}, "d-b", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for label, batches := range maritalArrivals(tc.events) {
				states, _ := run(batches...)
				r := states[p].Record()
				if !reflect.DeepEqual(r.Marital, tc.want) {
					t.Fatalf("%s: marital %+v, want %+v", label, r.Marital, tc.want)
				}
				if got := r.Provenance[string(schemas.SecMarital)]; got.EventID != tc.wantProv || got.Source != schemas.Marriage {
					t.Errorf("%s: marital provenance %+v, want event %s", label, got, tc.wantProv)
				}
			}
			// Registered first, so that no event moves the unregistered
			// anomaly's start.
			reg := registered(t, p, "ps-1", "2000-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01")
			_, outs := run(oneByOne(append([]hub.Input{reg}, tc.events...))...)
			last := outs[len(outs)-1]
			if sections := last.History[0].Change.Sections; tc.quiet != (len(sections) == 0) {
				t.Errorf("the last event changed sections %v, quiet %v", sections, tc.quiet)
			}
			if tc.quiet && len(last.Outbox) != 0 {
				t.Errorf("the last event notified %v", subjects(last))
			}
		})
	}
}

// TestMaritalOfStoredDivorce: a state stored before divorces were kept
// per spouse holds a divorce in the marital register. It stands as it
// did: a later divorce moves its date, an older marriage leaves it and
// only a later marriage replaces it.
func TestMaritalOfStoredDivorce(t *testing.T) {
	p, a, c := id(t, male), id(t, female), id(t, "23010219850303124")
	// The state of a marriage to a, a marriage to another spouse and a
	// divorce naming a, as the merge stored it before this change.
	stored := `{"id":"` + string(p) + `","ver":3,"upd":"2026-11-01T12:00:00Z","first":"2010-05-20T09:00:00+08:00",` +
		`"mar":{"v":{"s":"40"},"at":{"t":"2019-01-10T09:00:00+08:00","s":"marriage","i":"d-a"}}}`
	marry := func(eid, when string, spouse citizenid.ID) hub.Input {
		return ev(t, schemas.MarriageRegistered, p, eid, when, map[string]any{"spouse_id": string(spouse)})
	}
	divorce := func(eid, when string, spouse citizenid.ID) hub.Input {
		return ev(t, schemas.MarriageDivorced, p, eid, when, map[string]any{"spouse_id": string(spouse)})
	}
	tests := []struct {
		name     string
		events   []hub.Input
		want     *hub.Marital
		wantProv string
	}{
		{"as stored", nil, &hub.Marital{Status: "40", Since: "2019-01-10"}, "d-a"},
		{"an older marriage leaves it",
			[]hub.Input{marry("m-c", "2015-01-01T09:00:00+08:00", c)},
			&hub.Marital{Status: "40", Since: "2019-01-10"}, "d-a"},
		{"a later divorce moves its date",
			[]hub.Input{divorce("d-c", "2020-06-01T09:00:00+08:00", c)},
			&hub.Marital{Status: "40", Since: "2020-06-01"}, "d-c"},
		{"an older divorce leaves it",
			[]hub.Input{divorce("d-c", "2016-06-01T09:00:00+08:00", c)},
			&hub.Marital{Status: "40", Since: "2019-01-10"}, "d-a"},
		{"a later marriage replaces it",
			[]hub.Input{marry("m-c", "2021-01-01T09:00:00+08:00", c), divorce("d-a2", "2022-01-01T09:00:00+08:00", a)},
			&hub.Marital{Status: "20", SpouseID: c, Since: "2021-01-01"}, "m-c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for label, batches := range maritalArrivals(tc.events) {
				st, err := Unmarshal([]byte(stored))
				if err != nil {
					t.Fatal(err)
				}
				states := map[citizenid.ID]*State{p: st}
				for _, b := range batches {
					o := Batch(states, b, now)
					for k, v := range o.States {
						states[k] = v
					}
				}
				r := states[p].Record()
				if !reflect.DeepEqual(r.Marital, tc.want) {
					t.Fatalf("%s: marital %+v, want %+v", label, r.Marital, tc.want)
				}
				if got := r.Provenance[string(schemas.SecMarital)]; got.EventID != tc.wantProv {
					t.Errorf("%s: marital provenance %+v, want event %s", label, got, tc.wantProv)
				}
			}
		})
	}
}
