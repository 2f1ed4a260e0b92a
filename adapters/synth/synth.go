// Package synth generates a synthetic population and the department events
// of its life courses, for `pophub demo`, benchmarks and tests.
//
// It is deterministic for a seed (and window and cities), and person i is
// the same person whatever the population size, so a larger run extends a
// smaller one, with the same event ids: every person is derived from
// random streams seeded with (Seed, i) and, for their household, with the
// indexes of earlier persons (their parents come before them). A run with
// another seed, window or choice of cities gives other events, and other
// event ids (see runKey). Events stream out person by person without the
// population being held in memory: the memory used does not grow with the
// number of persons.
//
// Every person has a valid, unique citizen ID (a real county code of the
// built-in region table, a real birth date drawn from an age pyramid, a
// sequence number derived from the person's index, the GB 11643 check
// character), a common Chinese name and a hukou registration in a
// household; over the window they go to school, graduate, sign and end
// labour contracts, pay social insurance, rent and buy homes, open and
// close businesses, marry and divorce (persons 2k and 2k+1 are a potential
// couple, and each spouse gets their own event naming the other; in a few
// pairs both are men, who never marry each other, so that men outnumber
// women about 105 to 100, 110 at birth, in the first 400,000 or so
// persons, whose ID sequence numbers leave room for them; larger
// populations tend to 100), move their hukou between cities
// (mostly within the province), obtain residence permits, and die, usually
// followed by the cancellation of their hukou (not always: 应销未销). Each
// event is valid for schemas.Decode, and all times are in China Standard
// Time (+08:00); what ends something (a divorce, the end of a contract or
// lease, a sale, a deregistration, an insurance termination) always
// follows the event that began it.
//
// Households are registered as in the hukou register: a married couple's
// household has the husband as its head (户主) and the wife as spouse
// (配偶), with their unmarried children (子, 女) born after the wedding,
// when the parents were 20 to 35, babies born in the window among them;
// everyone else heads a household of their own. The husband of a couple
// married when the window opens keeps his hukou in his household (a
// residence permit covers work elsewhere), so it never loses its head to
// a migration. Everyone is first registered in the county of
// their ID: at birth, into the parents' household or, when the parents
// are not in the population, one of their own (or at a settlement). A
// wife married before the window moves her hukou into the husband's
// household within six months of the wedding (hukou.migrated, family);
// half the newly-wed wives do so in the window. Babies are born over the
// whole window.
//
// Life events take effect within the window. The events that describe
// each person's state when the window opens — the hukou registration, a
// marriage, the current labour contract and insurance enrolment with the
// contract's monthly contributions of up to three years before the
// window, the last graduation and current enrolment, homes owned and
// rented, businesses — carry their real, earlier effective times, as a
// department's first load of its records would.
package synth

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/pophub/pophub/schemas"
)

// Config configures a population. The zero value of every field but
// Persons has a default.
type Config struct {
	// Persons is the number of persons (indexes 0 … Persons-1). Persons
	// born after the window's end have no events and are not counted in
	// Stats.Persons. The partner of the last of an odd number of persons
	// is outside the population: she may be married to him and registered
	// in his household, as with a spouse from elsewhere, but he has no
	// events; so she is the same person as in a larger population.
	Persons int
	// Months is the length of the window of life events (default 24).
	Months int
	// Seed selects the population.
	Seed int64
	// Start is the first instant of the window (default 2024-01-01 00:00
	// China Standard Time). A window reaching past today ends today: no
	// event may take effect in the future.
	Start time.Time
	// LateRate is the fraction of events that arrive late: after events
	// of other persons and after the person's own later events (default
	// 0.05; negative for none).
	LateRate float64
	// DuplicateRate is the fraction of events sent a second time, later,
	// with the same id (default 0).
	DuplicateRate float64
	// Cities restricts the population to the counties of these cities:
	// division codes or prefixes ("23", "2301", "230102") or names
	// ("哈尔滨", "哈尔滨市", "道里区"). Default: the whole built-in table.
	Cities []string
}

