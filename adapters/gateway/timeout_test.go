package gateway

import (
	"bufio"
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

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// serveWithReadTimeout runs the gateway in front of sender on a server
// that reads each whole request within readTimeout, as the hub's API
// server does, and tells the gateway so.
func serveWithReadTimeout(t *testing.T, sender Sender, readTimeout time.Duration) string {
	t.Helper()
	h, err := New(Config{Sender: sender, ReadTimeout: readTimeout,
		Tokens: []Token{{Source: schemas.Housing, SHA256: HashToken("housing-secret")}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ReadTimeout = readTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// trickle sends a request whose body comes in two parts: the first bytes
// of body, then, after pause, the rest (none when rest is false, as a
// client on a line too slow for it). It returns the answer.
func trickle(t *testing.T, url, headers string, body []byte, first int, pause time.Duration, rest bool) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /v1/events HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer housing-secret\r\n%sContent-Length: %d\r\n\r\n", headers, len(body))
	if _, err := c.Write(body[:first]); err != nil {
		t.Fatal(err)
	}
	if rest {
		time.Sleep(pause)
		if _, err := c.Write(body[first:]); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

// TestSlowBodyAnswers408: a department on a slow line whose body does not
// arrive within the server's read timeout was told 400 "reading the body
// failed", as if its batch were malformed, and a client library does not
// send a 4xx again. It is told 408, with the limit and how much arrived.
func TestSlowBodyAnswers408(t *testing.T) {
	broker := testenv.Kafka(t, 4)
	pub, err := publisher.New(publisher.Config{Brokers: []string{broker}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	url := serveWithReadTimeout(t, pub, 300*time.Millisecond)
	batch, _ := json.Marshal(encodeAll(t, housingEvents(t, 20)))
	tests := []struct {
		name, headers string
		body          []byte
		first         int
	}{
		{"plain", "Content-Type: " + ContentTypeBatch + "\r\n", batch, 100},
		{"gzip, cut inside its header", "Content-Type: " + ContentTypeBatch + "\r\nContent-Encoding: gzip\r\n", gzipped(t, batch), 5},
		{"gzip, cut inside the data", "Content-Type: " + ContentTypeBatch + "\r\nContent-Encoding: gzip\r\n", gzipped(t, batch), 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := trickle(t, url, tc.headers, tc.body, tc.first, 0, false)
			var p Problem
			if err := json.Unmarshal(b, &p); err != nil {
				t.Fatalf("%s %s: not a problem: %v", resp.Status, b, err)
			}
			want := fmt.Sprintf("the body did not arrive within 300ms (%d of %d bytes did)", tc.first, len(tc.body))
			if resp.StatusCode != http.StatusRequestTimeout || p.Status != http.StatusRequestTimeout ||
				p.Type != "urn:pophub:problem:request-timeout" || !strings.HasPrefix(p.Detail, want) {
				t.Errorf("%s %s; want 408 saying %q", resp.Status, b, want)
			}
			if resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
}

// TestSlowBodyKeepsItsWaitForKafka: the read timeout bounds the arrival
// of the request, not the wait for Kafka that follows. A body that took
// most of the read timeout to arrive still waits up to PublishTimeout for
// the acknowledgement, and is not answered 503 (its context cancelled)
// when the read deadline passes meanwhile: Go's server lifts the deadline
// once the handler has read the body to its end, which the gateway
// relies on.
func TestSlowBodyKeepsItsWaitForKafka(t *testing.T) {
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
	evs := housingEvents(t, 21)
	if _, err := pub.Publish(context.Background(), evs[0]); err != nil { // metadata known, connection open
		t.Fatal(err)
	}
	// Kafka takes 700 ms to acknowledge (the first produce request; the
	// writer sends one a partition).
	var slow sync.Once
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		slow.Do(func() { time.Sleep(700 * time.Millisecond) })
		return nil, nil, false
	})
	const readTimeout = time.Second
	url := serveWithReadTimeout(t, pub, readTimeout)
	batch, _ := json.Marshal(encodeAll(t, evs[1:]))
	// The body arrives after 600 ms, within the read timeout; the
	// acknowledgement after 1.3 s, past it.
	resp, b := trickle(t, url, "Content-Type: "+ContentTypeBatch+"\r\n", batch, len(batch)/2, 600*time.Millisecond, true)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%s %s; want 202: the body arrived in time and Kafka acknowledged the events within PublishTimeout", resp.Status, b)
	}
}
