// Package socialinsurance is the reference subscriber: one city's (or
// province's, or county's) social-insurance bureau. It subscribes through
// the SDK to the hub's migrations out of and into its region, to deaths
// in it and to the status changes in it (Filters), and turns them into
// tasks in its own PostgreSQL schema:
//
//   - a migration from outside the region into it: transfer_in;
//   - a migration from the region to outside it: transfer_out;
//   - a migration between two places inside the region: no task — the
//     bureau's relationship does not move (a move between two counties of
//     one city is a transfer only for a county-level bureau, whose region
//     the move does cross);
//   - a death in the region: stop_benefits;
//   - the person of a stop_benefits task active again (a hukou cancelled
//     for death and restored, which the hub announces only as a status
//     change, in the region of the restored hukou): the open task is
//     cancelled, not completable, and a done one is flagged for review
//     (Task.ReactivatedAt), since the hub already holds a termination of
//     a living person's insurances. A later death reopens a cancelled
//     task;
//   - the person of a stop_benefits task moved out of the region on or
//     before the death (a transfer_out whose move took effect not after
//     the death, in the hub's order of changes: by time, then source and
//     event id, against the latest death announced; with no transfer_in
//     after it; the move may arrive after the death): one insurance
//     relationship is held in one place, and the hub announces the death
//     again in the county moved to, whose bureau stops the benefits. The
//     open task is cancelled, not completable, naming that county, and a
//     done one is flagged for review (Task.MovedOutAt). A move back into
//     the region before the death (a transfer_in) undoes that. The
//     transfer tasks decide it, whatever order the move and the death
//     arrive in; a move after the death leaves the task as it is, as the
//     hub leaves the death where it happened.
//
// So a notification gives at most one task. A transfer task's natural key
// is (change_id, kind), so a repeat delivery creates nothing: the task and
// the roster row are written in one statement, the SDK acks after it
// committed, and a crash in between only repeats the statement. A
// stop_benefits task's key is the person: the hub announces a death again
// (in another region, after a late registration, or with a corrected date
// of death), and a later announcement updates the person's one task
// instead of adding another — its date of death while the task is open;
// once it is done, a different date is kept as the task's corrected date
// of death for the bureau to review, since the hub already holds the
// termination, unless the person became active again in between: that
// later death reopens the task (see Store.apply).
//
// Completing a task (CLI or POST /tasks/{id}/complete) publishes an event
// back to the hub through adapters/publisher — social_insurance.transferred
// for a transfer, social_insurance.terminated for stop_benefits — then
// marks the task done. A transfer takes effect at the time of the move
// that caused the task, not at completion: the hub keeps the transfer
// with the latest time, and bureaus complete their tasks in any order, so
// only the change's time lets the person's social-insurance region follow
// the order of the moves. A termination ends the insurances on the date of
// death and takes effect at the end of that day (China time), whatever
// time the notification carried (see Event). The event id is
// derived from the task's natural key (publisher.EventID over
// "task:<change_id>:<kind>"), not from the database's serial id nor the
// time: completing twice, after a crash between publishing and marking, or
// on a restored database, sends the same event id, which the hub applies
// once. The hub keeps the first payload of an id, so the event is saved in
// the task before it is published (migration 0006) and a retry re-sends it
// unchanged: the task then reports the date of death the hub holds, and a
// different one announced in between is its corrected date of death. A
// done stop_benefits task reopened by a death after the person was
// active again takes that death's change_id, hence a new event id.
package socialinsurance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/segmentio/kafka-go/sasl"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/internal/pgreach"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/region"
)

