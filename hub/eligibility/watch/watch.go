// Package watch tells people, through the systems that serve them, when
// they become eligible to settle or for a residence permit: it follows the
// hub's own change notifications, re-decides a person only when a section
// one of the watched policies reads has changed, and publishes
// pop.eligibility.<policy>.<R> when the decision turns to eligible.
//
// Nothing is scanned: a person is evaluated when a relevant change arrives,
// and again on the day the decision said they would qualify if nothing
// changed (a contract or an insurance reaching its length qualifies a
// person without any new event). The last decision per policy and person
// is kept in a JetStream key-value bucket, so a restart neither repeats an
// announcement nor forgets a qualifying day; the notification's
// Nats-Msg-Id (policy, person, day) makes a re-publish after a crash a
// duplicate the stream drops.
//
// R is the region where the person qualifies: the address of their current
// rental or home in the policy's place, else their work region there, else
// the place itself.
package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Config configures a Watcher. JS, Store, Catalog and Policies are required.
type Config struct {
	JS      jetstream.JetStream
	Store   eligibility.Reader
	Catalog *eligibility.Catalog
	// Policies are the ids whose eligibility is announced (opt-in).
	Policies []string

	// Stream is the hub's notification stream (default schemas.StreamName).
	Stream string
	// Durable names the consumer of change notifications (default
	// "pophub-eligibility").
	Durable string
	// Bucket is the key-value bucket of last decisions (default
	// "pophub_eligibility").
	Bucket string
	// FetchBatch bounds the notifications taken at once (default 512);
	// a person changed several times in one batch is decided once.
	FetchBatch int
	// Concurrency is the number of persons decided at once (default 4).
	Concurrency int
	// Now is the clock (default time.Now); tests move it.
	Now    func() time.Time
	Logger *slog.Logger
	Meter  metric.Meter
}

// state is the last decision kept per policy and person.
type state struct {
	Eligible    bool   `json:"eligible"`
	AsOf        string `json:"as_of"`
	QualifiesOn string `json:"qualifies_on,omitempty"`
}

// Watcher evaluates and announces eligibility. Create it with New.
type Watcher struct {
	cfg      Config
	policies []*eligibility.Policy
	// relevant maps a changed section to the watched policies reading it.
	relevant map[string][]*eligibility.Policy
	kv       jetstream.KeyValue

	mu  sync.Mutex
	due map[string]map[string]bool // qualifying day → keys

	evaluations metric.Int64Counter
	announced   metric.Int64Counter
}

