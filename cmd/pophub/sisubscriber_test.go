package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/hub/tlsconf"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
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
