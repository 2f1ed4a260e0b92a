package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/schemas"
)

// TestSchemaIsDroppedAtTheEnd: a schema is unique to its test and gone,
// with what the test put in it, when the test ends.
func TestSchemaIsDroppedAtTheEnd(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	var a, b string
	t.Run("uses two schemas", func(t *testing.T) {
		a, b = Schema(t), Schema(t)
		if a == b {
			t.Fatalf("two schemas of one test share the name %s", a)
		}
		if len(a)+20 > 63 {
			t.Errorf("schema name %s leaves no room for a 20-byte suffix", a)
		}
		if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{a}.Sanitize()+"; CREATE TABLE "+pgx.Identifier{a, "t"}.Sanitize()+" (x int)"); err != nil {
			t.Fatal(err)
		}
	})
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = ANY($1)", []string{a, b}).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d of the test's schemas are still there after it ended", n)
	}
}

// TestKafkaHoldsTheHubsTopics: a Kafka client finds every source's topic
// and the dead-letter topic, with the partitions asked for.
func TestKafkaHoldsTheHubsTopics(t *testing.T) {
	addr := Kafka(t, 3)
	conn, err := kafka.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	want := append(schemas.Topics(), schemas.DLQTopic)
	parts, err := conn.ReadPartitions(want...)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, p := range parts {
		got[p.Topic]++
	}
	for _, topic := range want {
		if got[topic] != 3 {
			t.Errorf("topic %s has %d partitions, want 3", topic, got[topic])
		}
	}

	// What one client writes, Records reads back whole.
	topic := schemas.Topic(schemas.Housing)
	// Acknowledged by the broker before WriteMessages returns (kafka-go's
	// default is not to wait: the count below once read 34 of 50), through
	// a transport of its own (the default pools connections by address).
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond,
		RequiredAcks: kafka.RequireAll, Transport: tr}
	defer w.Close()
	var msgs []kafka.Message
	for i := range 50 {
		msgs = append(msgs, kafka.Message{Key: []byte{byte(i)}, Value: []byte{byte(i), 1}})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	if n := RecordCount(t, addr, topic); n != 50 {
		t.Errorf("RecordCount = %d, want 50", n)
	}
	recs := Records(t, addr, topic)
	seen := map[byte]bool{}
	for _, r := range recs {
		seen[r.Key[0]] = true
	}
	if len(recs) != 50 || len(seen) != 50 {
		t.Errorf("Records read %d records, %d distinct, want 50", len(recs), len(seen))
	}
}

// TestNATSServesJetStream: the embedded server takes connections and has
// JetStream.
func TestNATSServesJetStream(t *testing.T) {
	srv := NATS(t, embedded.NATSConfig{SyncInterval: time.Second})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(); err != nil {
		t.Errorf("JetStream: %v", err)
	}
}

func TestMachineNATSAnswers(t *testing.T) {
	nc, err := nats.Connect(MachineNATS(t))
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

// TestPgBouncerPoolsInTheModeAskedFor: a client reaches the test database
// through the PgBouncer, which pools in the mode asked for (a session
// keeps its backend; transaction pooling hands it on) and ignores the
// startup parameters asked for instead of refusing the connection.
func TestPgBouncerPoolsInTheModeAskedFor(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		mode        string
		sameBackend bool
	}{{"session", true}, {"transaction", false}} {
		t.Run(tc.mode, func(t *testing.T) {
			url := PgBouncer(t, tc.mode, "search_path")
			cfg, err := pgx.ParseConfig(url)
			if err != nil {
				t.Fatal(err)
			}
			cfg.RuntimeParams["search_path"] = "elsewhere"
			a, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatalf("connecting through PgBouncer with search_path ignored: %v", err)
			}
			defer a.Close(ctx)
			b, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close(ctx)
			pid := func(q interface {
				QueryRow(context.Context, string, ...any) pgx.Row
			}) int32 {
				t.Helper()
				var pid int32
				if err := q.QueryRow(ctx, "SELECT pg_backend_pid()", pgx.QueryExecModeSimpleProtocol).Scan(&pid); err != nil {
					t.Fatal(err)
				}
				return pid
			}
			first := pid(a)
			tx, err := b.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			pid(tx)
			if same := pid(a) == first; same != tc.sameBackend {
				t.Errorf("a client kept its backend while another held one in a transaction: %v, want %v", same, tc.sameBackend)
			}
		})
	}
}

// TestPostgresClusterAppliesItsSettings: a cluster of the test's own runs
// with the settings asked for, on top of its fixed ones.
func TestPostgresClusterAppliesItsSettings(t *testing.T) {
	u := PostgresCluster(t, "max_slot_wal_keep_size=2MB", "wal_level=logical")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for setting, want := range map[string]string{"max_slot_wal_keep_size": "2MB", "wal_level": "logical"} {
		var got string
		if err := conn.QueryRow(ctx, "SHOW "+setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %s, want %s", setting, got, want)
		}
	}
}
