package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/schemas"
)

// TestBrokerOutagesHoldBoundedConnections takes the broker away again and
// again (it closes every connection that sends it a request, as a broker
// shutting down or a load balancer with no broker behind it does), with an
// event applied after each outage. A hub that runs for months sees hundreds
// of these: what it holds after the last must be what it held after the
// first ones.
//
// The hub's Kafka connections do grow over the first outages, to a bound:
// kafka-go sends a ListOffsets request as one request per partition, each
// on a connection of its own, and keeps those connections while the lag
// tracker (and /readyz) reuses them every few seconds. So the connections
// are held to that bound, and the other goroutines to what they were after
// the first outages.
func TestBrokerOutagesHoldBoundedConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("takes the broker away for seconds, round after round")
	}
	const (
		rounds, warmup = 8, 2
		outage         = 3 * time.Second
	)
	m := startMain(t, Config{Embedded: true, DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0", Partitions: 1, NATSSync: time.Second})
	stopped := make(chan error, 1)
	go func() { stopped <- m.Wait() }()
	var down atomic.Bool
	broker := m.kafka.Cluster()
	broker.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		broker.KeepControl()
		if down.Load() {
			return nil, errors.New("broker down"), true // closes the connection
		}
		return nil, nil, false
	})
	w := &kafka.Writer{Addr: kafka.TCP(m.Brokers()...), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond, Transport: ownTransport(t)}
	t.Cleanup(func() { w.Close() })
	// The partitions one ListOffsets request of the lag tracker fans out to.
	partitions := len(schemas.Topics()) * m.Config.Partitions

	var base, last connCounts
	var seen []connCounts
	for i := range rounds {
		down.Store(true)
		time.Sleep(outage)
		down.Store(false)
		select {
		case err := <-stopped:
			t.Fatalf("the hub stopped during broker outage %d: %v", i+1, err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		p := personID(t, i+1)
		err := w.WriteMessages(ctx, event(t, schemas.HukouRegistered, p, fmt.Sprintf("outage-%d", i), "2015-01-01T08:00:00+08:00",
			map[string]any{"name": "王芳", "gender": p.Gender(), "birth_date": p.BirthDate().Format(time.DateOnly), "ethnicity": "01",
				"address_code": "230102001001", "household_id": fmt.Sprintf("H-%d", i), "reason": "birth"}))
		cancel()
		if err != nil {
			t.Fatalf("producing after outage %d: %v", i+1, err)
		}
		waitCaughtUp(t, m, i+1)
		last = settledConnCounts()
		seen = append(seen, last)
		if i == warmup-1 {
			base = last
		}
	}
	t.Logf("after each outage (goroutines/transport connections/broker connections): %v; source partitions %d", seen, partitions)
	// Counted after the last outage: by then the connections earlier
	// tests left in kafka-go's shared transport have idled out.
	for _, c := range []struct {
		what       string
		got, limit int
	}{
		// The lag tracker's fan-out, a control connection or two
		// (metadata and a group coordinator lookup at once), the test
		// writer's control and partition connections, and a spare.
		{"connections of kafka-go transports", last.transport, partitions + 5},
		// The group reader's own: one per partition it fetches, the
		// coordinator's, and a spare.
		{"broker connections not of a transport", last.broker - last.transport, partitions + 3},
	} {
		if c.got > c.limit {
			t.Errorf("%s after %d outages: %d, more than the %d that %d source partitions explain", c.what, rounds, c.got, c.limit, partitions)
		}
	}
	// Each connection is one goroutine of kafka-go's transport, or two of
	// the in-process broker's.
	if grow := last.others() - base.others(); grow > 6 {
		t.Errorf("goroutines besides the connections' grew by %d from outage %d to outage %d", grow, warmup, rounds)
	}
}

// connCounts are the process's goroutines, the connections of kafka-go
// transports (one goroutine each), and the connections of the in-process
// broker (its reader goroutines).
type connCounts struct{ goroutines, transport, broker int }

// others are the goroutines that are not a connection's.
func (c connCounts) others() int { return c.goroutines - c.transport - 2*c.broker }

func (c connCounts) String() string {
	return fmt.Sprintf("%d/%d/%d", c.goroutines, c.transport, c.broker)
}

// settledConnCounts samples the counts over three seconds and takes the
// least goroutines, past those that come and go with a request or a tick,
// and the median connections, which stay.
func settledConnCounts() connCounts {
	const samples = 15
	goroutines := 1 << 30
	var transport, broker []int
	for range samples {
		runtime.GC()
		var b bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
		goroutines = min(goroutines, runtime.NumGoroutine())
		transport = append(transport, goroutinesIn(b.String(), "github.com/segmentio/kafka-go.(*conn).run+"))
		broker = append(broker, goroutinesIn(b.String(), "github.com/twmb/franz-go/pkg/kfake.(*clientConn).read+"))
		time.Sleep(200 * time.Millisecond)
	}
	slices.Sort(transport)
	slices.Sort(broker)
	return connCounts{goroutines, transport[samples/2], broker[samples/2]}
}

// goroutinesIn counts the goroutines whose top frame is fn in a goroutine
// profile written with debug=1.
func goroutinesIn(profile, fn string) int {
	n := 0
	for _, blk := range strings.Split(profile, "\n\n") {
		if !strings.Contains(blk, fn) {
			continue
		}
		var c int
		if _, err := fmt.Sscanf(blk, "%d @", &c); err == nil {
			n += c
		}
	}
	return n
}
