package embedded

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/schemas"
)

// A hub switching its access policy on or off, or upgraded from a
// release that kept the streams in the global account with a policy too,
// finds its notifications and its subscribers' positions where it now
// looks for them.
func TestStreamsFollowTheAccount(t *testing.T) {
	dir := t.TempDir()
	// A policy of the shape access.Policy.NATSAuthorize renders: the hub
	// in the hub's account.
	policy := func(o *server.Options) error {
		return o.ProcessConfigString(fmt.Sprintf(`accounts { %s { jetstream: enabled, users: [{user: hub, password: pw}] } }`, schemas.NATSAccount))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	open := func(authorize func(*server.Options) error) (*NATS, jetstream.JetStream) {
		t.Helper()
		n, err := StartNATS(ctx, NATSConfig{StoreDir: dir, Authorize: authorize})
		if err != nil {
			t.Fatal(err)
		}
		var opts []nats.Option
		if authorize != nil {
			opts = append(opts, nats.UserInfo("hub", "pw"))
		}
		nc, err := nats.Connect(n.ClientURL(), opts...)
		if err != nil {
			n.Close()
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		return n, js
	}
	check := func(js jetstream.JetStream, step string, want uint64) {
		t.Helper()
		s, err := js.Stream(ctx, schemas.StreamName)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		info, err := s.Info(ctx)
		if err != nil || info.State.Msgs != want {
			t.Fatalf("%s: stream holds %+v (%v), want %d messages", step, info.State, err, want)
		}
		c, err := s.Consumer(ctx, "si-harbin")
		if err != nil {
			t.Fatalf("%s: the subscriber's consumer: %v", step, err)
		}
		if ci, err := c.Info(ctx); err != nil || ci.AckFloor.Stream != 1 {
			t.Fatalf("%s: consumer %+v (%v), want the first message acknowledged", step, ci, err)
		}
	}

	// Without a policy (or by an earlier release, with or without one):
	// the global account.
	n, js := open(nil)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: schemas.StreamName, Subjects: []string{schemas.StreamSubjects}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := js.Publish(ctx, schemas.DeathSubject("230102001001"), fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "si-harbin", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	n.Close()

	n, js = open(policy)
	check(js, "with a policy", 2)
	if _, err := js.Publish(ctx, schemas.DeathSubject("230102001001"), []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	n.Close()

	n, js = open(nil)
	check(js, "without the policy again", 3)
	n.Close()
}

// A store holding streams under both accounts (a release before the move
// run again on the directory, as a rollback does, writes to $G while the
// moved store waits under POPHUB) is refused, naming both, rather than
// opened with one of them left aside unsaid.
func TestStreamsOfBothAccountsRefused(t *testing.T) {
	dir := t.TempDir()
	js := filepath.Join(dir, server.JetStreamStoreDir)
	for _, account := range []string{globalAccount, schemas.NATSAccount} {
		if err := os.MkdirAll(filepath.Join(js, account, "streams", schemas.StreamName), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	for _, policy := range []bool{true, false} {
		cfg := NATSConfig{StoreDir: dir}
		if policy {
			cfg.Authorize = func(o *server.Options) error { return nil }
		}
		n, err := StartNATS(context.Background(), cfg)
		if err == nil {
			n.Close()
			t.Fatalf("policy %v: started on a store holding streams of both accounts", policy)
		}
		for _, want := range []string{filepath.Join(js, globalAccount), filepath.Join(js, schemas.NATSAccount), "move the other out"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("policy %v: %v; want it to name %s", policy, err, want)
			}
		}
	}
}
