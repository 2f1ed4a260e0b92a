// Package watch tells people, through the systems that serve them, when
// they become eligible to settle or for a residence permit: it follows the
// hub's own change notifications, re-decides a person only when a section
// one of the watched policies reads has changed (under a policy that reads
// the family, also when the spouse's hukou, status or marriage has), and publishes
// pop.eligibility.<policy>.<R> when the decision turns to eligible.
//
// Nothing is scanned: a person is evaluated when a relevant change arrives,
// and again on the day the decision said they would qualify if nothing
// changed (a contract or an insurance reaching its length qualifies a
// person without any new event), or, when earlier, on the day of a change
// of the person's or the joined spouse's history that the decision left
// out because a department stamped it a little ahead, on a later China day
// than today (a copy of a marriage stamped 16:30Z): no notification comes
// when that day does. The last decision per policy and person
// is kept in a JetStream key-value bucket, so a restart neither repeats an
// announcement nor forgets a qualifying day; the notification's
// Nats-Msg-Id (policy, person, day) makes a re-publish after a crash a
// duplicate the stream drops. A bucket found missing while the store
// holds persons (NATS lost its store) is rebuilt from the store, every
// person decided again without an announcement; a consumer or bucket that
// goes while the watcher runs is made again (Run).
//
// The bucket also names, per watched policy, the version of the policy
// (eligibility.Policy.Digest) its saved decisions were made under. A
// policy whose text changed since (a file under --policies edited, a
// release with another text) has every person of the store decided again
// under it at the start, the persons who turn eligible announced and the
// qualifying days of the new text kept (checkPolicies).
//
// Citizen IDs appear only in the notification bodies. NATS shows keys and
// headers to anyone who can list a bucket, watch the server's monitoring
// or read its permission-violation log, so the bucket is keyed by
// <policy>.<digest of the ID> and the Nats-Msg-Id is a digest of (policy,
// ID, day); see Config.Keys for how strong those digests are. The ID of a
// person waiting for a qualifying day, or for the day of a change of
// theirs or of the joined spouse's stamped ahead (recheck_on, whether the
// person is eligible or not, the spouse decided under their own key
// included), is kept in the entry's value, which is how the day's sweep
// knows whom to decide after a restart; the first decision that leaves
// neither day to wait for rewrites the entry without it.
//
// R is the region where the person qualifies: the address of their current
// rental or home in the policy's place, else their work region there, else
// the place itself.
package watch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	// Keys, when set (the hub's *sealing.Keyring), keys the digests that
	// stand for a person in the bucket's keys and in Nats-Msg-Id. Without
	// it they are plain SHA-256 digests: they keep IDs out of listings and
	// logs, but the ID space is small enough for someone holding a digest
	// to find the ID by hashing candidates. The digests must not change
	// once decisions are saved: a watcher with other Keys finds no last
	// decision and announces every eligible person once more.
	Keys Keyer
}

// Keyer derives a keyed digest; *sealing.Keyring is one. PersonKey must
// be deterministic, safe for concurrent use, and return the 64 lower-case
// hex digits of an HMAC-SHA-256.
type Keyer interface {
	PersonKey(s string) string
}

// state is the last decision kept per policy and person. RecheckOn is the
// decision's RecheckOn (the day of a change it left out, stamped after its
// as_of) when that comes before QualifiesOn, or there is none. CitizenID
// is set only while one of them is: the sweep of that day needs the ID,
// which the entry's key no longer carries.
type state struct {
	Eligible    bool         `json:"eligible"`
	AsOf        string       `json:"as_of"`
	QualifiesOn string       `json:"qualifies_on,omitempty"`
	RecheckOn   string       `json:"recheck_on,omitempty"`
	CitizenID   citizenid.ID `json:"citizen_id,omitempty"`
}

// due is the day the sweep decides the person again: the earlier of
// RecheckOn and QualifiesOn, "" when neither is set.
func (st state) due() string {
	if st.RecheckOn != "" && (st.QualifiesOn == "" || st.RecheckOn < st.QualifiesOn) {
		return st.RecheckOn
	}
	return st.QualifiesOn
}