// china is China Standard Time, the zone of every generated time.
var china = time.FixedZone("CST", 8*3600)

// Stats counts what a run generated.
type Stats struct {
	// Persons with at least one event.
	Persons int
	// Events emitted, repeats included.
	Events int
	// Late events (held back to arrive after other persons' events and
	// the person's own later ones) and Duplicates (second copies).
	Late, Duplicates int
	ByType           map[schemas.Type]int
	BySource         map[schemas.Source]int
}

// Generate streams the population's events to emit, in arrival order. It
// stops at the first error emit returns, or when ctx ends.
func Generate(ctx context.Context, cfg Config, emit func(schemas.Event) error) error {
	_, err := GenerateStats(ctx, cfg, emit)
	return err
}

// GenerateStats is Generate, also returning what it generated.
func GenerateStats(ctx context.Context, cfg Config, emit func(schemas.Event) error) (Stats, error) {
	st := Stats{ByType: map[schemas.Type]int{}, BySource: map[schemas.Source]int{}}
	g, err := newGenerator(cfg)
	if err != nil {
		return st, err
	}
	out := func(ev schemas.Event) error {
		st.Events++
		st.ByType[ev.Type]++
		st.BySource[ev.Source]++
		return emit(ev)
	}
	var q lateQueue
	arrival := 0 // events of persons emitted so far, each counted once
	var buf []schemas.Event
	for n := int64(0); n < int64(g.cfg.Persons); n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
		}
		buf = g.person(n, buf[:0])
		if len(buf) == 0 {
			continue
		}
		st.Persons++
		ar := newRand(g.cfg.Seed, n, streamArrival)
		for _, ev := range buf {
			late := ar.Float64() < g.cfg.LateRate
			dup := ar.Float64() < g.cfg.DuplicateRate
			delay := 50 + ar.IntN(400)
			if late {
				heap.Push(&q, pending{due: arrival + delay, seq: q.seq, ev: ev})
				q.seq++
				st.Late++
			} else if err := out(ev); err != nil {
				return st, err
			}
			if dup {
				heap.Push(&q, pending{due: arrival + delay/2, seq: q.seq, ev: ev})
				q.seq++
				st.Duplicates++
			}
			arrival++
		}
		for len(q.items) > 0 && q.items[0].due <= arrival {
			if err := out(heap.Pop(&q).(pending).ev); err != nil {
				return st, err
			}
		}
	}
	for len(q.items) > 0 {
		if err := out(heap.Pop(&q).(pending).ev); err != nil {
			return st, err
		}
	}
	return st, nil
}

// generator holds what every person's generation shares.
type generator struct {
	cfg        Config
	rg         *regions
	slots      *slotSpace
	start, end time.Time
	idPrefix   map[schemas.Source]string
}

func newGenerator(cfg Config) (*generator, error) {
	if cfg.Persons < 0 {
		return nil, errors.New("persons must not be negative")
	}
	if cfg.Months <= 0 {
		cfg.Months = 24
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2024, 1, 1, 0, 0, 0, 0, china)
	}
	if cfg.LateRate == 0 {
		cfg.LateRate = 0.05
	}
	if cfg.LateRate > 1 || cfg.DuplicateRate > 1 {
		return nil, errors.New("late and duplicate rates must be fractions of 1")
	}
	rg, err := newRegions(cfg.Cities)
	if err != nil {
		return nil, fmt.Errorf("selecting cities: %w", err)
	}
	g := &generator{cfg: cfg, rg: rg, start: cfg.Start.In(china), idPrefix: map[schemas.Source]string{}}
	g.end = g.start.AddDate(0, cfg.Months, 0)
	now := time.Now().In(china)
	if today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, china); g.end.After(today) {
		g.end = today
	}
	if !g.end.After(g.start) {
		return nil, fmt.Errorf("the window starting %s lies in the future", g.start.Format(time.DateOnly))
	}
	// Babies are born over two years, or over the whole of a longer window
	// (a window of up to 24 months has the same persons).
	newborn := defaultNewbornDays
	if cfg.Months > 24 {
		newborn = max(newborn, int(g.start.AddDate(0, cfg.Months, 0).Sub(g.start).Hours()/24))
	}
	g.slots = newSlotSpace(cfg.Seed, g.start, newborn)
	if max := g.slots.maxPersons(); int64(cfg.Persons) > max {
		return nil, fmt.Errorf("%d persons: at most %d have distinct citizen IDs", cfg.Persons, max)
	}
	run := runKey{seed: cfg.Seed, start: g.start, end: g.end, newbornDays: newborn, counties: g.rg.codes()}.id()
	for _, s := range schemas.Sources {
		g.idPrefix[s] = string(s) + "-" + idGeneration + "-" + run + "-"
	}
	return g, nil
}

