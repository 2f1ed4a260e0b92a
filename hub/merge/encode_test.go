package merge_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestAppendStateMatchesEncodingJSON: Marshal writes exactly what
// json.Marshal writes for the states of a synthetic population merged in
// batches (every section, maps, timelines, provenance), and for awkward
// values.
func TestAppendStateMatchesEncodingJSON(t *testing.T) {
	in := storetest.Population(t, 300, 11)
	states := map[citizenid.ID]*merge.State{}
	now := time.Date(2026, 11, 30, 12, 0, 0, 987654321, time.UTC)
	for i := 0; i < len(in); i += 97 {
		o := merge.Batch(states, in[i:min(i+97, len(in))], now)
		for id, s := range o.States {
			states[id] = s
		}
	}
	if len(states) < 250 {
		t.Fatalf("%d states of a population of 300 persons", len(states))
	}
	sections := map[string]bool{}
	for _, s := range states {
		compareMarshal(t, s)
		var m map[string]json.RawMessage
		b, _ := merge.Marshal(s)
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for k := range m {
			sections[k] = true
		}
	}
	// The population must exercise the encoder's branches.
	for _, k := range []string{"name", "loc", "permits", "mar", "grads", "enr", "con", "ins", "own", "rent", "biz", "hkl", "pml", "prov", "death", "div"} {
		if !sections[k] {
			t.Errorf("no state of the population has %q: the comparison does not cover it", k)
		}
	}

	// Awkward values: HTML, quotes, control characters, invalid UTF-8 and
	// U+2028 in strings; an empty state; odd time zones (written by hand
	// only when encoding/json would write them the same way).
	var st merge.State
	if err := json.Unmarshal([]byte(`{"id":"230102199001011230","ver":3,
		"name":{"v":"a<b>&\"c\"\\\n\u2028\u0001","at":{"t":"2024-01-01T00:00:00.5+08:00","s":"public_security","i":"x<1>"}},
		"gender":{"at":{"t":"2024-01-01T00:00:00Z","s":"","i":""}},
		"eth":{"v":""},
		"grad":{"v":{"l":"21","n":"黑龙江大学","d":"2016-07-01"},"at":{"t":"2016-07-01T09:00:00+08:00","s":"education","i":"e1"}},
		"permits":{"b":null,"a":{"v":{"a":"1","b":"employment"}}},
		"con":{"c1":{},"c2":{"e":{"v":"2024-01-01"}}},
		"ins":{"pension":{"m":[]},"medical":{"m":["2024-01"]}},
		"prov":{"z":{"t":"0001-01-01T00:00:00Z","s":"","i":""},"a":{"t":"2024-01-01T00:00:00-03:30","s":"tax","i":"é"}}}`), &st); err != nil {
		t.Fatal(err)
	}
	compareMarshal(t, &st)
	compareMarshal(t, &merge.State{})
	st.UpdatedAt = time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", 5*3600+30*60))
	compareMarshal(t, &st)
}

// TestDivorcesRoundTrip: the divorces kept per spouse are stored and read
// back, so that a divorce decides the record after a restart as it did
// before: one naming a former spouse still leaves the current marriage,
// one naming the current spouse still ends it.
func TestDivorcesRoundTrip(t *testing.T) {
	p, a, b := storetest.ValidID(101), storetest.ValidID(202), storetest.ValidID(303)
	at := func(y int) time.Time { return time.Date(y, 5, 20, 9, 0, 0, 0, schemas.CST()) }
	marry := func(eid string, y int, spouse citizenid.ID) hub.Input {
		return storetest.Event(t, schemas.MarriageRegistered, p, eid, at(y), schemas.MarriageRegisteredData{SpouseID: spouse})
	}
	divorce := func(eid string, y int, spouse citizenid.ID) hub.Input {
		return storetest.Event(t, schemas.MarriageDivorced, p, eid, at(y), schemas.MarriageDivorcedData{SpouseID: spouse})
	}
	tests := []struct {
		name   string
		stored []hub.Input // merged and stored
		then   hub.Input   // merged into the state read back
		want   hub.Marital
	}{
		{"a former spouse's divorce stored leaves a later marriage",
			[]hub.Input{marry("m-a", 2010, a), divorce("d-a", 2012, a)}, marry("m-b", 2018, b),
			hub.Marital{Status: "20", SpouseID: b, Since: "2018-05-20"}},
		{"a divorce naming the spouse, stored, ends a marriage read back",
			[]hub.Input{marry("m-a", 2010, a), divorce("d-b", 2020, b)}, marry("m-b", 2018, b),
			hub.Marital{Status: "40", Since: "2020-05-20"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := merge.Batch(nil, tc.stored, time.Now()).States[p]
			compareMarshal(t, st)
			b, err := merge.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			back, err := merge.Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if again, _ := merge.Marshal(back); string(again) != string(b) {
				t.Fatalf("read back and stored again:\n got %s\nwant %s", again, b)
			}
			after := merge.Batch(map[citizenid.ID]*merge.State{p: back}, []hub.Input{tc.then}, time.Now()).States[p]
			if r := after.Record(); r.Marital == nil || *r.Marital != tc.want {
				t.Errorf("marital %+v, want %+v", r.Marital, tc.want)
			}
		})
	}
}

