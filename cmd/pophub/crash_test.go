package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/notify"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/reconcile"
	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// built is the pophub binary the tests that run it as a child process
// share: linking it takes seconds, and longer on a busy machine.
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

// buildBinary compiles pophub once per test process; TestMain removes it.
func buildBinary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "pophub-test-bin-")
		if built.err != nil {
			return
		}
		bin := filepath.Join(built.dir, "pophub")
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Stderr = os.Stderr
		if built.err = cmd.Run(); built.err == nil {
			built.bin = bin
		}
	})
	if built.err != nil {
		t.Fatalf("building pophub: %v", built.err)
	}
	return built.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// child is a pophub process a test started, its output in a log file. It
// is killed when the test ends, whatever the outcome, so a failed test
// leaves no process behind.
type child struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process exited
	err  error         // Wait's error, once done
}

// startChild runs bin with args, its output to a log file of the test's.
func startChild(t testing.TB, bin string, args ...string) *child {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), args[0]+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: exec.Command(bin, args...), log: f.Name(), done: make(chan struct{})}
	testenv.EndWithTest(c.cmd)
	c.cmd.Stdout, c.cmd.Stderr = f, f
	if err := c.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting pophub %s: %v", args[0], err)
	}
	go func() {
		c.err = c.cmd.Wait()
		f.Close()
		close(c.done)
	}()
	t.Cleanup(c.kill)
	return c
}

// kill kills the process with SIGKILL, if it still runs, and waits for it.
func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// stop asks the process to stop (SIGTERM) and returns how it ended.
func (c *child) stop() error {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.err
	case <-time.After(time.Minute):
		c.kill()
		return errors.New("still running a minute after SIGTERM")
	}
}

// exited reports whether the process ended by itself, and how.
func (c *child) exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}

// output is the end of the process's log, for a failure message.
func (c *child) output() string {
	b, _ := os.ReadFile(c.log)
	if len(b) > 3000 {
		b = append([]byte("…"), b[len(b)-3000:]...)
	}
	return string(b)
}

// killAtRandom kills c with SIGKILL at a random moment and says when. The
// kills numbered 0, 3, 6… land 0–1 s after the start, often during
// start-up, before anything is durable; the others once progress (which
// only grows, towards total) went a random 5–30 % of the way left. A
// process that ends by itself first is not killed: killed is false.
func killAtRandom(t testing.TB, r *rand.Rand, c *child, kill int, total int64, progress func() int64) (when string, killed bool) {
	t.Helper()
	if kill%3 == 0 {
		d := time.Duration(r.IntN(1000)) * time.Millisecond
		select {
		case <-c.done:
			return "", false
		case <-time.After(d):
		}
		when = fmt.Sprintf("%v after the start", d)
	} else {
		from := progress()
		target := from + (total-from)*int64(5+r.IntN(26))/100
		deadline := time.Now().Add(3 * time.Minute)
		for n := from; n < target; n = progress() {
			if done, _ := c.exited(); done {
				return "", false
			}
			if time.Now().After(deadline) {
				c.kill()
				t.Fatalf("kill %d: progress %d in 3 minutes, from %d towards %d; the process's log:\n%s", kill, n, from, target, c.output())
			}
			time.Sleep(time.Duration(2+r.IntN(20)) * time.Millisecond)
		}
		when = fmt.Sprintf("at %d of %d", target, total)
	}
	if done, _ := c.exited(); done {
		return "", false
	}
	c.kill()
	return when, true
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// committed sums the consumer group's committed offsets over the source
// topics: how many records the hub has durably finished.
func committed(ctx context.Context, broker, group string) (int64, error) {
	cl := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 5 * time.Second}
	parts := map[string][]int{}
	for _, topic := range schemas.Topics() {
		for p := 0; p < 4; p++ {
			parts[topic] = append(parts[topic], p)
		}
	}
	resp, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: parts})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, ps := range resp.Topics {
		for _, p := range ps {
			n += max(p.CommittedOffset, 0)
		}
	}
	return n, nil
}

