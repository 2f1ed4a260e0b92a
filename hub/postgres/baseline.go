package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Baseline measures what PostgreSQL itself sustains for the writes the hub
// makes, without the hub: per batch of 2,000 events, one INSERT … ON
// CONFLICT DO UPDATE of the touched golden rows (state blobs of the size
// the hub writes) and a COPY of the history rows, in one transaction with
// synchronous commit on. Ten events per person, as in a typical batch. It
// returns events per second. The tables are created in schema, which the
// caller drops.
func Baseline(ctx context.Context, url, schema string, events int) (float64, error) {
	s, err := Open(ctx, Config{URL: url, Schema: schema})
	if err != nil {
		return 0, err
	}
	defer s.Close()

	const batchSize = 2000
	const perPerson = 10
	state := []byte(`{"id":"230102199001011234","ver":12,"upd":"2026-01-01T00:00:00Z","first":"2015-01-01T00:00:00+08:00",` +
		`"name":{"v":"王芳","at":{"t":"2015-01-01T08:00:00+08:00","s":"public_security","i":"ps-1"}},` +
		`"loc":{"v":{"a":"230102001001"},"at":{"t":"2015-01-01T08:00:00+08:00","s":"public_security","i":"ps-1"}},` +
		`"ins":{"pension":{"e":{"v":"2023-03-01","at":{"t":"2023-03-01T09:00:00+08:00","s":"social_insurance","i":"si-1"}},` +
		`"m":["2024-01","2024-02","2024-03","2024-04","2024-05","2024-06","2024-07","2024-08","2024-09","2024-10","2024-11","2024-12"]}},` +
		strings.Repeat(`"pad":"x",`, 20) + `"prov":{}}`)
	data := []byte(`{"month":"2024-05","region":"230102","insurances":["pension","medical","unemployment"]}`)
	now := time.Now()
	start := time.Now()
	for done := 0; done < events; done += batchSize {
		n := min(batchSize, events-done)
		persons := max(1, n/perPerson)
		keys := make([]string, persons)
		vers := make([]int64, persons)
		addrs := make([]string, persons)
		statuses := make([]string, persons)
		states := make([][]byte, persons)
		for i := range keys {
			keys[i] = fmt.Sprintf("p%012d", (done/perPerson+i)%max(1, events/perPerson/4))
			vers[i] = int64(done + i)
			addrs[i] = "230102001001"
			statuses[i] = "active"
			states[i] = state
		}
		rows := make([][]any, n)
		for i := range rows {
			rows[i] = []any{keys[i%persons], int64(done + i), "social_insurance", fmt.Sprintf("si-%d", done+i),
				"social_insurance.contribution_recorded", now, now, []string{"social_insurance"}, data}
		}
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return 0, fmt.Errorf("baseline: %w", err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO persons (person_key, version, address_code, status, state, updated_at)
			SELECT k, v, a, s, st, $6 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bytea[]) AS u(k, v, a, s, st)
			ON CONFLICT (person_key) DO UPDATE SET version = excluded.version, address_code = excluded.address_code,
				status = excluded.status, state = excluded.state, updated_at = excluded.updated_at`,
			keys, vers, addrs, statuses, states, now)
		if err == nil {
			_, err = tx.CopyFrom(ctx, pgx.Identifier{"history"},
				[]string{"person_key", "version", "source", "event_id", "type", "time", "applied_at", "sections", "data"}, pgx.CopyFromRows(rows))
		}
		if err == nil {
			err = tx.Commit(ctx)
		}
		if err != nil {
			tx.Rollback(ctx)
			return 0, fmt.Errorf("baseline batch: %w", err)
		}
	}
	return float64(events) / time.Since(start).Seconds(), nil
}
