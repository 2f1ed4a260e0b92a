package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/schemas"
)

// TestRetriable: Retriable tells a refusal that sending again will not
// mend from a passing failure, for the errors Results carry.
func TestRetriable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"message size too large", fmt.Errorf("sending to Kafka: %w", kafka.MessageSizeTooLarge), false},
		{"message too large for the batch", fmt.Errorf("sending to Kafka: %w", kafka.MessageTooLargeError{}), false},
		{"topic authorization failed", fmt.Errorf("sending to Kafka: %w", kafka.TopicAuthorizationFailed), false},
		{"SASL authentication failed", fmt.Errorf("sending 3 events: %w", kafka.SASLAuthenticationFailed), false},
		{"topic missing", &TopicMissingError{Topic: "pop.events.housing"}, false},
		{"reject", &schemas.RejectError{Reason: schemas.ReasonInvalidData, Field: "data"}, false},
		{"not enough replicas", fmt.Errorf("sending to Kafka: %w", kafka.NotEnoughReplicas), true},
		{"leader moved", fmt.Errorf("sending to Kafka: %w", kafka.NotLeaderForPartition), true},
		{"request timed out", fmt.Errorf("sending to Kafka: %w", kafka.RequestTimedOut), true},
		{"deadline", fmt.Errorf("sending to Kafka: %w", context.DeadlineExceeded), true},
		{"connection closed", fmt.Errorf("sending to Kafka: %w", io.ErrUnexpectedEOF), true},
		// A retry loop on the publisher that returned it would spin
		// forever: every later call says ErrClosed at once.
		{"closed publisher", ErrClosed, false},
		{"no error", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Retriable(tt.err); got != tt.want {
				t.Errorf("Retriable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestRetriableRefusals: the Results of events a broker refused say
// whether to send them again: not those refused for good (a topic whose
// max.message.bytes is below the batch), those refused for the moment
// (too few in-sync replicas) yes.
func TestRetriableRefusals(t *testing.T) {
	tests := []struct {
		name      string
		code      int16
		retriable bool
	}{
		{"MESSAGE_TOO_LARGE", 10, false},
		{"NOT_ENOUGH_REPLICAS", 19, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, schemas.Topics()...))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			// Partition 0 of every topic refuses every produce.
			c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				req := kr.(*kmsg.ProduceRequest)
				if len(req.Topics) != 1 || len(req.Topics[0].Partitions) != 1 || req.Topics[0].Partitions[0].Partition != 0 {
					return nil, nil, false
				}
				resp := req.ResponseKind().(*kmsg.ProduceResponse)
				rt := kmsg.NewProduceResponseTopic()
				rt.Topic = req.Topics[0].Topic
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.ErrorCode = tt.code
				rt.Partitions = append(rt.Partitions, rp)
				resp.Topics = append(resp.Topics, rt)
				return resp, nil, true
			})
			p := newPublisher(t, Config{Brokers: c.ListenAddrs(), MaxAttempts: 2})
			events := population(t, 20) // citizens on every partition
			results, _ := p.Publish(context.Background(), events...)
			refused, delivered := 0, 0
			for _, r := range results {
				if r.Err == nil {
					delivered++
					continue
				}
				refused++
				if Retriable(r.Err) != tt.retriable {
					t.Errorf("event %s: Retriable(%v) = %v, want %v", r.ID, r.Err, !tt.retriable, tt.retriable)
				}
			}
			if refused == 0 || delivered == 0 {
				t.Fatalf("%d events refused and %d delivered; want partition 0's refused, the others delivered", refused, delivered)
			}
			var ke kafka.Error
			for _, r := range results {
				if r.Err != nil && (!errors.As(r.Err, &ke) || int16(ke) != tt.code) {
					t.Errorf("event %s: %v; want Kafka's error %d", r.ID, r.Err, tt.code)
				}
			}
		})
	}
}
