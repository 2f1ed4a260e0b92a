package audit

import (
	"context"
	"errors"
	"fmt"
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
// serialise on a transaction advisory lock.
type Postgres struct {
	pool      *pgxpool.Pool
	ownPool   bool
	schema    string
	log, anch string // qualified table names
	lockKey   string
	closeOnce sync.Once
	// redactedCol: audit_log has column redacted. A log created by a
	// release before redaction lacks it until a hub of this release starts
	// on it (or Purge adds it); its entries are then read as not redacted.
	redactedCol atomic.Bool
}

// OpenPostgres connects (or takes cfg.Pool) and creates the schema, tables
// and trigger if missing.
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
	p := &Postgres{pool: cfg.Pool, schema: cfg.Schema, lockKey: "pophub-audit:" + cfg.Schema}
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

// migrate creates what is missing, under the chain's advisory lock so that
// instances starting together do not race.
func (p *Postgres) migrate(ctx context.Context) error {
	ddl := ddlFor(p.schema)
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", p.lockKey); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, ddl)
		return err
	})
	if err != nil {
		return fmt.Errorf("creating audit tables: %w", err)
	}
	p.redactedCol.Store(true)
	return nil
}

// ddlFor is the schema's audit tables and trigger.
func ddlFor(schema string) string {
	q := pgx.Identifier{schema}.Sanitize()
	actions := make([]string, len(accessActions))
	for i, a := range accessActions {
		actions[i] = "'" + string(a) + "'"
	}
	return strings.NewReplacer("$S", q, "$ACCESS", strings.Join(actions, ", "),
		"$AFLOOR", fmt.Sprint(AccessFloorMonths), "$PFLOOR", fmt.Sprint(ProcessingFloorMonths)).Replace(`
CREATE SCHEMA IF NOT EXISTS $S;
CREATE TABLE IF NOT EXISTS $S.audit_log (
	seq      bigint PRIMARY KEY,
	at       timestamptz NOT NULL,
	identity text NOT NULL,
	action   text NOT NULL,
	subject  text NOT NULL,
	sections text[] NOT NULL,
	purpose  text NOT NULL,
	status   integer NOT NULL,
	result   text NOT NULL,
	detail   text NOT NULL,
	prev     bytea NOT NULL,
	hash     bytea NOT NULL,
	seal     bytea NOT NULL
);
-- Added with redaction; a constant default adds it without a rewrite.
ALTER TABLE $S.audit_log ADD COLUMN IF NOT EXISTS redacted boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS audit_log_subject ON $S.audit_log (subject, at) WHERE subject <> '';
CREATE INDEX IF NOT EXISTS audit_log_at ON $S.audit_log (at);
CREATE INDEX IF NOT EXISTS audit_log_policy_change ON $S.audit_log (seq) WHERE action = 'policy_change';
CREATE TABLE IF NOT EXISTS $S.audit_anchor (
	id   integer PRIMARY KEY CHECK (id = 1),
	seq  bigint NOT NULL,
	at   timestamptz NOT NULL,
	hash bytea NOT NULL,
	seal bytea NOT NULL
);
-- The time n months before t on China's clocks, whatever the session's
-- TimeZone, on the month's last day when it has no such day: the purge
-- counts months so too (audit.monthsBefore).
CREATE OR REPLACE FUNCTION $S.audit_floor(t timestamptz, n integer) RETURNS timestamptz
	LANGUAGE sql IMMUTABLE STRICT AS
	$g$ SELECT ((t AT TIME ZONE INTERVAL '+08:00') - make_interval(months => n)) AT TIME ZONE INTERVAL '+08:00'$g$;
CREATE OR REPLACE FUNCTION $S.audit_guard() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	IF TG_OP <> 'TRUNCATE' AND current_setting('pophub.audit_purge', true) = 'on' THEN
		IF TG_TABLE_NAME = 'audit_anchor' THEN
			RETURN NEW;
		END IF;
		IF OLD.at >= $S.audit_floor(now(), CASE WHEN OLD.action IN ($ACCESS) THEN $AFLOOR ELSE $PFLOOR END) THEN
			RAISE EXCEPTION 'audit entry % is within its legal retention floor', OLD.seq USING ERRCODE = 'insufficient_privilege';
		END IF;
		IF TG_OP = 'DELETE' THEN
			RETURN OLD;
		END IF;
		-- An UPDATE may only redact: empty the fields, keep the position,
		-- time, action and chain links.
		IF NEW.redacted AND NEW.seq = OLD.seq AND NEW.at = OLD.at AND NEW.action = OLD.action
			AND NEW.prev = OLD.prev AND NEW.hash = OLD.hash AND NEW.seal = OLD.seal
			AND NEW.identity = '' AND NEW.subject = '' AND NEW.sections = '{}' AND NEW.purpose = ''
			AND NEW.status = 0 AND NEW.result = '' AND NEW.detail = '' THEN
			RETURN NEW;
		END IF;
		RAISE EXCEPTION 'audit entry %: a purge may only redact it', OLD.seq USING ERRCODE = 'insufficient_privilege';
	END IF;
	RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END
$f$;
CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON $S.audit_log
	FOR EACH ROW EXECUTE FUNCTION $S.audit_guard();
CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON $S.audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION $S.audit_guard();
CREATE OR REPLACE TRIGGER audit_anchor_append_only BEFORE UPDATE OR DELETE ON $S.audit_anchor
	FOR EACH ROW EXECUTE FUNCTION $S.audit_guard();
CREATE OR REPLACE TRIGGER audit_anchor_no_truncate BEFORE TRUNCATE ON $S.audit_anchor
	FOR EACH STATEMENT EXECUTE FUNCTION $S.audit_guard();
`)
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
	if last <= 0 {
		last = 1<<63 - 1
	}
	return p.query(ctx, "seq BETWEEN $1 AND $2", []any{first, last}, fn)
}

