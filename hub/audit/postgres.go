package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresConfig configures a Postgres store. URL or Pool is required.
type PostgresConfig struct {
	// URL is a PostgreSQL connection string; the store opens its own pool.
	URL string
	// Pool is an existing pool to share (for example the hub store's);
	// used when URL is empty, and not closed by Close.
	Pool *pgxpool.Pool
	// Schema holds the audit tables (default "public"); OpenPostgres
	// creates it if missing. Table names are qualified with it, so a shared pool's
	// search_path does not matter.
	Schema string
	// LockTimeout bounds each wait of OpenPostgres (and Purge) for a lock
	// on the audit tables when it must create or alter them (default 2s):
	// behind a long reader it gives up its place in the lock queue, where
	// it would stop every writer and reader of the trail, and tries again.
	LockTimeout time.Duration
	// Logger hears of the audit tables created or updated, of waits for
	// their locks, and of a purge's progress (nil: slog.Default()).
	Logger *slog.Logger
}

// Postgres is the audit log in PostgreSQL: table audit_log (one row per
// entry, the citizen only as its keyed hash) and audit_anchor (the last
// purged entry). A trigger refuses UPDATE, DELETE and TRUNCATE of both,
// except, inside the purge transaction (which sets pophub.audit_purge),
// the DELETE of entries past their legal floor, their redaction to a stub
// (an UPDATE that empties the fields and sets redacted, nothing else),
// and the anchor's update. A role that can disable triggers can still
// tamper; Verify with the key catches all but what the package
// documentation says a stub cannot show. Safe for concurrent use; writers in several processes
// serialise on a transaction advisory lock (the chain's), which the
// creation of the tables does not take and a purge takes for one chunk's
// deletion at a time.
type Postgres struct {
	pool        *pgxpool.Pool
	ownPool     bool
	schema      string
	log, anch   string // qualified table names
	lockKey     string
	closeOnce   sync.Once
	logger      *slog.Logger
	lockTimeout time.Duration
	// purgeChunk is how many positions one purge transaction covers.
	purgeChunk int64
	// chunkDone, when set (tests), is called after each purge transaction
	// committed.
	chunkDone func()
	// redactedCol: audit_log has column redacted. A log created by a
	// release before redaction lacks it until a hub of this release starts
	// on it (or Purge adds it); its entries are then read as not redacted.
	redactedCol atomic.Bool
}

// OpenPostgres connects (or takes cfg.Pool) and creates the schema,
// tables, functions and triggers if missing or stale. It reads the
// catalog first and, when everything is there, issues no DDL and takes
// no lock, so a hub starting while someone reads the trail (an export,
// pg_dump) stops nobody; see migrate for when DDL must run.
func OpenPostgres(ctx context.Context, cfg PostgresConfig) (*Postgres, error) {
	return openPostgres(ctx, cfg, true)
}

// OpenPostgresExisting connects (or takes cfg.Pool) to the log a hub has
// created in cfg.Schema, and creates nothing: the tools that read a hub's
// log use it, so that a mistyped schema is ErrNoLog rather than a new,
// empty log that verifies.
func OpenPostgresExisting(ctx context.Context, cfg PostgresConfig) (*Postgres, error) {
	return openPostgres(ctx, cfg, false)
}

