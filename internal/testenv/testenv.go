// Package testenv gives tests the real services they run against, one
// helper per service, so that every package reaches them, names what it
// creates and cleans up in the same way:
//
//   - PostgreSQL: the machine's server (POPHUB_TEST_POSTGRES overrides
//     it), with a schema of the test's own, dropped when the test ends;
//   - Kafka: an in-process Kafka-protocol broker (kfake) holding the hub's
//     topics and the dead-letter topic, closed when the test ends, or the
//     same broker in a process of its own (KafkaProcess);
//   - NATS: an embedded server with JetStream on a temporary store, or
//     the machine's server (POPHUB_TEST_NATS overrides it).
//
// A machine service that cannot be reached skips the test, except under
// CI=true, where the test fails: a CI run never passes by skipping.
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/internal/faults"
	"github.com/pophub/pophub/schemas"
)

// Unavailable ends a test whose service cannot be reached: it fails under
// CI=true and is skipped elsewhere.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// PostgresURL is the test database: the machine's PostgreSQL (trust
// authentication, database test) unless POPHUB_TEST_POSTGRES names
// another.
func PostgresURL() string {
	if u := os.Getenv("POPHUB_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test"
}

// postgresUp is set once the test database has answered: a test process
// connects to check it once, not for every schema.
var postgresUp atomic.Bool

// Postgres checks that the test database answers and returns its URL.
func Postgres(t testing.TB) string {
	t.Helper()
	if postgresUp.Load() {
		return PostgresURL()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, PostgresURL())
	if err != nil {
		Unavailable(t, "PostgreSQL at %s is not reachable: %v", redact(PostgresURL()), err)
	}
	conn.Close(ctx)
	postgresUp.Store(true)
	return PostgresURL()
}

// PostgresThroughProxy returns the test database's URL pointed at a proxy
// in front of it, which the test can cut, slow or refuse (faults.Proxy);
// the proxy closes when the test ends.
func PostgresThroughProxy(t testing.TB) (string, *faults.Proxy) {
	t.Helper()
	u, err := url.Parse(Postgres(t))
	if err != nil || u.Host == "" {
		Unavailable(t, "the test database %s is not a URL a proxy can stand in: %v", redact(PostgresURL()), err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	p, err := faults.NewProxy(target)
	if err != nil {
		t.Fatalf("starting a proxy to PostgreSQL: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	u.Host = p.Addr()
	return u.String(), p
}

// LogicalReplication checks that the test database answers and runs with
// wal_level=logical, which change data capture needs, and returns its URL.
func LogicalReplication(t testing.TB) string {
	t.Helper()
	url := Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to the test PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		t.Fatalf("reading wal_level: %v", err)
	}
	if level != "logical" {
		Unavailable(t, "wal_level is %q; change data capture needs logical: "+
			"ALTER SYSTEM SET wal_level = logical and restart PostgreSQL (.ci/run does it)", level)
	}
	return url
}

// DropReplicationSlot drops a replication slot of the test database if it
// exists, terminating the walsender that still holds it: a stopped or
// killed stream's may hold it a moment longer.
func DropReplicationSlot(t testing.TB, slot string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, PostgresURL())
	if err != nil {
		t.Errorf("dropping slot %s: %v", slot, err)
		return
	}
	defer conn.Close(context.Background())
	for {
		_, err = conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
			WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot)
		if err == nil {
			_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		}
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Errorf("dropping slot %s: %v", slot, err)
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var schemaSeq atomic.Int64

// Schema checks that the test database (PostgresURL) answers and returns
// the name of a schema unique to this test, across processes too, which
// it drops with everything in it when the test ends. The schema itself is
// not created: the stores create theirs when they open. The name leaves
// room for a suffix of up to 20 bytes within PostgreSQL's 63.
func Schema(t testing.TB) string {
	t.Helper()
	url := Postgres(t)
	schema := fmt.Sprintf("pophub_test_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e12, schemaSeq.Add(1))
	t.Cleanup(func() { DropSchema(t, url, schema) })
	return schema
}

// DropSchema drops a schema and everything in it, if it exists.
func DropSchema(t testing.TB, url, schema string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("dropping schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		t.Errorf("dropping schema %s: %v", schema, err)
	}
}

// Kafka starts an in-process Kafka-protocol broker holding every source's
// topic and the dead-letter topic, each with the given number of
// partitions, and returns its address. opts add to the broker's options
// (access control, for one).
func Kafka(t testing.TB, partitions int, opts ...kfake.Opt) string {
	t.Helper()
	topics := append(schemas.Topics(), schemas.DLQTopic)
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), topics...)}, opts...)...)
	if err != nil {
		t.Fatalf("starting Kafka-protocol broker: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// KafkaProcess starts the same broker as Kafka, with the hub's topics
// and the dead-letter topic, in a process of its own built without the
// race detector, and returns its address; the process ends with the test.
// Tests that push a hub through hundreds of thousands of records use it:
// under -race an in-process broker spends most of its time in the
// detector's checks of every fetch it copies, and a restarted hub then
// waits minutes for records a real broker serves at once.
func KafkaProcess(t testing.TB, partitions int) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kafkabroker")
	build := exec.Command("go", "build", "-o", bin, "github.com/pophub/pophub/internal/testenv/kafkabroker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the broker: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-partitions", strconv.Itoa(partitions))
	EndWithTest(cmd)
	stdin, err := cmd.StdinPipe() // closed when the test ends, or by the exit of a test process that died
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the broker: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the broker's address: %v", err)
	}
	return strings.TrimSpace(addr)
}

// RecordCount is the number of records in topic at addr: the sum of its
// partitions' end offsets.
func RecordCount(t testing.TB, addr, topic string) int64 {
	t.Helper()
	return RecordCountAs(t, addr, nil, topic)
}

// RecordCountAs is RecordCount on a broker that requires a login (nil
// for none).
func RecordCountAs(t testing.TB, addr string, login sasl.Mechanism, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := &kafka.Transport{SASL: login}
	defer tr.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second, Transport: tr}
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 || md.Topics[0].Error != nil {
		t.Fatalf("reading the partitions of %s at %s: %v %+v", topic, addr, err, md)
	}
	parts := md.Topics[0].Partitions
	reqs := make([]kafka.OffsetRequest, len(parts))
	for i, p := range parts {
		reqs[i] = kafka.LastOffsetOf(p.ID)
	}
	res, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatalf("listing the offsets of %s: %v", topic, err)
	}
	var n int64
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("listing offsets of %s/%d: %v", topic, po.Partition, po.Error)
		}
		n += po.LastOffset
	}
	return n
}