// Watcher evaluates and announces eligibility. Create it with New.
type Watcher struct {
	cfg      Config
	policies []*eligibility.Policy
	// relevant maps a changed section to the watched policies reading it.
	relevant map[string][]*eligibility.Policy
	// spouseRelevant maps a changed section to the watched policies
	// reading it in the record of the applicant's spouse.
	spouseRelevant map[string][]*eligibility.Policy
	kv             jetstream.KeyValue

	// Kept by Run's goroutine alone: the creation time of the
	// notification stream the consumer was made on, to tell a stream
	// created anew from the same stream when the consumer goes; the stream
	// sequence to make the consumer again from should it go alone (past
	// the batches acknowledged) and the lowest sequence of a batch
	// returned for redelivery since (0: none); and the sequence to start
	// a missing consumer from after rebuild (0: with new notifications).
	streamCreated time.Time
	floor         uint64
	returned      uint64
	rebuiltFrom   uint64
	// saved holds the policy tokens of which loadSchedule read a
	// decision, to tell a bucket an earlier release filled from one
	// without decisions of the policy (Run's goroutine alone).
	saved map[string]bool

	mu      sync.Mutex                         // guards due and problem
	due     map[string]map[string]citizenid.ID // day due (state.due) → key → person
	problem error                              // why notifications cannot be fetched now

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
		cfg.Durable = schemas.EligibilityWatcherConsumer
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
	if cfg.Keys != nil && !isDigest(cfg.Keys.PersonKey(personDomain)) {
		return nil, errors.New("watch: Config.Keys does not give 64 hex digits")
	}
	w := &Watcher{cfg: cfg, relevant: map[string][]*eligibility.Policy{}, spouseRelevant: map[string][]*eligibility.Policy{},
		due: map[string]map[string]citizenid.ID{}}
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
		for _, s := range eligibility.SpouseSections(p) {
			w.spouseRelevant[string(s)] = append(w.spouseRelevant[string(s)], p)
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
//
// Should the consumer go while it runs, with the notification stream (a
// lost NATS volume, a deletion by mistake) or alone, Run makes it again
// rather than fetch from nothing for good: on a stream created anew, from
// its first notification (the relay republishes its recent ones into
// it), on the same stream from the first notification it had not
// decided. A bucket gone, with the stream or alone, is made again as at a
// start (open): Run looks for it every few seconds, quiet days included.
// Until it fetches again, and while it decides the store's persons again,
// it says why on Problem (and at WARN, once).
func (w *Watcher) Run(ctx context.Context) error {
	decisions, err := w.open(ctx)
	if err != nil {
		return err
	}
	followCtx, stopFollowing := context.WithCancel(ctx)
	go w.follow(followCtx, decisions)
	defer func() { stopFollowing(); decisions.Stop() }()
	// reopen makes the bucket again when it went, and follows the new one.
	reopen := func() error {
		_, err := w.cfg.JS.KeyValue(ctx, w.cfg.Bucket)
		switch {
		case err == nil && w.rebuildAbandoned(ctx):
			w.cfg.Logger.Warn("eligibility: a rebuild of the decisions was left unfinished: taking it over", "bucket", w.cfg.Bucket)
		case err == nil && w.policyWalkAbandoned(ctx):
			// Its walker gave it back on a stop, or stopped without a
			// word (a crash, a lost connection): open walks again, and
			// says which.
		case !errors.Is(err, jetstream.ErrBucketNotFound):
			return nil
		default:
			w.cfg.Logger.Warn("eligibility: the bucket of last decisions is gone: making it again", "bucket", w.cfg.Bucket)
		}
		next, err := w.open(ctx)
		if err != nil {
			return err
		}
		stopFollowing()
		decisions.Stop()
		decisions = next
		followCtx, stopFollowing = context.WithCancel(ctx)
		go w.follow(followCtx, decisions)
		return nil
	}

	start, seq := jetstream.DeliverNewPolicy, uint64(0)
	if w.rebuiltFrom > 0 {
		// What the store held when the bucket was rebuilt is decided;
		// what came after waits in the stream.
		start, seq = jetstream.DeliverByStartSequencePolicy, w.rebuiltFrom
	}
	// The stream can go between making the consumer and reading the
	// stream, or NATS refuse for a moment: wait as the loop below does,
	// on /readyz, rather than stop deciding for good.
	var cons jetstream.Consumer
	for {
		if cons, err = w.attach(ctx, start, seq); err == nil {
			w.resumed()
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			err = fmt.Errorf("the notification stream %s is gone; waiting for the relay to create it again: %w", w.cfg.Stream, err)
			// The relay republishes its window into the new stream:
			// decide from its first notification.
			start, seq = jetstream.DeliverAllPolicy, 0
		}
		w.stalled(fmt.Errorf("creating the eligibility consumer: %w", err))
		sleep(ctx, time.Second)
	}
	lastSweep, lastLook := time.Time{}, time.Now()
	for ctx.Err() == nil {
		// A bucket lost on a quiet day shows nowhere else: the fetches
		// succeed, and the day's sweep would fail on it, its persons
		// never announced. Look for it now and then, and after a failed
		// sweep.
		look := time.Since(lastLook) >= bucketLook
		if now := w.cfg.Now(); now.Sub(lastSweep) >= time.Minute {
			lastSweep = now
			if err := w.sweep(ctx); err != nil && ctx.Err() == nil {
				w.cfg.Logger.Warn("eligibility: re-deciding persons due today", "err", err)
				look = true
			}
		}
		if look {
			lastLook = time.Now()
			if err := reopen(); err != nil {
				if ctx.Err() != nil {
					break
				}
				w.stalled(fmt.Errorf("making the eligibility bucket again: %w", err))
				sleep(ctx, time.Second)
				continue
			}
			// A consumer gone between two fetches leaves the next
			// ones empty, without an error: ask.
			if next, err := w.reattach(ctx, cons); err != nil {
				if ctx.Err() != nil {
					break
				}
				w.stalled(err)
				sleep(ctx, time.Second)
				continue
			} else {
				cons = next
			}
		}
		msgs, fetchErr := fetch(cons, w.cfg.FetchBatch)
		if fetchErr != nil && ctx.Err() != nil {
			break
		}
		if len(msgs) > 0 {
			if err := w.Handle(ctx, msgs); err != nil {
				w.cfg.Logger.Warn("eligibility: deciding a batch; it will be redelivered", "err", err, "notifications", len(msgs))
				for _, m := range msgs {
					_ = m.NakWithDelay(5 * time.Second)
				}
				w.done(msgs, false)
				if err := reopen(); err != nil && ctx.Err() == nil {
					w.stalled(fmt.Errorf("making the eligibility bucket again: %w", err))
				}
				continue
			}
			for _, m := range msgs {
				_ = m.Ack()
			}
			w.done(msgs, true)
		}
		if fetchErr == nil {
			w.resumed()
			continue
		}
		// A consumer or stream gone shows only as an error of the pull
		// (no responders): ask what is missing, and make it again.
		var trouble error
		if err := reopen(); err != nil {
			trouble = fmt.Errorf("making the eligibility bucket again: %w", err)
		} else if next, err := w.reattach(ctx, cons); err != nil {
			trouble = err
		} else if next != cons {
			cons = next
			continue
		} else {
			trouble = fmt.Errorf("fetching change notifications: %w", fetchErr)
		}
		if ctx.Err() != nil {
			break
		}
		w.stalled(trouble)
		sleep(ctx, time.Second)
	}
	return ctx.Err()
}

// bucketLook is how often Run makes sure the bucket of last decisions is
// still there: a stream-info request, at most one a second per instance.
const bucketLook = 2 * time.Second

// fetch takes the next batch of notifications, waiting a second at most.
// A consumer or stream gone reports in the batch's error, not Fetch's.
func fetch(cons jetstream.Consumer, n int) ([]jetstream.Msg, error) {
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	return msgs, batch.Error()
}

// done moves the sequence a consumer gone alone is made again from
// (reattach) past a batch acknowledged, or keeps it at a batch returned
// for redelivery until a batch from there down is acknowledged.
func (w *Watcher) done(msgs []jetstream.Msg, acked bool) {
	var lo, hi uint64
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		if s := md.Sequence.Stream; lo == 0 || s < lo {
			lo = s
		}
		hi = max(hi, md.Sequence.Stream)
	}
	switch {
	case lo == 0:
	case !acked:
		if w.returned == 0 || lo < w.returned {
			w.returned = lo
		}
	default:
		if w.returned != 0 && lo <= w.returned {
			w.returned = 0 // redelivered and decided
		}
		w.floor = max(w.floor, hi+1)
	}
}

// attach opens the durable consumer of change notifications, creating it
// when missing to start as start and seq say; an existing one keeps its
// start and takes this release's other settings.
func (w *Watcher) attach(ctx context.Context, start jetstream.DeliverPolicy, seq uint64) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       w.cfg.Durable,
		Description:   "pophub eligibility notifications",
		FilterSubject: "pop.changed.>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: start,
		AckWait:       2 * time.Minute,
		MaxAckPending: 4 * w.cfg.FetchBatch,
	}
	if start == jetstream.DeliverByStartSequencePolicy {
		cfg.OptStartSeq = seq
	}
	if c, err := w.cfg.JS.Consumer(ctx, w.cfg.Stream, w.cfg.Durable); err == nil {
		old := c.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = old.DeliverPolicy, old.OptStartSeq, old.OptStartTime
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, err
	}
	cons, err := w.cfg.JS.CreateOrUpdateConsumer(ctx, w.cfg.Stream, cfg)
	if err != nil {
		return nil, err
	}
	stream, err := w.cfg.JS.Stream(ctx, w.cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("reading the notification stream: %w", err)
	}
	w.streamCreated = stream.CachedInfo().Created
	w.floor, w.returned = cons.CachedInfo().AckFloor.Stream+1, 0
	return cons, nil
}