// MaxPersons is the largest population with distinct citizen IDs.
func MaxPersons() int64 {
	return newSlotSpace(0, time.Date(2024, 1, 1, 0, 0, 0, 0, china), defaultNewbornDays).maxPersons()
}

// idGeneration names the generator's rules in every event id
// (<source>-<generation>-<run>-<person>-<n>). The hub applies one event
// per source and id, so when the rules change what a configuration
// produces, the generation changes too: a population generated anew and
// sent to a hub that holds an older one is applied, not dropped as
// duplicates.
const idGeneration = "g5"

// runKey is everything but the person that shapes a person's events: the
// seed, the window as generated (its end clamped to today), the span the
// newborn are drawn over (which sets everyone's birth slot) and the
// counties selected. The number of persons is not in it, as person n's
// events do not depend on it, nor are the late and duplicate rates, which
// only order and repeat the events.
type runKey struct {
	seed        int64
	start, end  time.Time
	newbornDays int
	counties    []string // selected county codes, in the order drawn from
}

// id is the run part of the event ids: 12 hex digits of a SHA-256 of the
// key, so that two configurations that generate different events for a
// person give them different ids, and configurations that generate the
// same events (the cities named by code or by name, say) the same ids.
func (k runKey) id() string {
	h := sha256.New()
	field := func(s string) {
		h.Write(strconv.AppendInt(nil, int64(len(s)), 10))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	field(strconv.FormatInt(k.seed, 10))
	field(k.start.In(china).Format(time.RFC3339Nano))
	field(k.end.In(china).Format(time.RFC3339Nano))
	field(strconv.Itoa(k.newbornDays))
	for _, c := range k.counties {
		field(c)
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// eventID is "<source>-<generation>-<run>-<person>-<n>", n counting the
// person's events in time order from 1.
func (g *generator) eventID(src schemas.Source, person int64, n int) string {
	b := make([]byte, 0, 40)
	b = append(b, g.idPrefix[src]...)
	b = strconv.AppendInt(b, person, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(n), 10)
	return string(b)
}

// person appends the events of person n, in time order, to buf.
func (g *generator) person(n int64, buf []schemas.Event) []schemas.Event {
	p := g.profile(n)
	if !p.born {
		return buf
	}
	// The partner is derived even when outside the population (the last
	// of an odd number of persons): person n's events must not depend on
	// the population's size.
	lc := &lifeCourse{g: g, p: p, r: newRand(g.cfg.Seed, n, streamLife), evs: buf}
	return lc.generate(p.m, g.profile(n^1))
}

// pending is an event held back to arrive late or a second time.
type pending struct {
	due, seq int
	ev       schemas.Event
}

// lateQueue orders held-back events by due arrival, then by when they were
// held back.
type lateQueue struct {
	items []pending
	seq   int
}

func (q *lateQueue) Len() int { return len(q.items) }
func (q *lateQueue) Less(i, j int) bool {
	a, b := q.items[i], q.items[j]
	return a.due < b.due || a.due == b.due && a.seq < b.seq
}
func (q *lateQueue) Swap(i, j int) { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *lateQueue) Push(x any)    { q.items = append(q.items, x.(pending)) }
func (q *lateQueue) Pop() any {
	x := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	return x
}
