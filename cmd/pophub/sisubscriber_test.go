package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/consumers/socialinsurance"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/tlsconf"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestSIAPIFlags: the tasks API's token comes from --api-token-file,
// else POPHUB_SI_API_TOKEN; --tls-cert and --tls-key give its HTTPS
// configuration together or not at all.
func TestSIAPIFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokenFile, emptyFile := write("token", "s3cret-from-file\n"), write("empty", " \n")
	certs, err := tlsconf.EnsureDev(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		flags     siAPIFlags
		env       string // POPHUB_SI_API_TOKEN
		wantToken string
		wantTLS   bool
		wantErr   string
	}{
		{"nothing", siAPIFlags{}, "", "", false, ""},
		{"token file", siAPIFlags{tokenFile: tokenFile}, "", "s3cret-from-file", false, ""},
		{"environment", siAPIFlags{}, " s3cret-from-env\n", "s3cret-from-env", false, ""},
		{"token file over environment", siAPIFlags{tokenFile: tokenFile}, "s3cret-from-env", "s3cret-from-file", false, ""},
		{"empty token file", siAPIFlags{tokenFile: emptyFile}, "", "", false, "holds no token"},
		{"missing token file", siAPIFlags{tokenFile: filepath.Join(dir, "absent")}, "", "", false, "--api-token-file"},
		{"TLS", siAPIFlags{tlsCert: certs.Cert, tlsKey: certs.Key}, "", "", true, ""},
		{"certificate without key", siAPIFlags{tlsCert: certs.Cert}, "", "", false, "--tls-cert and --tls-key go together"},
		{"key without certificate", siAPIFlags{tlsKey: certs.Key}, "", "", false, "--tls-cert and --tls-key go together"},
		{"key that is not one", siAPIFlags{tlsCert: certs.Cert, tlsKey: tokenFile}, "", "", false, "--tls-cert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("POPHUB_SI_API_TOKEN", tt.env)
			token, tc, err := tt.flags.load()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("load() error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if token != tt.wantToken {
				t.Errorf("token %q, want %q", token, tt.wantToken)
			}
			if (tc != nil && len(tc.Certificates) == 1) != tt.wantTLS {
				t.Errorf("TLS configuration %v, want one with a certificate: %t", tc, tt.wantTLS)
			}
		})
	}
}

// TestSISubscriberRefusesOpenAPIBeyondLoopback: si-subscriber stops
// before connecting anywhere when --http reaches other machines and no
// token guards the tasks API, and says how to give one.
func TestSISubscriberRefusesOpenAPIBeyondLoopback(t *testing.T) {
	t.Setenv("POPHUB_SI_API_TOKEN", "")
	cmd := siSubscriberCommand(func() *slog.Logger { return slog.New(slog.DiscardHandler) })
	out, err := execute(t, cmd, "--region", "2301", "--nats", "nats://127.0.0.1:1", "--postgres", "postgres://127.0.0.1:1/none",
		"--http", "0.0.0.0:0")
	if err == nil || !strings.Contains(err.Error(), "--api-token-file") || !strings.Contains(err.Error(), "POPHUB_SI_API_TOKEN") {
		t.Fatalf("si-subscriber --http 0.0.0.0:0 without a token: %v\n%s", err, out)
	}
}

