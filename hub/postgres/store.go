// Package postgres is the production golden-record store on PostgreSQL
// (pgx v5).
//
// Writes are batch-first: one transaction per batch (1) locks the touched
// persons' rows with one INSERT … ON CONFLICT DO UPDATE … WHERE false in
// key order, which inserts a placeholder row for each new person and locks
// the stored ones, then reads the merge state of every stored person whose
// state is not already in this process's cache at the locked version; (2)
// merges in memory (hub/merge); (3) writes the history rows with COPY and
// the batch's notifications as one compressed outbox row (outbox.go) while
// the new states are encoded on another core; (4) writes
// the persons with one UPDATE from unnest arrays; and commits. The
// (source, event id) unique key on history is the idempotency key: a batch
// holding an event applied before fails on it and is retried with an
// explicit look-up that leaves such events out.
//
// Several hub instances may share one schema. The row locks serialise
// batches touching the same person (one writer per person at a time). All
// of a batch's persons, stored or new, are locked by one statement in key
// order, so two batches cannot deadlock on them; serialization failures,
// deadlocks and unique violations are still retried with jittered
// backoff. Their outbox relays take turns: the one holding the schema's
// RelayLease (lease.go) publishes.
//
// Persons are keyed by person_key. The ID is kept only in that key, in the
// merge state blob, in the history data and in the notification bodies of
// the outbox. With a keyring (Config.Keys) the key is a keyed hash of the
// ID and those three blobs are sealed, so that a dump of the schema holds
// no ID or name in clear (see seal.go); without one they are stored in
// clear. A schema records which it is, and refuses the other.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/hub/stats"
	"github.com/pophub/pophub/internal/pgmigrate"
	"github.com/pophub/pophub/schemas/citizenid"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Config configures a Store. Only URL is required.
type Config struct {
	// URL is a PostgreSQL connection string (required).
	URL string
	// Schema holds the hub's tables; Open creates it if missing,
	// OpenExisting refuses it. Default: the schema the URL's search_path
	// names, else "public". A URL whose search_path names another schema
	// is refused, and one naming several unless Schema is one of them:
	// the hub keeps its tables in one schema, and writing them anywhere
	// but where the URL says would be a silent surprise. Open creates no
	// store in a schema only the URL named while public holds one (see
	// checkURLSchema).
	Schema string
	// schemaFromURL is set by poolConfig when Schema came from the URL.
	schemaFromURL bool
	// MaxConns bounds the connection pool. Default: the URL's
	// pool_max_conns, else 8.
	MaxConns int32
	// CacheSize is how many persons' merge states the store keeps in
	// memory between batches (default 100,000; negative disables the
	// cache). A cached state is used only when its version equals the
	// version of the locked row, so the cache never serves a stale state,
	// even with several hub instances on one schema; it saves reading and
	// decoding the state of persons this process wrote recently. A state
	// takes a few kilobytes.
	CacheSize int
	// Classify tells urban from rural addresses for the counters (default
	// stats.UrbanByRegionTable).
	Classify stats.Classify
	// Logger receives migration and retry messages (default: discarded).
	Logger *slog.Logger
	// Keys seals personal data at rest (see seal.go); nil stores it in
	// clear. A schema is opened only with the mode, and the keys, it was
	// first opened with, unless it holds no personal data yet (seal.go).
	Keys *sealing.Keyring
	// Meter receives pophub.store.retries, the batches tried again by
	// cause, and pophub.store.failovers (timeline.go) (default: none).
	Meter metric.Meter
	// indexing tunes the household index walk (households.go); tests
	// set it.
	indexing indexingTuning
	// timelineEvery is how often the server's timeline is read
	// (timeline.go; default timelineEvery); tests lower it.
	timelineEvery time.Duration
	// foldEvery is how often the batches' counter changes are folded
	// into the counters (counterdeltas.go; default foldEvery); tests
	// change it, and a negative one folds only when asked.
	foldEvery time.Duration
	// foldWaitWarning is how long folds may find the tables held before
	// the store warns (default foldWaitWarning); tests lower it.
	foldWaitWarning time.Duration
	// vacuumEvery is how often, at most, the folding goroutine vacuums
	// the changes' table (default vacuumEvery); tests lower it.
	vacuumEvery time.Duration
}

