package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The audit tables, functions and triggers, created at every hub start
// without blocking the trail: the catalog is read first and DDL runs only
// for what is missing or stale. Even with IF NOT EXISTS, PostgreSQL takes
// ALTER TABLE's ACCESS EXCLUSIVE (CREATE INDEX's SHARE) before it looks,
// and a request queued behind a long reader of audit_log (an export, a
// verify, pg_dump) stops every Append and SELECT behind it.

// defaultLockTimeout bounds each wait of the audit DDL for a table lock.
const defaultLockTimeout = 2 * time.Second

// maxDDLBackoff caps the pause between two attempts of the audit DDL.
const maxDDLBackoff = 30 * time.Second

// ddlStep is one object of the audit schema: the SQL that creates (or
// replaces) it, and a boolean SQL expression that is true when the
// catalog already holds it as this release makes it.
type ddlStep struct {
	what    string // for people: "column audit_log.redacted"
	present string
	sql     string
}

// ddlPlan is the schema's steps, in the order they must run, and the
// arguments their present expressions take.
type ddlPlan struct {
	steps []ddlStep
	args  []any
}

// trigger types in pg_trigger.tgtype: ROW 1, BEFORE 2, DELETE 8, UPDATE
// 16, TRUNCATE 32.
const (
	tgBeforeUpdateDeleteRow = 1 | 2 | 8 | 16
	tgBeforeTruncate        = 2 | 32
)

