package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/tlsconf"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// startTLSHub runs the embedded hub as `pophub dev --tls` does.
func startTLSHub(t *testing.T) *Main {
	t.Helper()
	cfg := Config{Embedded: true, TLS: true, DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0", Partitions: 2, NATSSync: time.Second}
	m := startMain(t, cfg)
	return m
}

// tlsClient trusts the CA in file.
func tlsClient(t *testing.T, file string) *tls.Config {
	t.Helper()
	tc, err := tlsconf.Client(file)
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// TestTLSDev runs `pophub dev --tls`: every door speaks TLS with the
// generated CA; events go in over Kafka with TLS, records come out over
// HTTPS and notifications over NATS with TLS; plaintext clients and
// clients that do not trust the CA are refused at each door.
func TestTLSDev(t *testing.T) {
	m := startTLSHub(t)
	ca := filepath.Join(m.Config.DataDir, "tls", tlsconf.CAFile)
	if m.CAFile() != ca {
		t.Fatalf("CA file %q, want %q", m.CAFile(), ca)
	}
	if !strings.HasPrefix(m.HTTPURL(), "https://") || !strings.HasPrefix(m.NATSURL(), "tls://") {
		t.Fatalf("HTTP %s and NATS %s: want https:// and tls://", m.HTTPURL(), m.NATSURL())
	}
	trusting := tlsClient(t, ca)
	other, err := tlsconf.EnsureDev(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stranger := tlsClient(t, other.CA)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A subscriber on the SDK, over TLS, from the start of the stream.
	var mu sync.Mutex
	delivered := map[citizenid.ID]bool{}
	sub, err := sdk.New(sdk.Config{Name: fmt.Sprintf("tls-test-%d", time.Now().UnixNano()), URL: m.NATSURL(), TLS: trusting,
		Filters: []sdk.Filter{{Kind: sdk.Changes, Region: "23"}}, Start: sdk.Start{Policy: sdk.StartAll},
		Handler: func(_ context.Context, d *sdk.Delivery) error {
			mu.Lock()
			delivered[d.CitizenID] = true
			mu.Unlock()
			return nil
		}})
	if err != nil {
		t.Fatalf("subscribing over TLS: %v", err)
	}
	defer sub.Close()
	subCtx, stopSub := context.WithCancel(ctx)
	subDone := make(chan error, 1)
	go func() { subDone <- sub.Run(subCtx) }()
	defer func() {
		stopSub()
		if err := <-subDone; err != nil {
			t.Errorf("subscriber: %v", err)
		}
	}()

	// One event through `pophub publish --ca`, one straight from kafka-go.
	msgs := scenario(t)[:2]
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(file, append(msgs[0].Value, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	pub := publishCommand(func() *slog.Logger { return testLogger(t) })
	pub.SetOut(&out)
	pub.SetErr(&out)
	pub.SetArgs([]string{"--source", string(schemas.SourceOfTopic(msgs[0].Topic)), "--file", file,
		"--kafka", strings.Join(m.Brokers(), ","), "--ca", ca})
	if err := pub.ExecuteContext(ctx); err != nil {
		t.Fatalf("pophub publish --ca: %v\n%s", err, out.String())
	}
	w := &kafka.Writer{Addr: kafka.TCP(m.Brokers()...), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond, Transport: &kafka.Transport{TLS: trusting}}
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs[1]); err != nil {
		t.Fatalf("producing over TLS: %v", err)
	}
	waitCaughtUp(t, m, len(msgs))

	hc := newHTTPClient(trusting, 10*time.Second)
	for _, id := range []citizenid.ID{personID(t, 1), personID(t, 2)} {
		var rec hub.Record
		if code, err := getTLS(ctx, hc, m.HTTPURL()+"/v1/persons/"+string(id), &rec); err != nil || code != http.StatusOK {
			t.Fatalf("GET the record over HTTPS: %d, %v", code, err)
		}
		if rec.CitizenID != id {
			t.Errorf("record of %v, want %v", rec.CitizenID, id)
		}
	}
	waitFor(t, 30*time.Second, "both persons' notifications through the SDK over TLS", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return delivered[personID(t, 1)] && delivered[personID(t, 2)]
	})

	// `pophub status --hub https://… --ca` reads the admin API over HTTPS.
	out.Reset()
	st := statusCommand()
	st.SetOut(&out)
	st.SetErr(&out)
	st.SetArgs([]string{"--hub", m.HTTPURL(), "--ca", ca, "--json"})
	if err := st.ExecuteContext(ctx); err != nil || !bytes.Contains(out.Bytes(), []byte(`"store"`)) {
		t.Fatalf("pophub status over HTTPS: %v\n%s", err, out.String())
	}

	hostPort := strings.TrimPrefix(m.NATSURL(), "tls://")
	person := "/v1/persons/" + string(personID(t, 1))
	refused := []struct {
		name string
		try  func(context.Context) error
	}{
		{"kafka: plaintext", func(ctx context.Context) error { return kafkaMetadata(ctx, m.Brokers(), nil) }},
		{"kafka: another CA", func(ctx context.Context) error { return kafkaMetadata(ctx, m.Brokers(), stranger) }},
		{"nats: plaintext", func(ctx context.Context) error { return natsPlain(ctx, hostPort) }},
		{"nats: the system's roots", func(context.Context) error { return natsConnect("nats://"+hostPort, nil) }},
		{"nats: another CA", func(context.Context) error { return natsConnect(m.NATSURL(), stranger) }},
		{"http: plain http://", func(ctx context.Context) error {
			return httpGet(ctx, newHTTPClient(nil, 10*time.Second), "http://"+m.HTTPAddr()+person)
		}},
		{"https: the system's roots", func(ctx context.Context) error {
			return httpGet(ctx, newHTTPClient(nil, 10*time.Second), m.HTTPURL()+person)
		}},
		{"https: another CA", func(ctx context.Context) error {
			return httpGet(ctx, newHTTPClient(stranger, 10*time.Second), m.HTTPURL()+person)
		}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			err := tc.try(ctx)
			if err == nil {
				t.Fatal("accepted")
			}
			t.Logf("refused: %v", err)
		})
	}
}

// getTLS GETs url with hc and decodes a 200 answer into v.
func getTLS(ctx context.Context, hc *http.Client, url string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || v == nil {
		return resp.StatusCode, err
	}
	return resp.StatusCode, json.Unmarshal(body, v)
}

// httpGet is nil when url answers 200.
func httpGet(ctx context.Context, hc *http.Client, url string) error {
	code, err := getTLS(ctx, hc, url, nil)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("status %d", code)
	}
	return err
}

// kafkaMetadata asks the brokers for metadata, over TLS with tc when set.
func kafkaMetadata(ctx context.Context, brokers []string, tc *tls.Config) error {
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	if tc != nil {
		tr := &kafka.Transport{TLS: tc, DialTimeout: 5 * time.Second}
		defer tr.CloseIdleConnections()
		cl.Transport = tr
	}
	_, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{schemas.DLQTopic}})
	return err
}

