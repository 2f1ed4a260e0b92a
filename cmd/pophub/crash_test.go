package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/adapters/synth"
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

// buildBinary compiles pophub once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pophub")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("building pophub: %v", err)
	}
	return bin
}

func freeAddr(t *testing.T) string {
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
	ctx := context.Background()
	// The broker runs beside the hub as in a deployment, in a process of
	// its own: in this one, under -race, it would serve a restarted hub's
	// backlog too slowly for the recovery to mean anything.
	brokerAddr := testenv.KafkaProcess(t, 4)

	var msgs []kafka.Message
	var inputs []hub.Input
	err := synth.Generate(ctx, synth.Config{Persons: 10500, Months: 24, Seed: 42, DuplicateRate: 0.01}, func(ev schemas.Event) error {
		v, err := schemas.Encode(ev)
		if err != nil {
			return err
		}
		msgs = append(msgs, kafka.Message{Topic: schemas.Topic(ev.Source), Key: []byte(ev.Subject), Value: v})
		dec, err := schemas.Decode(schemas.Input{Value: v})
		inputs = append(inputs, hub.Input{Event: dec})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) < 100_000 {
		t.Fatalf("only %d events generated", len(msgs))
	}
	produceAll(t, []string{brokerAddr}, msgs)
	want := storetest.Expected(inputs)

	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			natsSrv := testenv.NATS(t, embedded.NATSConfig{SyncInterval: time.Second})
			group := fmt.Sprintf("crash-%s-%d", store, time.Now().UnixNano())
			args := []string{"serve", "--kafka", brokerAddr, "--nats", natsSrv.ClientURL(), "--group", group, "--partitions", "4"}
			// The hub runs sealed, with keys from a key file (serve --keys).
			keyFile := filepath.Join(t.TempDir(), "keys")
			if err := sealing.CreateFile(keyFile); err != nil {
				t.Fatal(err)
			}
			keys, err := sealing.Load(ctx, sealing.File(keyFile))
			if err != nil {
				t.Fatal(err)
			}
			args = append(args, "--keys", keyFile)
			dataDir, schema := t.TempDir(), ""
			if store == "postgres" {
				schema = testenv.Schema(t)
				args = append(args, "--postgres", testenv.PostgresURL(), "--postgres-schema", schema)
			} else {
				args = append(args, "--data", dataDir)
			}
			start := func() (*exec.Cmd, string) {
				addr := freeAddr(t)
				cmd := exec.Command(bin, append(args, "--http", addr, "--log-level", "error")...)
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					t.Fatalf("starting hub: %v", err)
				}
				return cmd, addr
			}
			r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
			var recoveries []time.Duration
			total := int64(len(msgs))
			const kills = 10
			for kill := 0; kill < kills; kill++ {
				cmd, _ := start()
				// Kill at a random point of the remaining ingest.
				done, _ := committed(ctx, brokerAddr, group)
				target := done + (total-done)*int64(5+r.IntN(20))/100
				restarted := time.Now()
				var progressed time.Duration
				for {
					n, err := committed(ctx, brokerAddr, group)
					if err == nil && n > done && progressed == 0 {
						progressed = time.Since(restarted)
					}
					if err == nil && n >= target {
						break
					}
					if time.Since(restarted) > 3*time.Minute {
						cmd.Process.Kill()
						cmd.Wait()
						t.Fatalf("restart %d: the hub committed %d of %d records in 3 minutes, want %d (committed at restart %d; err %v)", kill, n, total, target, done, err)
					}
					time.Sleep(100 * time.Millisecond)
				}
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				cmd.Wait()
				if kill > 0 {
					recoveries = append(recoveries, progressed)
				}
				t.Logf("killed the hub with SIGKILL at %d of %d records committed", target, total)
			}
			// Let it finish, then stop it gracefully. The killed hub may have
			// committed everything already, so wait until this one serves
			// (and so handles SIGTERM) before stopping it.
			cmd, addr := start()
			waitFor(t, time.Minute, "hub serving HTTP", func() bool {
				resp, err := http.Get("http://" + addr + "/healthz")
				if err != nil {
					return false
				}
				resp.Body.Close()
				return true
			})
			deadline := time.Now().Add(5 * time.Minute)
			for {
				n, err := committed(ctx, brokerAddr, group)
				if err == nil && n >= total {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the hub did not finish: %d of %d committed", n, total)
				}
				time.Sleep(100 * time.Millisecond)
			}
			var st hub.Store
			pending := int64(-1)
			// Wait for the relay to drain, then stop.
			waitFor(t, 2*time.Minute, "outbox drained", func() bool {
				if store == "postgres" {
					s := openPG(t, schema, keys)
					defer s.Close()
					ss, err := s.Stats(ctx)
					pending = ss.OutboxPending
					return err == nil && ss.OutboxPending == 0
				}
				return true
			})
			cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("hub did not stop cleanly: %v", err)
			}
			if store == "postgres" {
				st = openPG(t, schema, keys)
			} else {
				m, err := memdb.Open(ctx, memdb.Config{Dir: filepath.Join(dataDir, "store"), Keys: keys})
				if err != nil {
					t.Fatal(err)
				}
				st = m
			}
			defer st.Close()
			t.Logf("recovery after restart (first batch committed): %v; outbox pending %d", recoveries, pending)

			storetest.CompareRecords(t, st, want)
			// The statistics counters, kept in the same transactions as the
			// records, equal a recount from them.
			v, ok := st.(counterVerifier)
			if !ok {
				t.Fatalf("%T cannot verify its counters", st)
			}
			if diffs, err := v.VerifyCounters(ctx); err != nil || len(diffs) > 0 {
				t.Fatalf("counters after %d kills differ from a recount: %v (%v)", kills, diffs, err)
			}
			// A stopped hub may leave committed notifications in the outbox;
			// the next start publishes them, as here.
			drainOutbox(t, st, natsSrv.ClientURL())
			stats, _ := st.Stats(ctx)
			if stats.Changes != countDistinct(inputs) {
				t.Fatalf("%d history rows, want %d distinct events", stats.Changes, countDistinct(inputs))
			}
			checkNotifications(t, st, natsSrv.ClientURL(), want)
			rep, err := reconcile.Run(ctx, reconcile.Config{Brokers: []string{brokerAddr}, Group: group, Store: st})
			if err != nil {
				t.Fatal(err)
			}
			if tot := rep.Total(); rep.Gaps() > 0 || tot.Applied != countDistinct(inputs) || tot.InFlight > 0 {
				var b strings.Builder
				rep.Write(&b)
				t.Fatalf("reconciliation after %d kills:\n%s", kills, b.String())
			}
			slices.Sort(recoveries)
			t.Logf("%d kills; recovery (restart to first commit) min %v, median %v, max %v", kills,
				recoveries[0].Round(time.Millisecond), recoveries[len(recoveries)/2].Round(time.Millisecond), recoveries[len(recoveries)-1].Round(time.Millisecond))
		})
	}
}

func openPG(t *testing.T, schema string, keys *sealing.Keyring) *postgres.Store {
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
// the stored history was announced, and nothing twice.
func checkNotifications(t *testing.T, st hub.Store, url string, persons map[citizenid.ID]hub.Record) {
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
}

// drainOutbox publishes what the outbox still holds, as a restarted hub's
// relay would.
func drainOutbox(t *testing.T, st hub.Store, url string) {
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
