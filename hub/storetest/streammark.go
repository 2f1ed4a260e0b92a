package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
)

// streamMarks is notify.StreamMarks, which every store implements: the
// outbox relay keeps there its last look at the notification stream.
type streamMarks interface {
	StreamMark(ctx context.Context, stream string) (hub.StreamMark, bool, error)
	SaveStreamMark(ctx context.Context, stream string, m hub.StreamMark) error
}

// testStreamMarks: a stream has no mark until one is saved; each stream's
// latest mark is returned as saved, to the nanosecond, the mark of a
// stream just created (nothing known held) included.
func testStreamMarks(t *testing.T, s hub.Store) {
	ctx := context.Background()
	marks, ok := s.(streamMarks)
	if !ok {
		t.Fatalf("%T keeps no stream marks: a relay starting after NATS lost its store could not tell", s)
	}
	if _, found, err := marks.StreamMark(ctx, "POP"); err != nil || found {
		t.Fatalf("StreamMark of a new store = found %v, %v; want none", found, err)
	}
	at := time.Date(2026, 12, 7, 1, 2, 3, 456789012, time.UTC)
	pop := hub.StreamMark{Created: at, First: 1, Last: 300, LastAt: at.Add(time.Minute)}
	other := hub.StreamMark{Created: at.Add(time.Hour), First: 7, Last: 9, LastAt: at.Add(2 * time.Hour)}
	fresh := hub.StreamMark{Created: at.Add(3 * time.Hour)}
	for _, step := range []struct {
		stream string
		mark   hub.StreamMark
	}{{"POP", pop}, {"POP_OTHER", other}, {"POP", hub.StreamMark{Created: at, First: 1, Last: 500, LastAt: at.Add(5 * time.Minute)}}, {"POP", fresh}} {
		if err := marks.SaveStreamMark(ctx, step.stream, step.mark); err != nil {
			t.Fatalf("SaveStreamMark(%s): %v", step.stream, err)
		}
		got, found, err := marks.StreamMark(ctx, step.stream)
		if err != nil || !found || !got.Created.Equal(step.mark.Created) || got.First != step.mark.First ||
			got.Last != step.mark.Last || !got.LastAt.Equal(step.mark.LastAt) {
			t.Fatalf("StreamMark(%s) = %+v, %v, %v; want %+v as saved", step.stream, got, found, err, step.mark)
		}
	}
	if got, _, err := marks.StreamMark(ctx, "POP_OTHER"); err != nil || got.Last != other.Last {
		t.Fatalf("StreamMark(POP_OTHER) = %+v, %v after another stream's save; want %+v", got, err, other)
	}
}
