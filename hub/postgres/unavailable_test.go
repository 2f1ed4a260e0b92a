package postgres

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/faults"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// openThroughProxy opens a store on a schema of its own whose connections
// pass through a proxy the test can cut.
func openThroughProxy(t testing.TB) (*Store, *faults.Proxy) {
	t.Helper()
	schema := testenv.Schema(t)
	pgURL, p := testenv.PostgresThroughProxy(t)
	s, err := Open(context.Background(), Config{URL: pgURL, Schema: schema})
	if err != nil {
		t.Fatalf("opening PostgreSQL store through a proxy: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, p
}

// storeReads are the reads the HTTP API serves from the store.
func storeReads(in []hub.Input) []struct {
	name string
	read func(ctx context.Context, s *Store) error
} {
	id := in[0].Event.Subject
	return []struct {
		name string
		read func(ctx context.Context, s *Store) error
	}{
		{"person", func(ctx context.Context, s *Store) error { _, err := s.Person(ctx, id); return err }},
		{"history", func(ctx context.Context, s *Store) error { _, err := s.History(ctx, id); return err }},
		{"persons", func(ctx context.Context, s *Store) error {
			_, _, err := s.Persons(ctx, hub.PersonQuery{Region: "23", Limit: 10})
			return err
		}},
		{"counts", func(ctx context.Context, s *Store) error {
			_, err := s.Counts(ctx, hub.CountQuery{Regions: []string{"23", "2301"}, AsOf: "2026-01-01"})
			return err
		}},
		{"known events", func(ctx context.Context, s *Store) error {
			_, err := s.KnownEvents(ctx, []schemas.EventKey{in[0].Event.Key()})
			return err
		}},
		{"stats", func(ctx context.Context, s *Store) error { _, err := s.Stats(ctx); return err }},
	}
}

// TestReadsDuringOutage: while PostgreSQL cannot be reached, every read
// the API serves fails with hub.ErrUnavailable (which the API answers as
// 503 with Retry-After) and keeps the cause; once PostgreSQL is back, the
// same reads succeed again.
func TestReadsDuringOutage(t *testing.T) {
	outages := []struct {
		name string
		cut  func(p *faults.Proxy)
	}{
		{"connections closed", func(p *faults.Proxy) { p.SetDown(true); p.Cut() }},
		{"connections reset", func(p *faults.Proxy) { p.SetDown(true); p.Reset() }},
	}
	in := storetest.Population(t, 5, 17)
	for _, outage := range outages {
		t.Run(outage.name, func(t *testing.T) {
			s, p := openThroughProxy(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := s.Apply(ctx, in); err != nil {
				t.Fatal(err)
			}
			reads := storeReads(in)
			for _, r := range reads {
				if err := r.read(ctx, s); err != nil {
					t.Fatalf("%s before the outage: %v", r.name, err)
				}
			}
			outage.cut(p)
			for _, r := range reads {
				err := r.read(ctx, s)
				if !errors.Is(err, hub.ErrUnavailable) {
					t.Errorf("%s during the outage: %v, want an error wrapping hub.ErrUnavailable", r.name, err)
					continue
				}
				if strings.HasSuffix(err.Error(), hub.ErrUnavailable.Error()) {
					t.Errorf("%s during the outage: %q does not say what failed", r.name, err)
				}
			}
			p.SetDown(false)
			for _, r := range reads {
				if err := r.read(ctx, s); err != nil {
					t.Errorf("%s after the outage: %v", r.name, err)
				}
			}
		})
	}
}

// TestReadErrorsThatAreNotOutages: a read that fails because its caller
// gave up, or because the server refused the statement, is not reported
// as the store being unavailable, so it is not answered as one to retry.
func TestReadErrorsThatAreNotOutages(t *testing.T) {
	in := storetest.Population(t, 2, 19)
	s, p := openThroughProxy(t)
	if _, err := s.Apply(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, r := range storeReads(in) {
		t.Run("caller gave up/"+r.name, func(t *testing.T) {
			if err := r.read(cancelled, s); err == nil || errors.Is(err, hub.ErrUnavailable) {
				t.Errorf("got %v, want an error that is not hub.ErrUnavailable", err)
			}
		})
	}
	if _, err := s.Pool().Exec(context.Background(), "DROP TABLE stats_counters"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Counts(context.Background(), hub.CountQuery{Regions: []string{"23"}, AsOf: "2026-01-01"})
	if err == nil || errors.Is(err, hub.ErrUnavailable) {
		t.Errorf("statement refused: got %v, want an error that is not hub.ErrUnavailable", err)
	}
	// A deadline of the caller's that passes while the server is slow to
	// answer is the caller giving up too.
	p.SetLatency(time.Second)
	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	if err := storeReads(in)[0].read(short, s); err == nil || errors.Is(err, hub.ErrUnavailable) {
		t.Errorf("caller's deadline passed: got %v, want an error that is not hub.ErrUnavailable", err)
	}
	p.SetLatency(0)
}

// TestRetryAfterOutageKeepsTurn: a batch whose attempt failed before it
// locked anything (PostgreSQL unreachable for a moment) keeps its turn,
// so that the consumer's retry of it still takes effect before the
// partition's next batch: a marriage and the later divorce stay in that
// order in history, each changing the marital section.
func TestRetryAfterOutageKeepsTurn(t *testing.T) {
	s, p := openThroughProxy(t)
	day := func(d int) time.Time { return time.Date(2020, 3, d, 9, 0, 0, 0, time.UTC) }
	id, spouse := storetest.ValidID(616161), storetest.ValidID(616162)
	married := storetest.Event(t, schemas.MarriageRegistered, id, "m-1", day(1), schemas.MarriageRegisteredData{SpouseID: spouse})
	divorced := storetest.Event(t, schemas.MarriageDivorced, id, "m-2", day(20), schemas.MarriageDivorcedData{SpouseID: spouse})

	aPassed := make(chan struct{})
	ctxA := hub.WithTurn(context.Background(), nil, sync.OnceFunc(func() { close(aPassed) }))
	ctxB := hub.WithTurn(context.Background(), aPassed, func() {})

	p.SetDown(true)
	p.Cut()
	attempt, cancel := context.WithTimeout(ctxA, 3*time.Second)
	defer cancel()
	if _, err := s.Apply(attempt, []hub.Input{married}); err == nil {
		t.Fatal("the marriage was applied while PostgreSQL could not be reached")
	}
	p.SetDown(false)

	// The divorce's batch, already in flight, must wait for the
	// marriage's retry; a store that passed the turn on the failure lets
	// it through now (a wait, not an assertion: history tells).
	bDone := make(chan error, 1)
	go func() {
		_, err := s.Apply(ctxB, []hub.Input{divorced})
		bDone <- err
	}()
	select {
	case err := <-bDone:
		bDone <- err
	case <-time.After(time.Second):
	}
	if _, err := s.Apply(ctxA, []hub.Input{married}); err != nil {
		t.Fatalf("retrying the marriage: %v", err)
	}
	select {
	case err := <-bDone:
		if err != nil {
			t.Fatalf("applying the divorce: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the divorce's batch was never applied: the retry did not pass its turn")
	}
	storetest.AppliedInTurn(t, s, id, "m-1", "m-2")
}

// TestOpenGivesUpOnASilentServer: a server whose host froze accepts the
// TCP connection and never answers. Open waited for it, silent, for ever
// (`pophub serve` with it); it now gives up after the connect timeout
// (defaultConnectTimeout, unless the URL's connect_timeout says
// otherwise) and says so.
func TestOpenGivesUpOnASilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered, until the test ends
		}
	}()
	start := time.Now()
	s, err := Open(context.Background(), Config{URL: "postgres://postgres@" + ln.Addr().String() + "/test?connect_timeout=1"})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded on a server that never answers")
	}
	if took := time.Since(start); took > 20*time.Second || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("Open on a silent server: %v after %s, want a timeout", err, took.Round(time.Millisecond))
	}
	cfg := Config{URL: "postgres://postgres@" + ln.Addr().String() + "/test"}
	pc, err := poolConfig(&cfg)
	if err != nil || pc.ConnConfig.ConnectTimeout != defaultConnectTimeout {
		t.Errorf("a URL without connect_timeout: %v (%v), want %v", pc.ConnConfig.ConnectTimeout, err, defaultConnectTimeout)
	}
}
