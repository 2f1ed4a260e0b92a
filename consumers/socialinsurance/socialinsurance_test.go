package socialinsurance

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

const (
	daoli   = "230102001001" // Harbin
	nangang = "230103002001" // Harbin
	saertu  = "230602002003" // Daqing
	beijing = "110105001001"
)

func TestChangeFor(t *testing.T) {
	id := sdktest.CitizenID(7)
	tests := []struct {
		name     string
		region   string
		n        schemas.Notification
		address  string // hukou address for a death subject
		wantKind string
		wantFrom string
		wantTo   string
	}{
		{"out of the city", "2301", sdktest.Migration("c1", id, 2, daoli, beijing), "", TransferOut, "230102", "110105"},
		{"into the city", "2301", sdktest.Migration("c2", id, 2, beijing, nangang), "", TransferIn, "110105", "230103"},
		{"within the city", "2301", sdktest.Migration("c3", id, 2, daoli, nangang), "", "", "230102", "230103"},
		{"between counties, county bureau", "230102", sdktest.Migration("c4", id, 2, daoli, nangang), "", TransferOut, "230102", "230103"},
		{"province bureau, city to city", "23", sdktest.Migration("c5", id, 2, daoli, saertu), "", "", "230102", "230602"},
		{"from nowhere", "2301", sdktest.Migration("c6", id, 2, "", daoli), "", TransferIn, "", "230102"},
		{"death in the city", "2301", sdktest.Death("c7", id, 3, "2026-01-02"), nangang, StopBenefits, "230103", ""},
		{"death elsewhere", "2301", sdktest.Death("c8", id, 3, "2026-01-02"), saertu, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &sdk.Delivery{Notification: tc.n, Subject: sdktest.Subject("pop", tc.n, tc.address)}
			c := changeFor(d, tc.region)
			if c.task.Kind != tc.wantKind {
				t.Errorf("kind %q, want %q", c.task.Kind, tc.wantKind)
			}
			if tc.wantKind != "" && (c.task.FromRegion != tc.wantFrom || c.task.ToRegion != tc.wantTo) {
				t.Errorf("regions %s→%s, want %s→%s", c.task.FromRegion, c.task.ToRegion, tc.wantFrom, tc.wantTo)
			}
		})
	}
}

// helperEnv names the environment variables of the subscriber subprocess.
const helperEnv = "POPHUB_SI_HELPER"

