package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
)

// TestRelayLease: of the stores on one schema (hub instances), one holds
// the relay lease at a time; a store on another schema has its own. The
// lease passes on when its holder releases it and when the holder's
// session ends, and the holder then learns that it lost it.
func TestRelayLease(t *testing.T) {
	ctx := context.Background()
	schema := testenv.Schema(t)
	a, b := openTestStore(t, schema).RelayLease(), openTestStore(t, schema).RelayLease()
	other := openTestStore(t, testenv.Schema(t)).RelayLease()
	for _, l := range []*RelayLease{a, b, other} {
		t.Cleanup(func() { l.Release(ctx) })
	}
	try := func(name string, l *RelayLease, want bool) {
		t.Helper()
		got, err := l.TryAcquire(ctx)
		if err != nil {
			t.Fatalf("%s: TryAcquire: %v", name, err)
		}
		if got != want {
			t.Fatalf("%s: TryAcquire = %v, want %v", name, got, want)
		}
	}

	try("first instance", a, true)
	try("second instance while the first holds it", b, false)
	try("first instance again", a, true)
	try("an instance on another schema", other, true)
	if err := a.Check(ctx); err != nil {
		t.Fatalf("holder's Check: %v", err)
	}
	if err := b.Check(ctx); err == nil {
		t.Fatal("Check of an instance standing by reports the lease held")
	}
	var idle string
	if err := a.conn.QueryRow(ctx, "SHOW tcp_keepalives_idle").Scan(&idle); err != nil {
		t.Fatal(err)
	}
	if idle != fmt.Sprint(int(leaseKeepaliveIdle/time.Second)) {
		t.Errorf("the lease's session has tcp_keepalives_idle %s, want %s: a vanished holder would keep the lease for hours", idle, leaseKeepaliveIdle)
	}

	a.Release(ctx)
	try("second instance after the first released it", b, true)
	try("first instance after releasing", a, false)

	// The server ends the holder's session (a lost connection, a crashed
	// host whose keepalives failed): the lock goes with it.
	pid := b.conn.PgConn().PID()
	if _, err := a.conn.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := a.TryAcquire(ctx)
		if err != nil {
			t.Fatalf("TryAcquire after the holder's session ended: %v", err)
		}
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lease was not free 5 s after its holder's session ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := b.Check(ctx); err == nil {
		t.Fatal("Check of the instance whose session ended reports the lease still held")
	}
	try("the instance whose session ended", b, false)
}
