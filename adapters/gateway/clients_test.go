package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/schemas"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawRequest sends a request with headers and body as an HTTP client of
// another stack does, writing the body while it reads the answer, and
// returns the answer and what writing the body met.
func rawRequest(t *testing.T, url, headers string, body []byte) (*http.Response, error) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /v1/events HTTP/1.1\r\nHost: hub\r\n%sContent-Length: %d\r\n\r\n", headers, len(body))
	written := make(chan error, 1)
	go func() {
		_, err := c.Write(body)
		written <- err
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	return resp, <-written
}

// TestClientsOfOtherStacksGetTheirAnswer: a refusal reaches a client as
// an answer, not as a connection reset under a body it is still sending.
// A body over the limit, announced with Expect: 100-continue (curl for
// bodies over 1 KB, .NET always), is refused before the client sends it;
// a request refused for its token or content type before its body was
// read has its body read first. CloudEvents binary content mode, the
// CloudEvents SDKs' default, is refused saying so.
func TestClientsOfOtherStacksGetTheirAnswer(t *testing.T) {
	h, err := New(Config{Sender: &recordingSender{}, MaxBody: 16 << 20,
		Tokens: []Token{{Source: schemas.Housing, SHA256: HashToken("housing-secret")}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	big := bytes.Repeat([]byte(" "), 10<<20) // within the limit, over what Go's server drains itself and the sockets buffer
	tests := []struct {
		name, headers string
		body          []byte
		wantStatus    int
	}{
		{"over the limit, waiting for 100 Continue",
			"Authorization: Bearer housing-secret\r\nContent-Type: " + ContentTypeBatch + "\r\nExpect: 100-continue\r\n",
			nil, http.StatusRequestEntityTooLarge},
		{"unknown token", "Authorization: Bearer guess\r\nContent-Type: " + ContentTypeBatch + "\r\n",
			big, http.StatusUnauthorized},
		{"wrong content type", "Authorization: Bearer housing-secret\r\nContent-Type: text/plain\r\n",
			big, http.StatusUnsupportedMediaType},
		{"binary content mode", "Authorization: Bearer housing-secret\r\nContent-Type: application/json\r\nCe-Specversion: 1.0\r\nCe-Id: hs-1\r\n",
			[]byte(`{"lease_id":"L-1","address_code":"230102001001","start":"2025-03-01"}`), http.StatusUnsupportedMediaType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.body == nil {
				// Announce 32 MiB and send none: a client waiting for 100
				// Continue sends nothing until told to.
				c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				fmt.Fprintf(c, "POST /v1/events HTTP/1.1\r\nHost: hub\r\n%sContent-Length: %d\r\n\r\n", tc.headers, 32<<20)
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != tc.wantStatus {
					t.Fatalf("first answer: %s; want %d before the body is sent", resp.Status, tc.wantStatus)
				}
				return
			}
			resp, werr := rawRequest(t, srv.URL, tc.headers, tc.body)
			if resp.StatusCode != tc.wantStatus || werr != nil {
				t.Fatalf("answer %s, writing the body: %v; want %d and the body taken", resp.Status, werr, tc.wantStatus)
			}
		})
	}
	// The detail of the binary mode refusal says what to send instead.
	req, _ := http.NewRequest("POST", srv.URL+"/v1/events", strings.NewReader(`{"lease_id":"L-1"}`))
	req.Header.Set("Authorization", "Bearer housing-secret")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Ce-Specversion", "1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(string(b), "binary content mode") || !strings.Contains(string(b), ContentTypeEvent) {
		t.Errorf("binary content mode: %d %s; want 415 naming structured mode", resp.StatusCode, b)
	}
}

// TestQueryParametersRefused: the route takes no query parameters, as
// the hub's other routes refuse those they do not take; a department
// adding ?source=housing must not think it counted.
func TestQueryParametersRefused(t *testing.T) {
	url, _ := setup(t)
	raws := encodeAll(t, housingEvents(t, 1))
	code, p := post(t, url+"?source=housing", "housing-secret", ContentTypeEvent, raws[0])
	if code != http.StatusBadRequest || p.Type != "urn:pophub:problem:invalid-request" || !strings.Contains(p.Detail, "no query parameters") {
		t.Errorf("%d %+v; want 400 saying the route takes no query parameters", code, p)
	}
}

// TestHungBrokerBoundsPendingRequests: while the broker takes no produce
// requests, clients give up on their requests and send again. The Kafka
// writer keeps the records of a call its caller gave up, so each given-up
// request used to add its records to its queue, without bound (hundreds
// of megabytes in minutes). Requests past MaxPending now wait for their
// turn and answer 503 after PublishTimeout, and nothing is lost: once the
// broker answers again, the events that got their turn are sent and the
// count of pending bytes falls back to zero.
func TestHungBrokerBoundsPendingRequests(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, schemas.Topics()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	pub, err := publisher.New(publisher.Config{Brokers: c.ListenAddrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	const maxBody, maxPending = 64 << 10, 8 << 10 // a batch below is about 5 KiB
	h, err := New(Config{Sender: pub, MaxBody: maxBody, MaxPending: maxPending, PublishTimeout: 300 * time.Millisecond,
		Tokens: []Token{{Source: schemas.Housing, SHA256: HashToken("housing-secret")}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	evs := housingEvents(t, 200)
	if _, err := pub.Publish(context.Background(), evs[0]); err != nil { // metadata known, connection open
		t.Fatal(err)
	}
	release := make(chan struct{})
	var released sync.Once
	free := func() { released.Do(func() { close(release) }) }
	t.Cleanup(free)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		<-release
		return nil, nil, false
	})

	var most int64
	var busy int
	for round := range 12 {
		batch, _ := json.Marshal(encodeAll(t, evs[1+round*15:1+(round+1)*15]))
		// Every other client gives up after 50 ms; the others wait.
		timeout := 2 * time.Second
		if round%2 == 0 {
			timeout = 50 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/events", bytes.NewReader(batch))
		req.Header.Set("Authorization", "Bearer housing-secret")
		req.Header.Set("Content-Type", ContentTypeBatch)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("round %d: %d %s; want 503 with Retry-After while the broker hangs", round, resp.StatusCode, b)
			}
			if strings.Contains(string(b), "still publishing earlier requests") {
				busy++
			}
		}
		cancel()
		most = max(most, h.pending.queued())
	}
	if most > maxPending {
		t.Errorf("%d bytes of requests pending at most; want at most MaxPending, %d", most, maxPending)
	}
	if busy == 0 {
		t.Error("no waiting request was told the hub is still publishing earlier requests")
	}
	free()
	deadline := time.Now().Add(30 * time.Second)
	for h.pending.queued() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.pending.queued(); n != 0 {
		t.Errorf("%d bytes still pending 30 s after the broker answered again", n)
	}
}