// reattach is asked after a failed fetch. It returns cons when the
// consumer is still there (NATS slow or unreachable: fetch again), or
// the consumer made again when it went: from the first notification of a
// stream created anew since attach, else from the first this watcher had
// not decided. It fails while the stream is missing, until the relay
// creates it again.
func (w *Watcher) reattach(ctx context.Context, cons jetstream.Consumer) (jetstream.Consumer, error) {
	_, err := cons.Info(ctx)
	if err == nil {
		return cons, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("reading the eligibility consumer: %w", err)
	}
	stream, err := w.cfg.JS.Stream(ctx, w.cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("the notification stream %s is gone, and the consumer %s with it; waiting for the relay to create the stream again: %w", w.cfg.Stream, w.cfg.Durable, err)
	}
	start, seq, from := jetstream.DeliverByStartSequencePolicy, w.floor, "the first notification not decided"
	if w.returned != 0 && w.returned < seq {
		seq = w.returned
	}
	if !stream.CachedInfo().Created.Equal(w.streamCreated) {
		start, seq, from = jetstream.DeliverAllPolicy, 0, "the first notification of the stream, created anew"
	}
	next, err := w.attach(ctx, start, seq)
	if err != nil {
		return nil, fmt.Errorf("making the eligibility consumer %s again: %w", w.cfg.Durable, err)
	}
	w.cfg.Logger.Warn("eligibility: the consumer of change notifications was gone: made it again", "consumer", w.cfg.Durable, "stream", w.cfg.Stream, "from", from, "stream_seq", max(seq, 1))
	return next, nil
}

// stalled records why notifications cannot be fetched, for Problem, and
// says it at WARN when the trouble starts.
func (w *Watcher) stalled(err error) {
	w.mu.Lock()
	first := w.problem == nil
	w.problem = err
	w.mu.Unlock()
	if first {
		w.cfg.Logger.Warn("eligibility: cannot follow change notifications; nobody is decided or announced until it can", "err", err)
	}
}

// setProblem records why notifications are not decided, for Problem,
// without a word in the log: the caller said it.
func (w *Watcher) setProblem(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.problem = err
}

// resumed clears the trouble stalled recorded, saying so.
func (w *Watcher) resumed() {
	w.mu.Lock()
	was := w.problem
	w.problem = nil
	w.mu.Unlock()
	if was != nil {
		w.cfg.Logger.Info("eligibility: following change notifications again")
	}
}

// Problem reports why the watcher cannot follow change notifications at
// the moment (the hub's /readyz shows it), nil while it can or before Run
// first tried. Safe for concurrent use.
func (w *Watcher) Problem() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.problem
}

// Open creates or opens the bucket of last decisions and rebuilds the
// qualifying days from it, moving entries an earlier release keyed by
// <policy>.<citizen ID> to their digest keys. Run calls it; Process needs
// it done.
func (w *Watcher) Open(ctx context.Context) error {
	decisions, err := w.open(ctx)
	if err != nil {
		return err
	}
	decisions.Stop()
	return nil
}

// open is Open, and returns the watch of the bucket it read, to follow
// the decisions saved from then on (follow).
//
// A bucket it had to create while the store holds persons means the
// decisions were lost (NATS's store lost or replaced by an empty one),
// unless the watcher runs for the first time on this store: open says so
// at ERROR and rebuilds the decisions before it returns. Last, it decides
// the store's persons again under each watched policy edited since its
// decisions were saved (checkPolicies).
func (w *Watcher) open(ctx context.Context) (jetstream.KeyWatcher, error) {
	_, err := w.cfg.JS.KeyValue(ctx, w.cfg.Bucket)
	created := errors.Is(err, jetstream.ErrBucketNotFound)
	kv, err := w.cfg.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: w.cfg.Bucket,
		Description: "pophub: last eligibility decision per policy and person"})
	if err != nil {
		return nil, fmt.Errorf("opening the eligibility bucket: %w", err)
	}
	w.kv = kv
	if created {
		// Marked before anything is read, so that a peer opening the
		// bucket meanwhile knows its emptiness is not news.
		if err := w.markRebuild(ctx); err != nil {
			return nil, err
		}
	}
	decisions, err := w.loadSchedule(ctx)
	if err != nil {
		return nil, err
	}
	mark, rev, err := w.rebuildMark(ctx)
	if err != nil {
		decisions.Stop()
		return nil, err
	}
	if rev == 0 {
		return w.checkPolicies(ctx, decisions, false)
	}
	if created {
		w.cfg.Logger.Error("eligibility: the bucket of last decisions was missing and is created empty, while the store holds persons: "+
			"unless the watcher runs for the first time on this store, NATS lost the decisions (its store lost or replaced). "+
			"Every person of the store is decided again now, saving without announcing: qualifying days come back, and persons announced before are not announced again; "+
			"a person who became eligible while the decisions were missing is not announced (GET /v1/eligibility answers for them)",
			"bucket", w.cfg.Bucket, "policies", w.cfg.Policies)
	} else {
		w.cfg.Logger.Warn("eligibility: the decisions of the store's persons are being made again, or were not all made (the instance deciding them stopped): deciding every person again here too",
			"bucket", w.cfg.Bucket, "began", mark.Began)
	}
	w.rebuiltFrom = mark.From
	began := time.Now()
	persons, err := w.walk(ctx, w.policies, true, "", func(persons int) {
		// No notification is decided meanwhile, for minutes in a city:
		// /readyz says so. Peers see the mark kept fresh, and take the
		// walk over only when it is not.
		w.setProblem(fmt.Errorf("rebuilding the eligibility decisions: %d persons of the store decided again so far; change notifications wait until every person is", persons))
		rev = w.touchRebuildMark(ctx, rev)
	})
	w.resumed()
	if err != nil {
		if ctx.Err() != nil {
			decisions.Stop()
			return nil, ctx.Err()
		}
		// The mark stays: a restart, or a peer once the mark is stale,
		// walks again. Meanwhile go on with what is saved.
		w.cfg.Logger.Error("eligibility: deciding the store's persons again stopped; it starts over at a restart, or on a peer within minutes",
			"persons", persons, "err", err)
		return decisions, nil
	}
	if err := w.kv.Delete(ctx, rebuildKey); err != nil {
		w.cfg.Logger.Warn("eligibility: removing the bucket's rebuild mark; a peer will walk the store again", "err", err)
	}
	w.cfg.Logger.Info("eligibility: decided every person of the store again", "persons", persons, "took", time.Since(began).Round(time.Millisecond))
	return w.checkPolicies(ctx, decisions, true)
}

// rebuildKey is the bucket entry present while the decisions of the
// store's persons are being made again (rebuildMark): without a dot, it
// is never a decision's key, <policy>.<digest>.
const rebuildKey = "_rebuild"

// rebuildStale is how long a rebuild mark may go untouched before a
// running peer takes the walk over: its walker touches it at every page
// of persons, a second or so apart.
const rebuildStale = 2 * time.Minute