// natsPlain speaks the NATS protocol in plaintext, as a client that
// cannot do TLS would (nats.go upgrades to TLS when the server asks); it
// is nil when the server answers PING with PONG.
func natsPlain(ctx context.Context, hostPort string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", hostPort)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading INFO: %w", err)
	}
	if !strings.Contains(info, `"tls_required":true`) {
		return fmt.Errorf("INFO does not require TLS: %s", info)
	}
	if _, err := io.WriteString(conn, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n"); err != nil {
		return err
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("after CONNECT: %w", err)
		}
		if strings.HasPrefix(line, "PONG") {
			return nil
		}
		if strings.HasPrefix(line, "-ERR") {
			return errors.New(strings.TrimSpace(line))
		}
	}
}

// natsConnect connects and round-trips once, over TLS with tc when set.
func natsConnect(url string, tc *tls.Config) error {
	opts := []nats.Option{nats.Timeout(5 * time.Second)}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	return nc.FlushTimeout(5 * time.Second)
}

// TestTLSServe runs `pophub serve --tls-cert --tls-key --tls-ca` against
// an external broker and NATS server that require TLS.
func TestTLSServe(t *testing.T) {
	files, err := tlsconf.EnsureDev(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := tlsconf.Server(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k, err := embedded.StartKafka(ctx, embedded.KafkaConfig{Partitions: 2, TLS: srvTLS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	n := testenv.NATS(t, embedded.NATSConfig{TLS: srvTLS})

	m := &Main{Config: Config{KafkaBrokers: []string{k.Addr()}, NATSURL: n.ClientURL(), HTTPAddr: "127.0.0.1:0", Partitions: 2,
		DataDir: t.TempDir(), TLSCert: files.Cert, TLSKey: files.Key, TLSCA: files.CA}, Logger: testLogger(t)}
	if err := m.Start(ctx); err != nil {
		t.Fatalf("starting hub: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	trusting := tlsClient(t, files.CA)
	msg := scenario(t)[0]
	w := &kafka.Writer{Addr: kafka.TCP(k.Addr()), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond, Transport: &kafka.Transport{TLS: trusting}}
	defer w.Close()
	if err := w.WriteMessages(ctx, msg); err != nil {
		t.Fatalf("producing over TLS: %v", err)
	}
	waitCaughtUp(t, m, 1)
	if code, err := getTLS(ctx, newHTTPClient(trusting, 10*time.Second), m.HTTPURL()+"/v1/persons/"+string(personID(t, 1)), nil); err != nil || code != http.StatusOK {
		t.Fatalf("GET the record over HTTPS: %d, %v", code, err)
	}
}

// TestTLSOff: without TLS settings every door speaks plaintext as before,
// and the clients the TLS test expects to be refused are served.
func TestTLSOff(t *testing.T) {
	m := startHub(t, "memdb")
	if m.CAFile() != "" || !strings.HasPrefix(m.HTTPURL(), "http://") || !strings.HasPrefix(m.NATSURL(), "nats://") {
		t.Fatalf("CA %q, HTTP %s, NATS %s: want none, http:// and nats://", m.CAFile(), m.HTTPURL(), m.NATSURL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, try := range map[string]func() error{
		"kafka": func() error { return kafkaMetadata(ctx, m.Brokers(), nil) },
		"nats":  func() error { return natsConnect(m.NATSURL(), nil) },
		"http":  func() error { return httpGet(ctx, newHTTPClient(nil, 10*time.Second), m.HTTPURL()+"/healthz") },
	} {
		if err := try(); err != nil {
			t.Errorf("%s in plaintext: %v", name, err)
		}
	}
}

func TestTLSConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // in the error; "" for none
	}{
		{"dev --tls", Config{Embedded: true, TLS: true}, ""},
		{"serve --tls", Config{KafkaBrokers: []string{"k:9092"}, NATSURL: "tls://n:4222", TLS: true}, "--tls makes certificates"},
		{"cert without key", Config{Embedded: true, TLSCert: "c.pem"}, "--tls-cert and --tls-key"},
		{"key without cert", Config{Embedded: true, TLSKey: "k.pem"}, "--tls-cert and --tls-key"},
		{"cert, key and CA", Config{KafkaBrokers: []string{"k:9092"}, NATSURL: "tls://n:4222", PostgresURL: "postgres://p/db", TLSCert: "c.pem", TLSKey: "k.pem", TLSCA: "ca.pem"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.setDefaults()
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate: %v, want an error about %q", err, tt.want)
			}
		})
	}
}

// TestTLSClientCertificate runs `pophub dev --tls --tls-client-ca` with a
// policy in which the statistics bureau has a certificate instead of a
// token: its certificate alone authenticates it; certificates the policy
// does not list, or that another CA signed, do not.
func TestTLSClientCertificate(t *testing.T) {
	data := t.TempDir()
	files, err := tlsconf.EnsureDev(filepath.Join(data, "tls")) // the hub keeps them
	if err != nil {
		t.Fatal(err)
	}
	certs := t.TempDir()
	issue := func(f tlsconf.DevFiles, name string) (certFile, keyFile string) {
		certFile, keyFile = filepath.Join(certs, name+".pem"), filepath.Join(certs, name+"-key.pem")
		if err := tlsconf.IssueClient(f, name, certFile, keyFile); err != nil {
			t.Fatal(err)
		}
		return certFile, keyFile
	}
	// The bureau's through `pophub tls client-cert`, which prints the
	// fingerprint for the policy.
	bureauCert, bureauKey := filepath.Join(certs, "stats-bureau.pem"), filepath.Join(certs, "stats-bureau-key.pem")
	var out bytes.Buffer
	cmd := tlsCommand()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"client-cert", "stats-bureau", "--dir", files.Dir, "--out", filepath.Join(certs, "stats-bureau")})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("pophub tls client-cert: %v\n%s", err, out.String())
	}
	_, fp, _ := strings.Cut(out.String(), "cert_sha256: ")
	fp = strings.TrimSpace(fp)
	unlistedCert, unlistedKey := issue(files, "stats-bureau-2")
	other, err := tlsconf.EnsureDev(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	strangerCert, strangerKey := issue(other, "stats-bureau-3")

	// The example policy, the bureau's token replaced by its certificate.
	if want, err := tlsconf.Fingerprint(bureauCert); err != nil || fp != want {
		t.Fatalf("printed fingerprint %q, want %q (%v)", fp, want, err)
	}
	policy, err := os.ReadFile(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	const bureauToken = "token_sha256: f9dd7144b69e3e3399e9a3d478940f4ba31bd9373c4d281e46c824634fbdd043"
	if !bytes.Contains(policy, []byte(bureauToken)) {
		t.Fatal("the example policy no longer holds the statistics bureau's token")
	}
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, bytes.Replace(policy, []byte(bureauToken), []byte("cert_sha256: "+fp), 1), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := Config{Embedded: true, TLS: true, TLSClientCA: files.CA, DataDir: data, KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0", Partitions: 2, NATSSync: time.Second, PolicyFile: policyFile,
		NATSPassword: access.DemoSecret("nats:hub"), Secrets: access.DemoResolver}
	m := startMain(t, cfg)

	trusting := tlsClient(t, files.CA)
	withCert := func(certFile, keyFile string) *tls.Config {
		tc, err := tlsconf.WithClientCert(trusting, certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return tc
	}
	stats := m.HTTPURL() + "/v1/stats/urban-rural?region=23"
	tests := []struct {
		name   string
		client *tls.Config
		token  string // an identity's demo token; "" for none
		url    string
		want   int // 0: the TLS handshake fails
	}{
		{"the bureau's certificate", withCert(bureauCert, bureauKey), "", stats, http.StatusOK},
		{"no certificate, no token", trusting, "", stats, http.StatusUnauthorized},
		{"a certificate the policy does not list", withCert(unlistedCert, unlistedKey), "", stats, http.StatusUnauthorized},
		{"a certificate another CA signed", withCert(strangerCert, strangerKey), "", stats, 0},
		{"a token without a certificate", trusting, "admin", m.HTTPURL() + "/v1/admin/status", http.StatusOK},
		{"the bureau's certificate where it has no grant", withCert(bureauCert, bureauKey), "", m.HTTPURL() + "/v1/admin/status", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Purpose", "official population statistics")
			if tt.token != "" {
				req.Header.Set("X-Purpose", "operations")
				req.Header.Set("Authorization", "Bearer "+access.DemoSecret("token:"+tt.token))
			}
			resp, err := newHTTPClient(tt.client, 10*time.Second).Do(req)
			if tt.want == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("status %d, want a failed handshake", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
		})
	}
}
