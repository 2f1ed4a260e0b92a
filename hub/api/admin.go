package api

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/internal/bearer"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Admin routes: operators' tools (`pophub reconcile`, `pophub status`).
const (
	RouteKnownEvents = "POST /v1/admin/known-events"
	RouteStatus      = "GET /v1/admin/status"
)

// AdminStore is what the admin routes need of the store; hub.Store
// satisfies it.
type AdminStore interface {
	KnownEvents(ctx context.Context, keys []schemas.EventKey) ([]bool, error)
	Stats(ctx context.Context) (hub.StoreStats, error)
	Ping(ctx context.Context) error
}

// EstimatingStore is an AdminStore whose exact totals cost a full count
// (hub/postgres: a province's history outlasts ProbeTimeout). The status
// reads its StatusTotals instead of Stats, and names the totals it
// estimated ("persons", "changes": StoreStatus.Estimated).
type EstimatingStore interface {
	StatusTotals(ctx context.Context) (st hub.StoreStats, estimated []string, err error)
}

// IndexingStore is an AdminStore that may build an index in the
// background after it opens (hub/postgres: the household index of a
// schema written by an earlier release), during which the lookups it
// serves answer 503. The status says so, and how far it got
// (StoreStatus.HouseholdIndex).
type IndexingStore interface {
	HouseholdIndexing(ctx context.Context) (indexed int64, building bool, err error)
}

// LeasedStore is an AdminStore that several hub instances may share,
// one of which, holding the store's relay lease, publishes the
// notifications (hub/postgres). The status names it (StoreStatus.Relay).
type LeasedStore interface {
	RelayHolder(ctx context.Context) (holder string, mine bool, err error)
}

// FailoverStore is an AdminStore that notices a failover of its database
// (hub/postgres: the server's timeline changed), after which events of
// the transactions the new server lacks may be lost. The status says so
// (StoreStatus.Failover) until the hub restarts.
type FailoverStore interface {
	LastFailover() (from, to int64, at time.Time, ok bool)
}

