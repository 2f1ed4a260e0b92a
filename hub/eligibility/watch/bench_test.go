package watch_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/eligibility/watch"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas"
)

// benchPersons is the synthetic population of Daqing the benchmark keeps;
// its figures are scaled to a city of a million.
const benchPersons = 4000

// BenchmarkDayOfCity measures what the eligibility notifications cost for
// one day of a city's events: a synthetic population of Daqing lives two
// years; the changes of its last 30 days are the days. One op processes
// one day's change notifications (all of the hub's sections) for the
// Daqing settlement and Heilongjiang residence-permit policies: filter by
// section, read each concerned person, their history and household from
// the store, decide, keep the decision in a real JetStream bucket and
// announce the newly eligible. Reported next to it, in the same run: the
// pure decisions alone (no I/O), the day's notifications, and the
// seconds a city of 1,000,000 would need for a day, scaled linearly.
//
//	go test -run '^$' -bench DayOfCity -benchtime 30x ./hub/eligibility/watch/
func BenchmarkDayOfCity(b *testing.B) {
	ctx := context.Background()
	start := time.Date(2024, 12, 1, 0, 0, 0, 0, china)
	end := start.AddDate(0, 24, 0)
	cutoff := end.AddDate(0, 0, -30)

	store, err := memdb.Open(ctx, memdb.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	var past, recent []hub.Input
	err = synth.Generate(ctx, synth.Config{Persons: benchPersons, Months: 24, Start: start, Seed: 11, LateRate: -1,
		Cities: []string{"2306"}}, func(ev schemas.Event) error {
		in := hub.Input{Event: ev}
		if ev.Time.Before(cutoff) {
			past = append(past, in)
		} else {
			recent = append(recent, in)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for chunk := range slices.Chunk(past, 5000) {
		if _, err := store.Apply(ctx, chunk); err != nil {
			b.Fatal(err)
		}
	}
	drain := func() []schemas.Notification {
		var out []schemas.Notification
		for {
			es, err := store.PendingOutbox(ctx, 0, 5000)
			if err != nil {
				b.Fatal(err)
			}
			if len(es) == 0 {
				return out
			}
			seqs := make([]int64, len(es))
			for i, e := range es {
				seqs[i] = e.Seq
				if e.Subject[:len("pop.changed.")] != "pop.changed." {
					continue
				}
				var n schemas.Notification
				if err := schemas.DecodeNotification(e.Body, &n); err != nil {
					b.Fatal(err)
				}
				out = append(out, n)
			}
			if err := store.MarkPublished(ctx, seqs); err != nil {
				b.Fatal(err)
			}
		}
	}
	drain()
	// The days: the changes of each of the last 30 days, applied in order.
	slices.SortStableFunc(recent, func(a, b hub.Input) int { return a.Event.Time.Compare(b.Event.Time) })
	var days [][]schemas.Notification
	for d := range 30 {
		lo, hi := cutoff.AddDate(0, 0, d), cutoff.AddDate(0, 0, d+1)
		var batch []hub.Input
		for _, in := range recent {
			if !in.Event.Time.Before(lo) && in.Event.Time.Before(hi) {
				batch = append(batch, in)
			}
		}
		if len(batch) > 0 {
			if _, err := store.Apply(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		days = append(days, drain())
	}
	total := 0
	for _, d := range days {
		total += len(d)
	}

	srv := testenv.NATS(b, embedded.NATSConfig{SyncInterval: time.Second})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: schemas.StreamName, Subjects: []string{schemas.StreamSubjects}}); err != nil {
		b.Fatal(err)
	}
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		b.Fatal(err)
	}
	watched := []string{"heilongjiang/daqing", "residence-permit/heilongjiang"}
	ranBefore(b, js)
	w, err := watch.New(watch.Config{JS: js, Store: store, Catalog: cat, Policies: watched, Now: func() time.Time { return end }})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Open(ctx); err != nil {
		b.Fatal(err)
	}

	decisions := 0
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		n, err := w.Process(ctx, days[i%len(days)])
		if err != nil {
			b.Fatal(err)
		}
		decisions += n
	}
	b.StopTimer()
	perDay := b.Elapsed().Seconds() / float64(b.N)
	scale := 1e6 / benchPersons

	// The raw baseline: the same kind of decisions, pure, on records
	// already in memory.
	var subjects []eligibility.Subject
	for _, n := range days[0] {
		rec, err1 := store.Person(ctx, n.CitizenID)
		hist, err2 := store.History(ctx, n.CitizenID)
		if err1 == nil && err2 == nil {
			subjects = append(subjects, eligibility.Subject{Record: rec, History: hist})
		}
	}
	p, _ := cat.Policy(watched[0])
	t0 := time.Now()
	pure := 0
	for time.Since(t0) < time.Second && len(subjects) > 0 {
		eligibility.Evaluate(p, subjects[pure%len(subjects)], nil, end)
		pure++
	}
	pureRate := float64(pure) / time.Since(t0).Seconds()

	b.ReportMetric(float64(total)/30, "notifications/day")
	b.ReportMetric(float64(decisions)/float64(b.N), "decisions/day")
	b.ReportMetric(float64(decisions)/b.Elapsed().Seconds(), "decisions/s")
	b.ReportMetric(pureRate, "pure-decisions/s")
	b.ReportMetric(perDay*scale, "s/day@1M")
}
