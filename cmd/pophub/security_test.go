package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/audit"
	"github.com/pophub/pophub/schemas"
)

// examplePolicy is the access policy the demo runs with.
var examplePolicy = filepath.Join("..", "..", "ops", "policy.example.yaml")

// startSecureHub runs the embedded hub with the example policy.
func startSecureHub(t *testing.T) *Main {
	t.Helper()
	cfg := Config{Embedded: true, DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Partitions: 2, NATSSync: time.Second, PolicyFile: examplePolicy, NATSPassword: access.DemoSecret("nats:hub"),
		Secrets: access.DemoResolver}
	m := startMain(t, cfg)
	return m
}

// call makes one HTTP request as identity (none: no token) and returns the
// status and body.
func call(t *testing.T, method, url, identity, purpose string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	switch identity {
	case "":
	case "wrong":
		req.Header.Set("Authorization", "Bearer "+access.DemoSecret("token:nobody"))
	default:
		req.Header.Set("Authorization", "Bearer "+access.DemoSecret("token:"+identity))
	}
	if purpose != "" {
		req.Header.Set("X-Purpose", purpose)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/cloudevents+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestSecurityAtEveryDoor runs the hub with the example policy and knocks on
// each door with the right and the wrong credentials: HTTP reads, the
// gateway, eligibility, statistics, NATS; then asks the audit trail who
// read a citizen's record.
func TestSecurityAtEveryDoor(t *testing.T) {
	m := startSecureHub(t)
	msgs := scenario(t)
	// Each department publishes its own events with its own credentials.
	bySource := map[string][]kafka.Message{}
	for _, msg := range msgs {
		bySource[msg.Topic] = append(bySource[msg.Topic], msg)
	}
	for topic, ms := range bySource {
		if err := writeAs(t, m, string(schemas.SourceOfTopic(topic)), topic, ms...); err != nil {
			t.Fatalf("%s publishing its own events: %v", schemas.SourceOfTopic(topic), err)
		}
	}
	waitCaughtUp(t, m, len(msgs))
	id := personID(t, 1)
	base := "http://" + m.HTTPAddr()
	person := base + "/v1/persons/" + string(id)
	// The person's address: listing it must leave a trace under the person.
	code, body := call(t, "GET", person, "admin", "operations", nil)
	var rec struct {
		Hukou struct {
			AddressCode string `json:"address_code"`
		} `json:"hukou"`
	}
	if err := json.Unmarshal(body, &rec); code != http.StatusOK || err != nil || rec.Hukou.AddressCode == "" {
		t.Fatalf("reading the person as admin: HTTP %d, %v: %s", code, err, body)
	}
	list := base + "/v1/persons?region=" + rec.Hukou.AddressCode

	t.Run("readiness includes the audit trail", func(t *testing.T) {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ready struct {
			Status string            `json:"status"`
			Checks map[string]string `json:"checks"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil || resp.StatusCode != http.StatusOK || ready.Checks["audit"] != "ok" {
			t.Errorf("/readyz: HTTP %d, %+v (%v); want ready with an audit check", resp.StatusCode, ready, err)
		}
	})

	t.Run("HTTP", func(t *testing.T) {
		tests := []struct {
			name, method, url, identity, purpose string
			body                                 []byte
			want                                 int
		}{
			{"no token", "GET", person, "", "registration", nil, http.StatusUnauthorized},
			{"wrong token", "GET", person, "wrong", "registration", nil, http.StatusUnauthorized},
			{"missing purpose", "GET", person, "health", "", nil, http.StatusBadRequest},
			{"a section it may read", "GET", person, "health", "death certification", nil, http.StatusOK},
			{"statistics without the grant", "GET", base + "/v1/stats/urban-rural?region=23", "health", "death certification", nil, http.StatusForbidden},
			{"statistics bureau", "GET", base + "/v1/stats/urban-rural?region=23", "stats-bureau", "official population statistics", nil, http.StatusOK},
			{"eligibility without the grant", "GET", base + "/v1/eligibility/" + string(id) + "?policy=heilongjiang/daqing", "health", "death certification", nil, http.StatusForbidden},
			{"eligibility at a registration desk", "GET", base + "/v1/eligibility/" + string(id) + "?policy=heilongjiang/daqing", "public_security", "settlement application", nil, http.StatusOK},
			{"gateway: its own source", "POST", base + "/v1/events", "health", "death certification", eventBody(t, msgs, schemas.Health), http.StatusAccepted},
			{"gateway: another department's source", "POST", base + "/v1/events", "health", "death certification", eventBody(t, msgs, schemas.Tax), http.StatusForbidden},
			{"gateway: missing purpose", "POST", base + "/v1/events", "health", "", eventBody(t, msgs, schemas.Health), http.StatusBadRequest},
			{"gateway: no token", "POST", base + "/v1/events", "", "death certification", eventBody(t, msgs, schemas.Health), http.StatusUnauthorized},
			{"gateway: not a department", "POST", base + "/v1/events", "si-harbin", "benefit termination on death", eventBody(t, msgs, schemas.Health), http.StatusForbidden},
			{"listing the person's address", "GET", list, "tax", "tax audit", nil, http.StatusOK},
			{"operator status as a department", "GET", base + "/v1/admin/status", "health", "death certification", nil, http.StatusForbidden},
			{"operator status without a token", "GET", base + "/v1/admin/status", "", "operations", nil, http.StatusUnauthorized},
			{"operator status as an administrator", "GET", base + "/v1/admin/status", "admin", "operations", nil, http.StatusOK},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				code, body := call(t, tc.method, tc.url, tc.identity, tc.purpose, tc.body)
				if code != tc.want {
					t.Fatalf("status %d, want %d: %s", code, tc.want, body)
				}
			})
		}
	})

	t.Run("stats pull", func(t *testing.T) {
		tests := []struct {
			name     string
			identity string
			args     []string
			env      string // POPHUB_PURPOSE
			wantErr  bool
		}{
			{"the bureau with the default purpose", "stats-bureau", nil, "", false},
			{"the bureau naming its purpose", "stats-bureau", []string{"--purpose", "official population statistics"}, "curiosity", false},
			{"a purpose from the environment", "stats-bureau", nil, "official population statistics", false},
			{"a purpose the identity lacks", "stats-bureau", []string{"--purpose", "curiosity"}, "", true},
			{"a purpose from the environment the identity lacks", "stats-bureau", nil, "curiosity", true},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if tc.env != "" {
					t.Setenv("POPHUB_PURPOSE", tc.env)
				}
				var out bytes.Buffer
				cmd := statsCommand(func() *slog.Logger { return testLogger(t) })
				cmd.SetOut(&out)
				cmd.SetErr(&out)
				cmd.SetArgs(append([]string{"pull", "--hub", base, "--token", access.DemoSecret("token:" + tc.identity),
					"--region", "23", "--depth", "province"}, tc.args...))
				err := cmd.Execute()
				if (err != nil) != tc.wantErr {
					t.Fatalf("stats pull: %v, want error %v\n%s", err, tc.wantErr, out.String())
				}
				if !tc.wantErr && !strings.Contains(out.String(), "23") {
					t.Errorf("no row for region 23:\n%s", out.String())
				}
			})
		}
	})

	t.Run("gateway audited", func(t *testing.T) {
		ctx := context.Background()
		if err := m.auditLog.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		type access struct {
			identity, purpose string
			status            int
		}
		got := map[access]bool{}
		first, last, ok, err := m.auditStore.SeqRange(ctx, time.Time{}, time.Now().Add(time.Minute))
		if err != nil || !ok {
			t.Fatalf("audit range: %v (entries: %v)", err, ok)
		}
		err = m.auditStore.Scan(ctx, first, last, func(e *audit.Entry) error {
			if e.Action == actionPublishEvents {
				got[access{e.Identity, e.Purpose, e.Status}] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []access{
			{"health", "death certification", http.StatusAccepted},
			{"health", "death certification", http.StatusForbidden},
			{"health", "", http.StatusBadRequest},
			{"(unidentified)", "death certification", http.StatusUnauthorized},
			{"si-harbin", "benefit termination on death", http.StatusForbidden},
		} {
			if !got[want] {
				t.Errorf("no gateway entry %+v in the audit trail; have %v", want, got)
			}
		}
	})

	t.Run("Kafka", func(t *testing.T) {
		tax := bySource[schemas.Topic(schemas.Tax)][0]
		if err := writeAs(t, m, "health", schemas.Topic(schemas.Tax), tax); err == nil {
			t.Error("health wrote to the tax topic")
		}
		if err := writeAs(t, m, "", schemas.Topic(schemas.Health), tax); err == nil {
			t.Error("a client without credentials wrote to the health topic")
		}
		if err := writeAs(t, m, "si-harbin", schemas.Topic(schemas.Health), tax); err == nil {
			t.Error("a subscriber wrote to the health topic")
		}
	})

	t.Run("sections filtered", func(t *testing.T) {
		code, body := call(t, "GET", person, "health", "death certification", nil)
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		var rec map[string]json.RawMessage
		if err := json.Unmarshal(body, &rec); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"identity", "hukou"} {
			if _, ok := rec[s]; !ok {
				t.Errorf("health may read %s, which is missing: %s", s, body)
			}
		}
		for _, s := range []string{"employment", "social_insurance", "education", "housing", "tax", "marital"} {
			if _, ok := rec[s]; ok {
				t.Errorf("health may not read %s, which was returned", s)
			}
		}
	})

	t.Run("NATS", func(t *testing.T) {
		if nc, err := nats.Connect(m.NATSURL()); err == nil {
			nc.Close()
			t.Fatal("a client without credentials connected")
		}
		if nc, err := nats.Connect(m.NATSURL(), nats.UserInfo("si-harbin", "guess"), nats.Timeout(20*time.Second)); err == nil {
			nc.Close()
			t.Fatal("a wrong password connected")
		}
		nc, err := nats.Connect(m.NATSURL(), nats.UserInfo("si-harbin", access.DemoSecret("nats:si-harbin")),
			nats.CustomInboxPrefix("_INBOX_si-harbin"), nats.Timeout(20*time.Second))
		if err != nil {
			t.Fatalf("si-harbin with its password: %v", err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := js.CreateOrUpdateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{Durable: "si-harbin",
			FilterSubject: schemas.DeathFilter("2301"), AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Errorf("si-harbin creating its own consumer on deaths in Harbin: %v", err)
		}
		// A refused API request gets no reply: the client waits out its context.
		refusedCtx, cancelRefused := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancelRefused()
		if _, err := js.CreateOrUpdateConsumer(refusedCtx, schemas.StreamName, jetstream.ConsumerConfig{Durable: "si-harbin",
			FilterSubject: "pop.changed.>", AckPolicy: jetstream.AckExplicitPolicy}); err == nil {
			t.Error("si-harbin created a consumer on every change")
		}
		errs := make(chan error, 1)
		nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })
		if _, err := nc.SubscribeSync("pop.changed.>"); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Errorf("subscribing to every change: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("si-harbin subscribed to every change without a permissions violation")
		}
	})

	t.Run("who read", func(t *testing.T) {
		if err := m.auditLog.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd := auditCommand()
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs([]string{"who-read", string(id), "--file", filepath.Join(m.Config.DataDir, "audit.jsonl"),
			"--key-file", filepath.Join(m.Config.DataDir, "audit.key")})
		if err := cmd.Execute(); err != nil {
			t.Fatalf("audit who-read: %v\n%s", err, out.String())
		}
		for _, want := range []string{"health", "death certification", "public_security", "settlement application", "list_persons", "tax audit"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("who-read does not name %q:\n%s", want, out.String())
			}
		}
		if strings.Contains(out.String(), "stats-bureau") {
			t.Errorf("who-read lists a statistics pull, which names no citizen:\n%s", out.String())
		}
	})
}

// writeAs produces records to topic as a policy identity (none: "").
func writeAs(t *testing.T, m *Main, identity, topic string, msgs ...kafka.Message) error {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(m.Brokers()...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, MaxAttempts: 1, Transport: ownTransport(t)}
	if id, ok := m.Access.Identity(identity); ok && id.Credentials.Kafka != nil {
		w.Transport = &kafka.Transport{SASL: access.SCRAMClient{User: identity, Password: access.DemoSecret(id.Credentials.Kafka.Password)}}
	}
	defer w.Close()
	out := make([]kafka.Message, len(msgs))
	for i, msg := range msgs {
		out[i] = kafka.Message{Key: msg.Key, Value: msg.Value}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return w.WriteMessages(ctx, out...)
}

// eventBody is the first scenario event of a source, as a gateway body.
func eventBody(t *testing.T, msgs []kafka.Message, src schemas.Source) []byte {
	t.Helper()
	for _, m := range msgs {
		if m.Topic == schemas.Topic(src) {
			return m.Value
		}
	}
	t.Fatalf("no %s event in the scenario", src)
	return nil
}