// AdminConfig configures the admin routes. Only Store is required; each
// nil function leaves its part out of the status (the JSON omits it).
// The functions are called concurrently, on the request's goroutines, each
// under ProbeTimeout.
type AdminConfig struct {
	Store AdminStore

	// Token, when set, is the bearer token every admin request must carry
	// (Authorization: Bearer <token>). Authorizer, when set, is consulted
	// as well, with the route pattern; its Grant's Done is called.
	Token      string
	Authorizer Authorizer

	// Group is the consumer group shown with the lag.
	Group string
	// Lag is the consumer lag per topic and partition
	// (ingest.Consumer.Lag).
	Lag func() map[string]map[int]int64
	// LagMeasured is when the lag was last measured, and why the latest
	// measurement failed (ingest.Consumer.LagMeasured): while it fails,
	// Lag is empty, and the status says the lag is unknown, not zero.
	LagMeasured func() (time.Time, error)
	// Counts are the consumer's totals since it started
	// (ingest.Consumer.Counts, converted).
	Counts func() IngestCounts
	// DLQ counts the records in the DLQ topic.
	DLQ func(ctx context.Context) (DLQCounts, error)
	// Stream describes the notification stream.
	Stream func(ctx context.Context) (StreamInfo, error)
	// Consumers lists the durable consumers on the notification stream:
	// the subscribers' positions.
	Consumers func(ctx context.Context) ([]ConsumerPosition, error)

	// ProbeTimeout bounds each part of the status. Default 5 s.
	ProbeTimeout time.Duration
	// Logger receives failures of the parts. Nil discards.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// EventKey is one key of a known-events request.
type EventKey struct {
	Source schemas.Source `json:"source"`
	ID     string         `json:"id"`
}

// Status is the body of GET /v1/admin/status: what an operator looks at
// first. A part that could not be read carries its error, and zero values
// but for the store's totals, which are left out (StoreStatus); a part not
// configured is omitted.
type Status struct {
	Time   time.Time     `json:"time"`
	Store  StoreStatus   `json:"store"`
	Ingest *IngestStatus `json:"ingest,omitempty"`
	DLQ    *DLQCounts    `json:"dlq,omitempty"`
	Stream *StreamInfo   `json:"stream,omitempty"`
}

// StoreStatus is the store's health and totals. The totals are nil, and
// left out of the JSON, when the store could not be read: unknown, not
// zero. A failing store may still have them (memdb answers from memory
// while its log cannot be written). Estimated names the totals that are
// the database's estimate, "persons" and/or "changes" (EstimatingStore);
// outbox_pending is always exact.
type StoreStatus struct {
	OK            bool     `json:"ok"`
	Error         string   `json:"error,omitempty"`
	Persons       *int64   `json:"persons,omitempty"`
	Changes       *int64   `json:"changes,omitempty"`
	OutboxPending *int64   `json:"outbox_pending,omitempty"`
	Estimated     []string `json:"estimated,omitempty"`
	// HouseholdIndex is present while the store builds its household
	// index (IndexingStore).
	HouseholdIndex *IndexBuild `json:"household_index,omitempty"`
	// Relay names the instance publishing the store's notifications, on
	// a store several instances share (LeasedStore).
	Relay *RelayStatus `json:"relay,omitempty"`
	// Failover is the last failover of the database the store saw since
	// the instance started (FailoverStore).
	Failover *FailoverStatus `json:"failover,omitempty"`
}

// FailoverStatus is a change of the database server's timeline: a standby
// promoted in the primary's place, or another server at the address.
type FailoverStatus struct {
	FromTimeline int64     `json:"from_timeline"`
	ToTimeline   int64     `json:"to_timeline"`
	At           time.Time `json:"at"`
}

// RelayStatus names the instance whose outbox relay publishes the
// notifications: the holder of the store's relay lease.
type RelayStatus struct {
	// Holder is the holder's database session name, "pophub (host pid
	// 1234 #3f9a)"; empty when no instance holds the lease, and
	// notifications wait in the outbox.
	Holder string `json:"holder"`
	// ThisInstance is whether the instance answering holds it.
	ThisInstance bool `json:"this_instance"`
}

// IndexBuild is an index being built in the background: household
// lookups answer 503 until it is done.
type IndexBuild struct {
	// PersonsIndexed is how many persons written before the index it
	// has indexed so far; StoreStatus.Persons is about how many there are.
	PersonsIndexed int64 `json:"persons_indexed"`
}

// IngestStatus is the consumer group's lag and the consumer's counts.
type IngestStatus struct {
	Group    string         `json:"group,omitempty"`
	TotalLag int64          `json:"total_lag"`
	Lag      []PartitionLag `json:"lag"`
	// LagMeasuredAt is when the lag was last measured; LagError why the
	// latest measurement failed (then Lag is empty: unknown, not zero).
	LagMeasuredAt *time.Time    `json:"lag_measured_at,omitempty"`
	LagError      string        `json:"lag_error,omitempty"`
	Counts        *IngestCounts `json:"counts,omitempty"`
}

// PartitionLag is one partition's records not yet committed.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Lag       int64  `json:"lag"`
}

// IngestCounts are the consumer's totals since it started: Consumed =
// Applied + Duplicates + the rejects.
type IngestCounts struct {
	Consumed   int64 `json:"consumed"`
	Applied    int64 `json:"applied"`
	Duplicates int64 `json:"duplicates"`
	// Skipped counts records passed over that are neither events nor
	// counted in Consumed (transactions' commit and abort markers,
	// ingest.Counts.Skipped): without it an operator comparing offsets
	// with Consumed sees records unaccounted for.
	Skipped int64 `json:"skipped"`
	// AbortedTransactions counts the abort markers among Skipped
	// (ingest.Counts.Aborted): transactions a department's producer or
	// its coordinator aborted, whose records the hub applied all the same.
	AbortedTransactions int64 `json:"aborted_transactions"`
	// LostToRetention counts records a source topic's retention deleted
	// before the hub read them (ingest.Counts.Deleted): events never
	// applied, outside Consumed, which the department must send again.
	// The hub skips them with a warning; without this count the status
	// showed nothing of the loss.
	LostToRetention int64                      `json:"lost_to_retention"`
	Rejected        map[string]int64           `json:"rejected"`
	Sources         map[string]IngestCountsSrc `json:"sources,omitempty"`
}