// New checks the configuration and builds a Watcher.
func New(cfg Config) (*Watcher, error) {
	switch {
	case cfg.JS == nil:
		return nil, errors.New("watch: Config.JS is nil")
	case cfg.Store == nil:
		return nil, errors.New("watch: Config.Store is nil")
	case cfg.Catalog == nil:
		return nil, errors.New("watch: Config.Catalog is nil")
	case len(cfg.Policies) == 0:
		return nil, errors.New("watch: no policies to watch")
	}
	if cfg.Stream == "" {
		cfg.Stream = schemas.StreamName
	}
	if cfg.Durable == "" {
		cfg.Durable = "pophub-eligibility"
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "pophub_eligibility"
	}
	if cfg.FetchBatch <= 0 {
		cfg.FetchBatch = 512
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Meter == nil {
		cfg.Meter = metricnoop.NewMeterProvider().Meter("")
	}
	w := &Watcher{cfg: cfg, relevant: map[string][]*eligibility.Policy{}, due: map[string]map[string]bool{}}
	for _, id := range cfg.Policies {
		p, ok := cfg.Catalog.Policy(id)
		if !ok {
			return nil, fmt.Errorf("watch: no policy %q", id)
		}
		if slices.Contains(w.policies, p) {
			continue
		}
		w.policies = append(w.policies, p)
		for _, s := range eligibility.RelevantSections(p) {
			w.relevant[string(s)] = append(w.relevant[string(s)], p)
		}
	}
	var err error
	if w.evaluations, err = cfg.Meter.Int64Counter("pophub.eligibility.evaluations",
		metric.WithDescription("Eligibility decisions made for notifications, by policy and outcome (eligible, not_eligible, error).")); err != nil {
		return nil, err
	}
	if w.announced, err = cfg.Meter.Int64Counter("pophub.eligibility.notifications",
		metric.WithDescription("Persons announced as newly eligible on pop.eligibility, by policy.")); err != nil {
		return nil, err
	}
	return w, nil
}

// Relevant reports which watched policies a change to section concerns.
func (w *Watcher) Relevant(section string) []*eligibility.Policy { return w.relevant[section] }

// Run follows change notifications until ctx ends. It creates the bucket
// and the durable consumer (starting with new notifications) when
// missing, and resumes from the consumer's position otherwise.
func (w *Watcher) Run(ctx context.Context) error {
	if err := w.Open(ctx); err != nil {
		return err
	}
	cons, err := w.cfg.JS.CreateOrUpdateConsumer(ctx, w.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       w.cfg.Durable,
		Description:   "pophub eligibility notifications",
		FilterSubject: "pop.changed.>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckWait:       2 * time.Minute,
		MaxAckPending: 4 * w.cfg.FetchBatch,
	})
	if err != nil {
		return fmt.Errorf("creating the eligibility consumer: %w", err)
	}
	lastSweep := time.Time{}
	for ctx.Err() == nil {
		if now := w.cfg.Now(); now.Sub(lastSweep) >= time.Minute {
			lastSweep = now
			if err := w.sweep(ctx); err != nil && ctx.Err() == nil {
				w.cfg.Logger.Warn("eligibility: re-deciding persons due today", "err", err)
			}
		}
		batch, err := cons.Fetch(w.cfg.FetchBatch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			w.cfg.Logger.Warn("eligibility: fetching notifications", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			continue
		}
		if err := w.Handle(ctx, msgs); err != nil {
			w.cfg.Logger.Warn("eligibility: deciding a batch; it will be redelivered", "err", err, "notifications", len(msgs))
			for _, m := range msgs {
				_ = m.NakWithDelay(5 * time.Second)
			}
			continue
		}
		for _, m := range msgs {
			_ = m.Ack()
		}
	}
	return ctx.Err()
}

// Open creates or opens the bucket of last decisions and rebuilds the
// qualifying days from it. Run calls it; Process needs it done.
func (w *Watcher) Open(ctx context.Context) error {
	kv, err := w.cfg.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: w.cfg.Bucket,
		Description: "pophub: last eligibility decision per policy and person"})
	if err != nil {
		return fmt.Errorf("opening the eligibility bucket: %w", err)
	}
	w.kv = kv
	return w.loadSchedule(ctx)
}

// work is one person to decide against some policies.
type work struct {
	id       citizenid.ID
	policies map[*eligibility.Policy]bool
	trigger  string
}

// Handle decides the persons of a batch of change notifications whose
// changed section a watched policy reads, each once, and announces those
// who became eligible. An error means the batch must be retried.
func (w *Watcher) Handle(ctx context.Context, msgs []jetstream.Msg) error {
	notes := make([]schemas.Notification, 0, len(msgs))
	for _, m := range msgs {
		var n schemas.Notification
		if err := schemas.DecodeNotification(m.Data(), &n); err != nil {
			w.cfg.Logger.Warn("eligibility: skipping an undecodable notification", "subject", m.Subject(), "err", err)
			continue
		}
		notes = append(notes, n)
	}
	_, err := w.Process(ctx, notes)
	return err
}

// Process decides the persons of a batch of change notifications whose
// changed section a watched policy reads, each person once per policy,
// and announces those who became eligible. It returns how many decisions
// it made.
func (w *Watcher) Process(ctx context.Context, notes []schemas.Notification) (int, error) {
	byPerson := map[citizenid.ID]*work{}
	var order []*work
	decisions := 0
	for i := range notes {
		n := &notes[i]
		ps := w.relevant[n.Section]
		if len(ps) == 0 {
			continue
		}
		wk := byPerson[n.CitizenID]
		if wk == nil {
			wk = &work{id: n.CitizenID, policies: map[*eligibility.Policy]bool{}}
			byPerson[n.CitizenID] = wk
			order = append(order, wk)
		}
		wk.trigger = n.ChangeID // the latest change decides
		for _, p := range ps {
			if !wk.policies[p] {
				wk.policies[p] = true
				decisions++
			}
		}
	}
	return decisions, w.decideAll(ctx, order)
}

