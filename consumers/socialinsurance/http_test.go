package socialinsurance

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// testAPIToken is the tasks API's bearer token in the tests.
const testAPIToken = "si-test-token-7d3f0a"

// bearerClient is an HTTP client that sends token (none when empty) on
// every request and trusts roots (nil: the system's).
func bearerClient(token string, roots *x509.CertPool) *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: 10 * time.Second, Transport: bearerTransport{token: token, base: base}}
}

type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.base.RoundTrip(r)
}

// startService runs the service with cfg against an embedded NATS server
// and a schema of its own until the test ends.
func startService(t *testing.T, cfg Config) *Service {
	t.Helper()
	svc, stop := runService(t, cfg)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitConsuming(t, svc)
	return svc
}

// runService runs the service as startService does; stop ends Run and
// returns its error. The test's end stops it too. It runs on a NATS
// server of its own with the hub's stream, unless cfg.NATS names one
// (which must have the stream).
func runService(t *testing.T, cfg Config) (svc *Service, stop func() error) {
	t.Helper()
	if cfg.NATS == "" {
		srv := sdktest.StartServer(t)
		_, js := sdktest.Connect(t, srv.URL())
		sdktest.CreateStream(t, js, schemas.StreamName, "pop")
		cfg.NATS = srv.URL()
	}
	cfg.Region, cfg.Start = "2301", sdk.Start{Policy: sdk.StartAll}
	cfg.Postgres, cfg.Schema = testenv.PostgresURL(), testenv.Schema(t)
	svc, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
			svc.Close()
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return svc, stop
}

// waitConsuming waits until the service's subscriber has set up its
// consumers, as /healthz reports.
func waitConsuming(t *testing.T, svc *Service) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); svc.sub.Health() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the subscriber does not consume: %v", svc.sub.Health())
		}
	}
}

// addTask records a transfer_out task for citizen as a notification would.
func addTask(t *testing.T, svc *Service, changeID string, citizen int) Task {
	t.Helper()
	ctx := context.Background()
	id := sdktest.CitizenID(citizen)
	c := change{citizenID: id, version: 1, task: Task{Kind: TransferOut, CitizenID: id, ChangeID: changeID,
		FromRegion: "230102", ToRegion: "110105", ChangedAt: time.Now()}}
	if _, err := svc.store.apply(ctx, c); err != nil {
		t.Fatal(err)
	}
	tasks, err := svc.store.Tasks(ctx, TaskFilter{CitizenID: id})
	if err != nil || len(tasks) != 1 {
		t.Fatalf("tasks of the new task's citizen: %v, %v", tasks, err)
	}
	return tasks[0]
}

