package synth

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
)

// TestIDsNameOneEvent: the hub applies one event per source and id, so two
// runs that can be published into one hub never give one id to events
// that differ: an id shared by two configurations is the same event in
// both (whatever the window, the cities or the number of persons), and
// the same configuration gives the same events.
func TestIDsNameOneEvent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		a, b   Config
		shared bool // the runs are expected to share ids
	}{
		{"months 12 and 24", Config{Persons: 400, Seed: 3, Months: 12}, Config{Persons: 400, Seed: 3, Months: 24}, false},
		// 36 months reach past today: the window ends today, and the
		// babies are born over 36 months instead of 24.
		{"months 24 and 36", Config{Persons: 400, Seed: 3, Months: 24}, Config{Persons: 400, Seed: 3, Months: 36}, false},
		{"one city and all", Config{Persons: 400, Seed: 3, Cities: []string{"2301"}}, Config{Persons: 400, Seed: 3}, false},
		{"a city by code and by name", Config{Persons: 400, Seed: 3, Cities: []string{"2301"}}, Config{Persons: 400, Seed: 3, Cities: []string{"哈尔滨"}}, true},
		// The last of an odd number of persons has a partner outside the
		// population, who is in the larger one.
		{"persons 1001 and 1002", Config{Persons: 1001, Seed: 1}, Config{Persons: 1002, Seed: 1}, true},
		{"persons 201 and 202", Config{Persons: 201, Seed: 2, Months: 12}, Config{Persons: 202, Seed: 2, Months: 12}, true},
		{"late and duplicate rates", Config{Persons: 400, Seed: 3, LateRate: -1}, Config{Persons: 400, Seed: 3, LateRate: 0.3, DuplicateRate: 0.1}, true},
		{"seeds 3 and 4", Config{Persons: 400, Seed: 3}, Config{Persons: 400, Seed: 4}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := collect(t, tc.a)
			b, _ := collect(t, tc.b)
			enc := map[schemas.EventKey][]byte{}
			for _, ev := range a {
				enc[ev.Key()] = encode(t, ev)
			}
			shared := 0
			for _, ev := range b {
				prev, ok := enc[ev.Key()]
				if !ok {
					continue
				}
				shared++
				if got := encode(t, ev); !bytes.Equal(prev, got) {
					t.Fatalf("id %s names two different events:\n%s\n%s", ev.ID, prev, got)
				}
			}
			if tc.shared && shared == 0 {
				t.Errorf("no id shared: the runs generate the same events under other ids")
			}
			if !tc.shared && shared > 0 {
				t.Logf("%d ids shared, all naming the same event", shared)
			}
		})
	}
	t.Run("same configuration twice", func(t *testing.T) {
		cfg := Config{Persons: 500, Seed: 6, Months: 30, Cities: []string{"23"}, DuplicateRate: 0.02}
		a, _ := collect(t, cfg)
		b, _ := collect(t, cfg)
		if !reflect.DeepEqual(a, b) {
			t.Fatal("the same configuration gave different events")
		}
	})
}

// TestRunIDFollowsWhatShapesEvents: the run part of the ids changes with
// each input of the generation, the window's end above all: a window
// clamped to today generates more events tomorrow.
func TestRunIDFollowsWhatShapesEvents(t *testing.T) {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, china)
	end := time.Date(2026, 1, 1, 0, 0, 0, 0, china)
	base := runKey{seed: 1, start: start, end: end, newbornDays: defaultNewbornDays, counties: []string{"230102", "230103"}}
	want := base.id()
	if again := base.id(); again != want {
		t.Fatalf("run id %q then %q for one configuration", want, again)
	}
	for _, tc := range []struct {
		name   string
		change func(k *runKey)
	}{
		{"seed", func(k *runKey) { k.seed = 2 }},
		{"start", func(k *runKey) { k.start = start.AddDate(0, 0, 1) }},
		{"end a day later", func(k *runKey) { k.end = end.AddDate(0, 0, 1) }},
		{"newborn days", func(k *runKey) { k.newbornDays++ }},
		{"counties", func(k *runKey) { k.counties = []string{"230102"} }},
		{"counties joined otherwise", func(k *runKey) { k.counties = []string{"2301", "02230103"} }},
	} {
		k := base
		k.counties = append([]string(nil), base.counties...)
		tc.change(&k)
		if got := k.id(); got == want {
			t.Errorf("%s changed, run id %q did not", tc.name, got)
		}
	}
}
