package merge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestSectionEqualIsDeepEqual compares sectionEqual with reflect.DeepEqual
// on every section of a realistic population after each of its events,
// each against the same person's previous derivation and another
// person's, and on the edge cases DeepEqual tells apart.
func TestSectionEqualIsDeepEqual(t *testing.T) {
	in := scenario(t)
	if err := synth.Generate(context.Background(), synth.Config{Persons: 200, Seed: 5}, func(ev schemas.Event) error {
		in = append(in, hub.Input{Event: ev})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	states := map[citizenid.ID]*State{}
	last := map[citizenid.ID]map[schemas.Section]any{}
	other := map[schemas.Section]any{} // the last derivation of anyone
	pairs, equal := 0, 0
	check := func(a, b any) {
		pairs++
		want := reflect.DeepEqual(a, b)
		if want {
			equal++
		}
		if got := sectionEqual(a, b); got != want {
			t.Fatalf("sectionEqual(%#v, %#v) = %v, DeepEqual says %v", a, b, got, want)
		}
	}
	for i := range in {
		ev := &in[i].Event
		st := states[ev.Subject]
		if st == nil {
			st = NewState(ev.Subject)
			states[ev.Subject] = st
			last[ev.Subject] = map[schemas.Section]any{}
		}
		st.apply(ev)
		for _, sec := range schemas.Sections {
			v := st.section(sec)
			if prev, ok := last[ev.Subject][sec]; ok {
				check(prev, v)
				check(v, prev)
			}
			if o, ok := other[sec]; ok {
				check(o, v)
			}
			check(v, v)
			last[ev.Subject][sec], other[sec] = v, v
		}
	}
	edges := [][2]any{
		{(*hub.Identity)(nil), (*hub.Identity)(nil)},
		{(*hub.Identity)(nil), &hub.Identity{}},
		{[]hub.Contract(nil), []hub.Contract{}},
		{[]hub.Anomaly{}, []hub.Anomaly{}},
		{&hub.SocialInsurance{}, &hub.SocialInsurance{Insurances: map[string]hub.InsuranceLine{}}},
		{&hub.SocialInsurance{Insurances: map[string]hub.InsuranceLine{"pension": {Months: 1}}}, &hub.SocialInsurance{Insurances: map[string]hub.InsuranceLine{"medical": {Months: 1}}}},
		{&hub.Education{}, &hub.Education{Enrolments: []hub.Enrolment{}}},
		{&hub.Housing{Owned: []hub.Property{{PropertyID: "a"}}}, &hub.Housing{Owned: []hub.Property{{PropertyID: "a"}}}},
		{&hub.Tax{}, &hub.Tax{Businesses: nil}},
		{"active", "deceased"},
		{"active", (*hub.Hukou)(nil)},
	}
	for _, e := range edges {
		check(e[0], e[1])
		check(e[1], e[0])
	}
	if pairs < 10000 || equal == 0 || equal == pairs {
		t.Fatalf("%d pairs compared, %d equal: the population does not exercise both answers", pairs, equal)
	}
}

// TestChangeIDStable: change ids are the Nats-Msg-Id of notifications, so
// a re-publish after a restart or an upgrade must derive the same ones.
func TestChangeIDStable(t *testing.T) {
	tests := []struct {
		source        schemas.Source
		id, kind, out string
	}{
		{schemas.Housing, "h-1", "housing", "b8377fd399e7693f3b2b8a1a.housing"},
		{schemas.PublicSecurity, "ps-2026-000123", schemas.KindMigration, "45e79c2becb169b3aefad818.migration"},
		{schemas.Health, "事件-1", schemas.KindDeath, "e8a194b8f6f1981b37c54321.death"},
		// An id longer than the digest's stack buffer.
		{schemas.Tax, strings.Repeat("x", 200), "tax", "%"},
	}
	for _, tc := range tests {
		if tc.out == "%" {
			h := sha256.Sum256([]byte(string(tc.source) + "\x00" + tc.id))
			tc.out = hex.EncodeToString(h[:12]) + "." + tc.kind
		}
		if got := ChangeID(tc.source, tc.id, tc.kind); got != tc.out {
			t.Errorf("ChangeID(%s, %s, %s) = %s, want %s", tc.source, tc.id, tc.kind, got, tc.out)
		}
	}
}