// ddlFor is the plan of the schema's audit tables, functions and
// triggers.
func ddlFor(schema string) ddlPlan {
	q := pgx.Identifier{schema}.Sanitize()
	actions := make([]string, len(accessActions))
	for i, a := range accessActions {
		actions[i] = "'" + string(a) + "'"
	}
	r := strings.NewReplacer("$S", q, "$ACCESS", strings.Join(actions, ", "),
		"$AFLOOR", fmt.Sprint(AccessFloorMonths), "$PFLOOR", fmt.Sprint(ProcessingFloorMonths))
	var p ddlPlan
	arg := func(v any) string {
		p.args = append(p.args, v)
		return fmt.Sprintf("$%d::text", len(p.args))
	}
	add := func(what, present, sql string) {
		p.steps = append(p.steps, ddlStep{what: what, present: present, sql: sql})
	}
	regclass := func(name string) string { return "to_regclass(" + arg(pgx.Identifier{schema, name}.Sanitize()) + ")" }
	logRel, anchorRel := regclass("audit_log"), regclass("audit_anchor")

	add("schema "+schema, "EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = "+arg(schema)+")",
		r.Replace(`CREATE SCHEMA IF NOT EXISTS $S`))
	add("table audit_log", logRel+" IS NOT NULL", r.Replace(`CREATE TABLE IF NOT EXISTS $S.audit_log (
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
)`))
	// Added with redaction; a constant default adds it without a rewrite.
	add("column audit_log.redacted",
		"EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = "+logRel+" AND attname = 'redacted' AND NOT attisdropped)",
		r.Replace(`ALTER TABLE $S.audit_log ADD COLUMN IF NOT EXISTS redacted boolean NOT NULL DEFAULT false`))
	for _, ix := range []struct{ name, def string }{
		{"audit_log_subject", "(subject, at) WHERE subject <> ''"},
		{"audit_log_at", "(at)"},
		{"audit_log_policy_change", "(seq) WHERE action = 'policy_change'"},
	} {
		add("index "+ix.name, regclass(ix.name)+" IS NOT NULL",
			r.Replace("CREATE INDEX IF NOT EXISTS "+ix.name+" ON $S.audit_log "+ix.def))
	}
	add("table audit_anchor", anchorRel+" IS NOT NULL", r.Replace(`CREATE TABLE IF NOT EXISTS $S.audit_anchor (
	id   integer PRIMARY KEY CHECK (id = 1),
	seq  bigint NOT NULL,
	at   timestamptz NOT NULL,
	hash bytea NOT NULL,
	seal bytea NOT NULL
)`))

	// A function is current when it is as this release makes it: its
	// body (an instance of an earlier release replaces audit_guard at its
	// start), its language, volatility and strictness, run as its caller,
	// and with its own search_path and no other setting (ALTER FUNCTION
	// ... SET search_path would have now() or an operator resolve in
	// another schema, and every entry count as past its floor). CREATE OR
	// REPLACE FUNCTION resets all of these but the owner.
	function := func(name, signature, lang, volatility string, strict bool, body, create string) string {
		body = r.Replace(body)
		oid := "to_regprocedure(" + arg(q+"."+signature) + ")"
		add("function "+name, "coalesce((SELECT prosrc = "+arg(body)+" AND proconfig = ARRAY["+arg(functionConfig)+"] "+
			"AND NOT prosecdef AND prolang = (SELECT oid FROM pg_language WHERE lanname = "+arg(lang)+") "+
			"AND provolatile = "+arg(volatility)+" AND proisstrict = "+fmt.Sprint(strict)+
			" FROM pg_proc WHERE oid = "+oid+"), false)",
			strings.Replace(r.Replace(create), "$BODY", body, 1))
		return oid
	}
	// The time n months before t on China's clocks, whatever the session's
	// TimeZone, on the month's last day when it has no such day: the purge
	// counts months so too (audit.monthsBefore).
	function("audit_floor", "audit_floor(timestamptz, integer)", "sql", "i", true, floorBody,
		`CREATE OR REPLACE FUNCTION $S.audit_floor(t timestamptz, n integer) RETURNS timestamptz
	LANGUAGE sql IMMUTABLE STRICT SET `+functionConfig+` AS $g$$BODY$g$`)
	guard := function("audit_guard", "audit_guard()", "plpgsql", "v", false, guardBody,
		`CREATE OR REPLACE FUNCTION $S.audit_guard() RETURNS trigger LANGUAGE plpgsql SET `+functionConfig+` AS $f$$BODY$f$`)

	// A trigger is current when it is there, enabled, calls audit_guard
	// and fires on what this release says: on every column (an UPDATE OF
	// some columns lets an UPDATE of the others through), with no
	// condition, argument or transition table, neither internal nor a
	// constraint trigger (CREATE OR REPLACE TRIGGER re-enables a disabled
	// one and widens a narrowed one).
	for _, tg := range []struct {
		name, table, rel, when string
		tgtype                 int
	}{
		{"audit_log_append_only", "audit_log", logRel, "BEFORE UPDATE OR DELETE", tgBeforeUpdateDeleteRow},
		{"audit_log_no_truncate", "audit_log", logRel, "BEFORE TRUNCATE", tgBeforeTruncate},
		{"audit_anchor_append_only", "audit_anchor", anchorRel, "BEFORE UPDATE OR DELETE", tgBeforeUpdateDeleteRow},
		{"audit_anchor_no_truncate", "audit_anchor", anchorRel, "BEFORE TRUNCATE", tgBeforeTruncate},
	} {
		each := "STATEMENT"
		if tg.tgtype&1 != 0 {
			each = "ROW"
		}
		add("trigger "+tg.name, fmt.Sprintf("EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = %s AND tgname = %s AND tgfoid = %s "+
			"AND tgtype = %d AND tgenabled = 'O' AND tgqual IS NULL AND tgnargs = 0 AND tgattr = ''::int2vector "+
			"AND NOT tgisinternal AND tgconstraint = 0 AND tgoldtable IS NULL AND tgnewtable IS NULL)", tg.rel, arg(tg.name), guard, tg.tgtype),
			"CREATE OR REPLACE TRIGGER "+tg.name+" "+tg.when+" ON "+q+"."+tg.table+" FOR EACH "+each+" EXECUTE FUNCTION "+q+".audit_guard()")
	}
	return p
}

// functionConfig is the only setting of the audit functions, as
// pg_proc.proconfig stores it: names resolve in pg_catalog first, whatever
// the calling session's search_path, and temporary objects last.
const functionConfig = "search_path=pg_catalog, pg_temp"

// floorBody is audit_floor's body (between its dollar quotes).
const floorBody = ` SELECT ((t AT TIME ZONE INTERVAL '+08:00') - make_interval(months => n)) AT TIME ZONE INTERVAL '+08:00'`

// guardBody is audit_guard's body: it refuses UPDATE, DELETE and
// TRUNCATE of both tables except, under the purge flag, the deletion of
// entries past their legal floor, their redaction to a stub, and the
// anchor's update.
const guardBody = `
BEGIN
	IF TG_OP <> 'TRUNCATE' AND current_setting('pophub.audit_purge', true) = 'on' THEN
		IF TG_TABLE_NAME = 'audit_anchor' THEN
			RETURN NEW;
		END IF;
		IF OLD.at >= $S.audit_floor(pg_catalog.now(), CASE WHEN OLD.action IN ($ACCESS) THEN $AFLOOR ELSE $PFLOOR END) THEN
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
`