// decideAll decides the work items with Concurrency workers; a person
// always goes to the same worker.
func (w *Watcher) decideAll(ctx context.Context, items []*work) error {
	if len(items) == 0 {
		return nil
	}
	n := min(w.cfg.Concurrency, len(items))
	queues := make([][]*work, n)
	for _, it := range items {
		h := fnv.New32a()
		h.Write([]byte(it.id))
		queues[h.Sum32()%uint32(n)] = append(queues[h.Sum32()%uint32(n)], it)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range queues {
		wg.Go(func() {
			for _, it := range queues[i] {
				for _, p := range w.sorted(it.policies) {
					if err := w.decide(ctx, p, it.id, it.trigger); err != nil {
						errs[i] = err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (w *Watcher) sorted(set map[*eligibility.Policy]bool) []*eligibility.Policy {
	ps := slices.Collect(maps.Keys(set))
	slices.SortFunc(ps, func(a, b *eligibility.Policy) int { return strings.Compare(a.ID, b.ID) })
	return ps
}

func key(p *eligibility.Policy, id citizenid.ID) string {
	return schemas.PolicyToken(p.ID) + "." + string(id)
}

// decide re-decides one person under one policy and announces a turn to
// eligible. Several hub instances share the watcher's consumer and may
// decide one person at once: the last decision is saved only over the
// revision the decision was made against, and a decision that lost that
// race is made again, so an older one never overwrites a newer.
func (w *Watcher) decide(ctx context.Context, p *eligibility.Policy, id citizenid.ID, trigger string) error {
	for attempt := 1; ; attempt++ {
		err := w.decideOnce(ctx, p, id, trigger)
		if !errors.Is(err, jetstream.ErrKeyExists) || attempt == maxDecideAttempts {
			return err
		}
	}
}

// maxDecideAttempts bounds how often decide starts over after another
// instance saved a decision for the same person first.
const maxDecideAttempts = 5

func (w *Watcher) decideOnce(ctx context.Context, p *eligibility.Policy, id citizenid.ID, trigger string) error {
	now := w.cfg.Now()
	d, err := eligibility.Decide(ctx, w.cfg.Store, p, id, now, false)
	if errors.Is(err, hub.ErrNotFound) {
		return nil
	}
	pol := metric.WithAttributes(attribute.String("policy", p.ID))
	if err != nil {
		w.evaluations.Add(ctx, 1, metric.WithAttributes(attribute.String("policy", p.ID), attribute.String("outcome", "error")))
		return fmt.Errorf("deciding under %s: %w", p.ID, err)
	}
	outcome := "not_eligible"
	if d.Eligible {
		outcome = "eligible"
	}
	w.evaluations.Add(ctx, 1, metric.WithAttributes(attribute.String("policy", p.ID), attribute.String("outcome", outcome)))

	k := key(p, id)
	var prev state
	var rev uint64 // 0: no decision saved yet
	if e, err := w.kv.Get(ctx, k); err == nil {
		_ = json.Unmarshal(e.Value(), &prev)
		rev = e.Revision()
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("reading the last decision: %w", err)
	}
	next := state{Eligible: d.Eligible, AsOf: d.AsOf, QualifiesOn: d.QualifiesOn}
	if d.Eligible && !prev.Eligible {
		n := schemas.EligibilityNotification{ChangeID: p.ID + ":" + string(id) + ":" + d.AsOf, CitizenID: id, Policy: p.ID,
			Title: d.Title, Place: d.Place, RegionCode: regionOf(ctx, w.cfg.Store, p, d), Route: d.Route, AsOf: d.AsOf,
			Trigger: trigger, EvaluatedAt: now.UTC()}
		body, err := json.Marshal(n)
		if err != nil {
			return err
		}
		if _, err := w.cfg.JS.Publish(ctx, schemas.EligibilitySubject(p.ID, n.RegionCode), body, jetstream.WithMsgID(n.ChangeID)); err != nil {
			return fmt.Errorf("publishing an eligibility notification: %w", err)
		}
		w.announced.Add(ctx, 1, pol)
	}
	if next != prev {
		b, _ := json.Marshal(next)
		var err error
		if rev == 0 {
			_, err = w.kv.Create(ctx, k, b)
		} else {
			_, err = w.kv.Update(ctx, k, b, rev)
		}
		if err != nil {
			// ErrKeyExists: another instance saved first; decide again.
			return fmt.Errorf("saving the decision: %w", err)
		}
	}
	w.schedule(k, prev.QualifiesOn, next.QualifiesOn, next.AsOf)
	return nil
}

// regionOf picks the division code of R: the person's current rental or
// home in the decided place, else their work region there, else the
// place's first code.
func regionOf(ctx context.Context, r eligibility.Reader, p *eligibility.Policy, d eligibility.Decision) string {
	var place eligibility.Place
	for _, pl := range p.Places {
		if pl.Name == d.Place {
			place = pl
		}
	}
	in := func(code string) bool {
		for _, c := range place.Codes {
			if strings.HasPrefix(code, c) && len(code) >= 6 {
				return true
			}
		}
		return false
	}
	if rec, err := r.Person(ctx, d.CitizenID); err == nil {
		if h := rec.Housing; h != nil {
			for _, x := range h.Rentals {
				if x.End == "" && in(x.AddressCode) {
					return x.AddressCode[:6]
				}
			}
			for _, x := range h.Owned {
				if in(x.AddressCode) {
					return x.AddressCode[:6]
				}
			}
		}
		for _, c := range rec.Employment {
			if c.End == "" && in(c.WorkRegion) {
				return c.WorkRegion[:6]
			}
		}
	}
	if len(place.Codes) > 0 {
		c := place.Codes[0]
		return c + strings.Repeat("0", max(0, 6-len(c)))
	}
	return ""
}

// schedule moves a key from its old qualifying day to its new one; a day
// not after the decision's own (a decision that should already have
// qualified) is not scheduled, so that the sweep cannot spin on it.
func (w *Watcher) schedule(k, old, day, asOf string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if old != "" {
		delete(w.due[old], k)
		if len(w.due[old]) == 0 {
			delete(w.due, old)
		}
	}
	if day != "" && day > asOf {
		if w.due[day] == nil {
			w.due[day] = map[string]bool{}
		}
		w.due[day][k] = true
	}
}

// loadSchedule rebuilds the qualifying days from the bucket.
func (w *Watcher) loadSchedule(ctx context.Context) error {
	lister, err := w.kv.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return fmt.Errorf("listing the eligibility bucket: %w", err)
	}
	defer lister.Stop()
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		e, err := w.kv.Get(ctx, k)
		if err != nil {
			continue // deleted since listed
		}
		var st state
		if json.Unmarshal(e.Value(), &st) == nil && st.QualifiesOn != "" {
			w.schedule(k, "", st.QualifiesOn, st.AsOf)
		}
	}
	return nil
}

// sweep re-decides the persons whose qualifying day has come.
func (w *Watcher) sweep(ctx context.Context) error {
	today := w.cfg.Now().In(china).Format(time.DateOnly)
	w.mu.Lock()
	var keys []string
	for day, ks := range w.due {
		if day <= today {
			keys = slices.AppendSeq(keys, maps.Keys(ks))
		}
	}
	w.mu.Unlock()
	slices.Sort(keys)
	byPolicy := map[string]*eligibility.Policy{}
	for _, p := range w.policies {
		byPolicy[schemas.PolicyToken(p.ID)] = p
	}
	var items []*work
	for _, k := range keys {
		tok, id, _ := strings.Cut(k, ".")
		p := byPolicy[tok]
		if p == nil {
			continue // a policy no longer watched
		}
		items = append(items, &work{id: citizenid.ID(id), policies: map[*eligibility.Policy]bool{p: true}, trigger: "scheduled"})
	}
	return w.decideAll(ctx, items)
}

var china = time.FixedZone("CST", 8*3600)

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
