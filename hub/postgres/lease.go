package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// RelayLease elects the one outbox relay that publishes a schema's
// notifications when several hub instances share the schema: it is a
// session-level advisory lock, keyed by the schema, held on a connection
// of its own (outside the pool) for as long as the relay leads. The lock
// lives exactly as long as that session, so an instance that dies, or
// whose connection the server closes, gives the lease up by itself, and a
// standing-by instance takes it at its next try.
//
// The walk that fills in the household index of an older schema
// (households.go) takes a lease of its own the same way, and works on
// its session.
//
// A RelayLease is not safe for concurrent use: the relay calls it from
// one goroutine at a time (notify.Lease).
type RelayLease struct {
	connConfig *pgx.ConnConfig
	key        string
	// name is what errors call the lease ("the relay lease").
	name string
	// keepalives SET the server's keepalives on a new session.
	keepalives []string
	// conn is the lease's session: the lock's holder while held is true,
	// kept open between tries while standing by. Nil when closed.
	conn *pgx.Conn
	held bool
}

// TCP keepalives on the lease's session, both ends. The server's: when
// the leading instance's host vanishes without closing the connection,
// the server ends the session, and with it the lock, about idle +
// interval × count seconds later instead of after the system's two hours.
// The client's, on the hub's socket: the leader learns as soon that the
// server (or a pooler in front of it) vanished, and stands down. They do
// not apply over a Unix socket, where the session ends with the process.
// The server's are SET once connected, not sent as startup parameters,
// which PgBouncer refuses unless told to ignore them (and then drops);
// through PgBouncer they apply between it and the server, and its own
// tcp_keep* settings cover the hub's side.
const (
	leaseKeepaliveIdle     = 5 * time.Second
	leaseKeepaliveInterval = 2 * time.Second
	leaseKeepaliveCount    = 3
)

// RelayLease returns the relay lease of the store's schema. Every Store
// on the same database and schema, in any process, competes for the same
// lease.
func (s *Store) RelayLease() *RelayLease {
	return s.sessionLease("pophub-relay:"+s.cfg.Schema, "the relay lease")
}

// instance names this process on the lease sessions it opens: its host
// and process id.
var instance = func() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return host + " pid " + strconv.Itoa(os.Getpid())
}()

// leaseHolderName is the application_name of this store's lease sessions:
// the pool's (the URL's, or "pophub"), then the instance and a number of
// the store's own (two stores of one process, or two containers with one
// host name and both pid 1, are told apart), within PostgreSQL's 63 bytes,
// the suffix kept whole. PostgreSQL keeps printable ASCII only (15 shows
// '?' for each other byte, later releases an escape), so the name is sent
// as it will show: what pg_stat_activity says is what RelayHolder sent.
func (s *Store) leaseHolderName() string {
	suffix := " (" + instance + " #" + s.leaseTag + ")"
	base := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s.pool.Config().ConnConfig.RuntimeParams["application_name"])
	if room := 63 - len(suffix); len(base) > room {
		base = base[:max(room, 0)]
	}
	name := base + suffix
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// RelayHolder names the session that holds the schema's relay lease, by
// its application_name ("pophub (host pid 1234 #3f9a)"), and whether it is
// this instance's; "" when no instance holds it, and no notification
// leaves the outbox. It reads pg_locks, so it sees every instance's
// lease, whichever answers the status.
func (s *Store) RelayHolder(ctx context.Context) (holder string, mine bool, err error) {
	// An advisory lock on one bigint shows in pg_locks as its high and
	// low 32 bits, classid and objid, with objsubid 1.
	err = s.pool.QueryRow(ctx, `WITH k AS (SELECT hashtext($1)::bigint AS key)
		SELECT coalesce(a.application_name, '') FROM k, pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.classid::text::bigint = (k.key >> 32) & 4294967295 AND l.objid::text::bigint = k.key & 4294967295
		LIMIT 1`, "pophub-relay:"+s.cfg.Schema).Scan(&holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, readFailed(ctx, "reading who holds the relay lease", err)
	}
	return holder, holder == s.leaseHolderName(), nil
}

// sessionLease returns a lease on key, held on a session of its own; name
// is what its errors call it.
func (s *Store) sessionLease(key, name string) *RelayLease {
	cc := s.pool.Config().ConnConfig.Copy()
	d := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: leaseKeepaliveIdle, Interval: leaseKeepaliveInterval, Count: leaseKeepaliveCount,
	}}
	cc.DialFunc = d.DialContext
	// The session names the instance, so that the status (RelayHolder)
	// and pg_stat_activity tell which hub leads.
	cc.RuntimeParams["application_name"] = s.leaseHolderName()
	l := &RelayLease{connConfig: cc, key: key, name: name}
	for _, p := range []struct {
		name  string
		value int
	}{
		{"tcp_keepalives_idle", int(leaseKeepaliveIdle / time.Second)},
		{"tcp_keepalives_interval", int(leaseKeepaliveInterval / time.Second)},
		{"tcp_keepalives_count", leaseKeepaliveCount},
	} {
		if cc.RuntimeParams[p.name] == "" { // the URL's win
			l.keepalives = append(l.keepalives, fmt.Sprintf("SET %s = %d", p.name, p.value))
		}
	}
	return l
}

// TryAcquire takes the lease if no other session holds it, without
// waiting, and reports whether this RelayLease holds it.
func (l *RelayLease) TryAcquire(ctx context.Context) (bool, error) {
	if l.held {
		return true, nil
	}
	if l.conn == nil || l.conn.IsClosed() {
		conn, err := pgx.ConnectConfig(ctx, l.connConfig)
		if err != nil {
			return false, fmt.Errorf("connecting for %s: %w", l.name, err)
		}
		l.conn = conn
		if len(l.keepalives) > 0 {
			if _, err := conn.Exec(ctx, strings.Join(l.keepalives, "; ")); err != nil {
				l.closeConn(ctx)
				return false, fmt.Errorf("setting the keepalives of %s: %w", l.name, err)
			}
		}
	}
	var got bool
	if err := l.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtext($1))", l.key).Scan(&got); err != nil {
		l.closeConn(ctx)
		return false, fmt.Errorf("taking %s: %w", l.name, err)
	}
	l.held = got
	return got, nil
}

// Check reports an error when the lease may be lost: it is not held, or
// its session does not answer. The lock is only ever released with the
// session, so a session that answers still holds it. After an error the
// session is closed and the lease is no longer held; TryAcquire may take
// it again.
func (l *RelayLease) Check(ctx context.Context) error {
	if !l.held || l.conn == nil {
		return fmt.Errorf("checking %s: not held", l.name)
	}
	if err := l.conn.Ping(ctx); err != nil {
		l.closeConn(ctx)
		return fmt.Errorf("checking %s: %w", l.name, err)
	}
	return nil
}

// Release gives the lease up, so that a standing-by instance takes it at
// its next try: it unlocks first, since the server lets go of a closed
// session's locks only once the session's process has ended, which a try
// an instant later can beat; then it ends the session. Safe to call when
// not held, and more than once; TryAcquire may take the lease again
// afterwards.
func (l *RelayLease) Release(ctx context.Context) {
	if l.held && l.conn != nil {
		// A failure leaves the lock to the session's end below.
		_, _ = l.conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtext($1))", l.key)
	}
	l.closeConn(ctx)
}

// closeConn ends the lease's session; the lock, if held, goes with it.
func (l *RelayLease) closeConn(ctx context.Context) {
	if l.conn != nil {
		_ = l.conn.Close(ctx) // a broken connection is closed anyway
		l.conn = nil
	}
	l.held = false
}
