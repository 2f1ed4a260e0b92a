package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/hub/access"
)

// TestSubscriberStopsWhenItsLoginIsRefused: si-harbin's NATS password is
// rotated and the hub restarted while its subscriber still runs with the
// old one. nats.go gives up reconnecting after the server refused the
// login twice and closes the connection for good; the subscriber must
// then return from Run saying so, as it does when the hub refuses its
// token, so that its supervisor starts it again with the new password,
// not go on "setting up again" on a closed connection for ever while its
// notifications silently stop.
func TestSubscriberStopsWhenItsLoginIsRefused(t *testing.T) {
	example := exampleText(t)
	const harbinBcrypt = `password_bcrypt: "$2a$11$ee326iO5yUuDnMUbzONijeJyl9UTHzIWO.KRENkl7qdMLLUqIzVcC"`
	if strings.Count(example, harbinBcrypt) != 1 {
		t.Fatalf("the example policy no longer has si-harbin's %s", harbinBcrypt)
	}
	rotatedHash, err := access.HashPassword("si-harbin-rotated-2026-12")
	if err != nil {
		t.Fatal(err)
	}
	rotated := strings.Replace(example, harbinBcrypt, fmt.Sprintf("password_bcrypt: %q", rotatedHash), 1)

	// The restarted hub's NATS server listens where the first one did,
	// so that the subscriber reconnects to it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsAddr := ln.Addr().String()
	ln.Close()
	dataDir, policy := t.TempDir(), filepath.Join(t.TempDir(), "policy.yaml")
	start := func(text string) *Main {
		t.Helper()
		if err := os.WriteFile(policy, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		m := &Main{Logger: testLogger(t), Config: policyConfig(dataDir, natsAddr, policy)}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := m.Start(ctx); err != nil {
			t.Fatalf("starting hub: %v", err)
		}
		return m
	}

	m := start(example)
	sub, err := sdk.New(sdk.Config{Name: "si-harbin", URL: m.NATSURL(), User: "si-harbin", Password: access.DemoSecret("nats:si-harbin"),
		InboxPrefix: "_INBOX_si-harbin", Filters: []sdk.Filter{{Kind: sdk.Deaths, Region: "2301"}}, Logger: testLogger(t),
		Handler: func(context.Context, *sdk.Delivery) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- sub.Run(ctx) }()
	waitFor(t, time.Minute, "the subscriber consuming under the first policy", func() bool {
		select {
		case err := <-ran:
			t.Fatalf("Run returned %v under the first policy", err)
		default:
		}
		return sub.Health() == nil
	})

	m.Close()
	m = start(rotated)
	defer m.Close()
	select {
	case err := <-ran:
		if !errors.Is(err, sdk.ErrConnectionClosed) || !strings.Contains(err.Error(), "refused the login") {
			t.Errorf("Run returned %v, want ErrConnectionClosed saying the server refused the login", err)
		}
		if h := sub.Health(); !errors.Is(h, sdk.ErrConnectionClosed) {
			t.Errorf("Health after Run returned: %v, want why it stopped", h)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("30 s after the hub restarted with si-harbin's password rotated, Run has not returned; Health: %v", sub.Health())
	}
}