// rebuildMark is the value of rebuildKey. From is the notification
// stream's sequence when the walk began: a consumer made while the mark
// is there starts from it, so that the changes published during a walk
// that was stopped are decided.
type rebuildMark struct {
	From  uint64    `json:"from"`
	Began time.Time `json:"began"`
}

// markRebuild marks a bucket just created while the store holds persons:
// their decisions were lost (or never made) and are to be made again.
// Of instances creating the bucket at once, the first mark stays.
func (w *Watcher) markRebuild(ctx context.Context) error {
	if some, _, err := w.cfg.Store.Persons(ctx, hub.PersonQuery{Limit: 1, KeyOrder: true}); err != nil || len(some) == 0 {
		return nil // nothing to have lost (a store that cannot be walked says so elsewhere)
	}
	mark := rebuildMark{Began: time.Now().UTC()}
	if stream, err := w.cfg.JS.Stream(ctx, w.cfg.Stream); err == nil {
		mark.From = stream.CachedInfo().State.LastSeq + 1
	}
	b, _ := json.Marshal(mark)
	if _, err := w.kv.Create(ctx, rebuildKey, b); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("marking the eligibility bucket as being rebuilt: %w", err)
	}
	return nil
}

// rebuildMark reads the rebuild mark and its revision, 0 when there is
// none.
func (w *Watcher) rebuildMark(ctx context.Context) (rebuildMark, uint64, error) {
	var mark rebuildMark
	e, err := w.kv.Get(ctx, rebuildKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return mark, 0, nil
	}
	if err != nil {
		return mark, 0, fmt.Errorf("reading the eligibility bucket's rebuild mark: %w", err)
	}
	_ = json.Unmarshal(e.Value(), &mark)
	return mark, e.Revision(), nil
}

// touchRebuildMark saves the mark again, unchanged, to show a walk goes
// on; never over its removal by a peer whose walk ended.
func (w *Watcher) touchRebuildMark(ctx context.Context, rev uint64) uint64 {
	mark, cur, err := w.rebuildMark(ctx)
	if err != nil || cur == 0 {
		return rev
	}
	b, _ := json.Marshal(mark)
	if next, err := w.kv.Update(ctx, rebuildKey, b, cur); err == nil {
		return next
	}
	return cur
}

// rebuildAbandoned reports whether a rebuild mark is there that no
// walker has touched for rebuildStale.
func (w *Watcher) rebuildAbandoned(ctx context.Context) bool {
	if w.kv == nil {
		return false
	}
	e, err := w.kv.Get(ctx, rebuildKey)
	return err == nil && time.Since(e.Created()) > rebuildStale
}

// policyKeyPrefix begins the bucket entry that names, per watched
// policy, the version its saved decisions were made under (policyMark):
// _policy.<hex SHA-256 of the policy id>. No policy token begins with
// '_', so it is never a decision's key, <policy>.<digest>; its second
// part is 64 hex digits as a decision key's, so that a release before it,
// which moves an entry keyed otherwise to a digest key (rekey), leaves it
// alone during a rolling upgrade, and reads it as a decision that waits
// for no day.
const policyKeyPrefix = "_policy."

// policyKey is the key of the policy's version entry. A plain digest of
// the public policy id, so that an operator can name it:
// printf %s heilongjiang/daqing | sha256sum.
func policyKey(policyID string) string {
	h := sha256.Sum256([]byte(policyID))
	return policyKeyPrefix + hex.EncodeToString(h[:])
}

// policyChanged is the trigger of an announcement made because the
// policy's text changed since the person's last decision was saved.
const policyChanged = "policy_changed"

// policyMark is the value of a policy's version entry. Digest is the
// version (eligibility.Policy.Digest) the saved decisions were made
// under. Walking, while set, is the version an instance is deciding the
// store's persons again under, since Began; it touches the entry at every
// page, and a running peer takes the walk over once the entry has gone
// rebuildStale untouched (its walker crashed or lost NATS). Released says
// the walker was stopped before the end (a scale-down, a node drained, a
// rollout) and gave the walk back: a running peer takes it over at its
// next look at the bucket (Run, every bucketLook), and a start at once,
// rather than leave the walk to whichever instance starts next, perhaps
// weeks later. Digest becomes Walking only when the walk is complete, so
// that a walk stopped halfway is made again.
type policyMark struct {
	Policy   string    `json:"policy"`
	Digest   string    `json:"digest"`
	Walking  string    `json:"walking,omitempty"`
	Began    time.Time `json:"began,omitzero"`
	Released bool      `json:"released,omitempty"`
}

// walkClaimed reports whether the entry e, holding m, says a walker is at
// it: claimed, not given back, and touched within rebuildStale.
func walkClaimed(e jetstream.KeyValueEntry, m policyMark) bool {
	return m.Walking != "" && !m.Released && time.Since(e.Created()) <= rebuildStale
}

