package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/metric"
)

// A failover promotes a standby in the primary's place. With asynchronous
// replication the standby may lack the primary's last transactions, and
// the events they applied are lost: the consumer group's offsets in Kafka
// were committed past them. The database answers as before, the hub
// resumes at once, and nothing but `pophub reconcile` would show it. The
// store notices it instead by the server's WAL timeline, which a
// promotion moves on by one (and which a server restored from a backup,
// or another server at the address, may move back): it reads it when it
// opens and every timelineEvery after, compares it with the last one seen
// (its own, or the schema's in hub_meta), and on a change logs an error
// saying what to do, counts it (pophub.store.failovers) and keeps it for
// the status page (LastFailover).
//
// The timeline is the first 8 hex digits of the current WAL file's name,
// which any role may read on a primary; pg_control_checkpoint's moves
// only at the checkpoint after the promotion.
const timelineSQL = `SELECT CASE WHEN pg_is_in_recovery() THEN 0
	ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint END`

// timelineEvery is how often the store reads the server's timeline.
const timelineEvery = 5 * time.Second

// Failover is a change of the database server's timeline the store saw.
type Failover struct {
	// From and To are the timelines before and after.
	From, To int64
	// At is when the store saw it.
	At time.Time
}

// readTimeline is the server's timeline, 0 while it is a standby.
func (s *Store) readTimeline(ctx context.Context) (int64, error) {
	var tl int64
	if err := s.pool.QueryRow(ctx, timelineSQL).Scan(&tl); err != nil {
		return 0, fmt.Errorf("reading the server's timeline: %w", err)
	}
	return tl, nil
}

// timelineMeta names the hub_meta row that holds the timeline the
// schema's instances last saw. It is replicated with the rows, so a
// promoted standby holds the old primary's: a failover while no instance
// ran, or while every instance restarted, is noticed by the next to open.
const timelineMeta = "timeline"

// watchTimeline reads the timeline once, then every timelineEvery in a
// goroutine that Close stops. A role that may not read it (the functions'
// EXECUTE revoked) leaves failovers unnoticed, which the log says; other
// errors (the server away) are tried again.
func (s *Store) watchTimeline(ctx context.Context) {
	if err := s.checkTimeline(ctx); cannotReadTimeline(err) {
		s.cfg.Logger.Warn("failovers will not be noticed: the role may not read the server's timeline", "err", err)
		return
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.stopWatching = cancel
	s.watching.Add(1)
	go func() {
		defer s.watching.Done()
		every := s.cfg.timelineEvery
		if every == 0 {
			every = timelineEvery
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			rctx, cancel := context.WithTimeout(wctx, max(every, time.Second))
			err := s.checkTimeline(rctx)
			cancel()
			if cannotReadTimeline(err) {
				s.cfg.Logger.Warn("failovers will not be noticed: the role may not read the server's timeline", "err", err)
				return
			}
		}
	}()
}

// cannotReadTimeline reports whether err says the role may not read the
// timeline, or the server has no such function: asking again is no use.
func cannotReadTimeline(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42501" || pe.Code == "42883")
}

// checkTimeline reads the server's timeline and, on a primary, compares it
// with the last one seen: this store's, or, before it has seen one, the
// schema's (timelineMeta). A server that cannot be read, or is a standby,
// is looked at again next time: the timeline it has once it takes writes
// is what counts.
func (s *Store) checkTimeline(ctx context.Context) error {
	tl, err := s.readTimeline(ctx)
	if err != nil || tl == 0 {
		return err
	}
	was := s.timeline.Load()
	if was == 0 {
		var stored string
		err := s.pool.QueryRow(ctx, "SELECT value FROM hub_meta WHERE name = $1", timelineMeta).Scan(&stored)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("reading the timeline last seen: %w", err)
		default:
			// A value this release did not write counts as none.
			was, _ = strconv.ParseInt(stored, 10, 64)
		}
	}
	if was == tl {
		s.timeline.Store(tl)
		return nil
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO hub_meta (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, timelineMeta, strconv.FormatInt(tl, 10)); err != nil {
		return fmt.Errorf("saving the timeline: %w", err)
	}
	s.timeline.Store(tl)
	if was != 0 {
		s.failedOver(ctx, was, tl)
	}
	return nil
}

// failedOver handles a change of the server's timeline from was to tl.
func (s *Store) failedOver(ctx context.Context, was, tl int64) {
	f := &Failover{From: was, To: tl, At: time.Now().UTC()}
	s.failover.Store(f)
	s.failovers.Add(1)
	// Nothing held in memory about the database's rows is worth keeping
	// (the caches check the write that stored a row, but cost nothing to
	// fill again).
	if s.cache != nil {
		s.cache.clear()
	}
	s.partRow.Store(nil)
	what := "a standby was promoted in place of the primary (a failover), or the server restored from a backup"
	if tl < was {
		what = "the server is another one, or one restored from a backup"
	}
	s.cfg.Logger.LogAttrs(ctx, slog.LevelError, "the database server's timeline changed: "+what+
		"; with asynchronous replication it may lack the old primary's last transactions, and their events are then lost "+
		"while the consumer group's offsets are past them: run pophub reconcile and, on a gap, pophub offsets rewind "+
		"(README, A failover to a standby that lags behind)",
		slog.Int64("from_timeline", was), slog.Int64("to_timeline", tl), slog.String("schema", s.cfg.Schema))
}

// LastFailover is the last change of the server's timeline this store
// saw since it opened, if any (api.FailoverStore).
func (s *Store) LastFailover() (from, to int64, at time.Time, ok bool) {
	if f := s.failover.Load(); f != nil {
		return f.From, f.To, f.At, true
	}
	return 0, 0, time.Time{}, false
}

// registerFailovers exports the count as pophub.store.failovers.
func (s *Store) registerFailovers(m metric.Meter) (metric.Registration, error) {
	counter, err := m.Int64ObservableCounter("pophub.store.failovers", metric.WithUnit("{failover}"),
		metric.WithDescription("Changes of the database server's timeline seen since the hub started: a standby promoted (a failover), "+
			"or another server at the address. Events of transactions the new server lacks are lost; run pophub reconcile."))
	if err != nil {
		return nil, fmt.Errorf("creating failover counter: %w", err)
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(counter, s.failovers.Load())
		return nil
	}, counter)
	if err != nil {
		return nil, fmt.Errorf("registering failover counter: %w", err)
	}
	return reg, nil
}
