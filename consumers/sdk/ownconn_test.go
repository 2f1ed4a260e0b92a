package sdk_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
)

// TestCallersConnClosedOnPurpose: a Conn passed in Config is the
// caller's ("the caller owns and closes it"). One the caller closes on
// purpose (an application shutting its connection down first, or a test
// playing a crash), then ending Run's context, is a stop like any other:
// Run returns nil, not ErrConnectionClosed, which is for a server that
// refused the login.
func TestCallersConnClosedOnPurpose(t *testing.T) {
	e := newEnv(t)
	nc, _ := sdktest.Connect(t, e.srv.URL())
	s, err := sdk.New(sdk.Config{Name: "owned", Conn: nc, Filters: siFilters,
		Handler: func(context.Context, *sdk.Delivery) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for s.Health() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not consuming: %v", s.Health())
		}
		time.Sleep(20 * time.Millisecond)
	}

	nc.Close() // the caller's own connection, closed on purpose
	time.Sleep(1500 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if errors.Is(err, sdk.ErrConnectionClosed) {
			t.Errorf("Run = %v for a connection its caller closed on purpose, and then ended Run's context", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
}
