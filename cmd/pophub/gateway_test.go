package main

import (
	"bufio"
	"bytes"
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
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/adapters/gateway"
	"github.com/pophub/pophub/schemas/jsonschema"
)

// TestGatewayThroughTheHub posts a department's event to the hub's HTTP
// gateway and reads the golden record it produced.
func TestGatewayThroughTheHub(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("tokens:\n  - source: public_security\n    sha256: "+gateway.HashToken("ps-token")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: Config{Embedded: true, DataDir: dir, KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Partitions: 2, NATSSync: time.Second, GatewayTokens: tokens, HTTPReadTimeout: 500 * time.Millisecond}, Logger: testLogger(t)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var banner strings.Builder
	printRunning(&banner, m)
	if want := "gateway    " + m.HTTPURL() + "/v1/events"; !strings.Contains(banner.String(), want) {
		t.Errorf("the start-up lines do not name the gateway (%q):\n%s", want, banner.String())
	}
	msgs := scenario(t)
	var first []byte
	for _, msg := range msgs {
		if msg.Topic == "pop.events.public_security" {
			first = msg.Value
			break
		}
	}
	post := func(token string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+m.HTTPAddr()+"/v1/events", bytes.NewReader(first))
		req.Header.Set("Content-Type", gateway.ContentTypeEvent)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: HTTP %d", code)
	}
	if code := post("ps-token"); code != http.StatusAccepted {
		t.Fatalf("POST /v1/events: HTTP %d", code)
	}
	waitCaughtUp(t, m, 1)

	// Its refusals are problem details as the rest of the API answers
	// them: a documented type, and the request named as instance.
	v, err := jsonschema.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	refusals := []struct {
		contentType, token, body string
		status                   int
	}{
		{gateway.ContentTypeEvent, "wrong", string(first), http.StatusUnauthorized},
		{"text/plain", "ps-token", string(first), http.StatusUnsupportedMediaType},
		{gateway.ContentTypeEvent, "ps-token", `{"specversion":"1.0"}`, http.StatusUnprocessableEntity},
	}
	for _, rf := range refusals {
		req, _ := http.NewRequest(http.MethodPost, "http://"+m.HTTPAddr()+"/v1/events", strings.NewReader(rf.body))
		req.Header.Set("Content-Type", rf.contentType)
		req.Header.Set("Authorization", "Bearer "+rf.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var p gateway.Problem
		if resp.StatusCode != rf.status || json.Unmarshal(body, &p) != nil || p.Instance != "urn:pophub:request:"+resp.Header.Get("X-Request-Id") {
			t.Errorf("%s: HTTP %d %s; want %d naming request %s", rf.contentType, resp.StatusCode, body, rf.status, resp.Header.Get("X-Request-Id"))
		}
		if err := v.ValidateProblem(body); err != nil {
			t.Errorf("HTTP %d %s does not follow problem.schema.json: %v", resp.StatusCode, body, err)
		}
	}

	if _, code := getRecord(t, m, personID(t, 1)); code != 200 {
		t.Fatalf("the posted registration made no golden record: HTTP %d", code)
	}

	// A department that trickles its upload does not hold the connection
	// past the read timeout, and is told so: 408, naming the limit.
	conn := trickleUpload(t, m.HTTPAddr())
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("a trickled upload held its connection past the read timeout")
	}
	if err != nil {
		t.Fatalf("a trickled upload got no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var p gateway.Problem
	if resp.StatusCode != http.StatusRequestTimeout || json.Unmarshal(body, &p) != nil ||
		!strings.HasPrefix(p.Detail, "the body did not arrive within 500ms (14 of 100000 bytes did)") {
		t.Errorf("a trickled upload: HTTP %d %s; want 408 naming --http-read-timeout's 500ms", resp.StatusCode, body)
	}
	if err := v.ValidateProblem(body); err != nil {
		t.Errorf("HTTP %d %s does not follow problem.schema.json: %v", resp.StatusCode, body, err)
	}
}

// TestHTTPReadTimeoutFlag: dev and serve take --http-read-timeout, the
// time a client has to send a whole request (a gateway batch on a slow
// line needs more than the default minute), say in --help what a body
// past it gets, and refuse a negative one before starting anything. 0 is
// refused too: it was taken and silently meant the default minute, where
// an operator reads it, as Go's http.Server does, as no limit at all (which
// the hub does not offer: a client sending slowly on purpose would hold its
// connection for ever).
func TestHTTPReadTimeoutFlag(t *testing.T) {
	newLogger := func() *slog.Logger { return testLogger(t) }
	dir := t.TempDir()
	commands := []struct {
		name string
		cmd  func() *cobra.Command
		args []string
	}{
		{"dev", func() *cobra.Command { return devCommand(newLogger) },
			[]string{"--data", dir, "--http", "127.0.0.1:0", "--kafka", "127.0.0.1:0", "--nats", "127.0.0.1:0"}},
		{"serve", func() *cobra.Command { return serveCommand(newLogger) },
			[]string{"--kafka", "127.0.0.1:1", "--nats", "nats://127.0.0.1:1", "--data", dir}},
	}
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			help, err := execute(t, c.cmd(), "--help")
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"--http-read-timeout duration", "answered 408", "(default 1m0s)", "0 is refused"} {
				if !strings.Contains(help, want) {
					t.Errorf("pophub %s --help does not mention %q:\n%s", c.name, want, help)
				}
			}
			for _, v := range []string{"-1s", "0", "0s"} {
				cmd := c.cmd()
				cmd.SetArgs(append(c.args, "--http-read-timeout", v))
				cmd.SetOut(io.Discard)
				cmd.SetErr(io.Discard)
				cmd.SilenceUsage, cmd.SilenceErrors = true, true
				// A hub that starts after all stops with the context.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := cmd.ExecuteContext(ctx)
				cancel()
				want := fmt.Sprintf(`invalid argument %q for "--http-read-timeout" flag: want a positive duration`, v)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("pophub %s --http-read-timeout %s: %v; want %q", c.name, v, err, want)
				}
			}
		})
	}
}

// trickleUpload starts a POST /v1/events as public_security (token
// ps-token) whose body stops after its first bytes, as a department's
// slow upload does, and returns the connection, closed when the test ends.
func trickleUpload(t testing.TB, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "POST /v1/events HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer ps-token\r\n"+
		"Content-Type: "+gateway.ContentTypeEvent+"\r\nContent-Length: 100000\r\n\r\n{\"specversion\""); err != nil {
		t.Fatal(err)
	}
	return conn
}
