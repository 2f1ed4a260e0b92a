package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/hub/dlq"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/schemas"
)

// TestReplayInterruptedRecordsWhatWasSent: a replay that stops halfway —
// the operator's Ctrl-C during the writes, or a partition refusing its
// records — returns the records the broker acknowledged as Sent, has
// recorded exactly those in the ledger, and a second replay sends only the
// rest: no record reaches its topic twice, none is left out.
func TestReplayInterruptedRecordsWhatWasSent(t *testing.T) {
	const n, chunk = 12, 4
	health := schemas.Topic(schemas.Health)

	for _, tc := range []struct {
		name string
		// hook runs on every produce request to the source topic during
		// the first replay; cancel cancels that replay's context. It
		// returns a response and whether it handled the request, as a
		// kfake control function does.
		hook func(req *kmsg.ProduceRequest, cancel context.CancelFunc) (kmsg.Response, bool)
		// canceled says whether the first replay's error is the
		// cancellation.
		canceled bool
	}{
		{
			name: "canceled during the first chunk",
			hook: func(_ *kmsg.ProduceRequest, cancel context.CancelFunc) (kmsg.Response, bool) {
				cancel() // the broker still takes the request
				return nil, false
			},
			canceled: true,
		},
		{
			name: "partition 1 refuses its records",
			hook: func(req *kmsg.ProduceRequest, _ context.CancelFunc) (kmsg.Response, bool) {
				refused := false
				resp := req.ResponseKind().(*kmsg.ProduceResponse)
				for _, rt := range req.Topics {
					t := kmsg.NewProduceResponseTopic()
					t.Topic = rt.Topic
					for _, rp := range rt.Partitions {
						p := kmsg.NewProduceResponseTopicPartition()
						p.Partition = rp.Partition
						p.ErrorCode = kerr.PolicyViolation.Code // not retried
						refused = refused || rp.Partition == 1
						t.Partitions = append(t.Partitions, p)
					}
					resp.Topics = append(resp.Topics, t)
				}
				if !refused {
					return nil, false
				}
				return resp, true
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Partitions: 2})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { k.Close() })
			for i := range n {
				// Keys of their own, so the records spread over both
				// partitions of the source topic.
				key := fmt.Sprintf("1101051949123%05d", i)
				writeReject(t, k.Addr(), reject{i % 2, key, fmt.Sprintf("bad %d", i), schemas.ReasonNotJSON, "", health, 0, int64(i)})
			}
			c, err := dlq.New(dlq.Config{Brokers: []string{k.Addr()}, Timeout: 5 * time.Second, ReplayChunk: chunk})
			if err != nil {
				t.Fatal(err)
			}

			first, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var armed atomic.Bool
			armed.Store(true)
			cl := k.Cluster()
			cl.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
				cl.KeepControl()
				req := r.(*kmsg.ProduceRequest)
				if !armed.Load() || !slices.ContainsFunc(req.Topics, func(t kmsg.ProduceRequestTopic) bool { return t.Topic == health }) {
					return nil, nil, false
				}
				resp, handled := tc.hook(req, cancel)
				return resp, nil, handled
			})

			res, err := c.Replay(first, dlq.Selection{All: true}, false)
			armed.Store(false)
			if err == nil {
				t.Fatal("the interrupted replay returned no error")
			}
			if got := errors.Is(err, context.Canceled); got != tc.canceled {
				t.Errorf("error %v: canceled %v, want %v", err, got, tc.canceled)
			}
			if len(res.Chosen) != n || len(res.Sent) == 0 || len(res.Sent) == n {
				t.Fatalf("chose %d, sent %d (%v); want %d chosen and some, not all, sent", len(res.Chosen), len(res.Sent), err, n)
			}
			if tc.canceled && len(res.Sent) != chunk {
				t.Errorf("sent %d after a cancel during the first chunk, want that chunk's %d", len(res.Sent), chunk)
			}
			sent := sorted(ids(res.Sent))
			if got := replayedOn(t, k.Addr(), health); !slices.Equal(got, sent) {
				t.Errorf("%s holds replays of %v, Replay says it sent %v", health, got, sent)
			}
			if got := ledgerKeys(t, k.Addr()); !slices.Equal(got, sent) {
				t.Errorf("ledger holds %v, want what was sent, %v", got, sent)
			}

			rest, err := c.Replay(ctx(t), dlq.Selection{All: true}, false)
			if err != nil {
				t.Fatal(err)
			}
			if got := sorted(ids(rest.Skipped)); !slices.Equal(got, sent) {
				t.Errorf("second replay skipped %v, want the first's %v", got, sent)
			}
			if len(res.Sent)+len(rest.Sent) != n {
				t.Errorf("second replay sent %d, want the other %d", len(rest.Sent), n-len(res.Sent))
			}
			all := sorted(ids(res.Chosen))
			if got := replayedOn(t, k.Addr(), health); !slices.Equal(got, all) {
				t.Errorf("%s holds replays of %v, want each DLQ record once: %v", health, got, all)
			}
			if got := ledgerKeys(t, k.Addr()); !slices.Equal(got, all) {
				t.Errorf("ledger holds %v, want every DLQ record once: %v", got, all)
			}
		})
	}
}

// sorted splits ids' space-separated list and sorts it.
func sorted(s string) []string {
	out := strings.Fields(s)
	slices.Sort(out)
	return out
}

// replayedOn returns the pophub-replay-of header of every record on
// topic, sorted, duplicates kept.
func replayedOn(t *testing.T, addr, topic string) []string {
	t.Helper()
	var out []string
	for _, m := range readTopic(t, addr, topic) {
		v, _ := header(m, dlq.HeaderReplayOf)
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// ledgerKeys returns the key of every record in the (one-partition)
// ledger, sorted, duplicates kept.
func ledgerKeys(t *testing.T, addr string) []string {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 5 * time.Second}
	resp, err := cl.ListOffsets(ctx(t), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		dlq.LedgerTopic: {kafka.LastOffsetOf(0)}}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, po := range resp.Topics[dlq.LedgerTopic] {
		if po.Error != nil {
			t.Fatalf("ledger offsets: %v", po.Error)
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: dlq.LedgerTopic, MaxWait: 50 * time.Millisecond})
		for range po.LastOffset {
			m, err := r.FetchMessage(ctx(t))
			if err != nil {
				t.Fatalf("reading the ledger: %v", err)
			}
			out = append(out, string(m.Key))
		}
		r.Close()
	}
	slices.Sort(out)
	return out
}
