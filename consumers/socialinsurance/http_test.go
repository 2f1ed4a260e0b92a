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
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
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
	return svc
}

// runService runs the service as startService does; stop ends Run and
// returns its error. The test's end stops it too.
func runService(t *testing.T, cfg Config) (svc *Service, stop func() error) {
	t.Helper()
	srv := sdktest.StartServer(t)
	_, js := sdktest.Connect(t, srv.URL())
	sdktest.CreateStream(t, js, schemas.StreamName, "pop")
	cfg.Region, cfg.NATS, cfg.Start = "2301", srv.URL(), sdk.Start{Policy: sdk.StartAll}
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
