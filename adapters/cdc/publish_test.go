package cdc

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/schemas"
)

// refusingPublisher delivers the first n events of a call and fails the
// others as an unreachable broker does.
type refusingPublisher struct{ n int }

func (p refusingPublisher) Publish(_ context.Context, evs ...schemas.Event) ([]publisher.Result, error) {
	out := make([]publisher.Result, len(evs))
	for i, ev := range evs {
		out[i].ID = ev.ID
		if i >= p.n {
			out[i].Err = errors.New("sending to Kafka: connection refused")
		}
	}
	return out, nil
}

// TestPublishCountsWhatWasDelivered: a batch the broker took only in
// part, or not at all, fails with the counts of events delivered and not
// taken, and only the delivered count as published.
func TestPublishCountsWhatWasDelivered(t *testing.T) {
	for _, tc := range []struct {
		name      string
		delivered int
		want      string
	}{
		{"none delivered", 0, "publishing events: 0 delivered, 2 not taken by the broker: sending to Kafka: connection refused"},
		{"one delivered", 1, "publishing events: 1 delivered, 1 not taken by the broker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStreamWith(t, "rentals", refusingPublisher{tc.delivered}, exampleMapping(t), func(*Config) {})
			batch := []queued{{ev: schemas.Event{ID: "a"}}, {ev: schemas.Event{ID: "b"}}}
			err := s.publish(context.Background(), batch)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("publish: %v, want an error with %q", err, tc.want)
			}
			if got := s.Stats().Published; got != int64(tc.delivered) {
				t.Errorf("published %d, want %d", got, tc.delivered)
			}
		})
	}
}