// setDefaults fills in the defaults that do not depend on the URL;
// poolConfig settles Schema and MaxConns.
func (c *Config) setDefaults() {
	if c.CacheSize == 0 {
		c.CacheSize = 100_000
	}
	if c.Classify == nil {
		c.Classify = stats.UrbanByRegionTable
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.indexing.setDefaults()
}

// Validate reports what is wrong with the configuration.
func (c Config) Validate() error {
	if c.URL == "" {
		return errors.New("postgres: a connection URL is required")
	}
	return nil
}

// Store implements hub.Store on PostgreSQL. It is safe for concurrent use,
// and several Stores (in one process or many) may share one schema.
type Store struct {
	cfg  Config
	pool *pgxpool.Pool
	// sessionsReset is when refused writes last closed the pool's
	// sessions (Unix nanoseconds; see resetSessions).
	sessionsReset atomic.Int64
	cache         *stateCache // nil when disabled; holds opened states only
	seal          sealer
	// mode is the sealing mode s writes in, as hub_meta records it
	// (sealingValue); every batch checks the schema still records it.
	mode string
	// id is the schema's store id (StoreID).
	id string
	// householdsIndexed is set once every row's household_key is known
	// to be filled in (households.go).
	householdsIndexed atomic.Bool
	// stopIndexing ends the walk that fills in household_key in the
	// background, and indexing is done once it has ended (Close).
	stopIndexing context.CancelFunc
	indexing     sync.WaitGroup
	// noCounters skips the statistics counters, for the benchmark that
	// measures what keeping them costs.
	noCounters bool
	// verifyBudget bounds the recounted counters VerifyCounters holds in
	// memory (0: verifyCounters); tests lower it.
	verifyBudget int
	// partRow is the outbox row PendingOutbox last returned only in part,
	// decoded, so that the next round, which starts in it, does not read
	// and decompress it again.
	partRow atomic.Pointer[decodedRow]
	// pendingRead maps the outbox rows PendingOutbox last returned
	// entries of to the writes that stored them, so that MarkPublished
	// marks those rows and not others given their numbers since (after a
	// failover).
	pendingRead atomic.Pointer[map[int64]int64]
	// timeline is the server's WAL timeline as last read, failover the
	// last change of it seen and failovers their count (timeline.go);
	// the goroutine reading it ends with stopWatching.
	timeline     atomic.Int64
	failover     atomic.Pointer[Failover]
	failovers    atomic.Int64
	stopWatching context.CancelFunc
	watching     sync.WaitGroup
	// stopFolding ends the goroutine folding counter changes, and
	// folding is done once it has (counterdeltas.go).
	stopFolding context.CancelFunc
	folding     sync.WaitGroup
	// foldedAt is when (Unix ns) a fold last left no committed change
	// behind, and foldMetrics exports its age (counterdeltas.go).
	foldedAt    atomic.Int64
	foldMetrics metric.Registration
	retries     retryCounters
	metrics     metric.Registration
	// leaseTag tells this store's lease sessions from others of the
	// same process (leaseHolderName).
	leaseTag string
	// failoverMetrics exports failovers (timeline.go).
	failoverMetrics metric.Registration
	closeOnce       sync.Once
}

var _ hub.Store = (*Store)(nil)

// Open connects, creates the schema if needed and applies the embedded
// migrations not yet applied (under an advisory lock, so that instances
// starting together do not race).
func Open(ctx context.Context, cfg Config) (*Store, error) { return open(ctx, cfg, true) }

// open is Open when create is true, and OpenExisting when it is false.
func open(ctx context.Context, cfg Config, create bool) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	pc, err := poolConfig(&cfg)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	s := &Store{cfg: cfg, pool: pool, seal: sealer{cfg.Keys}, mode: sealingValue(cfg.Keys), leaseTag: fmt.Sprintf("%04x", rand.Uint32()&0xffff)}
	var unindexed bool // the schema asks for the household index to be filled in
	if cfg.CacheSize > 0 {
		s.cache = newStateCache(cfg.CacheSize)
	}
	// Before anything that takes a session lock or prepares a statement.
	err = checkPooling(ctx, pool)
	if create && err == nil && cfg.schemaFromURL {
		err = checkURLSchema(ctx, pool, cfg.Schema)
	}
	if create && err == nil {
		err = pgmigrate.Apply(ctx, pool, migrations, cfg.Schema, "pophub-migrate", cfg.Logger)
		if err == nil {
			err = checkCurrentSchema(ctx, pool, cfg.Schema)
		}
		if err == nil {
			err = checkSealing(ctx, pool, cfg.Keys, cfg.Logger)
		}
		if err == nil {
			s.id, err = ensureStoreID(ctx, pool)
		}
		if err == nil {
			err = s.recountIfAsked(ctx)
		}
		if err == nil {
			unindexed, err = s.householdsUnindexed(ctx)
		}
		if err == nil {
			err = s.warnIfStale(ctx)
		}
	} else if !create && err == nil {
		err = checkExisting(ctx, pool, cfg.Schema)
		if err == nil {
			err = checkCurrentSchema(ctx, pool, cfg.Schema)
		}
		if err == nil {
			err = readSealing(ctx, pool, cfg.Keys)
		}
		if err == nil {
			s.id, err = readStoreID(ctx, pool)
		}
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	if cfg.Meter != nil {
		if s.metrics, err = s.retries.register(cfg.Meter); err != nil {
			pool.Close()
			return nil, err
		}
		if s.failoverMetrics, err = s.registerFailovers(cfg.Meter); err != nil {
			s.metrics.Unregister()
			pool.Close()
			return nil, err
		}
	}
	if unindexed {
		s.indexHouseholdsInBackground()
	}
	if create {
		s.watchTimeline(ctx)
		s.foldInBackground()
		if cfg.Meter != nil && s.stopFolding != nil {
			if s.foldMetrics, err = s.registerFoldAge(cfg.Meter); err != nil {
				s.Close()
				return nil, err
			}
		}
	}
	return s, nil
}

// personKey derives the storage key of a person: the ID in clear, or its
// keyed hash when the store has keys.
func (s *Store) personKey(id citizenid.ID) string { return s.seal.key(id) }

// Ping implements hub.Store. A database that answers but refuses writes
// (a standby, or default_transaction_read_only on for the role, the
// database or the server, as after a failover onto the wrong node) fails
// too, with ErrReadOnly: every batch fails there, and readiness should
// say so rather than the lag alerts minutes later.
func (s *Store) Ping(ctx context.Context) error {
	var standby bool
	var readOnly string
	err := s.pool.QueryRow(ctx, "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')").Scan(&standby, &readOnly)
	switch {
	case err != nil:
		return fmt.Errorf("pinging PostgreSQL: %w: %w", hub.ErrUnavailable, err)
	case standby:
		return fmt.Errorf("pinging PostgreSQL: %w: %w: the server is a standby (pg_is_in_recovery), and ingest waits until it accepts writes",
			hub.ErrUnavailable, ErrReadOnly)
	case readOnly == "on":
		return fmt.Errorf("pinging PostgreSQL: %w: %w: the session is read-only (default_transaction_read_only is on for the role, the database or the server), and ingest waits until it accepts writes",
			hub.ErrUnavailable, ErrReadOnly)
	}
	return nil
}

// Schema is the schema that holds the store's tables: Config.Schema, or
// the one the URL's search_path names, or "public".
func (s *Store) Schema() string { return s.cfg.Schema }

// Pool exposes the connection pool, for tools and tests.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close stops the household index walk, if one runs (its progress is
// kept), and closes the pool, waiting for connections in use to be
// released. Safe to call twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.stopIndexing != nil {
			s.stopIndexing()
		}
		s.indexing.Wait()
		if s.stopWatching != nil {
			s.stopWatching()
		}
		s.watching.Wait()
		if s.stopFolding != nil {
			s.stopFolding()
		}
		s.folding.Wait()
		if s.metrics != nil {
			s.metrics.Unregister()
		}
		if s.failoverMetrics != nil {
			s.failoverMetrics.Unregister()
		}
		if s.foldMetrics != nil {
			s.foldMetrics.Unregister()
		}
		s.pool.Close()
	})
	return nil
}
