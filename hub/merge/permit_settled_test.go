package merge

import (
	"reflect"
	"slices"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// TestPermitEndsWhenHolderSettlesInItsCity: seed 000 二（二） ("公民离开常住户口
// 所在地到其他设区的市……居住半年以上的，可在居住地申请居住证……符合条件的居住证持有人，
// 可以在居住地申请登记常住户口") and seed 003 （十五） make the residence permit
// the document of someone whose hukou lies elsewhere, and settling (落户) in
// the place of residence its goal; the hub's own residence-permit policies
// require it (clause hukou_elsewhere). A holder whose hukou then migrates
// into the permit's city is a registered resident there, no longer a
// permit holder: the record must not list the Harbin permit as current, and
// the permit statistics must not count the settled person in Harbin (who
// is already counted in Harbin's registered population) from the
// migration on.
func TestPermitEndsWhenHolderSettlesInItsCity(t *testing.T) {
	p := id(t, male)
	in := []hub.Input{
		registered(t, p, "ps-r1", "2020-01-01T08:00:00+08:00", "440106001001", "1", "1990-01-01"),
		ev(t, schemas.ResidencePermitIssued, p, "ps-p1", "2022-01-01T08:00:00+08:00",
			map[string]any{"city_code": "230100", "address_code": "230102001001", "basis": "housing", "valid_until": "2032-12-31"}),
		ev(t, schemas.HukouMigrated, p, "ps-m1", "2024-03-01T08:00:00+08:00",
			map[string]any{"from_address_code": "440106001001", "to_address_code": "230102001001", "reason": "housing"}),
	}
	states, _ := run(in)
	st := states[p]
	if got := st.Record().Hukou; got == nil || got.RegionCode != "230102" {
		t.Fatalf("hukou %+v, want settled in 230102", got)
	}
	if got := st.Record().ResidencePermits; len(got) != 0 {
		t.Errorf("settled in Harbin on 2024-03-01, the record still lists a current Harbin residence permit: %+v", got)
	}
	for _, s := range st.PermitSpans() {
		if s.Code == "230100" && (s.To == "" || s.To > "2024-03-01") {
			t.Errorf("settled in Harbin on 2024-03-01, still counted as a Harbin permit holder: %+v (registrations %+v)", s, st.Registrations())
		}
	}
}

// TestNoPermitWhereTheHukouIs: a permit of the city a person is
// registered in is not held, whichever arrives first; settling in the
// permit's city is announced as a change of the residence permits, and
// moving the hukou elsewhere leaves the permit held.
func TestNoPermitWhereTheHukouIs(t *testing.T) {
	p := id(t, male)
	inHarbin := registered(t, p, "ps-r1", "2020-01-01T08:00:00+08:00", "230103001001", "1", "1990-01-01")
	inGuangzhou := registered(t, p, "ps-r1", "2020-01-01T08:00:00+08:00", "440106001001", "1", "1990-01-01")
	harbinPermit := ev(t, schemas.ResidencePermitIssued, p, "ps-p1", "2022-01-01T08:00:00+08:00",
		map[string]any{"city_code": "230100", "address_code": "230102001001", "basis": "housing"})
	toDaqing := ev(t, schemas.HukouMigrated, p, "ps-m1", "2024-03-01T08:00:00+08:00",
		map[string]any{"from_address_code": "440106001001", "to_address_code": "230602013001", "reason": "housing"})
	toHarbin := ev(t, schemas.HukouMigrated, p, "ps-m1", "2024-03-01T08:00:00+08:00",
		map[string]any{"from_address_code": "440106001001", "to_address_code": "230102001001", "reason": "housing"})
	tests := []struct {
		name      string
		events    []hub.Input
		held      bool
		spans     []hub.Interval
		announced bool // the last event's history names residence_permits
	}{
		{"issued in the city of the hukou", []hub.Input{inHarbin, harbinPermit}, false, nil, false},
		{"registered there, arriving after the permit", []hub.Input{harbinPermit, inHarbin}, false, nil, true},
		{"settled in the permit's city", []hub.Input{inGuangzhou, harbinPermit, toHarbin}, false,
			[]hub.Interval{{Code: "230100", From: "2022-01-01", To: "2024-03-01"}}, true},
		{"moved to another city of the province", []hub.Input{inGuangzhou, harbinPermit, toDaqing}, true,
			[]hub.Interval{{Code: "230100", From: "2022-01-01"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var batches [][]hub.Input // one event each: the last one's change is the last outcome's
			for _, e := range tc.events {
				batches = append(batches, []hub.Input{e})
			}
			states, outs := run(batches...)
			st := states[p]
			if held := len(st.Record().ResidencePermits) > 0; held != tc.held {
				t.Errorf("permit listed %v, want %v: %+v", held, tc.held, st.Record().ResidencePermits)
			}
			if got := st.PermitSpans(); !reflect.DeepEqual(got, tc.spans) {
				t.Errorf("permit spans %+v, want %+v", got, tc.spans)
			}
			last := outs[len(outs)-1].History[0].Change.Sections
			if announced := slices.Contains(last, string(schemas.SecResidencePermits)); announced != tc.announced {
				t.Errorf("the last event changed sections %v; residence_permits among them %v, want %v", last, announced, tc.announced)
			}
		})
	}
}