// TestCrash kills the hub process with SIGKILL several times while it
// ingests 100,000 events, restarts it each time, and checks that the golden
// records and history equal those of an undisturbed run and that every
// notification the committed history implies is in the stream, once.
func TestCrash(t *testing.T) {
	bin := buildBinary(t)
	// The broker runs beside the hub as in a deployment, in a process of
	// its own: in this one, under -race, it would serve a restarted hub's
	// backlog too slowly for the recovery to mean anything.
	brokerAddr := testenv.KafkaProcess(t, 4)
	l := newFaultLoad(t, 10500, 42)
	if len(l.msgs) < 100_000 {
		t.Fatalf("only %d events generated", len(l.msgs))
	}
	produceAll(t, []string{brokerAddr}, l.msgs)

	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			h := newCrashHub(t, bin, store, brokerAddr, "crash")
			r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
			var recoveries []time.Duration
			total := int64(len(l.msgs))
			const kills = 10
			for kill := 0; kill < kills; kill++ {
				c, _ := h.start(t)
				// Kill at a random point of the remaining ingest.
				done := h.committed(t)
				target := done + (total-done)*int64(5+r.IntN(20))/100
				restarted := time.Now()
				var progressed time.Duration
				for {
					n := h.committed(t)
					if n > done && progressed == 0 {
						progressed = time.Since(restarted)
					}
					if n >= target {
						break
					}
					if time.Since(restarted) > 3*time.Minute {
						c.kill()
						t.Fatalf("restart %d: the hub committed %d of %d records in 3 minutes, want %d (committed at restart %d); its log:\n%s", kill, n, total, target, done, c.output())
					}
					time.Sleep(100 * time.Millisecond)
				}
				c.kill()
				if kill > 0 {
					recoveries = append(recoveries, progressed)
				}
				t.Logf("killed the hub with SIGKILL at %d of %d records committed", target, total)
			}
			st := h.finish(t, total)
			slices.Sort(recoveries)
			t.Logf("recovery after restart (first batch committed): %v", recoveries)
			checkCrashOutcome(t, st, h.nats.ClientURL(), brokerAddr, h.group, l)
			t.Logf("%d kills; recovery (restart to first commit) min %v, median %v, max %v", kills,
				recoveries[0].Round(time.Millisecond), recoveries[len(recoveries)/2].Round(time.Millisecond), recoveries[len(recoveries)-1].Round(time.Millisecond))
		})
	}
}

// crashHub is `pophub serve` run as a child process, sealed with a key
// file, over a broker of the test's and an embedded NATS server, on memdb
// in a directory of the test's or on a PostgreSQL schema of its own; each
// start is a restart on the same store and consumer group.
type crashHub struct {
	bin, store, broker, group string
	nats                      *embedded.NATS
	args                      []string
	keys                      *sealing.Keyring
	dataDir, schema           string
}

func newCrashHub(t testing.TB, bin, store, broker, group string) *crashHub {
	t.Helper()
	h := &crashHub{bin: bin, store: store, broker: broker, group: fmt.Sprintf("%s-%s-%d", group, store, time.Now().UnixNano())}
	h.nats = testenv.NATS(t, embedded.NATSConfig{SyncInterval: time.Second})
	keyFile := filepath.Join(t.TempDir(), "keys")
	if err := sealing.CreateFile(keyFile); err != nil {
		t.Fatal(err)
	}
	keys, err := sealing.Load(context.Background(), sealing.File(keyFile))
	if err != nil {
		t.Fatal(err)
	}
	h.keys = keys
	h.args = []string{"serve", "--kafka", broker, "--nats", h.nats.ClientURL(), "--group", h.group,
		"--partitions", fmt.Sprint(faultPartitions), "--keys", keyFile, "--log-level", "warn"}
	if store == "postgres" {
		h.schema = testenv.Schema(t)
		h.args = append(h.args, "--postgres", testenv.PostgresURL(), "--postgres-schema", h.schema)
	} else {
		h.dataDir = t.TempDir()
		h.args = append(h.args, "--data", h.dataDir)
	}
	return h
}