// TestTasksAPIRequiresToken: listing tasks (full citizen IDs) and
// completing one (an event that changes golden records) take the
// configured bearer token and nothing else; a refused completion
// publishes nothing and leaves the task open. /healthz and /metrics
// stay open. With no token configured the tasks API refuses everyone.
func TestTasksAPIRequiresToken(t *testing.T) {
	broker := testenv.Kafka(t, 1)
	svc := startService(t, Config{Kafka: []string{broker}, APIToken: testAPIToken})
	task := addTask(t, svc, "chg-auth", 1)
	api := httptest.NewServer(svc.Handler())
	t.Cleanup(api.Close)

	// The same store behind a service with no token configured.
	open, err := New(context.Background(), Config{Region: "2301", NATS: svc.cfg.NATS, Postgres: svc.cfg.Postgres, Schema: svc.cfg.Schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { open.Close() })
	noTokenAPI := httptest.NewServer(open.Handler())
	t.Cleanup(noTokenAPI.Close)

	list, complete := "GET /tasks", fmt.Sprintf("POST /tasks/%d/complete", task.ID)
	tests := []struct {
		name     string
		api      *httptest.Server
		route    string
		header   string // Authorization
		want     int
		wantDone bool // the task is done afterwards
	}{
		{"list without token", api, list, "", http.StatusUnauthorized, false},
		{"list with wrong token", api, list, "Bearer " + testAPIToken + "x", http.StatusUnauthorized, false},
		{"list with token as basic credentials", api, list, "Basic " + testAPIToken, http.StatusUnauthorized, false},
		{"list with empty bearer", api, list, "Bearer ", http.StatusUnauthorized, false},
		{"list with no token configured", noTokenAPI, list, "Bearer " + testAPIToken, http.StatusUnauthorized, false},
		{"list with empty bearer and no token configured", noTokenAPI, list, "Bearer ", http.StatusUnauthorized, false},
		{"complete without token", api, complete, "", http.StatusUnauthorized, false},
		{"complete with wrong token", api, complete, "Bearer wrong", http.StatusUnauthorized, false},
		{"complete with no token configured", noTokenAPI, complete, "Bearer " + testAPIToken, http.StatusUnauthorized, false},
		{"healthz without token", api, "GET /healthz", "", http.StatusOK, false},
		{"metrics without token", api, "GET /metrics", "", http.StatusOK, false},
		{"list with token", api, list, "Bearer " + testAPIToken, http.StatusOK, false},
		{"complete with token", api, complete, "Bearer " + testAPIToken, http.StatusOK, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, path, _ := strings.Cut(tt.route, " ")
			req, err := http.NewRequest(method, tt.api.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("%s: %s, want %d\n%s", tt.route, resp.Status, tt.want, body)
			}
			switch {
			case tt.want == http.StatusUnauthorized:
				var p problem
				if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" || json.Unmarshal(body, &p) != nil || p.Status != tt.want {
					t.Errorf("refusal is %s %q, want an application/problem+json problem with status %d", ct, body, tt.want)
				}
				if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
					t.Errorf("WWW-Authenticate %q, want the Bearer challenge", got)
				}
				if bytes.Contains(body, []byte(task.CitizenID)) {
					t.Errorf("a refusal shows the citizen ID: %s", body)
				}
			case tt.route == list:
				if !bytes.Contains(body, []byte(task.CitizenID)) {
					t.Errorf("the list lacks the task: %s", body)
				}
			}
			got, err := svc.store.Task(context.Background(), task.ID)
			if err != nil {
				t.Fatal(err)
			}
			if done := got.Status == StatusDone; done != tt.wantDone {
				t.Errorf("task status %s after %s", got.Status, tt.name)
			}
			wantEvents := int64(0)
			if tt.wantDone {
				wantEvents = 1
			}
			if n := testenv.RecordCount(t, broker, schemas.Topic(schemas.SocialInsurance)); n != wantEvents {
				t.Errorf("%d completion events published, want %d", n, wantEvents)
			}
		})
	}
}

// TestValidateRegion: the bureau's region error says what is wrong with
// the code: its length, a character, or a province that does not exist.
func TestValidateRegion(t *testing.T) {
	tests := []struct {
		region, want string // want "" for no error
	}{
		{"2301", ""},
		{"23", ""},
		{"230102", ""},
		{"", `region "": want a 2-, 4- or 6-digit division code`},
		{"23010", `region "23010": want a 2-, 4- or 6-digit division code`},
		{"99", `region "99": not a division code: 99 is not a province code`},
		{"990102", `region "990102": not a division code: 99 is not a province code`},
		{"23O1", `region "23O1": not a division code: it has a character other than a digit`},
		{"230100", ""},
		{"230199", `region "230199": not in the region table`},
	}
	for _, tt := range tests {
		cfg := Config{Region: tt.region, NATS: "nats://127.0.0.1:1", Postgres: "postgres://127.0.0.1:1/x"}
		err := cfg.Validate()
		if got := fmt.Sprint(err); tt.want == "" && err != nil || tt.want != "" && got != tt.want {
			t.Errorf("region %q: Validate() = %v, want %q", tt.region, err, tt.want)
		}
	}
}

