package postgres

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
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

// TestRelayHolderNamesTheLeadingInstance: the status of any instance on a
// schema names the one whose relay publishes, by its session's
// application_name (the URL's, or pophub, then the host, the process and a
// number of the store's own), and says whether it is itself; while none
// holds the lease it says none does, for then notifications wait in the
// outbox. Another schema's lease and the household walk's lease are not
// taken for it; a name PostgreSQL would not keep as sent (not ASCII) is
// sent as it shows, and two stores of one process are told apart.
func TestRelayHolderNamesTheLeadingInstance(t *testing.T) {
	ctx := context.Background()
	schema := testenv.Schema(t)
	open := func(url, schema string) *Store {
		t.Helper()
		s, err := Open(ctx, Config{URL: url, Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	long := strings.Repeat("x", 80)
	a := open(testenv.PostgresURL()+"?application_name=hub-a", schema)
	b := open(testenv.PostgresURL()+"?application_name="+long, schema)
	twin := open(testenv.PostgresURL()+"?application_name=hub-a", schema)
	chinese := open(testenv.PostgresURL()+"?application_name="+url.QueryEscape("人口枢纽-北京"), schema)
	plain := open(testenv.PostgresURL(), testenv.Schema(t))
	host, _ := os.Hostname()
	process := fmt.Sprintf(" (%s pid %d #", host, os.Getpid())
	for _, tc := range []struct {
		s      *Store
		prefix string
	}{{a, "hub-a"}, {b, long[:63-len(process)-5]}, {chinese, "????-??"}, {plain, "pophub"}} {
		if name := tc.s.leaseHolderName(); !strings.HasPrefix(name, tc.prefix+process) || !strings.HasSuffix(name, ")") || len(name) > 63 {
			t.Errorf("lease session name %q, want %q, the process and a number", name, tc.prefix+process)
		}
	}
	if a.leaseHolderName() == twin.leaseHolderName() {
		t.Errorf("two stores of one process share the lease session name %q", a.leaseHolderName())
	}

	holder := func(name string, s *Store, wantHolder string, wantMine bool) {
		t.Helper()
		got, mine, err := s.RelayHolder(ctx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != wantHolder || mine != wantMine {
			t.Errorf("%s: holder %q (this instance %v), want %q (%v)", name, got, mine, wantHolder, wantMine)
		}
	}
	take := func(s *Store) *RelayLease {
		t.Helper()
		l := s.RelayLease()
		t.Cleanup(func() { l.Release(ctx) })
		if got, err := l.TryAcquire(ctx); err != nil || !got {
			t.Fatalf("taking the lease: %v, %v", got, err)
		}
		return l
	}
	holder("no instance leading", a, "", false)

	la := take(a)
	holder("the leader itself", a, a.leaseHolderName(), true)
	holder("another instance", b, a.leaseHolderName(), false)
	holder("another store of the same process and URL", twin, a.leaseHolderName(), false)
	holder("an instance on another schema", plain, "", false)

	// Households' lease, on the same schema, is not the relay's.
	hh := a.sessionLease("pophub-households:"+schema, "the household index lease")
	t.Cleanup(func() { hh.Release(ctx) })
	if got, err := hh.TryAcquire(ctx); err != nil || !got {
		t.Fatalf("taking the household lease: %v, %v", got, err)
	}
	la.Release(ctx)
	holder("after the leader released it", b, "", false)

	lb := take(b)
	holder("a leader with a long application_name, cut to keep its instance", a, b.leaseHolderName(), false)
	holder("the leader with the long name itself", b, b.leaseHolderName(), true)
	lb.Release(ctx)

	lc := take(chinese)
	holder("a leader named in Chinese, itself", chinese, chinese.leaseHolderName(), true)
	lc.Release(ctx)

	take(plain)
	holder("a leader whose URL names no application", plain, plain.leaseHolderName(), true)
}