func openPostgres(ctx context.Context, cfg PostgresConfig, create bool) (*Postgres, error) {
	if cfg.Schema == "" {
		cfg.Schema = "public"
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = defaultLockTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Postgres{pool: cfg.Pool, schema: cfg.Schema, lockKey: "pophub-audit:" + cfg.Schema,
		logger: cfg.Logger, lockTimeout: cfg.LockTimeout, purgeChunk: defaultPurgeChunk}
	q := pgx.Identifier{cfg.Schema}.Sanitize()
	p.log, p.anch = q+".audit_log", q+".audit_anchor"
	if cfg.URL != "" {
		pool, err := pgxpool.New(ctx, cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
		}
		p.pool, p.ownPool = pool, true
	}
	if p.pool == nil {
		return nil, errors.New("audit: PostgresConfig needs URL or Pool")
	}
	check := p.migrate
	if !create {
		check = p.exists
	}
	if err := check(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// exists reports ErrNoLog unless both audit tables are there, and notes
// whether audit_log has the redacted column.
func (p *Postgres) exists(ctx context.Context) error {
	var db string
	var found, col bool
	err := p.pool.QueryRow(ctx, "SELECT current_database(), to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL, "+
		"EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'redacted' AND NOT attisdropped)",
		p.log, p.anch).Scan(&db, &found, &col)
	if err != nil {
		return fmt.Errorf("looking for the audit tables: %w", err)
	}
	if !found {
		return fmt.Errorf("%w in schema %q of database %q", ErrNoLog, p.schema, db)
	}
	p.redactedCol.Store(col)
	return nil
}

// Close closes the pool if the store opened it. Safe to call twice.
func (p *Postgres) Close() error {
	p.closeOnce.Do(func() {
		if p.ownPool {
			p.pool.Close()
		}
	})
	return nil
}

// Pool is the store's connection pool, for tools and tests.
func (p *Postgres) Pool() *pgxpool.Pool { return p.pool }

// Table is the qualified name of the entries table, for tools and tests.
func (p *Postgres) Table() string { return p.log }

// logColumns are the columns Append writes (redacted takes its default).
var logColumns = []string{"seq", "at", "identity", "action", "subject", "sections", "purpose", "status", "result", "detail", "prev", "hash", "seal"}

// selectColumns is what query reads: logColumns and redacted, false for a
// log that predates the column.
func (p *Postgres) selectColumns() string {
	redacted := "false"
	if p.redactedCol.Load() {
		redacted = "redacted"
	}
	return strings.Join(logColumns, ", ") + ", " + redacted
}

// Append implements Appender: one transaction holding the chain's advisory
// lock, the head read inside it, the batch written with COPY.
func (p *Postgres) Append(ctx context.Context, batch []Entry, link func(head Link) Link) error {
	if len(batch) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", p.lockKey); err != nil {
			return fmt.Errorf("locking the chain: %w", err)
		}
		head, err := p.head(ctx, tx)
		if err != nil {
			return err
		}
		link(head)
		rows := make([][]any, len(batch))
		for i := range batch {
			e := &batch[i]
			sections := e.Sections
			if sections == nil {
				sections = []string{}
			}
			rows[i] = []any{e.Seq, e.Time, e.Identity, string(e.Action), e.Subject, sections, e.Purpose,
				int32(e.Status), e.Result, e.Detail, e.Prev[:], e.Hash[:], e.Seal[:]}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{p.schema, "audit_log"}, logColumns, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copying entries: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("appending audit entries: %w", err)
	}
	return nil
}

// head is the last entry's position, or the anchor.
func (p *Postgres) head(ctx context.Context, q querier) (Link, error) {
	var l Link
	var hash, seal []byte
	err := q.QueryRow(ctx, "SELECT seq, at, hash, seal FROM "+p.log+" ORDER BY seq DESC LIMIT 1").Scan(&l.Seq, &l.Time, &hash, &seal)
	if errors.Is(err, pgx.ErrNoRows) {
		return p.anchor(ctx, q)
	}
	if err != nil {
		return Link{}, fmt.Errorf("reading the chain head: %w", err)
	}
	copy(l.Hash[:], hash)
	copy(l.Seal[:], seal)
	l.Time = l.Time.UTC()
	return l, nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (p *Postgres) anchor(ctx context.Context, q querier) (Link, error) {
	var l Link
	var hash, seal []byte
	err := q.QueryRow(ctx, "SELECT seq, at, hash, seal FROM "+p.anch+" WHERE id = 1").Scan(&l.Seq, &l.Time, &hash, &seal)
	if errors.Is(err, pgx.ErrNoRows) {
		return Link{}, nil
	}
	if err != nil {
		return Link{}, fmt.Errorf("reading the anchor: %w", err)
	}
	copy(l.Hash[:], hash)
	copy(l.Seal[:], seal)
	l.Time = l.Time.UTC()
	return l, nil
}

// Head implements Store.
func (p *Postgres) Head(ctx context.Context) (Link, error) { return p.head(ctx, p.pool) }

// Anchor implements Scanner.
func (p *Postgres) Anchor(ctx context.Context) (Link, error) { return p.anchor(ctx, p.pool) }

// Scan implements Scanner, in sequence order, streaming.
func (p *Postgres) Scan(ctx context.Context, first, last int64, fn func(*Entry) error) error {
	return p.scan(ctx, p.pool, first, last, fn)
}

func (p *Postgres) scan(ctx context.Context, src rowsQuerier, first, last int64, fn func(*Entry) error) error {
	if last <= 0 {
		last = 1<<63 - 1
	}
	return p.query(ctx, src, "seq BETWEEN $1 AND $2", []any{first, last}, fn)
}

// rowsQuerier is the pool, or a transaction reading one snapshot.
type rowsQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func (p *Postgres) query(ctx context.Context, src rowsQuerier, where string, args []any, fn func(*Entry) error) error {
	rows, err := src.Query(ctx, "SELECT "+p.selectColumns()+" FROM "+p.log+" WHERE "+where+" ORDER BY seq", args...)
	if err != nil {
		return fmt.Errorf("reading audit entries: %w", err)
	}
	defer rows.Close()
	var (
		e                Entry
		action           string
		status           int32
		prev, hash, seal []byte
	)
	for rows.Next() {
		e.Sections = nil
		if err := rows.Scan(&e.Seq, &e.Time, &e.Identity, &action, &e.Subject, &e.Sections, &e.Purpose,
			&status, &e.Result, &e.Detail, &prev, &hash, &seal, &e.Redacted); err != nil {
			return fmt.Errorf("reading audit entries: %w", err)
		}
		e.Action, e.Status = Action(action), int(status)
		e.Time = e.Time.UTC()
		if len(e.Sections) == 0 {
			e.Sections = nil
		}
		e.Prev, e.Hash, e.Seal = Sum{}, Sum{}, Sum{}
		copy(e.Prev[:], prev)
		copy(e.Hash[:], hash)
		copy(e.Seal[:], seal)
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading audit entries: %w", err)
	}
	return nil
}

// SeqRange implements Store.
func (p *Postgres) SeqRange(ctx context.Context, from, to time.Time) (first, last int64, ok bool, err error) {
	var f, l *int64
	err = p.pool.QueryRow(ctx, "SELECT min(seq), max(seq) FROM "+p.log+" WHERE at >= $1 AND at < $2", from, to).Scan(&f, &l)
	if err != nil {
		return 0, 0, false, fmt.Errorf("finding the export range: %w", err)
	}
	if f == nil {
		return 0, 0, false, nil
	}
	return *f, *l, true, nil
}

// WhoRead implements Store, using the subject index.
func (p *Postgres) WhoRead(ctx context.Context, subject string, from, to time.Time) ([]Entry, error) {
	var out []Entry
	err := p.query(ctx, p.pool, "subject = $1 AND subject <> '' AND at >= $2 AND at < $3", []any{subject, from, to}, func(e *Entry) error {
		out = append(out, *e)
		return nil
	})
	return out, err
}

// readConsistent calls fn with a Scanner that reads one snapshot of the
// log, anchor and entries alike: a purge moves the anchor forward chunk
// by chunk, and a verification that read the anchor before a chunk
// committed and the entries after would see the chunk's entries missing.
func (p *Postgres) readConsistent(ctx context.Context, fn func(Scanner) error) error {
	tx, err := p.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("reading the audit log: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return fn(snapshot{p: p, tx: tx})
}

// snapshot is a Scanner over one transaction's snapshot of the log.
type snapshot struct {
	p  *Postgres
	tx pgx.Tx
}

func (s snapshot) Anchor(ctx context.Context) (Link, error) { return s.p.anchor(ctx, s.tx) }

func (s snapshot) Scan(ctx context.Context, first, last int64, fn func(*Entry) error) error {
	return s.p.scan(ctx, s.tx, first, last, fn)
}