// start starts the hub and returns it with its HTTP address.
func (h *crashHub) start(t testing.TB) (*child, string) {
	t.Helper()
	addr := freeAddr(t)
	return startChild(t, h.bin, append(h.args, "--http", addr)...), addr
}

// committed is how many records the group committed (0 while the broker
// cannot say).
func (h *crashHub) committed(t testing.TB) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := committed(ctx, h.broker, h.group)
	if err != nil {
		t.Logf("reading the committed offsets: %v", err)
	}
	return n
}

// forgetKilled removes the group's members, all of them killed hubs, as
// the broker does once their session times out. The test broker (kfake)
// does not always: a hub killed while it joined the group stayed a member
// of every later generation, holding half the partitions, and the next
// hub never consumed them.
func (h *crashHub) forgetKilled(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(h.broker), Timeout: 10 * time.Second}
	resp, err := cl.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{h.group}})
	if err != nil {
		t.Fatalf("describing group %s: %v", h.group, err)
	}
	var members []kafka.LeaveGroupRequestMember
	for _, g := range resp.Groups {
		for _, m := range g.Members {
			members = append(members, kafka.LeaveGroupRequestMember{ID: m.MemberID})
		}
	}
	if len(members) == 0 {
		return
	}
	if _, err := cl.LeaveGroup(ctx, &kafka.LeaveGroupRequest{GroupID: h.group, Members: members}); err != nil {
		t.Fatalf("removing the killed hubs from group %s: %v", h.group, err)
	}
}

