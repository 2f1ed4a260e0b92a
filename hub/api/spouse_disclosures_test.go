package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// marriages is a history naming k spouses, each in a marriage and then
// in a divorce, in that order: what a spouse_id the marriage register
// reused in many marriages (a placeholder for "spouse not on file")
// gives that person.
func marriages(t testing.TB, k int) (changes []hub.Change, spouses []citizenid.ID) {
	t.Helper()
	for i := range k {
		sp := storetest.ValidID(1 + i)
		data, err := json.Marshal(map[string]string{"spouse_id": string(sp)})
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes,
			hub.Change{Version: int64(2*i + 1), Type: schemas.MarriageRegistered, Data: data},
			hub.Change{Version: int64(2*i + 2), Type: schemas.MarriageDivorced, Data: data})
		spouses = append(spouses, sp)
	}
	return changes, spouses
}

// TestSpouseDisclosedOncePerAnswer: a history answer discloses each
// spouse it names once, in the order first named, whatever the number of
// changes naming them, and never the person read, nor anyone the answer
// has disclosed already; the count of disclosures is the count of
// distinct spouses, for thousands of them too.
func TestSpouseDisclosedOncePerAnswer(t *testing.T) {
	me := storetest.ValidID(0)
	many, manySpouses := marriages(t, 5000)
	few, fewSpouses := marriages(t, 3)
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	tests := []struct {
		name    string
		before  []Disclosure // what the answer disclosed already
		changes []hub.Change
		want    []citizenid.ID // the spouses disclosed, in order
	}{
		{"no marital change", nil, []hub.Change{{Type: schemas.HukouRegistered, Data: raw(`{"spouse_id":"` + string(fewSpouses[0]) + `"}`)}}, nil},
		{"three spouses, each named twice", nil, few, fewSpouses},
		{"5000 spouses, each named twice", nil, many, manySpouses},
		{"a key spelled with an escape", nil,
			[]hub.Change{{Type: schemas.MarriageRegistered, Data: raw(`{"spouse\u005fid":"` + string(fewSpouses[1]) + `"}`)}}, fewSpouses[1:2]},
		{"the data withheld, empty or naming no one", nil,
			[]hub.Change{{Type: schemas.MarriageRegistered}, {Type: schemas.MarriageDivorced, Data: raw(`{"spouse_id":""}`)}}, nil},
		{"the person read named", nil,
			[]hub.Change{{Type: schemas.MarriageRegistered, Data: raw(`{"spouse_id":"` + string(me) + `"}`)}}, nil},
		{"a spouse disclosed already", []Disclosure{{CitizenID: fewSpouses[1]}}, few, []citizenid.ID{fewSpouses[0], fewSpouses[2]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := spouseDisclosures(slices.Clone(tt.before), me, detailSpouseInHistory, spousesNamed(tt.changes)...)
			if len(tt.before) > 0 && !reflect.DeepEqual(got[:len(tt.before)], tt.before) {
				t.Fatalf("the disclosures made before are changed: %+v", got[:len(tt.before)])
			}
			added := got[len(tt.before):]
			if len(added) != len(tt.want) {
				t.Fatalf("%d spouses disclosed, want %d", len(added), len(tt.want))
			}
			for i, d := range added {
				if d.CitizenID != tt.want[i] || d.Detail != detailSpouseInHistory || !slices.Equal(d.Sections, []schemas.Section{schemas.SecMarital}) {
					t.Fatalf("disclosure %d is %+v, want the marital section of %s", i, d, tt.want[i].Masked())
				}
			}
		})
	}
}

// BenchmarkSpouseDisclosures: the audit of one history answer naming k
// spouses, each twice.
func BenchmarkSpouseDisclosures(b *testing.B) {
	me := storetest.ValidID(0)
	for _, k := range []int{100, 4000} {
		changes, _ := marriages(b, k)
		b.Run(fmt.Sprint(k), func(b *testing.B) {
			for b.Loop() {
				spouseDisclosures(nil, me, detailSpouseInHistory, spousesNamed(changes)...)
			}
		})
	}
}