// TestValidateRefusesTasksAPIBeyondLoopbackWithoutToken: the service
// refuses to start with the tasks API where other machines reach it
// unless it has a token; on the loopback interface it starts without one.
func TestValidateRefusesTasksAPIBeyondLoopbackWithoutToken(t *testing.T) {
	tests := []struct {
		addr, token string
		wantRefused bool
	}{
		{"127.0.0.1:8090", "", false},
		{"127.0.0.2:0", "", false},
		{"[::1]:8090", "", false},
		{"localhost:8090", "", false},
		{"", "", false}, // no HTTP API at all
		{"0.0.0.0:8090", "", true},
		{":8090", "", true},
		{"[::]:8090", "", true},
		{"192.0.2.10:8090", "", true},
		{"si.example.org:8090", "", true},
		{"0.0.0.0:8090", testAPIToken, false},
		{"192.0.2.10:8090", testAPIToken, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s token=%t", tt.addr, tt.token != ""), func(t *testing.T) {
			cfg := Config{Region: "2301", NATS: "nats://127.0.0.1:1", Postgres: "postgres://127.0.0.1:1/x", HTTPAddr: tt.addr, APIToken: tt.token}
			err := cfg.Validate()
			if refused := errors.Is(err, ErrAPITokenRequired); refused != tt.wantRefused {
				t.Errorf("Validate() = %v, want refused %t", err, tt.wantRefused)
			}
			if !tt.wantRefused && err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
	if _, err := New(context.Background(), Config{Region: "2301", NATS: "nats://127.0.0.1:1", Postgres: testenv.PostgresURL(),
		HTTPAddr: "0.0.0.0:0"}); !errors.Is(err, ErrAPITokenRequired) {
		t.Errorf("New with the API on every interface and no token: %v, want ErrAPITokenRequired", err)
	}
}

// TestTasksAPIOverTLS: with HTTPTLS the service answers over HTTPS only;
// a client trusting its certificate lists tasks with the token, one
// speaking plain HTTP gets none.
func TestTasksAPIOverTLS(t *testing.T) {
	cert, roots := selfSignedCert(t)
	addr := freeLoopbackAddr(t)
	svc := startService(t, Config{HTTPAddr: addr, APIToken: testAPIToken,
		HTTPTLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	task := addTask(t, svc, "chg-tls", 2)

	client := bearerClient(testAPIToken, roots)
	var body []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("https://" + addr + "/tasks")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /tasks over HTTPS: %s\n%s", resp.Status, body)
			}
			if resp.TLS == nil {
				t.Fatal("the answer did not come over TLS")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /tasks over HTTPS: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !bytes.Contains(body, []byte(task.CitizenID)) {
		t.Errorf("the list over HTTPS lacks the task: %s", body)
	}

	resp, err := client.Get("http://" + addr + "/tasks")
	if err == nil {
		plain, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || bytes.Contains(plain, []byte(task.CitizenID)) {
			t.Errorf("plain HTTP was answered: %s\n%s", resp.Status, plain)
		}
	}
	if _, err := bearerClient(testAPIToken, x509.NewCertPool()).Get("https://" + addr + "/tasks"); err == nil {
		t.Error("a client that does not trust the certificate got an answer")
	}
}

// freeLoopbackAddr is a loopback address with a port nothing listens on.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// selfSignedCert is a certificate for 127.0.0.1 and the pool trusting it.
func selfSignedCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "si-subscriber test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots
}

// TestMaskedError: an error logged by the API shows a citizen ID it
// quotes only masked.
func TestMaskedError(t *testing.T) {
	id := string(sdktest.CitizenID(3))
	tests := []struct {
		name string
		err  error
	}{
		{"quoted by the database", fmt.Errorf("loading task: %w", fmt.Errorf(`duplicate key value (citizen_id)=(%s)`, id))},
		{"at the end", errors.New("publishing completion for " + id)},
		{"legacy 15 digits", errors.New("no such person 230102900101123")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := maskedError(tt.err).Value.String()
			if strings.Contains(got, id) || strings.Contains(got, "230102900101123") {
				t.Errorf("logged %q", got)
			}
			if !strings.Contains(got, "**") {
				t.Errorf("logged %q, want the ID masked", got)
			}
		})
	}
}

// slowRequest is a request whose headers announce a body that never
// comes: it holds a connection unless the server times the read out.
func slowRequest(route string) string {
	method, path, _ := strings.Cut(route, " ")
	return method + " " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testAPIToken + "\r\nContent-Length: 100\r\n\r\n"
}

// dialSlow opens a connection to addr and sends slowRequest(route) on it.
func dialSlow(t *testing.T, addr, route string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, slowRequest(route)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitServing waits until the service answers /healthz on addr.
func waitServing(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service does not serve %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSlowClientDisconnected: a client that sends a request's headers and
// then nothing of the body they announce loses its connection after
// Config.ReadTimeout rather than holding it for ever; on a tasks route the
// request is refused, not carried out.
func TestSlowClientDisconnected(t *testing.T) {
	addr := freeLoopbackAddr(t)
	const readTimeout = time.Second
	startService(t, Config{HTTPAddr: addr, APIToken: testAPIToken, ReadTimeout: readTimeout})
	waitServing(t, addr)
	tests := []struct {
		route      string
		wantStatus string // what the answer sent before the close starts with
	}{
		{"GET /healthz", "HTTP/1.1 200"},
		{"POST /tasks/1/complete", "HTTP/1.1 400"}, // not 503 (no Kafka): the handler never ran
		{"GET /tasks", "HTTP/1.1 400"},
	}
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			conns := make([]net.Conn, 5)
			for i := range conns {
				conns[i] = dialSlow(t, addr, tt.route)
			}
			start := time.Now()
			for _, conn := range conns {
				_ = conn.SetReadDeadline(start.Add(10 * readTimeout))
				got, err := io.ReadAll(conn) // an answer, then the close
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("the server still held the connection after %v", time.Since(start).Round(time.Millisecond))
				}
				if !strings.HasPrefix(string(got), tt.wantStatus) {
					t.Errorf("answered %q, want %s", got, tt.wantStatus)
				}
			}
			if took := time.Since(start); took < readTimeout/2 {
				t.Errorf("disconnected after %v, before the read timeout (%v)", took, readTimeout)
			}
		})
	}
}

