package synth

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/region"
)

func collect(t testing.TB, cfg Config) ([]schemas.Event, Stats) {
	t.Helper()
	var out []schemas.Event
	st, err := GenerateStats(context.Background(), cfg, func(ev schemas.Event) error {
		out = append(out, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, st
}

// personOf parses the person index out of an event id
// "<source>-<generation>-<run>-<person>-<n>".
func personOf(t testing.TB, id string) int {
	t.Helper()
	parts := strings.Split(id, "-")
	if len(parts) != 5 || parts[1] != idGeneration || len(parts[2]) != 12 {
		t.Fatalf("event id %q is not <source>-%s-<run>-<person>-<n>", id, idGeneration)
	}
	n, err := strconv.Atoi(parts[3])
	if err != nil {
		t.Fatalf("event id %q: %v", id, err)
	}
	return n
}

func encode(t testing.TB, ev schemas.Event) []byte {
	t.Helper()
	b, err := schemas.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Persons: 400, Seed: 5, DuplicateRate: 0.02}
	a, _ := collect(t, cfg)
	b, _ := collect(t, cfg)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave different events")
	}
	c, _ := collect(t, Config{Persons: 400, Seed: 6, DuplicateRate: 0.02})
	if reflect.DeepEqual(a, c) {
		t.Fatal("different seeds gave the same events")
	}
	subjects := map[citizenid.ID]bool{}
	for _, e := range a {
		subjects[e.Subject] = true
	}
	shared := 0
	for _, e := range c {
		if subjects[e.Subject] {
			shared++
		}
	}
	if shared > 0 {
		t.Errorf("seeds 5 and 6 share %d events' subjects: different seeds should be different people", shared)
	}
}

// TestPersonIndependentOfSize: person i has the same events, arriving in
// the same relative order, in a population of any size.
func TestPersonIndependentOfSize(t *testing.T) {
	byPerson := func(events []schemas.Event) map[int][][]byte {
		out := map[int][][]byte{}
		for _, e := range events {
			n := personOf(t, e.ID)
			out[n] = append(out[n], encode(t, e))
		}
		return out
	}
	small, _ := collect(t, Config{Persons: 300, Seed: 9, LateRate: 0.2, DuplicateRate: 0.05})
	large, _ := collect(t, Config{Persons: 1000, Seed: 9, LateRate: 0.2, DuplicateRate: 0.05})
	s, l := byPerson(small), byPerson(large)
	if len(s) < 290 {
		t.Fatalf("only %d of 300 persons have events", len(s))
	}
	for n, evs := range s {
		if !reflect.DeepEqual(evs, l[n]) {
			t.Fatalf("person %d: %d events in the small run, %d in the large one, or they differ", n, len(evs), len(l[n]))
		}
	}
}

// TestEveryEventDecodes: every event of 20,000 persons passes the hub's own
// decoder, with the topic and key the hub would see; ids are unique per
// source, repeats are exact copies, and each person has one citizen ID
// that no other person has.
func TestEveryEventDecodes(t *testing.T) {
	persons := 20000
	if testing.Short() {
		persons = 3000
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"default window", Config{Persons: persons, Seed: 1, DuplicateRate: 0.01}},
		// A window reaching past today ends today: nothing in the future,
		// no one born after today.
		{"window ending today", Config{Persons: 2000, Seed: 2, Start: time.Now().AddDate(0, -3, 0)}},
		{"one city", Config{Persons: 2000, Seed: 3, Cities: []string{"绍兴"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[schemas.EventKey]schemas.Event{}
			idOf := map[int]citizenid.ID{}
			personOfID := map[citizenid.ID]int{}
			repeats := 0
			// Decoding is the slow part (above all under -race): spread it
			// over the cores.
			now := time.Now()
			type check struct {
				ev        schemas.Event
				roundTrip bool
			}
			evc := make(chan check, 1024)
			errc := make(chan error, runtime.GOMAXPROCS(0))
			for range cap(errc) {
				go func() {
					var first error
					for c := range evc {
						if first != nil {
							continue
						}
						first = checkDecodes(c.ev, now, c.roundTrip)
					}
					errc <- first
				}()
			}
			st, err := GenerateStats(context.Background(), tc.cfg, func(ev schemas.Event) error {
				evc <- check{ev, len(seen)%8 == 0}
				if prev, ok := seen[ev.Key()]; ok {
					if !reflect.DeepEqual(prev, ev) {
						t.Fatalf("event id %s used for two different events", ev.ID)
					}
					repeats++
				}
				seen[ev.Key()] = ev
				n := personOf(t, ev.ID)
				if id, ok := idOf[n]; ok && id != ev.Subject {
					t.Fatalf("person %d has two citizen IDs", n)
				}
				if m, ok := personOfID[ev.Subject]; ok && m != n {
					t.Fatalf("persons %d and %d share a citizen ID", m, n)
				}
				idOf[n], personOfID[ev.Subject] = ev.Subject, n
				return nil
			})
			close(evc)
			for range cap(errc) {
				if err := <-errc; err != nil {
					t.Error(err)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.Persons != len(idOf) || st.Persons < tc.cfg.Persons*9/10 {
				t.Errorf("Stats.Persons = %d, %d persons seen, %d configured", st.Persons, len(idOf), tc.cfg.Persons)
			}
			if repeats != st.Duplicates {
				t.Errorf("%d repeated events, Stats.Duplicates = %d", repeats, st.Duplicates)
			}
			if got, want := float64(repeats)/float64(st.Events), tc.cfg.DuplicateRate; got < want*0.7 || got > want*1.3 {
				t.Errorf("%d repeats in %d events: rate %.4f, configured %.4f", repeats, st.Events, got, want)
			}
			if st.ByType[schemas.HukouRegistered] < st.Persons {
				t.Errorf("%d hukou.registered for %d persons: everyone is registered", st.ByType[schemas.HukouRegistered], st.Persons)
			}
			if len(tc.cfg.Cities) > 0 {
				for id := range personOfID {
					if !strings.HasPrefix(string(id), "3306") {
						t.Fatalf("a person outside 绍兴 (%s) in a population restricted to it", id.CountyCode())
					}
				}
			}
		})
	}
}

// checkDecodes passes ev through the hub's decoder with the topic and key
// the hub would see, and checks that the decoded event encodes the same if
// roundTrip is set.
func checkDecodes(ev schemas.Event, now time.Time, roundTrip bool) error {
	raw, err := schemas.Encode(ev)
	if err != nil {
		return err
	}
	dec, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(ev.Source), Key: []byte(ev.Subject), Value: raw, Now: now})
	if err != nil {
		return fmt.Errorf("event %s does not decode: %w\n%s", ev.ID, err, raw)
	}
	if !roundTrip {
		return nil
	}
	if again, err := schemas.Encode(dec); err != nil || !bytes.Equal(again, raw) {
		return fmt.Errorf("event %s changes in a decode round trip (%v)", ev.ID, err)
	}
	if _, off := ev.Time.Zone(); off != 8*3600 {
		return fmt.Errorf("event %s: time %s is not in +08:00", ev.ID, ev.Time)
	}
	return nil
}

// TestEveryType: a population of 2,000 persons over 24 months shows every
// event type of the catalogue, whatever the seed.
func TestEveryType(t *testing.T) {
	for seed := int64(1); seed <= 5; seed++ {
		_, st := collect(t, Config{Persons: 2000, Months: 24, Seed: seed})
		for _, typ := range schemas.Types() {
			if st.ByType[typ] == 0 {
				t.Errorf("seed %d: no %s event in 2,000 persons", seed, typ)
			}
		}
		if len(st.ByType) != len(schemas.Types()) {
			t.Errorf("seed %d: %d types, the catalogue has %d", seed, len(st.ByType), len(schemas.Types()))
		}
		if per := float64(st.Events) / float64(st.Persons); per < 10 || per > 25 {
			t.Errorf("seed %d: %.1f events per person", seed, per)
		}
	}
}

// TestMarriagePairs: each marriage and divorce comes as one event per
// spouse, at the same time, naming each other; spouses are persons 2k and
// 2k+1, a woman and a man of legal age.
func TestMarriagePairs(t *testing.T) {
	events, _ := collect(t, Config{Persons: 6000, Seed: 4})
	type half struct {
		typ     schemas.Type
		subject citizenid.ID
		spouse  citizenid.ID
		at      time.Time
	}
	halves := map[half]int{}
	person := map[citizenid.ID]int{}
	count := map[schemas.Type]int{}
	for _, ev := range events {
		person[ev.Subject] = personOf(t, ev.ID)
		var spouse citizenid.ID
		switch d := ev.Payload.(type) {
		case *schemas.MarriageRegisteredData:
			spouse = d.SpouseID
		case *schemas.MarriageDivorcedData:
			spouse = d.SpouseID
		default:
			continue
		}
		halves[half{ev.Type, ev.Subject, spouse, ev.Time}]++
		count[ev.Type]++
	}
	if count[schemas.MarriageRegistered] < 1000 || count[schemas.MarriageDivorced] < 50 {
		t.Fatalf("too few marriages to check: %v", count)
	}
	for h := range halves {
		other := half{h.typ, h.spouse, h.subject, h.at}
		if halves[other] != 1 {
			t.Fatalf("%s of %s to %s has no matching event for the spouse", h.typ, h.subject, h.spouse)
		}
		a, b := person[h.subject], person[h.spouse]
		if a/2 != b/2 || a == b {
			t.Fatalf("persons %d and %d married: couples are persons 2k and 2k+1", a, b)
		}
		if h.subject.Gender() == h.spouse.Gender() {
			t.Fatalf("persons %d and %d of one gender married", a, b)
		}
		legal := 22
		if h.subject.Gender() == "2" {
			legal = 20
		}
		if h.typ == schemas.MarriageRegistered && h.subject.BirthDate().AddDate(legal, 0, 0).After(h.at) {
			t.Fatalf("person %d married below the legal age", a)
		}
	}
}

// TestArrivalOrder: without late events each person's events arrive
// together and in time order; with a late rate, about that fraction arrive
// after other persons' events and after their own later events.
func TestArrivalOrder(t *testing.T) {
	t.Run("in order", func(t *testing.T) {
		events, st := collect(t, Config{Persons: 1000, Seed: 2, LateRate: -1})
		if st.Late != 0 {
			t.Errorf("Stats.Late = %d with no late rate", st.Late)
		}
		done := map[int]bool{}
		for i, ev := range events {
			n := personOf(t, ev.ID)
			if i == 0 || personOf(t, events[i-1].ID) != n {
				if done[n] {
					t.Fatalf("person %d's events are not emitted together", n)
				}
				done[n] = true
				continue
			}
			if ev.Time.Before(events[i-1].Time) {
				t.Fatalf("person %d: event %s arrives after a later one", n, ev.ID)
			}
		}
	})
	t.Run("late", func(t *testing.T) {
		const rate = 0.1
		events, st := collect(t, Config{Persons: 3000, Seed: 2, LateRate: rate})
		latest := map[int]time.Time{}
		last := map[int]int{} // index of the person's last on-time event
		late, outOfOrder := 0, 0
		for i, ev := range events {
			n := personOf(t, ev.ID)
			if j, ok := last[n]; ok && i-j > 1 && personOf(t, events[i-1].ID) != n {
				late++ // arrived after other persons' events
			} else {
				last[n] = i
			}
			if ev.Time.Before(latest[n]) {
				outOfOrder++
			}
			if ev.Time.After(latest[n]) {
				latest[n] = ev.Time
			}
		}
		if got := float64(st.Late) / float64(st.Events); got < rate*0.8 || got > rate*1.2 {
			t.Errorf("Stats.Late = %d of %d events, configured rate %v", st.Late, st.Events, rate)
		}
		if late < st.Late*8/10 || outOfOrder < st.Late/2 {
			t.Errorf("%d events arrived after other persons', %d out of their person's order; Stats.Late = %d", late, outOfOrder, st.Late)
		}
	})
}

func TestSlotsGiveDistinctIDs(t *testing.T) {
	g, err := newGenerator(Config{Persons: 1, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	s := g.slots
	// Two full rounds of slots, and a stretch at the very end.
	var ns []int64
	for n := int64(0); n < 4*s.total; n++ {
		ns = append(ns, n)
	}
	for n := s.maxPersons() - 20000; n < s.maxPersons(); n++ {
		ns = append(ns, n)
	}
	type key struct {
		birth string
		seq   int
	}
	seen := make(map[key]int64, len(ns))
	old, young := 0, 0
	for _, n := range ns {
		birth, seq := s.birth(n)
		if seq < 2 || seq > 999 || n%2 == 1 && seq%2 != 1 || seq%2 == 1 && n%2 == 0 && seq < 2*rounds*maxPerDay {
			t.Fatalf("person %d: sequence digits %03d", n, seq)
		}
		k := key{birth.Format("20060102"), seq}
		if m, ok := seen[k]; ok {
			t.Fatalf("persons %d and %d get the same birth date and sequence number", m, n)
		}
		seen[k] = n
		if n < 2*s.total {
			switch age := g.start.Sub(birth).Hours() / hoursPerYear; {
			case age >= 60:
				old++
			case age < 18:
				young++
			}
		}
		if _, err := citizenid.Parse(string(makeID("230102", birth, seq))); err != nil && !birth.After(time.Now()) {
			t.Fatalf("person %d: %v", n, err)
		}
	}
	// China in the mid-2020s: about a fifth each under 18 and 60 or older.
	if f := float64(old) / float64(2*s.total); f < 0.15 || f > 0.27 {
		t.Errorf("%.2f of persons are 60 or older", f)
	}
	if f := float64(young) / float64(2*s.total); f < 0.13 || f > 0.25 {
		t.Errorf("%.2f of persons are under 18", f)
	}
	if MaxPersons() < 10_000_000 {
		t.Errorf("MaxPersons() = %d, want at least ten million", MaxPersons())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"negative persons", Config{Persons: -1}},
		{"too many persons", Config{Persons: int(MaxPersons()) + 1}},
		{"unknown city", Config{Persons: 10, Cities: []string{"9999"}}},
		{"future window", Config{Persons: 10, Start: time.Now().AddDate(1, 0, 0)}},
		{"rate above one", Config{Persons: 10, LateRate: 1.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Generate(context.Background(), tc.cfg, func(schemas.Event) error {
				t.Fatal("an event was emitted")
				return nil
			})
			if err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestStopsOnEmitErrorAndCancel(t *testing.T) {
	boom := errors.New("boom")
	n := 0
	err := Generate(context.Background(), Config{Persons: 100, Seed: 1}, func(schemas.Event) error {
		n++
		if n == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 10 {
		t.Errorf("emit error: got %v after %d events", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Generate(ctx, Config{Persons: 100, Seed: 1}, func(schemas.Event) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
}

func TestCities(t *testing.T) {
	for _, tc := range []struct {
		cities []string
		prefix []string
	}{
		{[]string{"哈尔滨"}, []string{"2301"}},
		{[]string{"2202", "长沙市"}, []string{"2202", "4301"}},
		{[]string{"230102"}, []string{"230102"}},
		{[]string{"道里区", "15"}, []string{"230102", "1504"}},
	} {
		events, _ := collect(t, Config{Persons: 500, Seed: 1, Cities: tc.cities})
		in := func(code string) bool {
			for _, p := range tc.prefix {
				if strings.HasPrefix(code, p) {
					return true
				}
			}
			return false
		}
		for _, ev := range events {
			var codes []string
			switch d := ev.Payload.(type) {
			case *schemas.HukouRegisteredData:
				codes = []string{string(ev.Subject)[:6], d.AddressCode}
			case *schemas.HukouMigratedData:
				codes = []string{d.ToAddressCode}
			case *schemas.ContractStartedData:
				codes = []string{d.WorkRegion}
			case *schemas.RentalRegisteredData:
				codes = []string{d.AddressCode}
			}
			for _, c := range codes {
				if !in(c) {
					t.Fatalf("cities %v: %s has code %s", tc.cities, ev.Type, c)
				}
			}
		}
	}
}

func TestWriteJSONL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	cfg := Config{Persons: 300, Seed: 8}
	st, err := WriteJSONL(context.Background(), cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := collect(t, cfg)
	wantBySource := map[schemas.Source][][]byte{}
	for _, ev := range want {
		wantBySource[ev.Source] = append(wantBySource[ev.Source], encode(t, ev))
	}
	total := 0
	for _, src := range schemas.Sources {
		f, err := os.Open(filepath.Join(dir, string(src)+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		var lines [][]byte
		for sc.Scan() {
			line := append([]byte(nil), sc.Bytes()...)
			if _, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(src), Value: line}); err != nil {
				t.Fatalf("%s.jsonl line %d: %v", src, len(lines)+1, err)
			}
			lines = append(lines, line)
		}
		f.Close()
		if !reflect.DeepEqual(lines, wantBySource[src]) {
			t.Errorf("%s.jsonl: %d lines, want the %d events of the source in arrival order", src, len(lines), len(wantBySource[src]))
		}
		total += len(lines)
	}
	if total != st.Events {
		t.Errorf("%d lines, Stats.Events = %d", total, st.Events)
	}
}

func BenchmarkGenerate(b *testing.B) {
	events, persons := 0, 0
	for b.Loop() {
		st, err := GenerateStats(context.Background(), Config{Persons: 10000, Seed: 1}, func(schemas.Event) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		events += st.Events
		persons += st.Persons
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(persons)/b.Elapsed().Seconds(), "persons/s")
}

// TestMillionIdentities checks, over a million persons, that every citizen
// ID is valid (GB 11643: region, birth date, check character) and unique,
// and that a second generator with the same seed derives the same persons.
// It covers identities only: generating the life courses of a million
// persons is the benchmark's job.
func TestMillionIdentities(t *testing.T) {
	const persons = 1_000_000
	g1, err := newGenerator(Config{Persons: persons, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := newGenerator(Config{Persons: persons, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[citizenid.ID]struct{}, persons)
	for n := int64(0); n < persons; n++ {
		p := g1.profile(n)
		if !p.born {
			continue
		}
		if _, err := citizenid.Parse(string(p.id)); err != nil {
			t.Fatalf("person %d: invalid citizen ID: %v", n, err)
		}
		if _, dup := seen[p.id]; dup {
			t.Fatalf("person %d: citizen ID given twice", n)
		}
		seen[p.id] = struct{}{}
		if n%97 == 0 { // spot-check determinism without doubling the run
			q := g2.profile(n)
			if q.id != p.id || q.name != p.name || q.addr != p.addr || !q.death.Equal(p.death) {
				t.Fatalf("person %d differs between two generators with the same seed", n)
			}
		}
	}
	if len(seen) < persons*9/10 {
		t.Fatalf("only %d of %d persons born", len(seen), persons)
	}
}

// TestAddressesInRegionTable checks every county has addresses in the
// region table and every address synth emits is one of its codes.
func TestAddressesInRegionTable(t *testing.T) {
	for _, c := range counties() {
		if d, ok := region.Lookup(c.code); !ok || d.Name != c.name || d.Level != region.CountyLevel {
			t.Errorf("county %s %s is %+v in the region table", c.code, c.name, d)
		}
		if d, ok := region.Lookup(c.city); !ok || d.Level != region.CityLevel {
			t.Errorf("county %s %s: city %s is %+v in the region table", c.code, c.name, c.city, d)
		}
		if len(countyAddresses()[c.code]) == 0 {
			t.Errorf("county %s %s has no addresses in the region table", c.code, c.name)
		}
		for _, a := range countyAddresses()[c.code] {
			if !region.Known(a) || region.County(a) != c.code {
				t.Fatalf("county %s: address %s is not a committee of it", c.code, a)
			}
		}
	}
	evs, _ := collect(t, Config{Persons: 500, Seed: 4})
	n := 0
	for _, ev := range evs {
		raw, err := schemas.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		var env struct {
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatal(err)
		}
		// Every field named *address_code, at any depth.
		var walk func(k string, v any)
		walk = func(k string, v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, v := range v {
					walk(k, v)
				}
			case []any:
				for _, v := range v {
					walk(k, v)
				}
			case string:
				if strings.HasSuffix(k, "address_code") {
					n++
					if !region.Known(v) {
						t.Fatalf("%s %s = %s, not in the region table", ev.Type, k, v)
					}
				}
			}
		}
		walk("", env.Data)
	}
	if n < 500 {
		t.Fatalf("only %d address codes checked", n)
	}
}