// TestHelperSubscriber is not a test: it is the subscriber process that
// TestKilledTwice starts and kills with SIGKILL.
func TestHelperSubscriber(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process")
	}
	ctx := context.Background()
	svc, err := New(ctx, Config{Region: "2301", NATS: os.Getenv("SI_NATS"), Postgres: os.Getenv("SI_PG"), Schema: os.Getenv("SI_SCHEMA"),
		Start: sdk.Start{Policy: sdk.StartAll}, AckWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func startHelper(t *testing.T, natsURL, pg, schema string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSubscriber$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "SI_NATS="+natsURL, "SI_PG="+pg, "SI_SCHEMA="+schema)
	testenv.EndWithTest(cmd)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func countTasks(t *testing.T, conn *pgx.Conn, schema string) (total, distinct int) {
	t.Helper()
	err := conn.QueryRow(context.Background(), "SELECT count(*), count(DISTINCT (change_id, kind)) FROM "+pgx.Identifier{schema, "tasks"}.Sanitize()).Scan(&total, &distinct)
	if err != nil && !strings.Contains(err.Error(), "does not exist") {
		t.Fatal(err)
	}
	return total, distinct
}

// TestKilledTwice: 10,000 migrations and 1,000 deaths, the subscriber
// killed with SIGKILL twice while it works through them, a NATS restart
// in the middle; at the end exactly one task per notification that needs
// one.
func TestKilledTwice(t *testing.T) {
	migrations, deaths := 10000, 1000
	if testing.Short() && os.Getenv("CI") != "true" {
		migrations, deaths = 2000, 200
	}
	srv := sdktest.StartServer(t)
	nc, js := sdktest.Connect(t, srv.URL())
	sdktest.CreateStream(t, js, schemas.StreamName, "pop")
	pg, schema := testenv.PostgresURL(), testenv.Schema(t)

	// Migrations rotate through out, in, within (no task) and elsewhere
	// (filtered out); deaths alternate between Harbin and Daqing.
	var msgs []*nats.Msg
	want := 0
	for i := 0; i < migrations; i++ {
		from, to := daoli, beijing
		switch i % 4 {
		case 1:
			from, to = beijing, nangang
		case 2:
			from, to = daoli, nangang
		case 3:
			from, to = saertu, beijing
		}
		if i%4 < 2 {
			want++
		}
		n := sdktest.Migration("m"+strconv.Itoa(i), sdktest.CitizenID(i), 2, from, to)
		msgs = append(msgs, sdktest.Msg(sdktest.Subject("pop", n, ""), n, ""))
	}
	for i := 0; i < deaths; i++ {
		addr := nangang
		if i%2 == 1 {
			addr = saertu
		} else {
			want++
		}
		n := sdktest.Death("d"+strconv.Itoa(i), sdktest.CitizenID(i), 3, "2026-02-03")
		msgs = append(msgs, sdktest.Msg(sdktest.Subject("pop", n, addr), n, ""))
	}
	rand.Shuffle(len(msgs)/2, func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })

	conn, err := pgx.Connect(context.Background(), pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tasks := func() int { n, _ := countTasks(t, conn, schema); return n }
	waitTasks := func(atLeast int, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for tasks() < atLeast {
			if time.Now().After(deadline) {
				t.Fatalf("%d tasks after %v, want at least %d", tasks(), timeout, atLeast)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	half := len(msgs) / 2
	sdktest.Publish(t, js, msgs[:half]...)
	cmd := startHelper(t, srv.URL(), pg, schema)
	for kill := 1; kill <= 2; kill++ {
		waitTasks(want*kill/5, 90*time.Second)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		t.Logf("kill -9 number %d at %d tasks", kill, tasks())
		if kill == 1 {
			srv.Restart()
			t.Logf("NATS restarted")
			deadline := time.Now().Add(10 * time.Second)
			for !nc.IsConnected() && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			sdktest.Publish(t, js, msgs[half:]...)
		}
		cmd = startHelper(t, srv.URL(), pg, schema)
	}
	waitTasks(want, 120*time.Second)
	cons, err := js.Consumer(context.Background(), schemas.StreamName, "socialinsurance-2301")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := cons.Info(context.Background())
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer not drained: %+v", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	total, distinct := countTasks(t, conn, schema)
	if total != want || distinct != want {
		t.Fatalf("%d tasks (%d distinct), want exactly %d", total, distinct, want)
	}
	var openOut, openIn, stop int
	err = conn.QueryRow(context.Background(), "SELECT count(*) FILTER (WHERE kind='transfer_out'), count(*) FILTER (WHERE kind='transfer_in'), count(*) FILTER (WHERE kind='stop_benefits') FROM "+
		pgx.Identifier{schema, "tasks"}.Sanitize()).Scan(&openOut, &openIn, &stop)
	if err != nil {
		t.Fatal(err)
	}
	if openOut != migrations/4 || openIn != migrations/4 || stop != deaths/2 {
		t.Errorf("tasks out/in/stop = %d/%d/%d, want %d/%d/%d", openOut, openIn, stop, migrations/4, migrations/4, deaths/2)
	}
}

// newService runs the service against an embedded NATS server, a schema
// of its own and, if brokers are given, Kafka.
func newService(t *testing.T, brokers []string) (*Service, jetstream.JetStream) {
	t.Helper()
	srv := sdktest.StartServer(t)
	_, js := sdktest.Connect(t, srv.URL())
	sdktest.CreateStream(t, js, schemas.StreamName, "pop")
	pg, schema := testenv.PostgresURL(), testenv.Schema(t)
	svc, err := New(context.Background(), Config{Region: "2301", NATS: srv.URL(), Postgres: pg, Schema: schema, Kafka: brokers,
		Start: sdk.Start{Policy: sdk.StartAll}, APIToken: testAPIToken})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		svc.Close()
		svc.Close()
	})
	return svc, js
}

func TestHTTPAndComplete(t *testing.T) {
	brokers := []string{testenv.Kafka(t, 1)}
	svc, js := newService(t, brokers)
	api := httptest.NewServer(svc.Handler())
	t.Cleanup(api.Close)
	client := bearerClient(testAPIToken, nil)

	out := sdktest.Migration("chg-out", sdktest.CitizenID(1), 4, daoli, beijing)
	in := sdktest.Migration("chg-in", sdktest.CitizenID(2), 2, beijing, nangang)
	death := sdktest.Death("chg-death", sdktest.CitizenID(3), 9, "2026-03-04")
	sdktest.Publish(t, js,
		sdktest.Msg(sdktest.Subject("pop", out, ""), out, ""),
		sdktest.Msg(sdktest.Subject("pop", in, ""), in, ""),
		sdktest.Msg(sdktest.Subject("pop", death, daoli), death, ""),
		sdktest.Msg(sdktest.Subject("pop", out, ""), out, "")) // a duplicate publish: dropped by Nats-Msg-Id

	get := func(query string) []map[string]any {
		t.Helper()
		resp, err := client.Get(api.URL + "/tasks" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /tasks%s: %s", query, resp.Status)
		}
		var tasks []map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&tasks); err != nil {
			t.Fatal(err)
		}
		return tasks
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(get("?status=open")) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("tasks not created")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mine := get("?status=open&citizen_id=" + string(sdktest.CitizenID(1)))
	if len(mine) != 1 || mine[0]["kind"] != TransferOut || mine[0]["citizen_id"] != string(sdktest.CitizenID(1)) ||
		mine[0]["from_region"] != "230102" || mine[0]["to_region"] != "110105" || mine[0]["change_id"] != "chg-out" {
		t.Fatalf("tasks of citizen 1: %v", mine)
	}
	for _, k := range []string{"id", "kind", "citizen_id", "change_id", "from_region", "to_region", "changed_at", "created_at", "status"} {
		if _, ok := mine[0][k]; !ok {
			t.Errorf("task JSON lacks %s", k)
		}
	}
	id := int64(mine[0]["id"].(float64))

	// Complete over HTTP, then again on the CLI path: one event.
	for i := 0; i < 2; i++ {
		resp, err := client.Post(fmt.Sprintf("%s/tasks/%d/complete", api.URL, id), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("complete: %s", resp.Status)
		}
	}
	pub, err := publisher.New(publisher.Config{Brokers: brokers, Source: schemas.SocialInsurance})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if task, err := Complete(context.Background(), svc.Store(), pub, id); err != nil || task.Status != StatusDone {
		t.Fatalf("Complete again: %v, %v", task, err)
	}
	if done := get("?status=done"); len(done) != 1 || int64(done[0]["id"].(float64)) != id {
		t.Fatalf("done tasks: %v", done)
	}
	if got := get("?status=open"); len(got) != 2 {
		t.Fatalf("open tasks: %v", got)
	}

	// The event is on the social-insurance topic, with the id derived
	// from the task.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: schemas.Topic(schemas.SocialInsurance), Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := schemas.Decode(schemas.Input{Topic: m.Topic, Key: m.Key, Value: m.Value})
	if err != nil {
		t.Fatal(err)
	}
	wantID := publisher.EventID(schemas.SocialInsurance, "task:chg-out:transfer_out", 1)
	if ev.ID != wantID || ev.Type != schemas.InsuranceTransferred || ev.Subject != sdktest.CitizenID(1) {
		t.Errorf("event %s %s, want %s %s", ev.ID, ev.Type, wantID, schemas.InsuranceTransferred)
	}
	if d, ok := ev.Payload.(*schemas.InsuranceTransferredData); !ok || d.FromRegion != "230102" || d.ToRegion != "110105" {
		t.Errorf("payload %#v", ev.Payload)
	}
	if hi := r.Stats().Offset; hi > 1 {
		t.Errorf("%d events on the topic, want 1", hi)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if extra, err := r.ReadMessage(ctx2); err == nil {
		t.Errorf("a second event was published: %s", extra.Value)
	}

	// Health, metrics and errors.
	for path, want := range map[string]int{"/healthz": 200, "/metrics": 200, "/tasks?status=maybe": 400, "/tasks?citizen_id=123": 400} {
		resp, err := client.Get(api.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body := new(strings.Builder)
		_, _ = fmt.Fprint(body, resp.Status)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
		}
	}
	resp, err := client.Post(api.URL+"/tasks/999999/complete", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("completing a missing task: %s", resp.Status)
	}
}

// TestCityWrittenInSixDigits: a bureau whose region is its city written
// in six digits (230100, as the statistics routes accept it) gets the
// city's tasks, as with 2301, under the same default name.
func TestCityWrittenInSixDigits(t *testing.T) {
	srv := sdktest.StartServer(t)
	_, js := sdktest.Connect(t, srv.URL())
	sdktest.CreateStream(t, js, schemas.StreamName, "pop")
	// One notification at a time, in order: once the move out has its
	// task, the move within the city before it has been handled.
	svc, err := New(context.Background(), Config{Region: "230100", NATS: srv.URL(), Start: sdk.Start{Policy: sdk.StartAll}, Concurrency: 1,
		Postgres: testenv.PostgresURL(), Schema: testenv.Schema(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		svc.Close()
	})
	if svc.cfg.Name != "socialinsurance-2301" {
		t.Errorf("default name %q, want socialinsurance-2301", svc.cfg.Name)
	}

	out := sdktest.Migration("chg-out", sdktest.CitizenID(1), 2, daoli, beijing)
	within := sdktest.Migration("chg-within", sdktest.CitizenID(2), 2, daoli, nangang)
	sdktest.Publish(t, js, sdktest.Msg(sdktest.Subject("pop", within, ""), within, ""), sdktest.Msg(sdktest.Subject("pop", out, ""), out, ""))
	var tasks []Task
	for deadline := time.Now().Add(20 * time.Second); len(tasks) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no task from a migration out of the city")
		}
		if tasks, err = svc.Store().Tasks(context.Background(), TaskFilter{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(tasks) != 1 || tasks[0].Kind != TransferOut || tasks[0].ChangeID != "chg-out" {
		t.Errorf("tasks %+v, want one transfer_out of chg-out (a move within the city is none)", tasks)
	}
}
