package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/schemas"
)

// BenchmarkGateway reports events/s through HTTP batches of 1,000 next to
// the raw kafka-go produce rate of the same records in the same run.
func BenchmarkGateway(b *testing.B) {
	url, broker := setup(b)
	evs := housingEvents(b, 1000)
	raws := encodeAll(b, evs)
	body, _ := json.Marshal(raws)
	msgs := make([]kafka.Message, len(evs))
	for i, ev := range evs {
		msgs[i] = kafka.Message{Topic: schemas.Topic(ev.Source), Key: []byte(ev.Subject), Value: raws[i]}
	}
	raw := &kafka.Writer{Addr: kafka.TCP(broker), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1000, BatchBytes: 16 << 20, BatchTimeout: 10 * time.Millisecond, Compression: kafka.Snappy}
	defer raw.Close()
	var gw, rw time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		if code, p := post(b, url, "housing-secret", ContentTypeBatch, body); code != http.StatusAccepted {
			b.Fatalf("%d %+v", code, p)
		}
		t1 := time.Now()
		if err := raw.WriteMessages(context.Background(), msgs...); err != nil {
			b.Fatal(err)
		}
		gw += t1.Sub(t0)
		rw += time.Since(t1)
		n += len(evs)
	}
	g, r := float64(n)/gw.Seconds(), float64(n)/rw.Seconds()
	b.ReportMetric(g, "events/s")
	b.ReportMetric(r, "raw_events/s")
	b.ReportMetric(g/r, "ratio")
}
