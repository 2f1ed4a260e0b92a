package ingest

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/telemetry"
	"github.com/pophub/pophub/schemas"
)

// dedupApplier applies each (source, id) once and reports repeats as
// duplicates, naming them (DuplicateAt) as the stores do.
type dedupApplier struct {
	mu      sync.Mutex
	seen    map[string]bool
	batches [][]string
}

func (a *dedupApplier) Apply(_ context.Context, batch []hub.Input) (hub.ApplyResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = map[string]bool{}
	}
	var res hub.ApplyResult
	var ids []string
	for i, in := range batch {
		k := string(in.Event.Source) + "/" + in.Event.ID
		ids = append(ids, k)
		if a.seen[k] {
			res.Duplicates++
			res.DuplicateAt = append(res.DuplicateAt, i)
			continue
		}
		a.seen[k] = true
		res.Applied++
	}
	a.batches = append(a.batches, ids)
	return res, nil
}

// TestDuplicatesCountedUnderTheirSource: marriage sends an event a second
// time, in the same fetch as two new health events. pophub status
// (Counts().Sources) and pophub_events_duplicate_total{source} charge the
// repeat to marriage, the department that sent it again, and count both
// health events as applied.
func TestDuplicatesCountedUnderTheirSource(t *testing.T) {
	k := broker(t)
	marriage := kafka.Message{Topic: schemas.Topic(schemas.Marriage), Key: []byte(idA),
		Value: []byte(cloudEvent("m-1", "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))}
	health := func(id, subject string) kafka.Message {
		return kafka.Message{Topic: schemas.Topic(schemas.Health), Key: []byte(subject),
			Value: []byte(cloudEvent(id, "health", "death.certified", subject, `{"date_of_death":"2026-01-01","certificate_no":"C-`+id+`"}`))}
	}
	a := &dedupApplier{}
	// Marriage's event is applied once.
	writeToPartition0(t, k.Addr(), marriage)
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "dups"}, a)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	waitUntil(t, "the first event committed", func() bool { return c.Counts().Consumed == 1 })
	stop()

	// Marriage sends it again; health sends two new events meanwhile.
	writeToPartition0(t, k.Addr(), marriage, health("h-1", idA), health("h-2", idB))
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	c2, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "dups", Meter: tel.Meter("test"), MaxWait: time.Second}, a)
	if err != nil {
		t.Fatal(err)
	}
	stop2 := run(t, c2)
	waitUntil(t, "the three records committed", func() bool { return c2.Counts().Consumed == 3 })
	stop2()
	// The counts are right however the reader batches the three records;
	// TestSplit holds the mixed batch itself.
	a.mu.Lock()
	t.Logf("batches applied: %v", a.batches)
	a.mu.Unlock()

	cnt := c2.Counts()
	if cnt.Duplicates != 1 || cnt.Applied != 2 {
		t.Fatalf("totals applied %d duplicates %d, want 2 and 1", cnt.Applied, cnt.Duplicates)
	}
	m, h := cnt.Sources[schemas.Marriage], cnt.Sources[schemas.Health]
	if m.Duplicates != 1 || m.Applied != 0 || h.Duplicates != 0 || h.Applied != 2 {
		t.Errorf("per source: marriage applied %d duplicates %d, health applied %d duplicates %d; "+
			"want marriage 0 and 1 (its repeat), health 2 and 0", m.Applied, m.Duplicates, h.Applied, h.Duplicates)
	}
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	lines := strings.Split(rec.Body.String(), "\n")
	for _, want := range []string{
		`pophub_events_duplicate_total{source="marriage"} 1`,
		`pophub_events_duplicate_total{source="health"} 0`,
		`pophub_events_applied_total{source="health"} 2`,
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// writeToPartition0 writes msgs to partition 0 of their topics.
func writeToPartition0(t *testing.T, addr string, msgs ...kafka.Message) {
	t.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: toPartition0, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, Transport: tr}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}
