package ingest

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// slowApplier is a store whose first Apply takes until release closes,
// whatever its context says (a transaction slow to commit, or a store that
// hangs); it records whether that context had been cancelled by then.
// Later calls succeed at once and record the event ids.
type slowApplier struct {
	started chan struct{}
	release chan struct{}

	mu       sync.Mutex
	calls    int
	firstErr error // ctx.Err() when the first Apply returned
	ids      []string
}

func (a *slowApplier) Apply(ctx context.Context, batch []hub.Input) (hub.ApplyResult, error) {
	a.mu.Lock()
	a.calls++
	first := a.calls == 1
	a.mu.Unlock()
	if first && a.started != nil {
		close(a.started)
		<-a.release
		a.mu.Lock()
		a.firstErr = ctx.Err()
		a.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return hub.ApplyResult{}, err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, in := range batch {
		a.ids = append(a.ids, in.Event.ID)
	}
	return hub.ApplyResult{Applied: len(batch)}, nil
}

// dlqRecords counts the records of the DLQ topic.
func dlqRecords(t testing.TB, addr string) int64 {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	resp, err := cl.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		schemas.DLQTopic: {kafka.LastOffsetOf(0), kafka.LastOffsetOf(1)}}})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range resp.Topics[schemas.DLQTopic] {
		if p.Error != nil {
			t.Fatalf("listing DLQ offsets: %v", p.Error)
		}
		n += p.LastOffset
	}
	return n
}

// TestStopFinishesBatchInFlight stops the consumer (SIGTERM: the run
// context is cancelled, then Close) while a batch holding a reject and a
// valid event is in the store. A store that commits within the shutdown
// grace period has the batch applied under a context that the stop did
// not cancel, its offsets committed, and the reject copied to the DLQ
// once: the next run neither reads the batch again nor copies the reject
// again. A store that hangs past the grace period does not hold the stop
// up: the consumer gives up on the batch, says so in an error log, and
// commits nothing of it, so its records are read again (at least once).
func TestStopFinishesBatchInFlight(t *testing.T) {
	const grace = 500 * time.Millisecond
	tests := []struct {
		name        string
		releaseIn   time.Duration // after the stop begins; 0: never
		wantApplied bool
	}{
		{name: "store commits within the grace period", releaseIn: 200 * time.Millisecond, wantApplied: true},
		{name: "store hangs past the grace period"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := broker(t)
			topic := schemas.Topic(schemas.Marriage)
			tp := topicPartition{topic, 0}
			write := func(msgs ...kafka.Message) {
				t.Helper()
				w := &kafka.Writer{Addr: kafka.TCP(k.Addr()), Balancer: toPartition0, RequiredAcks: kafka.RequireAll,
					BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
				defer w.Close()
				if err := w.WriteMessages(context.Background(), msgs...); err != nil {
					t.Fatal(err)
				}
			}
			write(kafka.Message{Topic: topic, Value: []byte("not JSON")},
				kafka.Message{Topic: topic, Key: []byte(idA), Value: []byte(cloudEvent("m-1", "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))})

			var logs testenv.LogBuffer
			cfg := Config{Brokers: []string{k.Addr()}, GroupID: "stop", ShutdownGrace: grace,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			a := &slowApplier{started: make(chan struct{}), release: make(chan struct{})}
			var releaseOnce sync.Once
			release := func() { releaseOnce.Do(func() { close(a.release) }) }
			t.Cleanup(release) // the hanging store's goroutine
			c, err := New(cfg, a)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			select {
			case <-a.started: // the reject is in the DLQ, the store commit in flight
			case <-time.After(30 * time.Second):
				t.Fatal("the store never saw the batch")
			}

			if tt.releaseIn > 0 {
				time.AfterFunc(tt.releaseIn, release)
			}
			stopped := time.Now()
			cancel()
			select {
			case err = <-done:
			case <-time.After(grace + 10*time.Second):
				t.Fatalf("Run did not return %s after the stop (grace period %s)", grace+10*time.Second, grace)
			}
			took := time.Since(stopped)
			if cerr := c.Close(); cerr != nil {
				t.Errorf("Close: %v", cerr)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
			a.mu.Lock()
			firstErr := a.firstErr
			a.mu.Unlock()
			off := committed(t, k.Addr(), "stop")[tp]
			logged := strings.Contains(logs.String(), "level=ERROR") && strings.Contains(logs.String(), "shutdown grace period")

			if tt.wantApplied {
				if firstErr != nil {
					t.Errorf("the store's Apply ran under a context cancelled by the stop (%v), want one that lets it finish", firstErr)
				}
				if off != 2 {
					t.Errorf("committed offset %d after the stop, want 2 (the batch in flight)", off)
				}
				if n := dlqRecords(t, k.Addr()); n != 1 {
					t.Errorf("the DLQ holds %d records after the stop, want 1", n)
				}
				if logged {
					t.Errorf("an error logged for a stop within the grace period:\n%s", logs.String())
				}
			} else {
				if took > grace+5*time.Second {
					t.Errorf("the stop took %s with a hanging store, want about the grace period %s", took, grace)
				}
				if off >= 2 {
					t.Errorf("committed offset %d after giving up on the batch, want below 2: its event was never applied", off)
				}
				if !logged {
					t.Errorf("no error log naming the shutdown grace period:\n%s", logs.String())
				}
				return
			}

			// The next run starts after the batch: a new record is all it
			// applies, and the reject is not copied again.
			write(kafka.Message{Topic: topic, Key: []byte(idA), Value: []byte(cloudEvent("m-2", "marriage", "marriage.divorced", idA, `{"spouse_id":"`+idB+`"}`))})
			b := &slowApplier{}
			c2, err := New(cfg, b)
			if err != nil {
				t.Fatal(err)
			}
			stop2 := run(t, c2)
			waitUntil(t, "the new record consumed", func() bool { return c2.Counts().Consumed >= 1 })
			stop2()
			if got := c2.Counts(); got.Consumed != 1 || got.RejectedTotal() != 0 {
				t.Errorf("the next run consumed %d records, rejected %d; want only the new record", got.Consumed, got.RejectedTotal())
			}
			b.mu.Lock()
			ids := b.ids
			b.mu.Unlock()
			if !slices.Equal(ids, []string{"m-2"}) {
				t.Errorf("the next run applied %v, want [m-2]", ids)
			}
			if n := dlqRecords(t, k.Addr()); n != 1 {
				t.Errorf("the DLQ holds %d copies of the one rejected record after a restart, want 1", n)
			}
		})
	}
}