// Config configures the service. Region, NATS and Postgres are required.
type Config struct {
	// Region is the bureau's 2-, 4- or 6-digit division code; a city
	// written in six digits (230100) is the city (sdk.RegionCode).
	Region string
	// Name is the durable subscriber name (default "socialinsurance-<Region>").
	// Under the hub's access policy it must be the bureau's identity,
	// e.g. "si-harbin": an identity may create only consumers named after
	// itself.
	Name string
	// NATS is the NATS server URL.
	NATS string
	// NATSUser, NATSPassword and NATSInboxPrefix authenticate to a NATS
	// server with users, such as the hub's under an access policy (see
	// sdk.Config's User, Password and InboxPrefix); empty connects
	// without.
	NATSUser, NATSPassword, NATSInboxPrefix string
	// ConsumerPerFilter gives each of the filters (Filters) a durable
	// consumer of its own (sdk.Config.ConsumerPerFilter). Needed under
	// the hub's access policy, which does not let the bureau read the
	// subject covering them: its identity must be granted each filter's
	// subject, the status section's (pop.changed.<R>.status) among them.
	// A migration within the region is still handled once, and a repeat
	// after a restart creates nothing (tasks are keyed by change and
	// kind).
	ConsumerPerFilter bool
	// TLS, when set, is the client configuration for a hub, NATS server
	// and Kafka brokers that speak TLS, its RootCAs holding the hub's CA;
	// nil connects in plaintext.
	TLS *tls.Config
	// Stream and SubjectPrefix default to the hub's ("POP", "pop").
	Stream        string
	SubjectPrefix string
	// Hub, when set, is the hub's HTTP API: the first start bootstraps the
	// roster from a snapshot of the persons registered in the region and
	// continues with the notifications after it. Without it the first
	// start begins at Start.
	Hub string
	// Purpose is the X-Purpose sent to the hub (default
	// "social-insurance transfer (社会保险关系转移)"); Token, when set, a bearer token.
	Purpose string
	Token   string
	// Start is where a new subscription starts when Hub is empty.
	Start sdk.Start
	// StartOver forgets where the consumers had got to (the positions
	// the service keeps with its tasks, sdk.Config.Positions), so that
	// consumers deleted beforehand start again from a bootstrap (with Hub)
	// or at Start: the way back after a gap. Without it a consumer that
	// is gone is created again where it left off.
	StartOver bool
	// Postgres is the database URL; Schema the service's schema (default
	// "socialinsurance").
	Postgres string
	Schema   string
	// HTTPAddr, when set, serves /tasks, /healthz and /metrics.
	HTTPAddr string
	// APIToken is the bearer token the tasks routes require (see
	// Handler); without one they refuse every request, and an HTTPAddr
	// that is not a loopback address is refused.
	APIToken string
	// HTTPTLS, when set, serves HTTPAddr over HTTPS only with its
	// certificates; nil serves plain HTTP.
	HTTPTLS *tls.Config
	// ReadTimeout bounds the reading of a whole request, body included,
	// so that a client sending its headers and then nothing, or
	// trickling a body, cannot hold a connection (default 1 minute, the
	// hub's). IdleTimeout closes a kept-alive connection with no request
	// (default 2 minutes). ShutdownTimeout bounds the graceful shutdown
	// of the HTTP server when Run's context ends (default 10 s); the
	// connections still open then are closed.
	ReadTimeout, IdleTimeout, ShutdownTimeout time.Duration
	// Kafka are the brokers completions are published to; without them
	// completing a task over HTTP answers 503.
	Kafka []string
	// KafkaSASL logs into brokers that ask for a login, as the hub's do
	// under an access policy (SASL/SCRAM-SHA-512 as the bureau's
	// identity); nil sends none, and such brokers close the connection.
	KafkaSASL sasl.Mechanism
	// Concurrency and AckWait tune the subscriber (see sdk.Config).
	Concurrency int
	AckWait     time.Duration
	// TracerProvider is passed to the SDK (default otel's global).
	TracerProvider trace.TracerProvider
	// Logger receives the service's logs (default: discard).
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	c.Region = sdk.RegionCode(c.Region)
	if c.Name == "" {
		c.Name = "socialinsurance-" + c.Region
	}
	if c.Purpose == "" {
		c.Purpose = "social-insurance transfer (社会保险关系转移)"
	}
	if c.Schema == "" {
		c.Schema = "socialinsurance"
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = time.Minute
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports whether the configuration can work.
func (c *Config) Validate() error {
	if err := sdk.CheckRegion(c.Region); err != nil {
		return fmt.Errorf("region %w", err)
	}
	if c.NATS == "" {
		return errors.New("a NATS URL is required")
	}
	if c.Postgres == "" {
		return errors.New("a PostgreSQL URL is required")
	}
	return c.validateHTTP()
}

// Filters are the bureau's subscription, in every mode: migrations out
// of and into the region and deaths in it, which create its tasks, and
// the status changes in it (StatusFilter), which cancel them. With a
// consumer per filter (Config.ConsumerPerFilter) each is a consumer on
// its subject, which an access policy must grant the bureau's identity.
func Filters(code string) []sdk.Filter {
	return []sdk.Filter{{Kind: sdk.MigrationsOut, Region: code}, {Kind: sdk.MigrationsIn, Region: code}, {Kind: sdk.Deaths, Region: code},
		StatusFilter(code)}
}

// StatusFilter is the bureau's subscription to the status changes of the
// persons registered in the region, which tell it of a death undone (a
// hukou restored): the status section only (pop.changed.<R>.status),
// which an access policy grants an identity that reads status (as the
// deaths already ask) and hukou (as the migrations do), rather than every
// section, which it would grant only with them all. Of those changes the
// handler acts on a registration's (changeFor).
func StatusFilter(code string) sdk.Filter {
	return sdk.Filter{Kind: sdk.Changes, Region: code, Section: string(schemas.SecStatus)}
}

// filters is the service's subscription: Filters of its region.
func (c *Config) filters() []sdk.Filter { return Filters(c.Region) }

// within reports whether a division code (12-digit address, or 6-digit
// county) lies in the region.
func within(code, reg string) bool { return code != "" && strings.HasPrefix(code, reg) }

// changeFor decides what a notification means for the bureau of reg.
//
// Of the section changes it takes the status changes a registration
// made (hukou.registered): the person is active again, which only a
// registration does (one reason restored, after a cancellation for
// death); the status a cancellation or certificate made comes with the
// death notification, and the other sections need nothing.
func changeFor(d *sdk.Delivery, reg string) change {
	c := change{citizenID: d.CitizenID, version: d.Version, at: d.Time}
	t := Task{CitizenID: d.CitizenID, ChangeID: d.ChangeID, ChangedAt: d.Time}
	switch d.Section {
	case schemas.KindMigration:
		c.key = orderKey(d.Source, d.EventID)
		t.FromRegion, t.ToRegion = region.County(d.FromAddressCode), region.County(d.ToAddressCode)
		from, to := within(d.FromAddressCode, reg), within(d.ToAddressCode, reg)
		switch {
		case from && !to:
			t.Kind = TransferOut
		case to && !from:
			t.Kind = TransferIn
		}
		c.address = d.ToAddressCode
	case schemas.KindDeath:
		// The subject's last token is the county of the person's hukou.
		county := d.Subject[strings.LastIndexByte(d.Subject, '.')+1:]
		if within(county, reg) {
			t.Kind, t.FromRegion, t.DateOfDeath = StopBenefits, county, d.DateOfDeath
		}
		c.status = "deceased"
		// The death's own event (a certificate, or a cancellation for
		// death) carries its source and id; one the hub announces again
		// under another event (a late registration, a move) carries that
		// event's, with the death's time.
		if d.EventType == schemas.DeathCertified || d.EventType == schemas.HukouCancelled {
			c.key = orderKey(d.Source, d.EventID)
		}
	case string(schemas.SecStatus):
		if d.EventType == schemas.HukouRegistered {
			c.status, c.reactivated = "active", true
		}
	}
	c.task = t
	return c
}

// Handler records notifications in the store: the SDK handler of the
// service, usable on its own (the SDK benchmark measures it).
type Handler struct {
	store   *Store
	region  string
	created metric.Int64Counter
	log     *slog.Logger // Service sets it; discard by default
}

// NewHandler returns the notification handler for the bureau of reg (a
// city written in six digits is the city, as in Config.Region).
func NewHandler(store *Store, reg string, mp metric.MeterProvider) (*Handler, error) {
	c, err := mp.Meter("github.com/pophub/pophub/consumers/socialinsurance").Int64Counter("pophub_si_tasks_created",
		metric.WithDescription("Tasks created from notifications, by kind."))
	if err != nil {
		return nil, fmt.Errorf("creating metrics: %w", err)
	}
	return &Handler{store: store, region: sdk.RegionCode(reg), created: c, log: slog.New(slog.DiscardHandler)}, nil
}

// Handle is an sdk.Handler.
func (h *Handler) Handle(ctx context.Context, d *sdk.Delivery) error {
	c := changeFor(d, h.region)
	if c.none() {
		return nil
	}
	res, err := h.store.apply(ctx, c)
	if err != nil {
		if databaseUnreachable(ctx, err) {
			// Waiting out the database beats dead-lettering the bureau's work.
			return sdk.Transient(err)
		}
		return err
	}
	if res.created {
		h.created.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", c.task.Kind)))
	}
	if res.cancelled > 0 {
		h.log.Info("person active again: stop_benefits task cancelled", "citizen_id", d.CitizenID, "change_id", d.ChangeID)
	}
	if len(res.flagged) > 0 {
		// The termination is at the hub already: only the bureau can undo it.
		h.log.Warn("person active again after their stop_benefits task was completed: review the termination (GET /tasks?reactivated=true)",
			"citizen_id", d.CitizenID, "change_id", d.ChangeID, "tasks", res.flagged)
	}
	for _, m := range res.movedOut {
		if m.status == StatusDone {
			// The termination is at the hub already, by the wrong bureau.
			h.log.Warn("person moved out of the region before the death their completed stop_benefits task ended: review the termination (GET /tasks?moved_out=true)",
				"citizen_id", d.CitizenID, "change_id", d.ChangeID, "task", m.id)
			continue
		}
		h.log.Info("person moved out of the region before the death: stop_benefits task left to the county moved to",
			"citizen_id", d.CitizenID, "change_id", d.ChangeID, "task", m.id, "status", m.status)
	}
	if res.movedBack > 0 {
		h.log.Info("person moved back into the region before the death: stop_benefits task no longer moved out",
			"citizen_id", d.CitizenID, "change_id", d.ChangeID)
	}
	return nil
}

// databaseUnreachable reports whether err says PostgreSQL could not be
// reached or was not serving (pgreach.Lost), or aborted the statement
// for a conflict that a retry resolves; a caller that gave up is neither.
func databaseUnreachable(ctx context.Context, err error) bool {
	var pgErr *pgconn.PgError
	if ctx.Err() == nil && errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") {
		return true
	}
	return pgreach.Lost(ctx, err)
}

// HandlePerson records a snapshot person in the roster. A person the
// roster lists as alive whom the snapshot shows deceased in the region
// died while the bureau was not listening: on a bootstrap that starts
// over after a gap (the stream deleted the death notification unread)
// the death is still work, so it becomes a stop_benefits task, as the
// notification would have made it (a task a restoration ended is
// reopened). The golden record carries no date of death, so the task has
// none until the death's notification, if it still comes, brings it: its
// completion ends the insurances on the day the task was recorded, and a
// date learnt after it is kept as the corrected date for review.
func (h *Handler) HandlePerson(ctx context.Context, p sdk.Person) error {
	if p.Status == "deceased" && within(p.AddressCode, h.region) {
		status, version, found, err := h.store.rosterStatus(ctx, p.CitizenID)
		if err != nil {
			return err
		}
		if found && status != "deceased" && version < p.Version {
			return h.missedDeath(ctx, p, version)
		}
	}
	return h.store.upsertPerson(ctx, p.CitizenID, p.Version, p.AddressCode, p.Status)
}

// missedDeath records the death of roster person p that the snapshot
// shows and no notification brought; the roster had the person alive as
// of version alive. The roster takes the snapshot's status first; the
// task takes version alive, below the death's, so that the death's own
// notification, when it still comes (a death during the walk, after the
// stream sequence the walk carries), gives it its date as to any task of
// an older version. A task a restoration ended is reopened
// (reopenBySnapshot).
func (h *Handler) missedDeath(ctx context.Context, p sdk.Person, alive int64) error {
	if err := h.store.upsertPerson(ctx, p.CitizenID, p.Version, p.AddressCode, p.Status); err != nil {
		return err
	}
	county := region.County(p.AddressCode)
	c := change{citizenID: p.CitizenID, version: alive,
		task: Task{Kind: StopBenefits, CitizenID: p.CitizenID, ChangeID: fmt.Sprintf("snapshot.%s.v%d", string(p.CitizenID), p.Version), FromRegion: county}}
	res, err := h.store.apply(ctx, c)
	if err != nil {
		return err
	}
	if res.created {
		h.created.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", StopBenefits)))
	}
	h.log.Warn("death found in the snapshot that no notification brought: stop_benefits task without a date of death; completed as it is, it ends the insurances on the day it was recorded",
		"citizen_id", p.CitizenID, "version", p.Version, "change_id", c.task.ChangeID, "created", res.created)
	return nil
}

// EventPublisher sends events to the hub (*publisher.Publisher).
type EventPublisher interface {
	Publish(ctx context.Context, events ...schemas.Event) ([]publisher.Result, error)
}

// china is China Standard Time, the zone of the hub's calendar days.
var china = time.FixedZone("CST", 8*3600)

// Event is the event completing t at now reports to the hub.
//
// A transfer takes effect when the change behind t did (t.ChangedAt), so
// that a bureau completing late does not undo a later move. A task
// recorded before the change's time was kept falls back to when it was
// recorded (t.CreatedAt), which is after the change but never after its
// completion; a task with neither, to now.
//
// A stop_benefits completion ends the insurances on the date of death
// (t.DateOfDeath) and takes effect at the end of that day in China, the
// last microsecond the hub keeps: after every enrolment up to the death,
// whatever time the death notification carried (a late registration
// announces the death again with its own, possibly decades older, time).
// Without a date of death it ends on the day the time above falls on.
//
// It names all of schemas.Insurances: the notifications and the roster
// do not say which insurances the person holds, and the hub ends only
// the ones it has.
func Event(t Task, now time.Time) schemas.Event {
	effective := t.ChangedAt
	if effective.IsZero() {
		effective = t.CreatedAt
	}
	if effective.IsZero() {
		effective = now
	}
	ev := schemas.Event{
		ID:      publisher.EventID(schemas.SocialInsurance, "task:"+t.ChangeID+":"+t.Kind, 1),
		Source:  schemas.SocialInsurance,
		Subject: t.CitizenID,
	}
	if t.Kind == StopBenefits {
		end := effective.In(china).Format(time.DateOnly)
		if d, err := time.ParseInLocation(time.DateOnly, t.DateOfDeath, china); err == nil {
			end = t.DateOfDeath
			effective = d.AddDate(0, 0, 1).Add(-time.Microsecond)
		}
		ev.Type = schemas.InsuranceTerminated
		ev.Payload = &schemas.InsuranceTerminatedData{Insurances: schemas.Insurances, Region: t.FromRegion, End: end}
	} else {
		ev.Type = schemas.InsuranceTransferred
		ev.Payload = &schemas.InsuranceTransferredData{FromRegion: t.FromRegion, ToRegion: t.ToRegion}
	}
	ev.Time = effective.UTC()
	return ev
}

// Complete publishes the task's event to the hub and marks it done. A
// task already done is returned as it is, without publishing again; a
// cancelled one is refused with ErrTaskCancelled, publishing nothing.
//
// The event is saved in the task before it is published (see
// publication), and a completion retried after one that published but
// did not mark the task done (a crash, the database away) re-sends that
// event: the hub keeps the first payload of an event id, so the task must
// report that one. A date of death announced in between then becomes the
// task's corrected date of death, as for one announced while a completion
// is in flight (markDone), and a task cancelled in between is completed
// too, flagged by its reactivated_at: the hub may hold the termination.
func Complete(ctx context.Context, store *Store, pub EventPublisher, id int64) (Task, error) {
	t, err := store.Task(ctx, id)
	if err != nil {
		return Task{}, err
	}
	if t.Status == StatusDone {
		return t, nil
	}
	if t.Status == StatusCancelled && !t.retryable() {
		return Task{}, fmt.Errorf("completing task %d: %w: %s", id, ErrTaskCancelled, t.CancelReason)
	}
	fresh := Event(t, time.Now())
	p, err := store.beginCompletion(ctx, id, publicationOf(fresh))
	if errors.Is(err, errNotCompletable) {
		return settled(ctx, store, id)
	}
	if err != nil {
		return Task{}, err
	}
	ev := p.event(fresh)
	results, err := pub.Publish(ctx, ev)
	if err == nil {
		err = results[0].Err
	}
	if err != nil {
		if notSent(err) {
			// Nothing reached the hub: the task is as it was, and the
			// next completion sends what is known then.
			if aerr := store.abandonCompletion(context.WithoutCancel(ctx), id, ev.ID); aerr != nil {
				err = errors.Join(err, aerr)
			}
		}
		return Task{}, fmt.Errorf("publishing completion: %w", err)
	}
	if err := store.markDone(ctx, id, ev.ID, p.end); err != nil {
		return Task{}, err
	}
	return store.Task(ctx, id)
}

// notSent reports whether a failed publication certainly did not reach
// Kafka: the publisher refused the event (invalid, or its topic missing),
// or no connection to a broker could be made. Any other failure (a
// timeout, a connection lost during the write) may have delivered it, and
// the completion stays in flight so that a retry sends it as it was.
func notSent(err error) bool {
	var reject *schemas.RejectError
	var missing *publisher.TopicMissingError
	var op *net.OpError
	return errors.As(err, &reject) || errors.As(err, &missing) || errors.As(err, &op) && op.Op == "dial"
}

// settled answers a completion of a task that was done, cancelled or
// removed after it was read: the done task as it is, ErrTaskCancelled or
// ErrNotFound.
func settled(ctx context.Context, store *Store, id int64) (Task, error) {
	t, err := store.Task(ctx, id)
	switch {
	case err != nil:
		return Task{}, err
	case t.Status == StatusDone:
		return t, nil
	case t.Status == StatusCancelled:
		return Task{}, fmt.Errorf("completing task %d: %w: %s", id, ErrTaskCancelled, t.CancelReason)
	}
	return Task{}, fmt.Errorf("completing task %d: it changed while completing; try again", id)
}

// publicationOf is what of ev a retry must re-send as it was.
func publicationOf(ev schemas.Event) publication {
	p := publication{eventID: ev.ID, at: ev.Time}
	if d, ok := ev.Payload.(*schemas.InsuranceTerminatedData); ok {
		p.end = d.End
	}
	return p
}

// event is ev (the task's event as it is now) as p published it: p's id,
// time and termination end. The rest of the event follows from the task's
// kind, person and regions, which no notification changes.
func (p publication) event(ev schemas.Event) schemas.Event {
	ev.ID, ev.Time = p.eventID, p.at.UTC()
	if d, ok := ev.Payload.(*schemas.InsuranceTerminatedData); ok {
		sent := *d
		sent.End = p.end
		ev.Payload = &sent
	}
	return ev
}

// Service is the running subscriber with its HTTP API.
type Service struct {
	cfg       Config
	store     *Store
	sub       *sdk.Subscriber
	pub       *publisher.Publisher
	metrics   *metricsHandler
	srv       *http.Server
	closeOnce sync.Once
}

// New opens the store (migrating it), and prepares the subscriber and,
// with Kafka brokers, the publisher.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring social-insurance subscriber: %w", err)
	}
	cfg.setDefaults()
	mh, err := newMetrics()
	if err != nil {
		return nil, err
	}
	store, err := OpenStore(ctx, cfg.Postgres, cfg.Schema, cfg.Logger)
	if err != nil {
		return nil, err
	}
	h, err := NewHandler(store, cfg.Region, mh.provider)
	if err != nil {
		store.Close()
		return nil, err
	}
	h.log = cfg.Logger
	scfg := sdk.Config{Name: cfg.Name, URL: cfg.NATS, Stream: cfg.Stream, SubjectPrefix: cfg.SubjectPrefix,
		Filters: cfg.filters(), Handler: h.Handle, Start: cfg.Start, Concurrency: cfg.Concurrency, AckWait: cfg.AckWait,
		TracerProvider: cfg.TracerProvider, MeterProvider: mh.provider, Logger: cfg.Logger, TLS: cfg.TLS,
		ConsumerPerFilter: cfg.ConsumerPerFilter, User: cfg.NATSUser, Password: cfg.NATSPassword, InboxPrefix: cfg.NATSInboxPrefix,
		Positions: store}
	if cfg.StartOver {
		n, err := store.forgetPositions(ctx)
		if err != nil {
			store.Close()
			return nil, err
		}
		cfg.Logger.Warn("starting over: forgot where the consumers had got to; consumers that are gone start again from a bootstrap or at the start position",
			"positions", n, "bootstrap", cfg.Hub != "")
	}
	if cfg.Hub != "" {
		// Notifications the snapshot already holds are still work: a death
		// during the walk must become a stop_benefits task.
		scfg.Bootstrap = &sdk.Bootstrap{HubURL: cfg.Hub, Purpose: cfg.Purpose, Token: cfg.Token, Handle: h.HandlePerson, DeliverCovered: true}
	}
	sub, err := sdk.New(scfg)
	if err != nil {
		store.Close()
		return nil, err
	}
	s := &Service{cfg: cfg, store: store, sub: sub, metrics: mh}
	if len(cfg.Kafka) > 0 {
		if s.pub, err = publisher.New(publisher.Config{Brokers: cfg.Kafka, TLS: cfg.TLS, SASL: cfg.KafkaSASL,
			Source: schemas.SocialInsurance, Logger: cfg.Logger}); err != nil {
			s.Close()
			return nil, fmt.Errorf("creating the completions publisher: %w", err)
		}
	}
	return s, nil
}

// Store is the service's store.
func (s *Service) Store() *Store { return s.store }

// Run consumes notifications and serves HTTP until ctx ends; it returns
// after the in-flight notifications were recorded and acked. The HTTP
// server lets the requests in flight finish for up to
// Config.ShutdownTimeout, then closes the connections left: a client
// holding one open does not fail the shutdown.
func (s *Service) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.sub.Run(gctx) })
	if s.cfg.HTTPAddr != "" {
		s.srv = s.newServer()
		g.Go(func() error {
			if err := s.listenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving HTTP: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			return s.shutdownHTTP(context.WithoutCancel(ctx))
		})
	}
	return g.Wait()
}

// Close releases the connections; safe to call twice, after Run returned.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.sub.Close()
		if s.pub != nil {
			s.pub.Close()
		}
		s.store.Close()
		_ = s.metrics.provider.Shutdown(context.Background())
	})
	return nil
}
