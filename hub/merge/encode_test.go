package merge_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/storetest"
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
	for _, k := range []string{"name", "loc", "permits", "mar", "grad", "enr", "con", "ins", "own", "rent", "biz", "hkl", "pml", "prov", "death"} {
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