// TestSISubscriberServesTasksOverHTTPSWithToken: the command's
// --api-token-file and --tls-cert/--tls-key reach the API: over HTTPS
// with the token the tasks are listed, without it they are refused.
func TestSISubscriberServesTasksOverHTTPSWithToken(t *testing.T) {
	t.Setenv("POPHUB_SI_API_TOKEN", "")
	srv := sdktest.StartServer(t)
	_, js := sdktest.Connect(t, srv.URL())
	sdktest.CreateStream(t, js, schemas.StreamName, "pop")
	dir := t.TempDir()
	certs, err := tlsconf.EnsureDev(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	const token = "si-cli-test-token"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cmd := siSubscriberCommand(func() *slog.Logger { return testLogger(t) })
	cmd.SetArgs([]string{"--region", "2301", "--nats", srv.URL(), "--postgres", testenv.PostgresURL(), "--schema", testenv.Schema(t),
		"--start", "all", "--http", addr, "--api-token-file", tokenFile, "--tls-cert", certs.Cert, "--tls-key", certs.Key})
	cmd.SetOut(io.Discard)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("si-subscriber: %v", err)
		}
	})

	tc, err := tlsconf.Client(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	client := newHTTPClient(tc, 10*time.Second)
	get := func(auth string) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/tasks", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, err := get("Bearer " + token)
		if err == nil {
			if code != http.StatusOK {
				t.Fatalf("GET /tasks over HTTPS with the token: %d", code)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /tasks over HTTPS with the token: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("si-subscriber stopped: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if code, err := get(""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("GET /tasks over HTTPS without the token: %d, %v; want 401", code, err)
	}
}

// TestSISubscriberHelpDocumentsTasksAPI: --help says how GET /tasks
// pages (after, limit, the default, the Link header), what corrected=true
// and the dates of death are, and what /healthz reports.
func TestSISubscriberHelpDocumentsTasksAPI(t *testing.T) {
	out, err := execute(t, rootCommand(), "si-subscriber", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"after=ID", "limit=N", "default 1000, at most 10000", `Link: <...>; rel="next"`,
		"corrected=true", "date_of_death", "corrected_date_of_death", "GET /healthz answers 200 while", "503"} {
		if !strings.Contains(out, want) {
			t.Errorf("si-subscriber --help lacks %q:\n%s", want, out)
		}
	}
}

// TestSISubscriberUnderAccessPolicy runs si-subscriber as the example
// policy's si-harbin against a hub enforcing it, given only the NATS user
// and password (no --nats-inbox-prefix: the policy's default inbox is
// taken) and the social_insurance department's Kafka login: it becomes
// healthy, turns a move out of Harbin into a task, and completes tasks
// over HTTP and with "si-subscriber complete", each publishing its event
// to brokers that require SASL/SCRAM. Without the Kafka login the
// completion fails with a hint at credentials and the task stays open.
func TestSISubscriberUnderAccessPolicy(t *testing.T) {
	for _, v := range []string{"POPHUB_SI_KAFKA_USER", "POPHUB_SI_KAFKA_PASSWORD", "POPHUB_SI_NATS_INBOX_PREFIX",
		"POPHUB_KAFKA_USER", "POPHUB_KAFKA_PASSWORD"} {
		t.Setenv(v, "")
	}
	const apiToken = "si-policy-test-token"
	t.Setenv("POPHUB_SI_API_TOKEN", apiToken)
	m := startSecureHub(t)
	kafkaID, ok := m.Access.Identity(string(schemas.SocialInsurance))
	if !ok || kafkaID.Credentials.Kafka == nil {
		t.Fatal("the example policy has no social_insurance Kafka user")
	}
	kafkaUser, kafkaPassword := kafkaID.Name, access.DemoSecret(kafkaID.Credentials.Kafka.Password)
	login := access.SCRAMClient{User: kafkaUser, Password: kafkaPassword}
	brokers := strings.Join(m.Brokers(), ",")
	pg, schema := testenv.PostgresURL(), testenv.Schema(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// The Kafka login by environment, as a deployment would give it.
	t.Setenv("POPHUB_SI_KAFKA_USER", kafkaUser)
	t.Setenv("POPHUB_SI_KAFKA_PASSWORD", kafkaPassword)
	cmd := siSubscriberCommand(func() *slog.Logger { return testLogger(t) })
	cmd.SetArgs([]string{"--region", "2301", "--name", "si-harbin", "--consumer-per-filter", "--start", "all",
		"--nats", m.NATSURL(), "--nats-user", "si-harbin", "--nats-password", access.DemoSecret("nats:si-harbin"),
		"--kafka", brokers, "--postgres", pg, "--schema", schema, "--http", addr})
	cmd.SetOut(io.Discard)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	t.Setenv("POPHUB_SI_KAFKA_USER", "")
	t.Setenv("POPHUB_SI_KAFKA_PASSWORD", "")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("si-subscriber: %v", err)
		}
	})

	client := &http.Client{Timeout: 10 * time.Second}
	do := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitUntil := func(what func() string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what())
			}
			select {
			case err := <-done:
				t.Fatalf("si-subscriber stopped while waiting for %s: %v", what(), err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	var health string
	waitUntil(func() string { return "/healthz to answer 200 (last: " + health + ")" }, func() bool {
		code, body := do(http.MethodGet, "/healthz")
		health = body
		return code == http.StatusOK
	})

	// Two persons registered in Harbin move to Daqing.
	a, b := personID(t, 1), personID(t, 2)
	reg := func(p citizenid.ID, id, addr string) kafka.Message {
		return event(t, schemas.HukouRegistered, p, id, "2015-01-01T08:00:00+08:00", map[string]any{"name": "王芳",
			"gender": p.Gender(), "birth_date": p.BirthDate().Format(time.DateOnly), "ethnicity": "01",
			"address_code": addr, "household_id": "H-" + id, "reason": "birth"})
	}
	move := func(p citizenid.ID, id, from string) kafka.Message {
		return event(t, schemas.HukouMigrated, p, id, "2024-05-01T00:00:00+08:00",
			map[string]any{"from_address_code": from, "to_address_code": "230602013004", "reason": "employment"})
	}
	if err := writeAs(t, m, string(schemas.PublicSecurity), schemas.Topic(schemas.PublicSecurity),
		reg(a, "ps-si-1", "230102001001"), reg(b, "ps-si-2", "230103002001"), move(a, "ps-si-3", "230102001001"), move(b, "ps-si-4", "230103002001")); err != nil {
		t.Fatal(err)
	}
	var tasks []socialinsurance.Task
	waitUntil(func() string { return fmt.Sprintf("two transfer_out tasks (have %d)", len(tasks)) }, func() bool {
		code, body := do(http.MethodGet, "/tasks?status=open")
		tasks = nil
		return code == http.StatusOK && json.Unmarshal([]byte(body), &tasks) == nil && len(tasks) == 2
	})

	topic := schemas.Topic(schemas.SocialInsurance)
	if code, body := do(http.MethodPost, fmt.Sprintf("/tasks/%d/complete", tasks[0].ID)); code != http.StatusOK {
		t.Fatalf("POST /tasks/%d/complete: %d %s", tasks[0].ID, code, body)
	}
	if n := testenv.RecordCountAs(t, m.Brokers()[0], login, topic); n != 1 {
		t.Errorf("%d completions on %s after the HTTP completion, want 1", n, topic)
	}

	complete := func(args ...string) (string, error) {
		c := siSubscriberCommand(func() *slog.Logger { return testLogger(t) })
		return execute(t, c, append([]string{"complete", strconv.FormatInt(tasks[1].ID, 10),
			"--postgres", pg, "--schema", schema, "--kafka", brokers}, args...)...)
	}
	out, err := complete()
	if err == nil || !strings.Contains(err.Error(), "does it require") {
		t.Errorf("si-subscriber complete without a Kafka login: %v\n%s\nwant a failure hinting at credentials", err, out)
	}
	if out, err := complete("--kafka-user", kafkaUser, "--kafka-password", kafkaPassword); err != nil || !strings.Contains(out, `"status":"done"`) {
		t.Fatalf("si-subscriber complete with the Kafka login: %v\n%s", err, out)
	}
	if n := testenv.RecordCountAs(t, m.Brokers()[0], login, topic); n != 2 {
		t.Errorf("%d completions on %s after the CLI completion, want 2", n, topic)
	}
}

// TestSIKafkaLoginHalfGiven: a Kafka user without a password, or a
// password without a user, is refused naming the missing flag and the
// subscriber's own variable, before anything connects.
func TestSIKafkaLoginHalfGiven(t *testing.T) {
	for _, tc := range []struct {
		name, env, value string
		args             []string
		want             string
	}{
		{"user flag", "", "", []string{"--kafka-user", "social_insurance"}, "POPHUB_SI_KAFKA_PASSWORD"},
		{"password flag", "", "", []string{"--kafka-password", "pw"}, "POPHUB_SI_KAFKA_USER"},
		{"user variable", "POPHUB_SI_KAFKA_USER", "social_insurance", nil, "--kafka-password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("POPHUB_SI_KAFKA_USER", "")
			t.Setenv("POPHUB_SI_KAFKA_PASSWORD", "")
			if tc.env != "" {
				t.Setenv(tc.env, tc.value)
			}
			for _, args := range [][]string{
				{"--region", "2301", "--nats", "nats://127.0.0.1:1", "--postgres", "postgres://127.0.0.1:1/none", "--kafka", "127.0.0.1:1"},
				{"complete", "1", "--postgres", "postgres://127.0.0.1:1/none", "--kafka", "127.0.0.1:1"},
			} {
				args = append(args, tc.args...)
				out, err := execute(t, siSubscriberCommand(func() *slog.Logger { return testLogger(t) }), args...)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("si-subscriber %v: %v\n%s\nwant an error naming %s", args, err, out, tc.want)
				}
			}
		})
	}
}