// Records reads every record of topic at addr (RecordCount of them) with
// another Kafka client than the adapters' (franz-go), in each partition's
// order.
func Records(t testing.TB, addr, topic string) []*kgo.Record {
	t.Helper()
	n := RecordCount(t, addr, topic)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatalf("creating Kafka client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for int64(len(out)) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s: %v", len(out), n, topic, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetching %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// NATS starts an embedded NATS server with JetStream, closed when the test
// ends (closing it earlier is fine). cfg's zero StoreDir is a temporary
// directory of the test's; its zero Addr a free port on 127.0.0.1.
func NATS(t testing.TB, cfg embedded.NATSConfig) *embedded.NATS {
	t.Helper()
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	n, err := embedded.StartNATS(context.Background(), cfg)
	if err != nil {
		t.Fatalf("starting embedded NATS server: %v", err)
	}
	t.Cleanup(n.Close)
	return n
}

// JetStream connects to the NATS server at url with opts and returns its
// JetStream context; the connection closes when the test ends.
func JetStream(t testing.TB, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connecting to NATS at %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// MachineNATSURL is the machine's NATS server (an older 2.9 with
// JetStream) unless POPHUB_TEST_NATS names another.
func MachineNATSURL() string {
	if u := os.Getenv("POPHUB_TEST_NATS"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// MachineNATS checks that the machine's NATS server accepts connections
// and returns its URL. Tests on it must use streams and subjects of their
// own.
func MachineNATS(t testing.TB) string {
	t.Helper()
	u := MachineNATSURL()
	addr := u
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		addr = p.Host
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		Unavailable(t, "the NATS server at %s is not reachable: %v", u, err)
	}
	c.Close()
	return u
}

// NATSServerProcess runs the machine's nats-server binary (Debian's 2.9,
// older than the embedded server: what an operator's own server may be)
// with JetStream on a temporary store, on a free port of 127.0.0.1, with
// include as the rest of its configuration (such as `pophub policy
// nats-config`'s output); it stops when the test ends. It returns the
// server's URL.
func NATSServerProcess(t testing.TB, include string) string {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		bin = "/usr/sbin/nats-server"
	}
	if _, err := os.Stat(bin); err != nil {
		Unavailable(t, "the nats-server binary is not installed (Debian package nats-server): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := fmt.Sprintf("host: 127.0.0.1\nport: %d\njetstream { store_dir: %q }\ninclude ./policy-auth.conf\n", port, filepath.Join(dir, "js"))
	for name, text := range map[string]string{"nats.conf": conf, "policy-auth.conf": include} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var log LogBuffer
	cmd := exec.Command(bin, "-c", filepath.Join(dir, "nats.conf"))
	EndWithTest(cmd)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return "nats://" + addr
		}
		select {
		case <-exited:
			t.Fatalf("%s exited: %v\n%s", bin, waitErr, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s after 30 s:\n%s", bin, addr, log.String())
		}
	}
}

// redact hides a URL's password.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

// LogBuffer collects log lines that a logger writes while a test reads
// them: a bytes.Buffer safe for concurrent use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// PgBouncerPath is the PgBouncer binary PgBouncer runs: the one on PATH,
// else Debian's /usr/sbin/pgbouncer, which is not on a user's PATH.
func PgBouncerPath() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	return exec.LookPath("/usr/sbin/pgbouncer")
}

// PgBouncer starts a PgBouncer in front of the test database (Postgres)
// on a free port of 127.0.0.1, pooling in mode ("session" or
// "transaction") and ignoring the startup parameters in ignore, which it
// refuses otherwise; it returns the test database's URL pointed at it,
// once it accepts connections, and stops it when the test ends. It trusts
// its clients: the test database's user logs in with the URL's password
// (if any), and any other role the test creates is looked up through
// that user (auth_user). A missing binary skips the test, except under
// CI=true.
func PgBouncer(t testing.TB, mode string, ignore ...string) string {
	t.Helper()
	bin, err := PgBouncerPath()
	if err != nil {
		Unavailable(t, "PgBouncer is not installed (Debian package pgbouncer): %v", err)
	}
	u, err := url.Parse(Postgres(t))
	if err != nil || u.Host == "" || u.User == nil {
		Unavailable(t, "the test database %s is not a URL with a user that PgBouncer can stand in front of: %v", redact(PostgresURL()), err)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "5432"
	}
	user := u.User.Username()
	password, _ := u.User.Password()
	db := strings.TrimPrefix(u.Path, "/")

	// A port that was free a moment ago: PgBouncer cannot be told to pick
	// one and report it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port for PgBouncer: %v", err)
	}
	listen := l.Addr().(*net.TCPAddr).Port
	l.Close()

	dir := t.TempDir()
	quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	if err := os.WriteFile(filepath.Join(dir, "users.txt"), []byte(quote(user)+" "+quote(password)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ini := fmt.Sprintf(`[databases]
%s = host=%s port=%s dbname=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
auth_user = %s
pool_mode = %s
ignore_startup_parameters = %s
default_pool_size = 10
max_client_conn = 200
`, db, host, port, db, listen, filepath.Join(dir, "users.txt"), user, mode, strings.Join(ignore, ","))
	conf := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(conf, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{conf}
	if os.Geteuid() == 0 {
		// PgBouncer refuses to run as root; it reads its files before it
		// changes user.
		args = []string{"-u", "nobody", conf}
	}
	var out LogBuffer
	cmd := exec.Command(bin, args...)
	EndWithTest(cmd)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting PgBouncer: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // PgBouncer's immediate shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})

	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(listen))
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, u.String())
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return u.String()
		}
		select {
		case <-exited:
			t.Fatalf("PgBouncer exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("PgBouncer accepts no connection after 10 s: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