func (p *Postgres) query(ctx context.Context, where string, args []any, fn func(*Entry) error) error {
	rows, err := p.pool.Query(ctx, "SELECT "+p.selectColumns()+" FROM "+p.log+" WHERE "+where+" ORDER BY seq", args...)
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
	err := p.query(ctx, "subject = $1 AND subject <> '' AND at >= $2 AND at < $3", []any{subject, from, to}, func(e *Entry) error {
		out = append(out, *e)
		return nil
	})
	return out, err
}

// Purge implements Store in one transaction: the expired prefix deleted
// behind the new anchor, then the expired entries after it redacted. The
// trigger checks the legal floors again against the database's clock. A
// log that predates redaction gets the column and trigger first.
func (p *Postgres) Purge(ctx context.Context, now time.Time, r Retention) (PurgeResult, error) {
	var res PurgeResult
	if err := r.Validate(); err != nil {
		return res, err
	}
	// The tables and trigger of this release, first: a log of a release
	// before redaction lacks the column, and an instance of that release
	// started since re-created its trigger, which refuses redaction.
	if err := p.migrate(ctx); err != nil {
		return res, fmt.Errorf("purging the audit log: %w", err)
	}
	accessCut, procCut := r.cutoffs(now)
	actions := make([]string, len(accessActions))
	for i, a := range accessActions {
		actions[i] = string(a)
	}
	// expired is the SQL of expired(); its first term lets the index on at
	// bound the scan.
	const expiredSQL = "at < greatest($2::timestamptz, $3::timestamptz) AND at < CASE WHEN action = ANY($1) " +
		"AND NOT (action = '" + string(ActionReadRecord) + "' AND starts_with(detail, '" + legacyDetailPrefix + "')) " +
		"THEN $2::timestamptz ELSE $3::timestamptz END"
	// perClass counts the rows a statement returned its action for.
	const perClass = "SELECT count(*) FILTER (WHERE action = ANY($1)), count(*) FILTER (WHERE NOT action = ANY($1)) FROM "
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		res = PurgeResult{}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", p.lockKey); err != nil {
			return fmt.Errorf("locking the chain: %w", err)
		}
		if _, err := tx.Exec(ctx, "SELECT set_config('pophub.audit_purge', 'on', true)"); err != nil {
			return fmt.Errorf("opening the purge: %w", err)
		}
		// The first entry that must stay, or none.
		var keep *int64
		if err := tx.QueryRow(ctx, "SELECT min(seq) FROM "+p.log+" WHERE NOT ("+expiredSQL+")",
			actions, accessCut, procCut).Scan(&keep); err != nil {
			return fmt.Errorf("finding retained entries: %w", err)
		}
		where, args := "TRUE", []any{}
		if keep != nil {
			where, args = "seq < $1", []any{*keep}
		}
		var a Link
		var hash, seal []byte
		err := tx.QueryRow(ctx, "SELECT seq, at, hash, seal FROM "+p.log+" WHERE "+where+" ORDER BY seq DESC LIMIT 1", args...).
			Scan(&a.Seq, &a.Time, &hash, &seal)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// Nothing to delete from the start.
		case err != nil:
			return fmt.Errorf("finding the new anchor: %w", err)
		default:
			if _, err := tx.Exec(ctx, "INSERT INTO "+p.anch+" (id, seq, at, hash, seal) VALUES (1, $1, $2, $3, $4) "+
				"ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, at = EXCLUDED.at, hash = EXCLUDED.hash, seal = EXCLUDED.seal",
				a.Seq, a.Time, hash, seal); err != nil {
				return fmt.Errorf("storing the anchor: %w", err)
			}
			if err := tx.QueryRow(ctx, "WITH d AS (DELETE FROM "+p.log+" WHERE seq <= $2 RETURNING action) "+perClass+"d",
				actions, a.Seq).Scan(&res.Access.Deleted, &res.Processing.Deleted); err != nil {
				return fmt.Errorf("deleting entries: %w", err)
			}
		}
		// What is left is after the anchor: redact the expired.
		if err := tx.QueryRow(ctx, "WITH u AS (UPDATE "+p.log+" SET identity = '', subject = '', sections = '{}', purpose = '', "+
			"status = 0, result = '', detail = '', redacted = true WHERE NOT redacted AND "+expiredSQL+" RETURNING action) "+perClass+"u",
			actions, accessCut, procCut).Scan(&res.Access.Redacted, &res.Processing.Redacted); err != nil {
			return fmt.Errorf("redacting entries: %w", err)
		}
		return nil
	})
	if err != nil {
		return PurgeResult{}, fmt.Errorf("purging the audit log: %w", err)
	}
	return res, nil
}