// policyMarkOf reads the policy's version entry: nil when there is none.
func (w *Watcher) policyMarkOf(ctx context.Context, p *eligibility.Policy) (jetstream.KeyValueEntry, policyMark, error) {
	var m policyMark
	e, err := w.kv.Get(ctx, policyKey(p.ID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, m, nil
	}
	if err != nil {
		return nil, m, fmt.Errorf("reading which version of policy %s the decisions were made under: %w", p.ID, err)
	}
	_ = json.Unmarshal(e.Value(), &m) // unreadable: no version, decided again
	return e, m, nil
}

// checkPolicies is open's last step. For each watched policy it compares
// the version the saved decisions were made under with the one loaded,
// and decides every person of the store again under those that differ
// (walkEdited). A policy whose version is not recorded is recorded as
// loaded without a walk: its decisions were all made now (rebuilt, a
// bucket just filled), there are none yet (a policy watched for the first
// time), or an earlier release, which recorded no version, made them.
// In the last case nothing tells whether the text changed with the
// upgrade; a walk would keep this instance from deciding any change for
// minutes in a city, and out of /readyz, on every upgrade, to announce
// nobody when the text is the same: it is said at INFO, with the way to
// ask for the walk. It returns decisions, or ctx's error when ctx ended.
func (w *Watcher) checkPolicies(ctx context.Context, decisions jetstream.KeyWatcher, rebuilt bool) (jetstream.KeyWatcher, error) {
	var edited []*eligibility.Policy
	for _, p := range w.policies {
		mine, err := w.claimPolicy(ctx, p, rebuilt)
		if err != nil {
			if ctx.Err() != nil {
				decisions.Stop()
				return nil, ctx.Err()
			}
			w.cfg.Logger.Error("eligibility: cannot tell which version of the policy the saved decisions were made under: they are not checked against the one loaded until the next start",
				"policy", p.ID, "err", err)
			continue
		}
		if mine {
			edited = append(edited, p)
		}
	}
	if len(edited) == 0 {
		return decisions, nil
	}
	if err := w.walkEdited(ctx, edited); err != nil {
		if ctx.Err() != nil {
			decisions.Stop()
			return nil, ctx.Err()
		}
		if w.walkLost(ctx, edited) {
			// The bucket went with the decisions the walk compared
			// against, and with its claim. It is made again (Run,
			// here or on a peer) and every person decided again under
			// the text loaded, without announcing, as for any bucket
			// lost: announcing would repeat every eligible person
			// announced before, and the old text is not loaded to tell
			// who turned eligible through the edit. A walk afterwards
			// would find everyone decided under the new text already.
			w.cfg.Logger.Error("eligibility: the bucket of last decisions went while deciding the store's persons again under the edited policies: "+
				"it is made again and every person decided again under the policies loaded, without announcing, and the edit is not walked again: "+
				"persons who turned eligible through the edit, and whom this walk had not reached, are not announced (GET /v1/eligibility answers for them)",
				"policies", policyIDs(edited), "bucket", w.cfg.Bucket, "err", err)
			return decisions, nil
		}
		// The entries still say a walk is under way: once they have
		// gone untouched rebuildStale, this instance or a peer walks
		// again (Run). Meanwhile go on with what is saved.
		w.cfg.Logger.Error("eligibility: deciding the store's persons again under the edited policies stopped; this instance or a peer starts over once the walk has gone two minutes untouched",
			"policies", policyIDs(edited), "err", err)
	}
	return decisions, nil
}

// walkLost reports whether the walk of the edited policies, which failed,
// lost its claim with the bucket: the bucket is gone, or made again
// since without the policies' version entries.
func (w *Watcher) walkLost(ctx context.Context, edited []*eligibility.Policy) bool {
	if _, err := w.cfg.JS.KeyValue(ctx, w.cfg.Bucket); errors.Is(err, jetstream.ErrBucketNotFound) {
		return true
	} else if err != nil {
		return false
	}
	for _, p := range edited {
		if e, _, err := w.policyMarkOf(ctx, p); err == nil && e == nil {
			return true
		}
	}
	return false
}

// policyIDs lists the policies' ids, for the log.
func policyIDs(policies []*eligibility.Policy) []string {
	ids := make([]string, len(policies))
	for i, p := range policies {
		ids[i] = p.ID
	}
	return ids
}

// claimPolicy reports whether this instance is to decide the store's
// persons again under p: the version recorded differs from p's, and no
// peer is at it (it claims the walk, marking the entry with p's version).
// Of instances starting at once, one claims it; the others follow change
// notifications meanwhile, and take the walk over should the entry go
// stale, or its walker give it back (Released). Should two walk all the
// same (one taking over a walk it took for stopped), a person is
// announced once: each instance decides over the last decision it read
// and saves over its revision, so the second finds the first's decision
// eligible already, and two announcements made from the same revision
// carry one Nats-Msg-Id, for policy, person and day, which the stream
// drops as a duplicate.
func (w *Watcher) claimPolicy(ctx context.Context, p *eligibility.Policy, rebuilt bool) (bool, error) {
	k, digest := policyKey(p.ID), p.Digest()
	for attempt := 1; attempt <= maxDecideAttempts; attempt++ {
		e, m, err := w.policyMarkOf(ctx, p)
		if err != nil {
			return false, err
		}
		if e == nil {
			b, _ := json.Marshal(policyMark{Policy: p.ID, Digest: digest})
			if _, err := w.kv.Create(ctx, k, b); errors.Is(err, jetstream.ErrKeyExists) {
				continue // a peer recorded it first
			} else if err != nil {
				return false, fmt.Errorf("recording the version of policy %s the decisions are made under: %w", p.ID, err)
			}
			if w.saved[schemas.PolicyToken(p.ID)] && !rebuilt {
				w.cfg.Logger.Info("eligibility: the saved decisions do not name the version of the policy they were made under (an earlier release made them): "+
					"taking them as made under the one loaded, without deciding the store's persons again; should the policy have changed with this upgrade, "+
					"put a value {} under key to have them decided again at the next start",
					"policy", p.ID, "digest", digest, "bucket", w.cfg.Bucket, "key", k)
			}
			return false, nil
		}
		switch {
		case m.Walking == "" && m.Digest == digest:
			return false, nil
		case walkClaimed(e, m):
			if m.Walking != digest {
				w.cfg.Logger.Warn("eligibility: another instance is deciding the store's persons again under another version of the policy than this one loaded: do the instances read the same --policies?",
					"policy", p.ID, "digest", digest, "theirs", m.Walking)
			} else {
				w.cfg.Logger.Info("eligibility: another instance is deciding the store's persons again under the edited policy", "policy", p.ID, "digest", digest, "began", m.Began)
			}
			return false, nil
		}
		b, _ := json.Marshal(policyMark{Policy: p.ID, Digest: m.Digest, Walking: digest, Began: time.Now().UTC()})
		if _, err := w.kv.Update(ctx, k, b, e.Revision()); errors.Is(err, jetstream.ErrKeyExists) {
			continue // a peer claimed it or recorded it first
		} else if err != nil {
			return false, fmt.Errorf("marking policy %s as being decided again: %w", p.ID, err)
		}
		switch {
		case m.Released:
			w.cfg.Logger.Info("eligibility: deciding the store's persons again under an edited policy was given back by an instance that stopped: taking it over",
				"policy", p.ID, "digest", digest, "theirs", m.Walking, "began", m.Began)
		case m.Walking != "":
			w.cfg.Logger.Warn("eligibility: deciding the store's persons again under an edited policy was left unfinished: taking it over",
				"policy", p.ID, "digest", digest, "theirs", m.Walking, "began", m.Began)
		default:
			w.cfg.Logger.Info("eligibility: the policy changed since its decisions were saved: deciding every person of the store again, announcing those who turn eligible",
				"policy", p.ID, "digest", digest, "saved_under", m.Digest)
		}
		return true, nil
	}
	return false, fmt.Errorf("the version entry of policy %s keeps changing under peers", p.ID)
}

// walkEdited decides every person of the store again under the edited
// policies it claimed, announcing those who turn eligible and saving the
// qualifying days of the new text, and then records their versions. No
// change notification is decided by this instance meanwhile, minutes in a
// city: Problem says so (its peers decide them). Stopped (ctx), it gives
// its claims back, marked released, so that a running peer takes the walk
// over within seconds, or the next start at once.
func (w *Watcher) walkEdited(ctx context.Context, edited []*eligibility.Policy) error {
	ids := policyIDs(edited)
	began := time.Now()
	persons, err := w.walk(ctx, edited, false, policyChanged, func(persons int) {
		w.setProblem(fmt.Errorf("deciding the store's persons again under the edited policies %s: %d decided so far; change notifications wait on this instance until every person is",
			strings.Join(ids, ", "), persons))
		for _, p := range edited {
			// Touched, and claimed again should an instance that
			// walked too have given it back on its stop.
			w.settlePolicy(ctx, p, func(m policyMark) (policyMark, bool) {
				m.Released = false
				return m, m.Walking == p.Digest()
			})
		}
	})
	w.resumed()
	if err != nil {
		if ctx.Err() != nil {
			bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			for _, p := range edited {
				w.settlePolicy(bg, p, func(m policyMark) (policyMark, bool) {
					m.Released = true
					return m, m.Walking == p.Digest()
				})
			}
			w.cfg.Logger.Info("eligibility: stopped while deciding the store's persons again under the edited policies: the walk is given back, "+
				"for a running instance to take over within seconds, or the next start",
				"policies", ids, "persons", persons)
			return ctx.Err()
		}
		return fmt.Errorf("after %d persons: %w", persons, err)
	}
	for _, p := range edited {
		w.settlePolicy(ctx, p, func(m policyMark) (policyMark, bool) {
			return policyMark{Policy: p.ID, Digest: p.Digest()}, m.Walking == p.Digest()
		})
	}
	w.cfg.Logger.Info("eligibility: decided every person of the store again under the edited policies", "policies", ids,
		"persons", persons, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// settlePolicy saves change(mark) as the policy's version entry over the
// revision read, when change says to (ok), trying again should a peer
// save first. Failures are left to the walk's other steps: an entry not
// touched goes stale and a peer walks again, one not recorded is walked
// again at the next start.
func (w *Watcher) settlePolicy(ctx context.Context, p *eligibility.Policy, change func(policyMark) (policyMark, bool)) {
	for range maxDecideAttempts {
		e, m, err := w.policyMarkOf(ctx, p)
		if err != nil || e == nil {
			return
		}
		next, ok := change(m)
		if !ok {
			return
		}
		b, _ := json.Marshal(next)
		if _, err := w.kv.Update(ctx, policyKey(p.ID), b, e.Revision()); !errors.Is(err, jetstream.ErrKeyExists) {
			if err != nil {
				w.cfg.Logger.Warn("eligibility: saving the version entry of a policy", "policy", p.ID, "err", err)
			}
			return
		}
	}
}

// policyWalkAbandoned reports whether a watched policy's version entry
// says a walk is under way that its walker gave back, or that no walker
// has touched for rebuildStale.
func (w *Watcher) policyWalkAbandoned(ctx context.Context) bool {
	if w.kv == nil {
		return false
	}
	for _, p := range w.policies {
		e, m, err := w.policyMarkOf(ctx, p)
		if err == nil && e != nil && m.Walking != "" && !walkClaimed(e, m) {
			return true
		}
	}
	return false
}

// walk decides every person of the store under policies. Silent (a
// rebuild), it saves the decisions without announcing any, into a bucket
// just created: the qualifying days come back, and a person announced
// before is not announced again at their next change; a decision already
// saved (by a peer, or since) is newer and stays. Otherwise (a policy
// edited) it decides each person again as a change would, trigger
// naming why, and announces those who turn eligible. It returns how many
// persons it walked; it tells progress how many before each page, and
// logs it every 100 pages.
func (w *Watcher) walk(ctx context.Context, policies []*eligibility.Policy, silent bool, trigger string, progress func(persons int)) (int, error) {
	all := map[*eligibility.Policy]bool{}
	for _, p := range policies {
		all[p] = true
	}
	persons := 0
	for after, page := "", 1; ; page++ {
		progress(persons)
		if page%100 == 0 {
			w.cfg.Logger.Info("eligibility: deciding the store's persons again", "persons", persons)
		}
		recs, next, err := w.cfg.Store.Persons(ctx, hub.PersonQuery{After: after, Limit: hub.MaxPersonsPage, KeyOrder: true})
		if err != nil {
			return persons, fmt.Errorf("walking the store's persons: %w", err)
		}
		items := make([]*work, 0, len(recs))
		for _, rec := range recs {
			items = append(items, &work{id: rec.CitizenID, policies: all, trigger: trigger, silent: silent})
		}
		if err := w.decideAll(ctx, items); err != nil {
			return persons, err
		}
		persons += len(recs)
		if next == "" {
			return persons, nil
		}
		after = next
	}
}

// follow schedules the qualifying days of the decisions saved in the
// bucket, by this instance and by every other, until ctx ends or the
// watch is stopped. With several instances each decides the persons whose
// notifications reach it; so that a day is kept whichever instance runs
// on it (after a scale-down, say), every instance keeps every day.
func (w *Watcher) follow(ctx context.Context, decisions jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-decisions.Updates():
			if !ok {
				return
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut || strings.HasPrefix(e.Key(), policyKeyPrefix) {
				continue
			}
			if _, rest, _ := strings.Cut(e.Key(), "."); !isDigest(rest) {
				continue
			}
			var st state
			if json.Unmarshal(e.Value(), &st) != nil {
				continue
			}
			w.reschedule(e.Key(), st)
		}
	}
}

// reschedule moves a key to the day due of its latest decision (its
// qualifying day, or the day of a change it left out), or off the
// schedule when the decision names none.
func (w *Watcher) reschedule(k string, st state) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for day, ks := range w.due {
		if _, ok := ks[k]; ok && day != st.due() {
			delete(ks, k)
			if len(ks) == 0 {
				delete(w.due, day)
			}
		}
	}
	if day := st.due(); day != "" && st.CitizenID != "" && day > st.AsOf {
		if w.due[day] == nil {
			w.due[day] = map[string]citizenid.ID{}
		}
		w.due[day][k] = st.CitizenID
	}
}

// work is one person to decide against some policies.
type work struct {
	id       citizenid.ID
	policies map[*eligibility.Policy]bool
	trigger  string
	// silent saves the decisions without announcing, and only where
	// none is saved yet (a rebuild's walk).
	silent bool
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
// and announces those who became eligible. Under a policy that reads the
// family, a change to a person's hukou, status or marriage re-decides
// their spouse too (read from the changed person's marital section): a
// spouse moving to a town address, or a spouse's own marriage event
// arriving after the move, makes the applicant eligible without any change
// to the applicant's own record. A change to the marriage also re-decides
// the spouse the changed person's record named before it, since a divorce
// or a remarriage leaves that former spouse's record naming them. It
// returns how many decisions it made.
func (w *Watcher) Process(ctx context.Context, notes []schemas.Notification) (int, error) {
	byPerson := map[citizenid.ID]*work{}
	var order []*work
	decisions := 0
	add := func(id citizenid.ID, trigger string, ps []*eligibility.Policy) {
		wk := byPerson[id]
		if wk == nil {
			wk = &work{id: id, policies: map[*eligibility.Policy]bool{}}
			byPerson[id] = wk
			order = append(order, wk)
		}
		if trigger != "" {
			wk.trigger = trigger
		}
		for _, p := range ps {
			if !wk.policies[p] {
				wk.policies[p] = true
				decisions++
			}
		}
	}
	viaSpouse := map[citizenid.ID]*work{} // changed person → policies reading them as a spouse
	var viaOrder []*work
	// maritalSince holds, per changed person whose marriage changed, the
	// version of the earliest of those changes among notes.
	maritalSince := map[citizenid.ID]int64{}
	for i := range notes {
		n := &notes[i]
		if ps := w.relevant[n.Section]; len(ps) > 0 {
			add(n.CitizenID, n.ChangeID, ps) // the latest change decides
		}
		if ps := w.spouseRelevant[n.Section]; len(ps) > 0 {
			v := viaSpouse[n.CitizenID]
			if v == nil {
				v = &work{id: n.CitizenID, policies: map[*eligibility.Policy]bool{}}
				viaSpouse[n.CitizenID] = v
				viaOrder = append(viaOrder, v)
			}
			v.trigger = n.ChangeID
			for _, p := range ps {
				v.policies[p] = true
			}
			if since, ok := maritalSince[n.CitizenID]; n.Section == string(schemas.SecMarital) && (!ok || n.Version < since) {
				maritalSince[n.CitizenID] = n.Version
			}
		}
	}
	for _, v := range viaOrder {
		since, marital := maritalSince[v.id]
		spouses, err := w.spousesOf(ctx, v.id, marital, since)
		if err != nil {
			return decisions, err
		}
		for _, sp := range spouses {
			trigger := v.trigger
			if wk := byPerson[sp]; wk != nil {
				trigger = "" // the spouse's own change stays the trigger
			}
			add(sp, trigger, w.sorted(v.policies))
		}
	}
	return decisions, w.decideAll(ctx, order)
}

// spousesOf lists the persons whose decision reads id's record as their
// spouse's and may change with it: the spouse id's record names, and,
// when id's marriage changed (maritalChanged, from the change of version
// since on), the spouse it named before. A family reunion joins a spouse
// whose own record names the applicant in turn, so a marital change
// confirms or ends only those two marriages: anyone else an earlier
// marriage or divorce of id's names, whose own record may still name id,
// was the spouse named before some earlier change and was decided again
// then. (A spouse_id reused in many marriages, a data error or a
// placeholder, names hundreds: deciding all of them on each change of
// that person cost k² decisions.) A change stamped after today moves the
// day's spouse only on its day, on which the decisions of both, who read
// id's history as their spouse's, are made again (RecheckOn).
func (w *Watcher) spousesOf(ctx context.Context, id citizenid.ID, maritalChanged bool, since int64) ([]citizenid.ID, error) {
	rec, err := w.cfg.Store.Person(ctx, id)
	if errors.Is(err, hub.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading a changed person's spouse: %w", err)
	}
	var out []citizenid.ID
	named := func(sp citizenid.ID) {
		if sp != "" && sp != id && !slices.Contains(out, sp) { // two at most
			out = append(out, sp)
		}
	}
	if rec.Marital != nil {
		named(rec.Marital.SpouseID)
	}
	if !maritalChanged {
		return out, nil
	}
	hist, err := w.cfg.Store.History(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("reading a changed person's former spouse: %w", err)
	}
	named(spouseBefore(hist, since))
	return out, nil
}

// spouseBefore is the spouse the record named before the change of
// version since: the one the last marriage before it that changed the
// marital section names. A marriage that changed the section is the one
// the record shows (or a divorce from that spouse already recorded
// ended it); a divorce that changed it left the record naming no one.
// "" when none did.
func spouseBefore(history []hub.Change, since int64) citizenid.ID {
	var last *hub.Change
	for i := range history {
		c := &history[i]
		if c.Version < since && (last == nil || c.Version > last.Version) && slices.Contains(c.Sections, string(schemas.SecMarital)) {
			last = c
		}
	}
	var d schemas.MarriageRegisteredData
	if last == nil || last.Type != schemas.MarriageRegistered || json.Unmarshal(last.Data, &d) != nil {
		return ""
	}
	return d.SpouseID
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
					if err := w.decide(ctx, p, it.id, it.trigger, it.silent); err != nil {
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

// Domains of the digests, so that a digest of one kind never equals
// another (the store's person keys included, which are keyed by the same
// Keys over the bare ID).
const (
	personDomain = "pophub eligibility person v1"
	changeDomain = "pophub eligibility change v1"
)

// digest hashes parts, each unambiguously delimited, with Keys when set:
// 64 hex digits.
func (w *Watcher) digest(domain string, parts ...string) string {
	s := domain + "\x00" + strings.Join(parts, "\x00")
	if w.cfg.Keys != nil {
		return w.cfg.Keys.PersonKey(s)
	}
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// key is the bucket key of a person's last decision under the policy
// whose subject token is tok: <tok>.<digest of the ID>.
func (w *Watcher) key(tok string, id citizenid.ID) string {
	return tok + "." + w.digest(personDomain, string(id))
}

// changeID is the change_id and Nats-Msg-Id of an announcement: a digest
// of policy, person and day, 24 hex digits as a change notification's.
func (w *Watcher) changeID(policyID string, id citizenid.ID, asOf string) string {
	return w.digest(changeDomain, policyID, string(id), asOf)[:24]
}

func isDigest(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// decide re-decides one person under one policy and announces a turn to
// eligible. Several hub instances share the watcher's consumer and may
// decide one person at once: the last decision is saved only over the
// revision the decision was made against, and a decision that lost that
// race is made again, so an older one never overwrites a newer.
func (w *Watcher) decide(ctx context.Context, p *eligibility.Policy, id citizenid.ID, trigger string, silent bool) error {
	for attempt := 1; ; attempt++ {
		err := w.decideOnce(ctx, p, id, trigger, silent)
		if !errors.Is(err, jetstream.ErrKeyExists) || attempt == maxDecideAttempts {
			return err
		}
	}
}

// maxDecideAttempts bounds how often decide starts over after another
// instance saved a decision for the same person first.
const maxDecideAttempts = 5

// decideOnce reads the last decision before it decides, and saves its
// decision over that revision: of two instances deciding one person at
// once, perhaps one from the store as it was before the other's change,
// the second to save fails, and decide starts over from the store as it
// now is, rather than write a stale decision over one the peer announced
// or confirmed. A silent decision announces nothing, and is not made
// over one saved.
func (w *Watcher) decideOnce(ctx context.Context, p *eligibility.Policy, id citizenid.ID, trigger string, silent bool) error {
	k := w.key(schemas.PolicyToken(p.ID), id)
	var prev state
	var rev uint64 // 0: no decision saved yet
	if e, err := w.kv.Get(ctx, k); err == nil {
		_ = json.Unmarshal(e.Value(), &prev)
		rev = e.Revision()
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("reading the last decision: %w", err)
	}
	if silent && rev != 0 {
		return nil
	}
	if rev == 0 && !silent {
		// While the decisions are being made again, no decision saved
		// does not mean not eligible before: decide without announcing,
		// as the walk does.
		_, marked, err := w.rebuildMark(ctx)
		if err != nil {
			return err
		}
		silent = marked != 0
	}

	now := w.cfg.Now()
	// As of the end of today in China, as the API decides without as_of:
	// a change effective later today (within the allowed clock skew) counts.
	d, err := eligibility.Decide(ctx, w.cfg.Store, p, id, eligibility.EndOfToday(now), false)
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

	next := state{Eligible: d.Eligible, AsOf: d.AsOf, QualifiesOn: d.QualifiesOn}
	if d.RecheckOn > d.AsOf && (d.QualifiesOn == "" || d.RecheckOn < d.QualifiesOn) {
		// A change stamped after today, left out: decide again on its
		// day, which no notification will prompt.
		next.RecheckOn = d.RecheckOn
	}
	if next.due() != "" {
		next.CitizenID = id
	}
	if d.Eligible && !prev.Eligible && !silent {
		n := schemas.EligibilityNotification{ChangeID: w.changeID(p.ID, id, d.AsOf), CitizenID: id, Policy: p.ID,
			PolicyDigest: p.Digest(), Title: d.Title, Place: d.Place, RegionCode: regionOf(ctx, w.cfg.Store, p, d), Route: d.Route, AsOf: d.AsOf,
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
	// Saved even when it changes nothing: a peer that read the same
	// revision and decided from the store as it was before this decision's
	// change then fails its save and decides again, rather than write its
	// stale decision over one this instance only confirmed. (The decision
	// of a new day differs in AsOf anyway; this costs a write only for a
	// person decided again the same day.)
	b, _ := json.Marshal(next)
	if rev == 0 {
		_, err = w.kv.Create(ctx, k, b)
	} else {
		_, err = w.kv.Update(ctx, k, b, rev)
	}
	if err != nil {
		// ErrKeyExists: another instance saved first; decide again.
		return fmt.Errorf("saving the decision: %w", err)
	}
	w.schedule(k, id, prev.due(), next.due(), next.AsOf)
	return nil
}

// regionOf picks the division code of R: the person's current rental or
// home in the decided place, else their work region there, else the
// place's first code. A lease or contract is current when it covers the
// decision's day: most carry the end agreed when they were signed.
func regionOf(ctx context.Context, r eligibility.Reader, p *eligibility.Policy, d eligibility.Decision) string {
	current := func(start, end string) bool {
		return start <= d.AsOf && (end == "" || end >= d.AsOf)
	}
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
				if current(x.Start, x.End) && in(x.AddressCode) {
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
			if current(c.Start, c.End) && in(c.WorkRegion) {
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
func (w *Watcher) schedule(k string, id citizenid.ID, old, day, asOf string) {
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
			w.due[day] = map[string]citizenid.ID{}
		}
		w.due[day][k] = id
	}
}

// loadStall is how long loadSchedule waits for the bucket's next entry
// before it gives up: entries come back to back while the watch reads.
var loadStall = 2 * time.Minute

// loadSchedule rebuilds the qualifying days from the bucket, reading
// every entry once, and moves each entry keyed by a citizen ID in clear to
// its digest key. It returns the watch, to follow what is saved after.
func (w *Watcher) loadSchedule(ctx context.Context) (_ jetstream.KeyWatcher, err error) {
	watcher, err := w.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("reading the eligibility bucket: %w", err)
	}
	defer func() {
		if err != nil {
			watcher.Stop()
		}
	}()
	var legacy []jetstream.KeyValueEntry
	w.saved = map[string]bool{}
	stall := time.NewTimer(loadStall)
	defer stall.Stop()
	read := 0
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-stall.C:
			// A watch the server stopped feeding (its flow control
			// unanswered, as a NATS user without $JS.FC permission
			// leaves it) would hold the watcher here for good, with no
			// announcement made and nothing said.
			return nil, fmt.Errorf("reading the eligibility bucket: no entry for %v after %d: does the hub's NATS user lack publish permission on $JS.FC.>?", loadStall, read)
		case e, ok := <-watcher.Updates():
			stall.Reset(loadStall)
			read++
			if !ok {
				return nil, errors.New("reading the eligibility bucket: watch ended early")
			}
			if e == nil { // every entry seen
				done = true
				continue
			}
			if e.Key() == rebuildKey || strings.HasPrefix(e.Key(), policyKeyPrefix) {
				continue
			}
			tok, rest, _ := strings.Cut(e.Key(), ".")
			w.saved[tok] = true
			if !isDigest(rest) {
				legacy = append(legacy, e)
				continue
			}
			var st state
			if json.Unmarshal(e.Value(), &st) == nil && st.due() != "" && st.CitizenID != "" {
				w.schedule(e.Key(), st.CitizenID, "", st.due(), st.AsOf)
			}
		}
	}
	if len(legacy) == 0 {
		return watcher, nil
	}
	stream, err := w.cfg.JS.Stream(ctx, "KV_"+w.cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("opening the eligibility bucket's stream: %w", err)
	}
	for _, e := range legacy {
		if err := w.rekey(ctx, stream, e); err != nil {
			return nil, err
		}
	}
	w.cfg.Logger.Info("eligibility: moved last decisions to keys without citizen IDs", "entries", len(legacy))
	return watcher, nil
}

// rekey moves an entry an earlier release keyed <policy>.<citizen ID> to
// <policy>.<digest>, unless a decision was already saved there (it is
// newer), and purges the old subject from the stream, so that no message
// and no delete marker keeps the ID in its subject. Several instances may
// do it at once: the digest key is created, never overwritten, and a
// purge is idempotent.
func (w *Watcher) rekey(ctx context.Context, stream jetstream.Stream, e jetstream.KeyValueEntry) error {
	tok, rest, _ := strings.Cut(e.Key(), ".")
	id := citizenid.ID(rest)
	var st state
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		// Nothing to keep: deciding the person again makes a new entry.
		w.cfg.Logger.Warn("eligibility: dropping an unreadable last decision", "err", err)
	} else {
		if st.due() != "" {
			st.CitizenID = id
		}
		k := w.key(tok, id)
		b, _ := json.Marshal(st)
		_, err := w.kv.Create(ctx, k, b)
		switch {
		case err == nil:
			w.schedule(k, id, "", st.due(), st.AsOf)
		case !errors.Is(err, jetstream.ErrKeyExists):
			return fmt.Errorf("moving a last decision to its digest key: %w", err)
		}
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject("$KV."+w.cfg.Bucket+"."+e.Key())); err != nil {
		return fmt.Errorf("removing a last decision keyed by citizen ID: %w", err)
	}
	return nil
}

// sweep re-decides the persons whose day due (qualifying day, or the day of
// a change a decision left out) has come.
func (w *Watcher) sweep(ctx context.Context) error {
	today := w.cfg.Now().In(china).Format(time.DateOnly)
	w.mu.Lock()
	ids := map[string]citizenid.ID{}
	for day, ks := range w.due {
		if day <= today {
			maps.Copy(ids, ks)
		}
	}
	w.mu.Unlock()
	keys := slices.Sorted(maps.Keys(ids))
	byPolicy := map[string]*eligibility.Policy{}
	for _, p := range w.policies {
		byPolicy[schemas.PolicyToken(p.ID)] = p
	}
	var items []*work
	for _, k := range keys {
		tok, _, _ := strings.Cut(k, ".")
		p := byPolicy[tok]
		if p == nil {
			continue // a policy no longer watched
		}
		items = append(items, &work{id: ids[k], policies: map[*eligibility.Policy]bool{p: true}, trigger: "scheduled"})
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
