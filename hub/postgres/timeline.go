package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"time"

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
// opens and every timelineEvery after, and on a change logs an error
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

// watchTimelineInBackground starts the goroutine that reads the timeline
// every timelineEvery (Close stops it). A server whose timeline cannot be
// read at all (the functions' EXECUTE revoked from the role) is not
// watched, which the log says.
func (s *Store) watchTimelineInBackground(ctx context.Context) {
	tl, err := s.readTimeline(ctx)
	if err != nil {
		s.cfg.Logger.Warn("failovers will not be noticed: the server's timeline cannot be read", "err", err)
		return
	}
	s.timeline.Store(tl)
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
			rctx, cancel := context.WithTimeout(wctx, every)
			s.checkTimeline(rctx)
			cancel()
		}
	}()
}

// checkTimeline reads the timeline and handles a change. A server that
// cannot be read, or is a standby, is looked at again next time: the
// timeline it has once it takes writes is what counts.
func (s *Store) checkTimeline(ctx context.Context) {
	tl, err := s.readTimeline(ctx)
	if err != nil || tl == 0 {
		return
	}
	was := s.timeline.Swap(tl)
	if was == 0 || was == tl {
		return
	}
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
	what := "a standby was promoted in place of the primary (a failover)"
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
