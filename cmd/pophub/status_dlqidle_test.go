package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/schemas"
)

// TestStatusIdleDLQCostsNoFetch: pophub status is probed every few
// seconds. An operator relies on the DLQ line answering at once when no
// reject came since the last count, however many partitions the DLQ has
// and however slow its broker; and on a partition whose new records were
// not checked within the call's time being listed as catching up, never
// counted as complete.
func TestStatusIdleDLQCostsNoFetch(t *testing.T) {
	const parts = 24
	k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Partitions: parts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	brokers := []string{k.Addr()}
	reject := func(p int) kafka.Message {
		return kafka.Message{Topic: schemas.DLQTopic, Partition: p, Value: []byte("v"), Headers: []kafka.Header{
			{Key: "pophub-reason", Value: []byte("not_json")}, {Key: "pophub-topic", Value: []byte(schemas.Topic(schemas.Tax))}}}
	}
	var msgs []kafka.Message
	for p := range parts {
		msgs = append(msgs, reject(p))
	}
	// A transport of its own: kafka-go's default one keeps each broker
	// address's metadata for seconds, and an earlier test's broker on
	// the same port held a DLQ of fewer partitions.
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, Transport: tr,
		Balancer: kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return m.Partition })}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}

	c := &cachedDLQ{brokers: brokers} // ttl 0: every call counts
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if d, err := c.get(ctx); err != nil || d.Records != parts || d.CatchingUp != nil {
		t.Fatalf("first count %+v, %v", d, err)
	}

	cl := k.Cluster()
	var fetches atomic.Int32
	cl.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		fetches.Add(1)
		cl.SleepControl(func() { time.Sleep(250 * time.Millisecond) })
		return nil, nil, false
	})
	probe := func() (time.Duration, int32) {
		t.Helper()
		fetches.Store(0)
		pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second) // a status probe's
		defer pcancel()
		start := time.Now()
		d, err := c.get(pctx)
		if err != nil {
			t.Fatal(err)
		}
		if d.Records != parts {
			t.Errorf("count %+v, want %d records", d, parts)
		}
		return time.Since(start), fetches.Load()
	}
	if took, n := probe(); n != 0 || took > time.Second {
		t.Errorf("a status call with no new rejects made %d fetches and took %v", n, took)
	}

	// A new reject in every partition, the broker too slow to check
	// them all in one call: the ones left are catching up.
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	complete := c.at
	pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer pcancel()
	d, err := c.get(pctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.CatchingUp) == 0 || c.at != complete {
		t.Errorf("a call that could not check every partition answered %+v as complete", d)
	}
	for _, p := range d.CatchingUp {
		if p.End != 2 {
			t.Errorf("partition %+v: want end 2", p)
		}
	}
}
