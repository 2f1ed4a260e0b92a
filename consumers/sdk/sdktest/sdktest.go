// Package sdktest holds test helpers for subscribers: an in-process NATS
// server that can be restarted on the same port and store, the hub's
// stream, and notifications published exactly as the hub publishes them
// (body from schemas.Notification.AppendJSON, Nats-Msg-Id = change id, a
// traceparent header). It lets a subscriber be tested against the wire
// contract without importing the hub.
package sdktest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Server is an in-process NATS server with JetStream on a file store.
type Server struct {
	t    testing.TB
	dir  string
	port int
	srv  *server.Server
}

// StartServer starts a server on a free port with its store in a
// temporary directory, shut down when the test ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), port: -1}
	s.start()
	t.Cleanup(s.Shutdown)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: s.port, JetStream: true, StoreDir: s.dir, NoLog: true, NoSigs: true})
	if err != nil {
		s.t.Fatalf("creating NATS server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		s.t.Fatal("NATS server not ready")
	}
	s.srv = srv
	if s.port == -1 {
		s.port = srv.Addr().(*net.TCPAddr).Port
	}
}

// URL is the server's client URL; it stays the same across restarts.
func (s *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

// Restart shuts the server down and starts a new one on the same port
// and store, as an operator's restart would.
func (s *Server) Restart() {
	s.t.Helper()
	s.Shutdown()
	s.start()
}

// RestartLosing restarts the server with the durable consumer name of
// stream gone from its store, as a storage failure or a restore from a
// backup taken before the consumer was made would leave it: the stream
// and its messages are back, the consumer is not, and no client was told.
func (s *Server) RestartLosing(stream, name string) {
	s.t.Helper()
	s.Shutdown()
	dir := filepath.Join(s.dir, "jetstream", "$G", "streams", stream, "obs", name)
	if _, err := os.Stat(dir); err != nil {
		s.t.Fatalf("consumer %s of stream %s not in the store: %v", name, stream, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		s.t.Fatal(err)
	}
	s.start()
}

// Shutdown stops the server; it is safe to call twice.
func (s *Server) Shutdown() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// Connect opens a connection that reconnects forever, closed when the
// test ends, and its JetStream context. It allows 20 s to connect, as the
// SDK does for a user: a server under an access policy checks the
// password with bcrypt, which under the race detector on a loaded
// machine takes longer than nats.go's default two seconds.
func Connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.Timeout(20*time.Second))
	if err != nil {
		t.Fatalf("connecting to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// CreateStream creates the hub's notification stream under name and
// subject prefix ("POP" and "pop" are the hub's), also right after it was
// deleted: the server removes a deleted stream's files behind its answer
// and may refuse a new store under the same name for a moment ("error
// creating store for stream"), which the hub's relay outlasts by trying
// again, and so does this.
func CreateStream(t testing.TB, js jetstream.JetStream, name, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	for {
		if _, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".>"},
			Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute}); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("creating stream %s: %v", name, err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
}

// CitizenID returns the i-th of a family of valid, distinct citizen IDs
// (i < 36,500,000).
func CitizenID(i int) citizenid.ID {
	birth := time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i/1000)
	first17 := "230102" + birth.Format("20060102") + fmt.Sprintf("%03d", i%1000)
	return citizenid.ID(first17 + string(citizenid.CheckChar(first17)))
}

// Migration is a hukou migration notification between two 12-digit
// address codes.
func Migration(changeID string, id citizenid.ID, version int64, from, to string) schemas.Notification {
	now := time.Now().UTC()
	return schemas.Notification{ChangeID: changeID, CitizenID: id, Version: version, Section: schemas.KindMigration,
		EventID: "ev-" + changeID, EventType: schemas.HukouMigrated, Source: schemas.PublicSecurity,
		Time: now, AppliedAt: now, FromAddressCode: from, ToAddressCode: to, Reason: "employment"}
}

// Death is a death notification.
func Death(changeID string, id citizenid.ID, version int64, date string) schemas.Notification {
	now := time.Now().UTC()
	return schemas.Notification{ChangeID: changeID, CitizenID: id, Version: version, Section: schemas.KindDeath,
		EventID: "ev-" + changeID, EventType: schemas.DeathCertified, Source: schemas.Health,
		Time: now, AppliedAt: now, DateOfDeath: date}
}

// Subject is the hub's subject for n under prefix: its migration or death
// subject, with address the person's hukou address for a death.
func Subject(prefix string, n schemas.Notification, address string) string {
	var s string
	switch n.Section {
	case schemas.KindMigration:
		s = schemas.MigrationSubject(n.FromAddressCode, n.ToAddressCode)
	case schemas.KindDeath:
		s = schemas.DeathSubject(address)
	default:
		s = schemas.ChangedSubject(address, schemas.Section(n.Section))
	}
	return prefix + s[len("pop"):]
}

// Msg builds the message the hub's relay would publish.
func Msg(subject string, n schemas.Notification, traceparent string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = n.AppendJSON(nil)
	m.Header.Set(nats.MsgIdHdr, n.ChangeID)
	if traceparent != "" {
		m.Header.Set("traceparent", traceparent)
	}
	return m
}

// Publish publishes messages asynchronously and waits for every ack,
// returning the stream sequence of the last.
func Publish(t testing.TB, js jetstream.JetStream, msgs ...*nats.Msg) uint64 {
	t.Helper()
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var last uint64
	wait := func() {
		for _, f := range futures {
			select {
			case ack := <-f.Ok():
				last = max(last, ack.Sequence)
			case err := <-f.Err():
				t.Fatalf("publishing: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("publishing: no ack")
			}
		}
		futures = futures[:0]
	}
	for _, m := range msgs {
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			t.Fatalf("publishing: %v", err)
		}
		futures = append(futures, f)
		if len(futures) == 1000 {
			wait()
		}
	}
	wait()
	return last
}