// missing returns the steps whose objects the catalog lacks, reading
// only: no table lock is taken.
func (d ddlPlan) missing(ctx context.Context, q querier) ([]ddlStep, error) {
	exprs := make([]string, len(d.steps))
	for i, s := range d.steps {
		exprs[i] = s.present
	}
	present := make([]bool, len(d.steps))
	dest := make([]any, len(d.steps))
	for i := range present {
		dest[i] = &present[i]
	}
	if err := q.QueryRow(ctx, "SELECT "+strings.Join(exprs, ", "), d.args...).Scan(dest...); err != nil {
		return nil, fmt.Errorf("reading the audit tables' catalog: %w", err)
	}
	var out []ddlStep
	for i, s := range d.steps {
		if !present[i] {
			out = append(out, s)
		}
	}
	return out, nil
}

// migrate creates what the catalog lacks. When nothing does, it only
// reads. Otherwise it runs the missing steps in one transaction under an
// advisory lock of their own (instances starting together run them once;
// the chain's lock, which every Append takes, stays free), with
// lock_timeout: behind a long reader it gives up its place in the lock
// queue, logs who holds the tables, and tries again with growing pauses
// until ctx ends, so that the trail's writers and readers go on meanwhile.
func (p *Postgres) migrate(ctx context.Context) error {
	plan := ddlFor(p.schema)
	todo, err := plan.missing(ctx, p.pool)
	if err != nil {
		return fmt.Errorf("creating audit tables: %w", err)
	}
	backoff := time.Second
	for len(todo) > 0 {
		err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", p.ddlLockKey()); err != nil {
				return fmt.Errorf("taking the audit DDL lock: %w", err)
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", p.lockTimeout.Milliseconds())); err != nil {
				return fmt.Errorf("setting lock_timeout: %w", err)
			}
			// Another instance may have created them while this one waited.
			now, err := plan.missing(ctx, tx)
			if todo = now; err != nil || len(todo) == 0 {
				return err
			}
			sqls := make([]string, len(todo))
			for i, s := range todo {
				sqls[i] = s.sql
			}
			_, err = tx.Exec(ctx, strings.Join(sqls, ";\n"))
			return err
		})
		if err == nil {
			if len(todo) > 0 {
				p.logger.Info("audit log: created or updated", "schema", p.schema, "objects", stepNames(todo))
			}
			break
		}
		if !lockWaitRefused(err) {
			return fmt.Errorf("creating audit tables: %w", err)
		}
		p.logger.Warn("audit log: waiting for the audit tables to be free of other sessions' locks, to create or update objects",
			"schema", p.schema, "objects", stepNames(todo), "lock_timeout", p.lockTimeout,
			"holders", p.lockHolders(ctx), "retry_in", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("creating audit tables: waiting for a lock on the audit tables: %w", ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxDDLBackoff)
	}
	p.redactedCol.Store(true)
	return nil
}

// ddlLockKey names the advisory lock that serialises the audit DDL of
// instances starting together; it is not the chain's.
func (p *Postgres) ddlLockKey() string { return "pophub-audit-ddl:" + p.schema }

// lockWaitRefused reports whether err is PostgreSQL giving up a lock wait
// (lock_timeout) or breaking a deadlock: both worth another attempt.
func lockWaitRefused(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "55P03" || pg.Code == "40P01")
}

func stepNames(steps []ddlStep) string {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.what
	}
	return strings.Join(names, ", ")
}

// lockHolders describes, for the log, the other sessions that hold a lock
// on the audit tables: pid, application, lock mode and how long their
// transaction has been open (never their query, which may hold personal
// data).
func (p *Postgres) lockHolders(ctx context.Context) string {
	rows, err := p.pool.Query(ctx, `SELECT l.relation::regclass::text, l.pid, l.mode, coalesce(a.application_name, ''),
		coalesce(now() - a.xact_start, interval '0')
	FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
	WHERE l.granted AND l.relation IN (to_regclass($1), to_regclass($2)) AND l.pid <> pg_backend_pid()
	ORDER BY a.xact_start NULLS LAST LIMIT 5`, p.log, p.anch)
	if err != nil {
		return "unknown: " + err.Error()
	}
	var out []string
	for rows.Next() {
		var rel, mode, app string
		var pid int32
		var open time.Duration
		if err := rows.Scan(&rel, &pid, &mode, &app, &open); err != nil {
			return "unknown: " + err.Error()
		}
		h := fmt.Sprintf("pid %d holds %s on %s, its transaction open %s", pid, mode, rel, open.Round(time.Second))
		if app != "" {
			h += ", application " + app
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return "unknown: " + err.Error()
	}
	if len(out) == 0 {
		return "none now"
	}
	return strings.Join(out, "; ")
}