// IngestCountsSrc is one source's share of IngestCounts.
type IngestCountsSrc struct {
	Consumed   int64            `json:"consumed"`
	Applied    int64            `json:"applied"`
	Duplicates int64            `json:"duplicates"`
	Skipped    int64            `json:"skipped"`
	Rejected   map[string]int64 `json:"rejected,omitempty"`
}

// DLQCounts counts the DLQ topic's records by reason and by source.
//
// The hub counts the DLQ incrementally, each status request reading only
// what was added since the last one, as much of it as the probe's time
// allows. Until it has read to the end, CatchingUp lists the partitions
// not yet counted to their end, and Records, ByReason and BySource count
// only the records read so far.
type DLQCounts struct {
	Error      string           `json:"error,omitempty"`
	Records    int64            `json:"records"`
	ByReason   map[string]int64 `json:"by_reason,omitempty"`
	BySource   map[string]int64 `json:"by_source,omitempty"`
	CatchingUp []DLQPartition   `json:"catching_up,omitempty"`
}

// DLQPartition is how far the count of one DLQ partition got: the offsets
// below CountedTo are counted, End is the partition's end offset.
type DLQPartition struct {
	Partition int   `json:"partition"`
	CountedTo int64 `json:"counted_to"`
	End       int64 `json:"end"`
}

// StreamInfo is the notification stream's state and its subscribers'
// positions.
type StreamInfo struct {
	Error     string             `json:"error,omitempty"`
	Name      string             `json:"name"`
	Messages  uint64             `json:"messages"`
	Bytes     uint64             `json:"bytes"`
	FirstSeq  uint64             `json:"first_seq"`
	LastSeq   uint64             `json:"last_seq"`
	LastTime  time.Time          `json:"last_time,omitzero"`
	Consumers []ConsumerPosition `json:"consumers"`
	// ConsumersError is set when the consumers could not be listed.
	ConsumersError string `json:"consumers_error,omitempty"`
}

// ConsumerPosition is a durable consumer's position on the stream:
// Pending messages not yet delivered, AckPending delivered but not
// acknowledged, AckFloor the stream sequence below which everything is
// acknowledged.
type ConsumerPosition struct {
	Name        string    `json:"name"`
	Filter      string    `json:"filter,omitempty"`
	Pending     uint64    `json:"pending"`
	AckPending  int       `json:"ack_pending"`
	Redelivered int       `json:"redelivered"`
	AckFloor    uint64    `json:"ack_floor"`
	Delivered   uint64    `json:"delivered"`
	LastActive  time.Time `json:"last_active,omitzero"`
}

// AdminHandlers returns the admin routes by pattern, for Config.Mount:
//
//   - POST /v1/admin/known-events takes a JSON array of {source, id}
//     (at most hub.MaxKnownEvents) and answers an array of booleans in
//     the same order: whether the store applied each event;
//   - GET /v1/admin/status answers Status.
//
// Errors are problem+json. It panics if cfg.Store is nil.
func AdminHandlers(cfg AdminConfig) map[string]http.Handler {
	if cfg.Store == nil {
		panic("api: AdminConfig.Store is nil")
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &admin{cfg: cfg}
	return map[string]http.Handler{
		RouteKnownEvents: a.guard(RouteKnownEvents, a.knownEvents),
		RouteStatus:      a.guard(RouteStatus, a.status),
	}
}

type admin struct{ cfg AdminConfig }

// guard checks the token and the Authorizer before h.
func (a *admin) guard(route string, h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if a.cfg.Token != "" {
			got, ok := bearer.Token(r.Header.Get("Authorization"))
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.Token)) != 1 {
				a.fail(w, r, fmt.Errorf("a valid bearer token is required: %w", ErrUnauthenticated))
				return
			}
		}
		var grant Grant = allowAll{}
		if a.cfg.Authorizer != nil {
			g, err := a.cfg.Authorizer.Authorize(r, route)
			if err != nil {
				a.fail(w, r, err)
				return
			}
			grant = g
		}
		sw := &statusWriter{ResponseWriter: w}
		err := h(sw, r)
		if err != nil {
			a.fail(sw, r, err)
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		grant.Done(r.Context(), Outcome{Route: route, Status: status, Err: err})
	})
}

