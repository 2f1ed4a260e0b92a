package socialinsurance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestDatabaseOutageLosesNoTask: while the bureau's PostgreSQL is
// unreachable for longer than the SDK's retries last (a restart with a
// long checkpoint, a failover), notifications wait rather than go to the
// dead letters; every one becomes its task once the database is back.
func TestDatabaseOutageLosesNoTask(t *testing.T) {
	srv := sdktest.StartServer(t)
	_, js := sdktest.Connect(t, srv.URL())
	sdktest.CreateStream(t, js, schemas.StreamName, "pop")
	schema := testenv.Schema(t)
	pgURL, p := testenv.PostgresThroughProxy(t)
	svc, err := New(context.Background(), Config{Region: "2301", NATS: srv.URL(), Postgres: pgURL, Schema: schema,
		Start: sdk.Start{Policy: sdk.StartAll}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); <-done; svc.Close() }()

	p.SetDown(true)
	p.Cut()
	const n = 20
	for i := range n {
		m := sdktest.Migration(fmt.Sprintf("m%d", i), sdktest.CitizenID(i), 2, daoli, beijing)
		sdktest.Publish(t, js, sdktest.Msg(sdktest.Subject("pop", m, ""), m, ""))
	}
	time.Sleep(25 * time.Second) // past the SDK's five attempts (about 21 s)
	p.SetDown(false)

	deadline := time.Now().Add(60 * time.Second)
	for {
		tasks, err := svc.Store().Tasks(context.Background(), TaskFilter{})
		if err == nil && len(tasks) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d tasks after the database came back (%v)", len(tasks), n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if s, err := js.Stream(context.Background(), "POPDLQ"); err == nil {
		if info, err := s.Info(context.Background()); err == nil && info.State.Msgs > 0 {
			t.Errorf("%d notifications dead-lettered during the outage", info.State.Msgs)
		}
	}
}

// TestDatabaseUnreachable tells the database being away from it refusing
// the statement, which a retry cannot mend.
func TestDatabaseUnreachable(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"connection refused", context.Background(), &pgconn.ConnectError{}, true},
		{"connection lost", context.Background(), fmt.Errorf("recording: %w", io.ErrUnexpectedEOF), true},
		{"admin shutdown", context.Background(), &pgconn.PgError{Code: "57P01"}, true},
		{"too many connections", context.Background(), &pgconn.PgError{Code: "53300"}, true},
		{"serialization failure", context.Background(), &pgconn.PgError{Code: "40001"}, true},
		{"unique violation", context.Background(), &pgconn.PgError{Code: "23505"}, false},
		{"undefined table", context.Background(), &pgconn.PgError{Code: "42P01"}, false},
		{"other", context.Background(), errors.New("bad notification"), false},
		{"caller gave up", canceled, io.ErrUnexpectedEOF, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := databaseUnreachable(tc.ctx, tc.err); got != tc.want {
				t.Errorf("databaseUnreachable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
