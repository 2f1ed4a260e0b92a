package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestCloseWaitsForCallsInFlight: a department's shutdown closes the
// publisher (`defer pub.Close()` in main) while a worker is still inside
// Publish. Close used to close the Kafka writer under the call, which
// then failed every event with kafka-go's "io: read/write on closed
// pipe", and returned at once having flushed nothing. Close now waits for
// the call, whose events are all delivered; a call made after Close sends
// nothing, reaches no broker, and says ErrClosed for every event.
func TestCloseWaitsForCallsInFlight(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, schemas.Topics()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var closed atomic.Bool
	var afterClose atomic.Int32 // requests the broker got once Close returned
	c.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		if closed.Load() {
			afterClose.Add(1)
		}
		return nil, nil, false
	})
	// The call's first metadata request is held until released (a broker
	// across a slow WAN): the call is in flight meanwhile.
	arrived, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	c.ControlKey(int16(kmsg.Metadata), func(kmsg.Request) (kmsg.Response, error, bool) {
		first.Do(func() {
			close(arrived)
			c.SleepControl(func() { <-release })
		})
		return nil, nil, false
	})
	p := newPublisher(t, Config{Brokers: c.ListenAddrs()})
	events := population(t, 3)

	type outcome struct {
		results []Result
		err     error
	}
	published := make(chan outcome, 1)
	go func() {
		res, err := p.Publish(context.Background(), events...)
		published <- outcome{res, err}
	}()
	<-arrived
	closeErr := make(chan error, 1)
	go func() { closeErr <- p.Close() }()
	select {
	case err := <-closeErr:
		close(release)
		t.Fatalf("Close returned (%v) while a Publish was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	o := <-published
	if o.err != nil {
		t.Errorf("Publish in flight when Close was called: %v", o.err)
	}
	for i, r := range o.results {
		if r.Err != nil {
			t.Fatalf("event %d of the call in flight: %v", i, r.Err)
		}
	}
	if err := <-closeErr; err != nil {
		t.Fatalf("Close: %v", err)
	}

	closed.Store(true)
	results, err := p.Publish(context.Background(), events[:5]...)
	if !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: error %v, want ErrClosed", err)
	}
	for i, r := range results {
		if !errors.Is(r.Err, ErrClosed) || r.ID != events[i].ID {
			t.Errorf("Publish after Close: result %d is %+v, want ErrClosed for event %s", i, r, events[i].ID)
		}
	}
	if rep, err := p.PublishJSONL(context.Background(), strings.NewReader("{}\n")); !errors.Is(err, ErrClosed) || rep.Read != 0 {
		t.Errorf("PublishJSONL after Close: %+v, %v; want ErrClosed and nothing read", rep, err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
	if n := afterClose.Load(); n != 0 {
		t.Errorf("the broker got %d requests from calls made after Close", n)
	}
	closed.Store(false)

	// What the call in flight sent is all on the brokers.
	topics := map[string]bool{}
	for _, ev := range events {
		topics[schemas.Topic(ev.Source)] = true
	}
	var names []string
	for topic := range topics {
		names = append(names, topic)
	}
	if got := consume(t, c.ListenAddrs()[0], names, len(events)); len(got) != len(events) {
		t.Errorf("%d records on the brokers, want the %d of the call in flight", len(got), len(events))
	}
}

// TestCloseAmidConcurrentPublishes: workers keep publishing while another
// goroutine closes the publisher. Each event is either delivered or
// refused with ErrClosed, never failed by the closed writer underneath.
func TestCloseAmidConcurrentPublishes(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, schemas.Topics()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p := newPublisher(t, Config{Brokers: c.ListenAddrs()})
	events := population(t, 3)
	var wg sync.WaitGroup
	var delivered, refused atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			for round := 0; ; round++ {
				i := (w*7 + round) % len(events)
				results, _ := p.Publish(context.Background(), events[i:min(i+4, len(events))]...)
				for _, r := range results {
					switch {
					case r.Err == nil:
						delivered.Add(1)
					case errors.Is(r.Err, ErrClosed):
						refused.Add(1)
					default:
						t.Errorf("event %s: %v; want it delivered or refused with ErrClosed", r.ID, r.Err)
						return
					}
				}
				if len(results) > 0 && errors.Is(results[0].Err, ErrClosed) {
					return
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	if delivered.Load() == 0 || refused.Load() == 0 {
		t.Errorf("%d events delivered and %d refused as closed; want some of each", delivered.Load(), refused.Load())
	}
}

// jsonlLines returns the encodings of n housing events, one a line.
func jsonlLines(t testing.TB, n int) []string {
	t.Helper()
	var lines []string
	for _, ev := range population(t, 20*n) {
		if ev.Source != schemas.Housing {
			continue
		}
		b, err := schemas.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		if lines = append(lines, string(b)+"\n"); len(lines) == n {
			return lines
		}
	}
	t.Fatalf("fewer than %d housing events", n)
	return nil
}

// quietReader gives text, then nothing until quiet is closed: a pipe
// whose writer went quiet. asked is closed when a Read finds text all
// given: the reader's user asks for more.
type quietReader struct {
	text  string
	asked chan struct{}
	quiet chan struct{}
	once  sync.Once
}

func newQuietReader(t testing.TB, text string) *quietReader {
	r := &quietReader{text: text, asked: make(chan struct{}), quiet: make(chan struct{})}
	t.Cleanup(func() { close(r.quiet) })
	return r
}

func (r *quietReader) Read(p []byte) (int, error) {
	if r.text != "" {
		n := copy(p, r.text)
		r.text = r.text[n:]
		return n, nil
	}
	r.once.Do(func() { close(r.asked) })
	<-r.quiet
	return 0, io.EOF
}

// TestCloseStopsReadingQuietInput: a department program streaming JSONL
// from a pipe, a socket or standard input closes its publisher as it shuts
// down (`defer pub.Close()`). Close waited for the PublishJSONL call in
// flight, which waited for its reader, which had nothing more to give:
// Close never returned, nor did the program. Close now stops the call's
// reading at once: the lines read are sent, and the call says ErrClosed,
// naming the last line read.
func TestCloseStopsReadingQuietInput(t *testing.T) {
	addr := testenv.Kafka(t, partitions)
	p := newPublisher(t, Config{Brokers: []string{addr}})
	r := newQuietReader(t, strings.Join(jsonlLines(t, 2), ""))
	published := publishJSONLAsync(context.Background(), p, r)
	<-r.asked // both lines were read; the call waits for more
	closeWithin(t, p, 10*time.Second, "Close did not return within 10 s while a PublishJSONL call waited for its quiet reader")
	o := <-published
	if !errors.Is(o.err, ErrClosed) || !strings.Contains(o.err.Error(), "after line 2 were not read") {
		t.Errorf("PublishJSONL stopped by Close: %v; want ErrClosed naming line 2 as the last read", o.err)
	}
	if Retriable(o.err) {
		t.Errorf("Retriable(%v) = true; the publisher is closed", o.err)
	}
	if o.rep.Read != 2 || o.rep.Published != 2 || o.rep.BadLines != 0 {
		t.Errorf("report %+v; want the 2 lines read before Close, both published", o.rep)
	}
	if got := consume(t, addr, []string{schemas.Topic(schemas.Housing)}, 2); len(got) != 2 {
		t.Errorf("%d records on the broker, want the 2 lines read", len(got))
	}
}

// TestCancelStopsReadingQuietInput: PublishJSONL noticed a cancelled
// context only between chunks of 8,192 lines or at the end of its input,
// so a call reading a quiet pipe ignored it. It now returns at once with
// the context's error, the lines read counted and not sent; Close then
// returns at once too.
func TestCancelStopsReadingQuietInput(t *testing.T) {
	addr := testenv.Kafka(t, partitions)
	p := newPublisher(t, Config{Brokers: []string{addr}})
	r := newQuietReader(t, strings.Join(jsonlLines(t, 2), ""))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	published := publishJSONLAsync(ctx, p, r)
	<-r.asked
	cancel()
	var o jsonlOutcome
	select {
	case o = <-published:
	case <-time.After(10 * time.Second):
		t.Fatal("PublishJSONL did not return within 10 s of its context's cancellation while its reader was quiet")
	}
	if !errors.Is(o.err, context.Canceled) || !strings.Contains(o.err.Error(), "stopped reading after line 2") {
		t.Errorf("PublishJSONL cancelled: %v; want context.Canceled, after line 2", o.err)
	}
	if o.rep.Read != 2 || o.rep.Published != 0 {
		t.Errorf("report %+v; want the 2 lines read, none published", o.rep)
	}
	closeWithin(t, p, 10*time.Second, "Close did not return within 10 s")
}

// TestCloseStopsPublishFileOnNamedPipe: PublishFile of a named pipe waits
// in open until a program opens the pipe for writing, then for its lines;
// Close stops it in either wait, and so does a cancelled context.
func TestCloseStopsPublishFileOnNamedPipe(t *testing.T) {
	addr := testenv.Kafka(t, partitions)
	tests := []struct {
		name   string
		writer bool // a program opened the pipe for writing, and is quiet
		cancel bool // the call's context is cancelled, rather than the publisher closed
		want   error
	}{
		{"no writer yet, closed", false, false, ErrClosed},
		{"quiet writer, closed", true, false, ErrClosed},
		{"no writer yet, cancelled", false, true, context.Canceled},
		{"quiet writer, cancelled", true, true, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "events.fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatalf("making a named pipe: %v", err)
			}
			p := newPublisher(t, Config{Brokers: []string{addr}})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			published := make(chan error, 1)
			go func() {
				_, err := p.PublishFile(ctx, fifo)
				published <- err
			}()
			if tt.writer {
				// Opening for writing waits for the reader: PublishFile
				// opened the pipe once this returns.
				w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				if _, err := io.WriteString(w, strings.Join(jsonlLines(t, 1), "")); err != nil {
					t.Fatal(err)
				}
			} else {
				// Let PublishFile start waiting in open, then let any
				// opener left behind by it go.
				time.Sleep(100 * time.Millisecond)
				t.Cleanup(func() {
					if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
						w.Close()
					}
				})
			}
			stopped := time.Now()
			if tt.cancel {
				cancel()
			} else {
				go p.Close()
			}
			select {
			case err := <-published:
				if !errors.Is(err, tt.want) {
					t.Errorf("PublishFile: %v; want %v", err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("PublishFile of a quiet named pipe did not return within 10 s")
			}
			if d := time.Since(stopped); d > 5*time.Second {
				t.Errorf("PublishFile took %v to stop", d)
			}
		})
	}
}

// TestCloseStopsReadingSaysWhySendingFailed: when the lines a call read
// before Close cannot be sent, its error says why as well as that Close
// stopped it.
func TestCloseStopsReadingSaysWhySendingFailed(t *testing.T) {
	p := newPublisher(t, Config{Brokers: []string{"127.0.0.1:1"}, MaxAttempts: 1})
	r := newQuietReader(t, strings.Join(jsonlLines(t, 2), ""))
	published := publishJSONLAsync(context.Background(), p, r)
	<-r.asked
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	o := <-published
	if !errors.Is(o.err, ErrClosed) || !strings.Contains(o.err.Error(), "connection refused") || !strings.Contains(o.err.Error(), "after line 2") {
		t.Errorf("PublishJSONL: %v; want ErrClosed after line 2, and why sending failed", o.err)
	}
	if o.rep.Read != 2 || o.rep.Published != 0 {
		t.Errorf("report %+v; want 2 lines read, none published", o.rep)
	}
}

// jsonlOutcome is what a PublishJSONL call returned.
type jsonlOutcome struct {
	rep FileReport
	err error
}

// publishJSONLAsync runs p.PublishJSONL(ctx, r) in the background and
// hands over what it returned.
func publishJSONLAsync(ctx context.Context, p *Publisher, r io.Reader) <-chan jsonlOutcome {
	published := make(chan jsonlOutcome, 1)
	go func() {
		rep, err := p.PublishJSONL(ctx, r)
		published <- jsonlOutcome{rep, err}
	}()
	return published
}

// closeWithin closes p and fails the test with msg when Close has not
// returned within limit.
func closeWithin(t *testing.T, p *Publisher, limit time.Duration, msg string) {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(limit):
		t.Fatal(msg)
	}
}

// TestCloseReleasesConnections: a department service creates a publisher
// per job (or per login, after a credential rotation) and closes it when
// the job is done. Close used to leave the publisher's connection pool
// running — a metadata refresh every 6 s and a goroutine and a TCP
// connection per broker connection — so every New and Close leaked them
// for the life of the process. A closed publisher now leaves no kafka-go
// goroutine behind, with or without SASL.
func TestCloseReleasesConnections(t *testing.T) {
	tests := []struct {
		name string
		opts []kfake.Opt
		sasl bool
	}{
		{name: "plain"},
		{name: "SASL", opts: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "housing", "pw")}, sasl: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := testenv.Kafka(t, partitions, tt.opts...)
			before, _ := kafkaGoroutines()
			for range 3 {
				cfg := Config{Brokers: []string{addr}}
				if tt.sasl {
					cfg.SASL = access.SCRAMClient{User: "housing", Password: "pw"}
				}
				p, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err = p.Publish(ctx, population(t, 2)...)
				cancel()
				if err != nil {
					t.Fatalf("Publish: %v", err)
				}
				if err := p.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			}
			var n int
			var stacks string
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if n, stacks = kafkaGoroutines(); n <= before {
					return
				}
			}
			t.Errorf("3 publishers created, used and closed left %d kafka-go goroutines running (%d before):\n%s", n, before, stacks)
		})
	}
}

// kafkaGoroutines counts the goroutines running kafka-go code, and
// returns their stacks.
func kafkaGoroutines() (int, string) {
	var b strings.Builder
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		return 0, err.Error()
	}
	n := 0
	var groups []string
	for _, g := range strings.Split(b.String(), "\n\n") {
		if !strings.Contains(g, "segmentio/kafka-go") {
			continue
		}
		var count int
		if _, err := fmt.Sscanf(g, "%d @", &count); err != nil {
			count = 1
		}
		n += count
		groups = append(groups, g)
	}
	return n, strings.Join(groups, "\n\n")
}