// fail answers err as a problem through the table of kindOf, as Server.fail
// does.
func (a *admin) fail(w http.ResponseWriter, r *http.Request, err error) {
	k := kindOf(err)
	detail := k.detail
	if detail == "" {
		detail = citizenid.MaskText(err.Error())
	}
	if k.status >= 500 {
		a.cfg.Logger.LogAttrs(r.Context(), serverErrorLevel(k.status), "serving admin request",
			slog.String("route", routeOf(r)), slog.String("request_id", requestID(r.Context())), slog.String("err", citizenid.MaskText(err.Error())))
	}
	setProblemHeaders(w.Header(), k.status, err)
	b, _ := json.Marshal(Problem{Type: ProblemTypePrefix + k.slug, Title: http.StatusText(k.status), Status: k.status,
		Detail: detail, Instance: instanceOf(r.Context())})
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(k.status)
	_, _ = w.Write(append(b, '\n'))
}

func writeAdminJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding the answer: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// maxKnownEventsBody bounds the request body: hub.MaxKnownEvents keys of
// the longest ids, each character as a 6-byte JSON escape (encoding/json
// writes <, > and & so), plus the source and the framing. 4 MiB once
// refused a batch of valid keys of CJK ids, and reconcile failed.
const maxKnownEventsBody = hub.MaxKnownEvents * (6*schemas.MaxIDLength + 64)

// knownEvents answers POST /v1/admin/known-events. Its keys come in the
// body; it takes no query parameter.
func (a *admin) knownEvents(w http.ResponseWriter, r *http.Request) error {
	if _, err := queryOf(r); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxKnownEventsBody))
	if err != nil {
		return fmt.Errorf("reading the body (at most %d bytes): %w", maxKnownEventsBody, hub.ErrInvalid)
	}
	var in []EventKey
	if err := json.Unmarshal(body, &in); err != nil {
		return fmt.Errorf("the body is not a JSON array of {\"source\",\"id\"}: %w", hub.ErrInvalid)
	}
	keys := make([]schemas.EventKey, len(in))
	for i, k := range in {
		if !k.Source.Valid() || k.ID == "" {
			return fmt.Errorf("key %d: want a known source and a non-empty id: %w", i, hub.ErrInvalid)
		}
		keys[i] = schemas.EventKey{Source: k.Source, ID: k.ID}
	}
	if err := hub.CheckKnownEvents(keys); err != nil {
		return err
	}
	known, err := a.cfg.Store.KnownEvents(r.Context(), keys)
	if err != nil {
		return fmt.Errorf("looking up events: %w", err)
	}
	return writeAdminJSON(w, known)
}

// status answers GET /v1/admin/status. It takes no query parameter.
func (a *admin) status(w http.ResponseWriter, r *http.Request) error {
	if _, err := queryOf(r); err != nil {
		return err
	}
	return writeAdminJSON(w, a.collect(r.Context()))
}

// statusTotals reads the store's totals for the status: estimated where
// the store estimates (EstimatingStore), else Stats.
func statusTotals(ctx context.Context, s AdminStore) (hub.StoreStats, []string, error) {
	if e, ok := s.(EstimatingStore); ok {
		return e.StatusTotals(ctx)
	}
	st, err := s.Stats(ctx)
	return st, nil, err
}