// TestSISubscriberInboxPrefix: under an access policy the inbox is the
// identity's, _INBOX_<nats-user>, unless --nats-inbox-prefix says
// otherwise; without a NATS user it stays the client's default.
func TestSISubscriberInboxPrefix(t *testing.T) {
	tests := []struct{ user, prefix, want string }{
		{"", "", ""},
		{"si-harbin", "", "_INBOX_si-harbin"},
		{"si-harbin", "_INBOX_custom", "_INBOX_custom"},
	}
	for _, tt := range tests {
		if got := siInboxPrefix(tt.user, tt.prefix); got != tt.want {
			t.Errorf("siInboxPrefix(%q, %q) = %q, want %q", tt.user, tt.prefix, got, tt.want)
		}
	}
}

// TestSISubscriberRegionCheckedAgainstTable: a well-formed region the
// division table lacks is refused naming it, before anything connects.
func TestSISubscriberRegionCheckedAgainstTable(t *testing.T) {
	t.Setenv("POPHUB_SI_API_TOKEN", "")
	out, err := execute(t, siSubscriberCommand(func() *slog.Logger { return testLogger(t) }),
		"--region", "230199", "--nats", "nats://127.0.0.1:1", "--postgres", "postgres://127.0.0.1:1/none")
	if err == nil || !strings.Contains(err.Error(), `"230199": not in the region table`) {
		t.Errorf("si-subscriber --region 230199: %v\n%s", err, out)
	}
}

