package reconcile

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/schemas"
)

// TestRunAgreesWithTheHubOnMarkers: a department's records shaped like
// transaction markers (4-byte key, 6-byte value), written by an ordinary
// producer, go through the real ingest, which skips them without a DLQ
// copy. Reconciliation classifies them as the hub did: skipped, not gaps,
// so that `pophub reconcile` does not report a gap nothing can clear. A
// record one byte off the shape is rejected by the hub and found in the
// DLQ by reconciliation.
func TestRunAgreesWithTheHubOnMarkers(t *testing.T) {
	brokers := startKafka(t, 1)
	hs := schemas.Topic(schemas.Housing)
	produce(t, brokers, []kafka.Message{
		{Topic: hs, Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 7}},    // a commit marker's shape: skipped
		{Topic: hs, Key: []byte{0, 0, 0, 0}, Value: []byte{0, 0, 0, 0, 0, 0}},    // an abort marker's shape: skipped
		{Topic: hs, Key: []byte{0, 0, 0, 2}, Value: []byte{0, 0, 0, 0, 0, 7}},    // no marker type: rejected
		{Topic: hs, Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 0, 7}}, // 7-byte value: rejected
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := memdb.Open(ctx, memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	consumer, err := ingest.New(ingest.Config{Brokers: brokers, GroupID: "pophub"}, store)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- consumer.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("ingest: %v", err)
		}
		consumer.Close()
	}()

	// Until the hub has committed past all four records.
	var rep Report
	for {
		rep, err = Run(ctx, Config{Brokers: brokers, Store: store, Sources: []schemas.Source{schemas.Housing}})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if rep.Sources[0].Records == 4 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("ingest stopped: %v", err)
		case <-ctx.Done():
			t.Fatalf("the hub did not commit past the records: %+v", rep.Sources[0])
		case <-time.After(50 * time.Millisecond):
		}
	}
	c := consumer.Counts()
	if c.Skipped != 2 || c.RejectedTotal() != 2 {
		t.Fatalf("the hub skipped %d and rejected %d records, want 2 and 2", c.Skipped, c.RejectedTotal())
	}
	s := rep.Sources[0]
	if s.Skipped != c.Skipped || s.Rejected != c.RejectedTotal() || rep.Gaps() != 0 {
		t.Errorf("reconcile: %d skipped, %d rejected, %d gaps (%+v); want the hub's %d skipped and %d rejected, no gap",
			s.Skipped, s.Rejected, rep.Gaps(), s.Gaps, c.Skipped, c.RejectedTotal())
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := `housing: 4 records up to committed offsets = 0 applied + 0 duplicates + 2 rejected + 2 skipped as transaction markers; gap 0
all sources: 4 records up to committed offsets = 0 applied + 0 duplicates + 2 rejected + 2 skipped as transaction markers; gap 0; in flight 0
`
	if b.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", b.String(), want)
	}
}