// TestShutdownWithSlowClient: clients holding connections with requests
// that never finish (the read timeout is the default minute) do not make
// the shutdown fail or wait past Config.ShutdownTimeout: their
// connections are closed and Run returns nil.
func TestShutdownWithSlowClient(t *testing.T) {
	addr := freeLoopbackAddr(t)
	const shutdownTimeout = time.Second
	_, stop := runService(t, Config{HTTPAddr: addr, APIToken: testAPIToken, ShutdownTimeout: shutdownTimeout})
	waitServing(t, addr)
	var conns []net.Conn
	for _, route := range []string{"GET /healthz", "POST /tasks/1/complete", "GET /tasks"} {
		conns = append(conns, dialSlow(t, addr, route))
	}

	start := time.Now()
	if err := stop(); err != nil {
		t.Errorf("Run: %v, want nil", err)
	}
	if took := time.Since(start); took > shutdownTimeout+5*time.Second {
		t.Errorf("Run returned %v after its context ended, want about the shutdown timeout (%v)", took.Round(time.Millisecond), shutdownTimeout)
	}
	for _, conn := range conns {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Error("a connection is still open after Run returned")
		}
	}
}

// TestTasksBodyLimit: the tasks routes, which take no body, refuse one
// longer than maxTaskBody, declared or chunked, before authenticating or
// acting on the request, and close the connection; a short body is read
// and ignored.
func TestTasksBodyLimit(t *testing.T) {
	svc := startService(t, Config{APIToken: testAPIToken})
	task := addTask(t, svc, "chg-body", 4)
	api := httptest.NewServer(svc.Handler())
	t.Cleanup(api.Close)
	big := strings.Repeat("x", maxTaskBody+1)
	complete := fmt.Sprintf("POST /tasks/%d/complete", task.ID)
	tests := []struct {
		name    string
		route   string
		body    io.Reader
		chunked bool
		want    int
	}{
		{"list with a short body", "GET /tasks", strings.NewReader("{}"), false, http.StatusOK},
		{"list with a long body", "GET /tasks", strings.NewReader(big), false, http.StatusRequestEntityTooLarge},
		{"complete with a long body", complete, strings.NewReader(big), false, http.StatusRequestEntityTooLarge},
		{"complete with a long chunked body", complete, strings.NewReader(big), true, http.StatusRequestEntityTooLarge},
		{"complete with a short chunked body", complete, strings.NewReader("{}"), true, http.StatusServiceUnavailable}, // no Kafka
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, path, _ := strings.Cut(tt.route, " ")
			req, err := http.NewRequest(method, api.URL+path, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.chunked {
				req.ContentLength = -1 // sent chunked
				req.Body = io.NopCloser(tt.body)
			}
			req.Header.Set("Authorization", "Bearer "+testAPIToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("%s: %s, want %d\n%s", tt.route, resp.Status, tt.want, body)
			}
			if tt.want == http.StatusRequestEntityTooLarge {
				var p problem
				if json.Unmarshal(body, &p) != nil || p.Status != tt.want {
					t.Errorf("refusal %q, want a problem with status %d", body, tt.want)
				}
				if !resp.Close {
					t.Error("the connection stays open after a body too long")
				}
			}
			got, err := svc.store.Task(context.Background(), task.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != StatusOpen {
				t.Errorf("task status %s", got.Status)
			}
		})
	}
}

