package merge

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestEducationCorrectionsTakeEffect: the education bureau corrects a
// graduation or an enrolment row (a level or a date mistyped, an
// institution misspelt), and pophub import sends the corrected row as a
// new version of the same record at the same time (the shipped
// education.yaml). The correction replaces the version it corrects, in
// either arrival order, while the highest of different graduations is
// still the one shown.
func TestEducationCorrectionsTakeEffect(t *testing.T) {
	p := id(t, male)
	const at = "2016-07-01T09:00:00+08:00"
	grad := func(key string, version int64, level, date string) hub.Input {
		return ev(t, schemas.EducationGraduated, p, versionedID(schemas.Education, key, version), at,
			map[string]any{"institution": "黑龙江大学", "level": level, "date": date, "certificate_no": "102121201605000123"})
	}
	enrol := func(key string, version int64, institution, level string) hub.Input {
		return ev(t, schemas.EducationEnrolled, p, versionedID(schemas.Education, key, version), at,
			map[string]any{"institution": institution, "level": level, "region": "230103", "start": "2012-09-01"})
	}
	enrolled := func(institution, level string) []hub.Enrolment {
		return []hub.Enrolment{{Institution: institution, Level: level, Region: "230103", Start: "2012-09-01"}}
	}
	tests := []struct {
		name       string
		before     []hub.Input // already applied
		wrong, fix hub.Input
		want       hub.Education
	}{
		{name: "graduation level lowered (21 typed for 31)",
			wrong: grad("g1", 1, "21", "2016-07-01"), fix: grad("g1", 2, "31", "2016-07-01"),
			want: hub.Education{HighestLevel: "31", Institution: "黑龙江大学", GraduatedOn: "2016-07-01"}},
		{name: "graduation date moved earlier (2061 typed for 2016)",
			wrong: grad("g1", 1, "21", "2061-07-01"), fix: grad("g1", 2, "21", "2016-07-01"),
			want: hub.Education{HighestLevel: "21", Institution: "黑龙江大学", GraduatedOn: "2016-07-01"}},
		{name: "another record's higher graduation stays shown",
			before: []hub.Input{grad("g0", 1, "11", "2019-07-01")},
			wrong:  grad("g1", 1, "21", "2061-07-01"), fix: grad("g1", 2, "21", "2016-07-01"),
			want: hub.Education{HighestLevel: "11", Institution: "黑龙江大学", GraduatedOn: "2019-07-01"}},
		{name: "enrolment level corrected (20 typed for 30)",
			wrong: enrol("e1", 1, "黑龙江大学", "20"), fix: enrol("e1", 2, "黑龙江大学", "30"),
			want: hub.Education{Enrolments: enrolled("黑龙江大学", "30")}},
		{name: "enrolment institution corrected",
			wrong: enrol("e1", 1, "黑龙江大", "20"), fix: enrol("e1", 2, "黑龙江大学", "20"),
			want: hub.Education{Enrolments: enrolled("黑龙江大学", "20")}},
	}
	for _, tt := range tests {
		for _, order := range []string{"in order", "correction first"} {
			t.Run(tt.name+", "+order, func(t *testing.T) {
				first, second := tt.wrong, tt.fix
				if order == "correction first" {
					first, second = tt.fix, tt.wrong
				}
				states, outs := run(tt.before, []hub.Input{first}, []hub.Input{second})
				got := states[p].Record().Education
				if got == nil || !reflect.DeepEqual(*got, tt.want) {
					t.Errorf("education = %+v, want %+v", got, tt.want)
				}
				if order == "in order" && len(tt.before) == 0 {
					if secs := outs[2].History[0].Change.Sections; len(secs) == 0 {
						t.Error("the correction's history names no section: it changed nothing")
					}
				}
			})
		}
	}
}

// TestStoredEducationTakesCorrections: a state stored by an earlier
// release, which kept one graduation and keyed enrolments by institution
// and level, takes a correction of what it holds once read back.
func TestStoredEducationTakesCorrections(t *testing.T) {
	p := id(t, male)
	const at = "2016-07-01T09:00:00+08:00"
	wrongGrad := ev(t, schemas.EducationGraduated, p, versionedID(schemas.Education, "g1", 1), at,
		map[string]any{"institution": "黑龙江大学", "level": "21", "date": "2016-07-01", "certificate_no": "C1"})
	wrongEnrol := ev(t, schemas.EducationEnrolled, p, versionedID(schemas.Education, "e1", 1), at,
		map[string]any{"institution": "黑龙江大学", "level": "20", "region": "230103", "start": "2012-09-01"})
	states, _ := run([]hub.Input{wrongGrad, wrongEnrol})

	// The state as the earlier release wrote it.
	b, err := Marshal(states[p])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var grads map[string]json.RawMessage
	if err := json.Unmarshal(m["grads"], &grads); err != nil || len(grads) != 1 {
		t.Fatalf("grads %s: %v", m["grads"], err)
	}
	for _, g := range grads {
		m["grad"] = g
	}
	delete(m, "grads")
	var enr map[string]json.RawMessage
	if err := json.Unmarshal(m["enr"], &enr); err != nil || len(enr) != 1 {
		t.Fatalf("enr %s: %v", m["enr"], err)
	}
	for _, e := range enr {
		m["enr"], _ = json.Marshal(map[string]json.RawMessage{"黑龙江大学\x0020": e})
	}
	old, _ := json.Marshal(m)
	st, err := Unmarshal(old)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st.Record(), states[p].Record()) {
		t.Fatalf("read back: %+v, want %+v", st.Record(), states[p].Record())
	}

	fixGrad := ev(t, schemas.EducationGraduated, p, versionedID(schemas.Education, "g1", 2), at,
		map[string]any{"institution": "黑龙江大学", "level": "31", "date": "2016-07-01", "certificate_no": "C1"})
	fixEnrol := ev(t, schemas.EducationEnrolled, p, versionedID(schemas.Education, "e1", 2), at,
		map[string]any{"institution": "黑龙江大学", "level": "30", "region": "230103", "start": "2012-09-01"})
	out := Batch(map[citizenid.ID]*State{p: st}, []hub.Input{fixGrad, fixEnrol}, now)
	want := &hub.Education{HighestLevel: "31", Institution: "黑龙江大学", GraduatedOn: "2016-07-01",
		Enrolments: []hub.Enrolment{{Institution: "黑龙江大学", Level: "30", Region: "230103", Start: "2012-09-01"}}}
	if got := out.States[p].Record().Education; !reflect.DeepEqual(got, want) {
		t.Errorf("education after the corrections = %+v, want %+v", got, want)
	}
}