// TestSISubscriberOwnBrokerVariables: si-subscriber's --kafka and --nats
// read POPHUB_SI_KAFKA and POPHUB_SI_NATS, not the hub's POPHUB_KAFKA and
// POPHUB_NATS, so that a shell set up for `pophub serve` does not point
// the subscriber (and `si-subscriber complete`) at the hub's settings;
// each flag's help names its variable.
func TestSISubscriberOwnBrokerVariables(t *testing.T) {
	const hubKafka, hubNATS = "hub-kafka:9092", "nats://hub-nats:4222"
	const siKafka, siNATS = "si-kafka:9092", "nats://si-nats:4222"
	tests := []struct {
		name                string
		env                 map[string]string
		wantKafka, wantNATS string
	}{
		{"nothing set: pophub dev's", nil, "127.0.0.1:19092", "nats://127.0.0.1:14222"},
		{"only the hub's", map[string]string{"POPHUB_KAFKA": hubKafka, "POPHUB_NATS": hubNATS}, "127.0.0.1:19092", "nats://127.0.0.1:14222"},
		{"only the subscriber's", map[string]string{"POPHUB_SI_KAFKA": siKafka, "POPHUB_SI_NATS": siNATS}, siKafka, siNATS},
		{"both", map[string]string{"POPHUB_KAFKA": hubKafka, "POPHUB_NATS": hubNATS, "POPHUB_SI_KAFKA": siKafka, "POPHUB_SI_NATS": siNATS}, siKafka, siNATS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, v := range []string{"POPHUB_KAFKA", "POPHUB_NATS", "POPHUB_SI_KAFKA", "POPHUB_SI_NATS"} {
				t.Setenv(v, tt.env[v])
			}
			cmd := siSubscriberCommand(func() *slog.Logger { return testLogger(t) })
			kafkaFlag, natsFlag := cmd.PersistentFlags().Lookup("kafka"), cmd.Flags().Lookup("nats")
			if got := kafkaFlag.Value.String(); got != tt.wantKafka {
				t.Errorf("--kafka %q, want %q", got, tt.wantKafka)
			}
			if got := natsFlag.Value.String(); got != tt.wantNATS {
				t.Errorf("--nats %q, want %q", got, tt.wantNATS)
			}
			complete, _, err := cmd.Find([]string{"complete"})
			if err != nil {
				t.Fatal(err)
			}
			if got := complete.InheritedFlags().Lookup("kafka").Value.String(); got != tt.wantKafka {
				t.Errorf("complete --kafka %q, want %q", got, tt.wantKafka)
			}
			for flag, want := range map[string]string{kafkaFlag.Usage: "env POPHUB_SI_KAFKA)", natsFlag.Usage: "env POPHUB_SI_NATS;"} {
				if !strings.Contains(flag, want) {
					t.Errorf("help %q does not name %q", flag, want)
				}
			}
		})
	}
}