// TestStateStoredBeforeDivorcesPerSpouse: states the merge stored before
// divorces were kept per spouse (as it wrote them, and the records it
// derived from them) decode to the same record, and are stored again
// unchanged.
func TestStateStoredBeforeDivorcesPerSpouse(t *testing.T) {
	const head = `{"id":"230102199001011230","ver":4,"upd":"2026-11-01T12:00:00Z","first":"2000-01-01T08:00:00+08:00",` +
		`"name":{"v":"张伟","at":{"t":"2000-01-01T08:00:00+08:00","s":"public_security","i":"ps-1"}},` +
		`"gender":{"v":"1","at":{"t":"2000-01-01T08:00:00+08:00","s":"public_security","i":"ps-1"}},` +
		`"birth":{"v":"1990-01-01","at":{"t":"2000-01-01T08:00:00+08:00","s":"public_security","i":"ps-1"}},` +
		`"eth":{"v":"01","at":{"t":"2000-01-01T08:00:00+08:00","s":"public_security","i":"ps-1"}},` +
		`"reg":{"t":"2000-01-01T08:00:00+08:00","s":"public_security","i":"ps-1"},` +
		`"loc":{"v":{"a":"230102001001"},"at":{"t":"2000-01-01T08:00:00+08:00","s":"public_security","i":"ps-1"}},` +
		`"hh":{"v":"H1","at":{"t":"2000-01-01T08:00:00+08:00","s":"public_security","i":"ps-1"}},` +
		`"life":{"v":"registered","at":{"t":"2000-01-01T08:00:00+08:00","s":"public_security","i":"ps-1"}},`
	const tail = `,"hkl":[{"at":{"t":"2000-01-01T08:00:00+08:00","s":"public_security","i":"ps-1"},"k":"r","a":"230102001001"}]}`
	const recHead = `{"citizen_id":"230102199001011230","version":4,"updated_at":"2026-11-01T12:00:00Z","status":"active",` +
		`"identity":{"name":"张伟","gender":"1","birth_date":"1990-01-01","ethnicity":"01"},` +
		`"hukou":{"address_code":"230102001001","region_code":"230102","since":"2000-01-01","household_id":"H1","urban_rural":"urban"},`
	const recProv = `"provenance":{"hukou":{"source":"public_security","event_id":"ps-1","time":"2000-01-01T08:00:00+08:00"},` +
		`"identity":{"source":"public_security","event_id":"ps-1","time":"2000-01-01T08:00:00+08:00"},`
	tests := []struct {
		name, mar, record string
	}{
		{"a divorce in the marriage register",
			`"mar":{"v":{"s":"40"},"at":{"t":"2019-01-10T09:00:00+08:00","s":"marriage","i":"d-a"}}`,
			recHead + `"marital":{"status":"40","since":"2019-01-10"},` + recProv +
				`"marital":{"source":"marriage","event_id":"d-a","time":"2019-01-10T09:00:00+08:00"}}}`},
		{"a marriage",
			`"mar":{"v":{"s":"20","p":"230102198503031245"},"at":{"t":"2018-08-08T09:00:00+08:00","s":"marriage","i":"m-b"}}`,
			recHead + `"marital":{"status":"20","spouse_id":"230102198503031245","since":"2018-08-08"},` + recProv +
				`"marital":{"source":"marriage","event_id":"m-b","time":"2018-08-08T09:00:00+08:00"}}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stored := head + tc.mar + tail
			st, err := merge.Unmarshal([]byte(stored))
			if err != nil {
				t.Fatal(err)
			}
			rec, err := json.Marshal(st.Record())
			if err != nil {
				t.Fatal(err)
			}
			if string(rec) != tc.record {
				t.Errorf("record\n got %s\nwant %s", rec, tc.record)
			}
			if again, _ := merge.Marshal(st); string(again) != stored {
				t.Errorf("stored again\n got %s\nwant %s", again, stored)
			}
		})
	}
}

func compareMarshal(t *testing.T, s *merge.State) {
	t.Helper()
	got, err := merge.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("Marshal differs from encoding/json:\n got %s\nwant %s", got, want)
	}
}

// BenchmarkMarshal: a population's states by Marshal and by json.Marshal.
func BenchmarkMarshal(b *testing.B) {
	in := storetest.Population(b, 500, 3)
	o := merge.Batch(nil, in, time.Now())
	var states []*merge.State
	for _, s := range o.States {
		states = append(states, s)
	}
	for _, mode := range []string{"merge.Marshal", "encoding-json"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				for _, s := range states {
					if mode == "merge.Marshal" {
						merge.Marshal(s)
					} else {
						json.Marshal(s)
					}
				}
			}
			b.ReportMetric(float64(len(states)*b.N)/b.Elapsed().Seconds(), "states/s")
		})
	}
}