// collect gathers the status, its parts concurrently.
func (a *admin) collect(ctx context.Context) Status {
	st := Status{Time: a.cfg.Now().UTC()}
	var wg sync.WaitGroup
	probe := func(what string, fn func(ctx context.Context) error) string {
		pctx, cancel := context.WithTimeout(ctx, a.cfg.ProbeTimeout)
		defer cancel()
		if err := fn(pctx); err != nil {
			a.cfg.Logger.WarnContext(ctx, "reading status", "part", what, "err", citizenid.MaskText(err.Error()))
			return citizenid.MaskText(err.Error())
		}
		return ""
	}
	wg.Go(func() {
		st.Store.Error = probe("store", func(ctx context.Context) error {
			// Held in memory, and most wanted while the database is
			// away, as just after a failover: shown whatever it answers.
			if fs, ok := a.cfg.Store.(FailoverStore); ok {
				if from, to, at, ok := fs.LastFailover(); ok {
					st.Store.Failover = &FailoverStatus{FromTimeline: from, ToTimeline: to, At: at}
				}
			}
			// The totals are asked for even when Ping fails: a store
			// that cannot take writes may still answer them.
			perr := a.cfg.Store.Ping(ctx)
			s, estimated, err := statusTotals(ctx, a.cfg.Store)
			if err == nil {
				st.Store.Persons, st.Store.Changes, st.Store.OutboxPending = &s.Persons, &s.Changes, &s.OutboxPending
				st.Store.Estimated = estimated
			}
			if perr != nil {
				return perr
			}
			if err != nil {
				return err
			}
			if ix, ok := a.cfg.Store.(IndexingStore); ok {
				indexed, building, err := ix.HouseholdIndexing(ctx)
				if err != nil {
					return err
				}
				if building {
					st.Store.HouseholdIndex = &IndexBuild{PersonsIndexed: indexed}
				}
			}
			if ls, ok := a.cfg.Store.(LeasedStore); ok {
				holder, mine, err := ls.RelayHolder(ctx)
				if err != nil {
					return err
				}
				st.Store.Relay = &RelayStatus{Holder: holder, ThisInstance: mine}
			}
			return nil
		})
		st.Store.OK = st.Store.Error == ""
	})
	if a.cfg.Lag != nil || a.cfg.Counts != nil {
		st.Ingest = &IngestStatus{Group: a.cfg.Group, Lag: []PartitionLag{}}
		if a.cfg.Lag != nil {
			for topic, parts := range a.cfg.Lag() {
				for p, n := range parts {
					st.Ingest.Lag = append(st.Ingest.Lag, PartitionLag{Topic: topic, Partition: p, Lag: n})
					st.Ingest.TotalLag += n
				}
			}
			slices.SortFunc(st.Ingest.Lag, func(x, y PartitionLag) int {
				return cmp.Or(strings.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
			})
		}
		if a.cfg.LagMeasured != nil {
			at, err := a.cfg.LagMeasured()
			if !at.IsZero() {
				st.Ingest.LagMeasuredAt = &at
			}
			if err != nil {
				st.Ingest.LagError = citizenid.MaskText(err.Error())
			}
		}
		if a.cfg.Counts != nil {
			c := a.cfg.Counts()
			st.Ingest.Counts = &c
		}
	}
	if a.cfg.DLQ != nil {
		st.DLQ = &DLQCounts{}
		wg.Go(func() {
			var d DLQCounts
			err := probe("dlq", func(ctx context.Context) (err error) {
				d, err = a.cfg.DLQ(ctx)
				return err
			})
			d.Error = err
			*st.DLQ = d
		})
	}
	var info StreamInfo
	var cons []ConsumerPosition
	var infoErr, consErr string
	if a.cfg.Stream != nil {
		wg.Go(func() {
			infoErr = probe("stream", func(ctx context.Context) (err error) {
				info, err = a.cfg.Stream(ctx)
				return err
			})
		})
	}
	if a.cfg.Consumers != nil {
		wg.Go(func() {
			consErr = probe("stream consumers", func(ctx context.Context) (err error) {
				cons, err = a.cfg.Consumers(ctx)
				return err
			})
		})
	}
	wg.Wait()
	if a.cfg.Stream != nil || a.cfg.Consumers != nil {
		info.Name = cmp.Or(info.Name, schemas.StreamName)
		info.Error, info.ConsumersError = infoErr, consErr
		info.Consumers = cons
		if info.Consumers == nil {
			info.Consumers = []ConsumerPosition{}
		}
		slices.SortFunc(info.Consumers, func(x, y ConsumerPosition) int { return strings.Compare(x.Name, y.Name) })
		st.Stream = &info
	}
	return st
}