// finish starts the hub a last time, lets it commit all total records and
// (on PostgreSQL) drain its outbox, stops it with SIGTERM, and opens its
// store, closed when the test ends.
func (h *crashHub) finish(t testing.TB, total int64) hub.Store {
	t.Helper()
	ctx := context.Background()
	// The killed hub may have committed everything already, so wait until
	// this one serves (and so handles SIGTERM) before stopping it.
	c, addr := h.start(t)
	waitServing(t, c, addr)
	waitForChild(t, c, 5*time.Minute, fmt.Sprintf("all %d records committed", total), func() bool { return h.committed(t) >= total })
	if h.store == "postgres" {
		waitForChild(t, c, 2*time.Minute, "outbox drained", func() bool {
			s := openPG(t, h.schema, h.keys)
			defer s.Close()
			ss, err := s.Stats(ctx)
			return err == nil && ss.OutboxPending == 0
		})
	}
	if err := c.stop(); err != nil {
		t.Fatalf("hub did not stop cleanly: %v; its log:\n%s", err, c.output())
	}
	var st hub.Store
	if h.store == "postgres" {
		st = openPG(t, h.schema, h.keys)
	} else {
		m, err := memdb.Open(ctx, memdb.Config{Dir: filepath.Join(h.dataDir, "store"), Keys: h.keys})
		if err != nil {
			t.Fatal(err)
		}
		st = m
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// waitServing waits until the process serves HTTP at addr.
func waitServing(t testing.TB, c *child, addr string) {
	t.Helper()
	waitForChild(t, c, time.Minute, "serving HTTP", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
}

// waitForChild is waitFor that fails at once, with the process's log,
// when the process ends.
func waitForChild(t testing.TB, c *child, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if done, err := c.exited(); done {
			t.Fatalf("waiting for %s: the process ended (%v); its log:\n%s", what, err, c.output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; the process's log:\n%s", what, c.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkCrashOutcome checks a store a killed and restarted hub ingested l
// into: the records of an undisturbed run; counters equal to a recount;
// one history row per distinct event; every change announced on NATS
// once, and nothing announced that is not in the history; and reconcile
// finds no committed offset ahead of the store.
func checkCrashOutcome(t testing.TB, st hub.Store, natsURL, broker, group string, l *faultLoad) {
	t.Helper()
	ctx := context.Background()
	storetest.CompareRecords(t, st, l.want)
	// The statistics counters, kept in the same transactions as the
	// records, equal a recount from them.
	v, ok := st.(counterVerifier)
	if !ok {
		t.Fatalf("%T cannot verify its counters", st)
	}
	if diffs, err := v.VerifyCounters(ctx); err != nil || len(diffs) > 0 {
		t.Fatalf("counters differ from a recount: %v (%v)", diffs, err)
	}
	// A stopped hub may leave committed notifications in the outbox;
	// the next start publishes them, as here.
	drainOutbox(t, st, natsURL)
	if stats, _ := st.Stats(ctx); stats.Changes != l.distinct {
		t.Fatalf("%d history rows, want %d distinct events", stats.Changes, l.distinct)
	}
	got := checkNotifications(t, st, natsURL, l.want)
	checkNoStrayNotifications(t, st, got, l.want)
	rep, err := reconcile.Run(ctx, reconcile.Config{Brokers: []string{broker}, Group: group, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if tot := rep.Total(); rep.Gaps() > 0 || tot.Applied != l.distinct || tot.InFlight > 0 {
		var b strings.Builder
		rep.Write(&b)
		t.Fatalf("reconciliation:\n%s", b.String())
	}
}

func openPG(t testing.TB, schema string, keys *sealing.Keyring) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Config{URL: testenv.PostgresURL(), Schema: schema, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func countDistinct(in []hub.Input) int64 {
	seen := map[schemas.EventKey]bool{}
	for _, e := range in {
		seen[e.Event.Key()] = true
	}
	return int64(len(seen))
}

// checkNotifications reads the whole stream and checks that every change in
// the stored history was announced, and nothing twice. It returns how many
// times each message id is in the stream.
func checkNotifications(t testing.TB, st hub.Store, url string, persons map[citizenid.ID]hub.Record) map[string]int {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := js.Stream(ctx, schemas.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := stream.Info(ctx)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for n := uint64(0); n < info.State.Msgs; {
		batch, err := cons.FetchNoWait(5000)
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			got[m.Headers().Get("Nats-Msg-Id")]++
			n++
		}
		if batch.Error() != nil {
			t.Fatal(batch.Error())
		}
	}
	for id, n := range got {
		if n > 1 {
			t.Fatalf("notification %s stored %d times", id, n)
		}
	}
	missing := 0
	for id := range persons {
		hist, err := st.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hist {
			for _, sec := range h.Sections {
				if got[merge.ChangeID(h.Source, h.EventID, sec)] == 0 {
					missing++
				}
			}
			if h.Type == schemas.HukouMigrated && got[merge.ChangeID(h.Source, h.EventID, schemas.KindMigration)] == 0 {
				missing++
			}
		}
		if persons[id].Status == hub.StatusDeceased {
			found := false
			for _, h := range hist {
				if got[merge.ChangeID(h.Source, h.EventID, schemas.KindDeath)] > 0 {
					found = true
				}
			}
			if !found {
				missing++
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d notifications missing from the stream (%d stored)", missing, len(got))
	}
	t.Logf("%d notifications in the stream, none missing, none twice", len(got))
	return got
}

// checkNoStrayNotifications checks that every notification in the stream
// (got, by message id) names a change the history of persons holds: none
// for an event that was rejected, or lost with a killed process.
func checkNoStrayNotifications(t testing.TB, st hub.Store, got map[string]int, persons map[citizenid.ID]hub.Record) {
	t.Helper()
	valid := map[string]bool{}
	for id := range persons {
		hist, err := st.History(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hist {
			// A copy: the store's history is not the test's to append to.
			for _, kind := range append(slices.Clip(h.Sections), schemas.KindMigration, schemas.KindDeath) {
				valid[merge.ChangeID(h.Source, h.EventID, kind)] = true
			}
		}
	}
	stray, example := 0, ""
	for id := range got {
		if !valid[id] {
			stray++
			example = id
		}
	}
	if stray > 0 {
		t.Fatalf("%d notifications in the stream name no change in the history (e.g. %s)", stray, example)
	}
}

// drainOutbox publishes what the outbox still holds, as a restarted hub's
// relay would.
func drainOutbox(t testing.TB, st hub.Store, url string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go notify.New(notify.Config{}, js, st).Run(ctx)
	waitFor(t, time.Minute, "outbox drained", func() bool {
		ss, err := st.Stats(context.Background())
		return err == nil && ss.OutboxPending == 0
	})
}