// TestHealthzReportsTheSubscriber: /healthz answers 200 only while the
// database answers and the subscriber consumes, and otherwise 503 with
// the reason: here a durable consumer of the bureau's name that filters
// something else (the region changed under the same --name), which stops
// the subscriber for good.
func TestHealthzReportsTheSubscriber(t *testing.T) {
	srv := sdktest.StartServer(t)
	_, js := sdktest.Connect(t, srv.URL())
	sdktest.CreateStream(t, js, schemas.StreamName, "pop")
	ctx := context.Background()
	if _, err := js.CreateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{Durable: "si-harbin", FilterSubject: "pop.death.>", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	svc, err := New(ctx, Config{Region: "2301", Name: "si-harbin", NATS: srv.URL(), Postgres: testenv.PostgresURL(), Schema: testenv.Schema(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	api := httptest.NewServer(svc.Handler())
	t.Cleanup(api.Close)
	healthz := func() (int, string) {
		t.Helper()
		resp, err := http.Get(api.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := healthz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "Run has not started") {
		t.Errorf("/healthz before Run: %d %q, want 503 saying it has not started", code, body)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := svc.Run(rctx); !errors.Is(err, sdk.ErrFilterChanged) {
		t.Fatalf("Run = %v, want ErrFilterChanged", err)
	}
	code, body := healthz()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "setting up failed") || !strings.Contains(body, "delete it or use another name") {
		t.Errorf("/healthz after the subscriber failed: %d %q, want 503 with the reason", code, body)
	}

	// The same store and server under the durable's own filter: healthy.
	if err := js.DeleteConsumer(ctx, schemas.StreamName, "si-harbin"); err != nil {
		t.Fatal(err)
	}
	good, err := New(ctx, Config{Region: "2301", Name: "si-harbin", NATS: srv.URL(), Postgres: svc.cfg.Postgres, Schema: svc.cfg.Schema})
	if err != nil {
		t.Fatal(err)
	}
	gctx, gcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- good.Run(gctx) }()
	t.Cleanup(func() {
		gcancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		good.Close()
	})
	goodAPI := httptest.NewServer(good.Handler())
	t.Cleanup(goodAPI.Close)
	waitServing(t, strings.TrimPrefix(goodAPI.URL, "http://"))
}

// getTasks lists tasks at url with the test's token and returns them with
// the target of the answer's Link rel="next" ("" without one), resolved
// against url.
func getTasks(t *testing.T, url string) (tasks []map[string]any, next string) {
	t.Helper()
	resp, err := bearerClient(testAPIToken, nil).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, body)
	}
	if err := json.Unmarshal(body, &tasks); err != nil {
		t.Fatalf("GET %s: not a JSON array: %v", url, err)
	}
	links := resp.Header.Values("Link")
	if len(links) == 0 {
		return tasks, ""
	}
	target, ok := strings.CutSuffix(links[0], `>; rel="next"`)
	if len(links) != 1 || !ok || !strings.HasPrefix(target, "<") {
		t.Fatalf("GET %s: Link %q, want one <…>; rel=\"next\"", url, links)
	}
	base, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := neturl.Parse(target[1:])
	if err != nil {
		t.Fatalf("Link target %q: %v", target, err)
	}
	return tasks, base.ResolveReference(ref).String()
}

// TestTasksPagedWithLink: GET /tasks answers at most limit tasks (1,000
// by default) as a bare array; a full page says that more may follow with
// a Link rel="next" continuing after its last task with the same
// parameters, and following the links lists every task once, in order.
func TestTasksPagedWithLink(t *testing.T) {
	svc := startService(t, Config{APIToken: testAPIToken})
	const total = DefaultTaskLimit + 1
	citizen := sdktest.CitizenID(7)
	if _, err := svc.store.pool.Exec(context.Background(), `INSERT INTO tasks (kind, citizen_id, change_id, version, from_region, to_region)
		SELECT 'transfer_out', $1, 'chg-page-' || g, 1, '230102', '110105' FROM generate_series(1, $2::int) g`, string(citizen), total); err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(svc.Handler())
	t.Cleanup(api.Close)

	// walk follows the links from url and returns the pages' lengths and
	// the tasks' ids.
	walk := func(url string) (pages []int, ids []int64) {
		t.Helper()
		for url != "" {
			var tasks []map[string]any
			tasks, url = getTasks(t, url)
			pages = append(pages, len(tasks))
			for _, task := range tasks {
				ids = append(ids, int64(task["id"].(float64)))
			}
			if url != "" {
				u, _ := neturl.Parse(url)
				if got, want := u.Query().Get("after"), fmt.Sprint(ids[len(ids)-1]); got != want {
					t.Errorf("Link %s: after=%s, want the page's last id %s", url, got, want)
				}
			}
			if len(pages) > total+1 {
				t.Fatal("the links do not end")
			}
		}
		return pages, ids
	}
	check := func(name string, pages []int, ids []int64, wantPages []int) {
		t.Helper()
		if fmt.Sprint(pages) != fmt.Sprint(wantPages) {
			t.Errorf("%s: pages of %v, want %v", name, pages, wantPages)
		}
		if len(ids) != total {
			t.Errorf("%s: %d tasks, want %d", name, len(ids), total)
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("%s: id %d after %d", name, ids[i], ids[i-1])
			}
		}
	}

	pages, ids := walk(api.URL + "/tasks")
	check("default limit", pages, ids, []int{DefaultTaskLimit, 1})

	// The other parameters stay in the link.
	first := api.URL + "/tasks?status=open&limit=400&citizen_id=" + string(citizen)
	_, next := getTasks(t, first)
	q, err := neturl.Parse(next)
	if err != nil {
		t.Fatal(err)
	}
	if v := q.Query(); v.Get("status") != "open" || v.Get("limit") != "400" || v.Get("citizen_id") != string(citizen) || q.Path != "/tasks" {
		t.Errorf("Link target %s lost the request's parameters", next)
	}
	pages, ids = walk(first)
	check("limit 400", pages, ids, []int{400, 400, 201})

	// A last page that is full cannot tell: its link leads to an empty one.
	pages, ids = walk(fmt.Sprintf("%s/tasks?limit=%d", api.URL, total))
	check("limit = total", pages, ids, []int{total, 0})
}

// TestTasksWalkSeesEveryTask: workers record tasks at once, each in its
// own transaction, and a client reads the new tasks as they arrive,
// continuing after the last id it saw. Task A draws its id first and its
// transaction stays open while task B is recorded: B is not listed before
// A commits, so the walk that continues after B's id has not skipped A.
func TestTasksWalkSeesEveryTask(t *testing.T) {
	b := openBureau(t, "2301")
	ctx := context.Background()
	death := func(citizen int, changeID string) change {
		id := sdktest.CitizenID(citizen)
		return change{citizenID: id, version: 1, status: "deceased", task: Task{Kind: StopBenefits, CitizenID: id,
			ChangeID: changeID, FromRegion: "230102", DateOfDeath: "2025-03-01", ChangedAt: time.Now()}}
	}
	drawn, release := make(chan int32), make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before the store closes
	b.store.taskDrawn = func(tx pgx.Tx, c change) {
		if c.task.ChangeID != "death-a" {
			return
		}
		var pid int32
		if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Error(err)
		}
		drawn <- pid
		<-release
	}
	doneA, doneB := make(chan error, 1), make(chan error, 1)
	go func() { _, err := b.store.apply(ctx, death(1, "death-a")); doneA <- err }()
	var pidA int32
	select {
	case pidA = <-drawn:
	case err := <-doneA:
		t.Fatalf("task A recorded without pausing: %v", err)
	}
	go func() { _, err := b.store.apply(ctx, death(2, "death-b")); doneB <- err }()

	// Task B is recorded, or waits for task A's transaction.
	recordedB := false
	for deadline := time.Now().Add(10 * time.Second); ; {
		select {
		case err := <-doneB:
			if err != nil {
				t.Fatal(err)
			}
			recordedB = true
		case <-time.After(10 * time.Millisecond):
		}
		if recordedB {
			break
		}
		var waiting bool
		if err := b.store.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE $1::int = ANY (pg_blocking_pids(pid)))`,
			pidA).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("task B neither recorded nor waiting for task A")
		}
	}

	// walk lists the tasks after the id after page by page, as a client
	// following the links does, and returns the last id it saw.
	seen := map[string]int64{}
	walk := func(after int64) int64 {
		t.Helper()
		for {
			page, err := b.store.Tasks(ctx, TaskFilter{After: after, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				return after
			}
			for _, task := range page {
				seen[task.ChangeID] = task.ID
				after = task.ID
			}
		}
	}
	after := walk(0)
	releaseOnce.Do(func() { close(release) })
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	if !recordedB {
		if err := <-doneB; err != nil {
			t.Fatal(err)
		}
	}
	walk(after)
	if _, ok := seen["death-a"]; !ok || len(seen) != 2 {
		t.Fatalf("the walk saw %v (first pass up to id %d): missed task A, committed after task B", seen, after)
	}
	if seen["death-a"] >= seen["death-b"] {
		t.Errorf("task ids %v: A drew its id first", seen)
	}
}

// TestTasksShowDatesOfDeath: a stop_benefits task's JSON carries its date
// of death, and once a different date was announced after completion
// also the corrected one, which corrected=true lists on its own;
// transfers, and a repeat with the same date, carry no such field.
func TestTasksShowDatesOfDeath(t *testing.T) {
	ctx := context.Background()
	svc := startService(t, Config{APIToken: testAPIToken})
	h, err := NewHandler(svc.store, "2301", noop.NewMeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	b := bureau{store: svc.store, handler: h}
	corrected, confirmed, open := sdktest.CitizenID(41), sdktest.CitizenID(42), sdktest.CitizenID(43)
	b.deliverDeath(t, sdktest.Death("d-41", corrected, 3, "2024-11-15"), daoli)
	b.deliverDeath(t, sdktest.Death("d-42", confirmed, 3, "2024-10-01"), daoli)
	b.deliverDeath(t, sdktest.Death("d-43", open, 3, "2024-09-30"), daoli)
	b.deliver(t, sdktest.Migration("m-44", sdktest.CitizenID(44), 2, daoli, beijing))
	pub := &hubPublisher{t: t}
	for id, change := range map[citizenid.ID]string{corrected: "d-41", confirmed: "d-42"} {
		task := b.task(t, id, change, StopBenefits)
		if _, err := Complete(ctx, svc.store, pub, task.ID); err != nil {
			t.Fatal(err)
		}
	}
	b.deliverDeath(t, sdktest.Death("d-41b", corrected, 4, "2024-11-12"), daoli) // corrected after completion
	b.deliverDeath(t, sdktest.Death("d-42b", confirmed, 4, "2024-10-01"), daoli) // the same date again

	api := httptest.NewServer(svc.Handler())
	t.Cleanup(api.Close)
	tasks, _ := getTasks(t, api.URL+"/tasks")
	byCitizen := map[string]map[string]any{}
	for _, task := range tasks {
		byCitizen[task["citizen_id"].(string)] = task
	}
	tests := []struct {
		citizen            citizenid.ID
		death, correctedTo any // nil: the key is absent
	}{
		{corrected, "2024-11-15", "2024-11-12"},
		{confirmed, "2024-10-01", nil},
		{open, "2024-09-30", nil},
		{sdktest.CitizenID(44), nil, nil},
	}
	for _, tt := range tests {
		task, ok := byCitizen[string(tt.citizen)]
		if !ok {
			t.Fatalf("no task of citizen %s in %v", tt.citizen, tasks)
		}
		if got := task["date_of_death"]; got != tt.death {
			t.Errorf("task %v: date_of_death %v, want %v", task["change_id"], got, tt.death)
		}
		if got := task["corrected_date_of_death"]; got != tt.correctedTo {
			t.Errorf("task %v: corrected_date_of_death %v, want %v", task["change_id"], got, tt.correctedTo)
		}
	}

	got, _ := getTasks(t, api.URL+"/tasks?corrected=true")
	if len(got) != 1 || got[0]["citizen_id"] != string(corrected) || got[0]["corrected_date_of_death"] != "2024-11-12" {
		t.Errorf("GET /tasks?corrected=true: %v, want the one corrected task", got)
	}
	if got, _ := getTasks(t, api.URL+"/tasks?corrected=true&status=open"); len(got) != 0 {
		t.Errorf("GET /tasks?corrected=true&status=open: %v, want none", got)
	}
	resp, err := bearerClient(testAPIToken, nil).Get(api.URL + "/tasks?corrected=yes")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET /tasks?corrected=yes: %s, want 400", resp.Status)
	}
}

// TestCompleteOnBrokersRequiringLogin: with brokers that, as under an
// access policy, serve only clients logged in with SASL/SCRAM-SHA-512,
// completing a task over HTTP publishes the completion as the bureau's
// identity; without the login the completion fails, the task stays open
// and the log says the broker may require credentials.
func TestCompleteOnBrokersRequiringLogin(t *testing.T) {
	login := access.SCRAMClient{User: "si-harbin", Password: "pw"}
	broker := testenv.Kafka(t, 1, kfake.EnableSASL(), kfake.Superuser(access.SCRAMMechanism, login.User, login.Password))
	topic := schemas.Topic(schemas.SocialInsurance)
	complete := func(t *testing.T, svc *Service, task Task) int {
		t.Helper()
		api := httptest.NewServer(svc.Handler())
		t.Cleanup(api.Close)
		resp, err := bearerClient(testAPIToken, nil).Post(fmt.Sprintf("%s/tasks/%d/complete", api.URL, task.ID), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	t.Run("without login", func(t *testing.T) {
		var logs testenv.LogBuffer
		svc := startService(t, Config{Kafka: []string{broker}, APIToken: testAPIToken,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		task := addTask(t, svc, "chg-nologin", 1)
		if code := complete(t, svc, task); code != http.StatusBadGateway {
			t.Fatalf("completing without a login: %d, want %d", code, http.StatusBadGateway)
		}
		if !strings.Contains(logs.String(), "does it require TLS or SASL credentials") {
			t.Errorf("the log does not say the broker may require credentials:\n%s", logs.String())
		}
		if got, err := svc.store.Task(context.Background(), task.ID); err != nil || got.Status != StatusOpen {
			t.Errorf("task after a failed completion: %+v, %v; want it open", got, err)
		}
	})

	t.Run("with login", func(t *testing.T) {
		svc := startService(t, Config{Kafka: []string{broker}, KafkaSASL: login, APIToken: testAPIToken})
		task := addTask(t, svc, "chg-login", 2)
		if code := complete(t, svc, task); code != http.StatusOK {
			t.Fatalf("completing with the login: %d, want %d", code, http.StatusOK)
		}
		if n := testenv.RecordCountAs(t, broker, login, topic); n != 1 {
			t.Errorf("%d completion events on %s, want 1", n, topic)
		}
	})
}
