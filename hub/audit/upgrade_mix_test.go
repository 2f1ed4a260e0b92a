package audit

import (
	"context"
	"strings"
	"testing"
	"time"
)

// oldGuard is audit_guard as the previous release (553d7b6) creates it
// with CREATE OR REPLACE at every hub start (its OpenPostgres → migrate).
const oldGuard = `CREATE OR REPLACE FUNCTION $S.audit_guard() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	IF TG_OP <> 'TRUNCATE' AND current_setting('pophub.audit_purge', true) = 'on' THEN
		IF TG_TABLE_NAME = 'audit_anchor' THEN
			RETURN NEW;
		END IF;
		IF TG_OP = 'DELETE' THEN
			IF OLD.at >= now() - (CASE WHEN OLD.action IN ('read_record', 'read_history', 'list_persons', 'stats_pull', 'audit_read') THEN interval '6 months' ELSE interval '36 months' END) THEN
				RAISE EXCEPTION 'audit entry % is within its legal retention floor', OLD.seq USING ERRCODE = 'insufficient_privilege';
			END IF;
			RETURN OLD;
		END IF;
	END IF;
	RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END
$f$;`

// TestPurgeAfterAnEarlierReleaseReplacedTheTrigger: an instance of the
// previous release that starts on the schema after a current one added
// the redacted column (a rollback, or one not stopped before the
// upgrade) re-creates audit_guard without the redaction branch. Purge
// puts this release's trigger back first, so it still deletes the
// expired prefix and redacts what lies behind a kept entry, rather than
// failing as a whole ("audit_log is append-only: UPDATE refused").
func TestPurgeAfterAnEarlierReleaseReplacedTheTrigger(t *testing.T) {
	s := testPostgres(t)
	k := testKey(t)
	ctx := context.Background()
	now := time.Now().UTC()
	appendAt(t, s, k, []Entry{
		readAt(k, now.AddDate(-4, 0, 0), 0), // expired prefix: deleted
		{Time: now.AddDate(-1, 0, 0), Identity: "housing", Action: "publish_events", Result: "accepted"}, // kept 3 years
		readAt(k, now.AddDate(0, -8, 0), 0), // expired behind it: redacted
		readAt(k, now.AddDate(0, -1, 0), 1),
	})
	// The previous release's instance starts: its migrate replaces the function.
	if _, err := s.pool.Exec(ctx, strings.ReplaceAll(oldGuard, "$S", `"`+s.schema+`"`)); err != nil {
		t.Fatal(err)
	}
	res, err := s.Purge(ctx, now, Retention{})
	if err != nil {
		t.Fatalf("purge after an instance of the previous release started: %v", err)
	}
	if res.Deleted() != 1 || res.Redacted() != 1 {
		t.Fatalf("purge: %+v", res)
	}
}
