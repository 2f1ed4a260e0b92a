package notify

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/internal/testenv"
)

// TestPruneConsumers deletes exactly the consumers the judge refuses,
// logs each with its owner and reason, passes each consumer's filters
// (none for the whole stream), and tolerates a missing stream, on the
// embedded server and on the machine's NATS 2.9, whose JetStream API the
// hub must keep to.
func TestPruneConsumers(t *testing.T) {
	for _, server := range []struct {
		name string
		js   func(t *testing.T) jetstream.JetStream
	}{
		{"embedded", func(t *testing.T) jetstream.JetStream { return connect(t, natsServer(t, 0).ClientURL()) }},
		{"machine 2.9", machineJetStream},
	} {
		t.Run(server.name, func(t *testing.T) {
			js := server.js(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// Names of the test's own: the machine's server is shared.
			id := fmt.Sprintf("%d", time.Now().UnixNano())
			stream, prefix := "PRUNE_"+id, "prune"+id
			if deleted, err := PruneConsumers(ctx, js, stream, nil, nil); err != nil || deleted != nil {
				t.Fatalf("a missing stream: deleted %v, %v", deleted, err)
			}
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{prefix + ".>"}, Storage: jetstream.MemoryStorage}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { js.DeleteStream(context.Background(), stream) })
			for _, c := range []jetstream.ConsumerConfig{
				{Durable: "keep", FilterSubject: prefix + ".a"},
				{Durable: "drop", FilterSubject: prefix + ".b", Description: "wider than granted"},
				{Durable: "whole", DeliverSubject: "inbox.whole"},
			} {
				c.AckPolicy = jetstream.AckExplicitPolicy
				if _, err := js.CreateConsumer(ctx, stream, c); err != nil {
					t.Fatalf("creating %s: %v", c.Durable, err)
				}
			}
			seen := map[string][]string{}
			delivers := map[string]string{}
			judge := func(name string, filters []string, deliver string) (owner, problem string) {
				seen[name], delivers[name] = filters, deliver
				switch name {
				case "drop":
					return "someone", "wider than granted"
				case "whole":
					return "someone else", "reads everything"
				}
				return "", ""
			}
			logs := &testenv.LogBuffer{}
			deleted, err := PruneConsumers(ctx, js, stream, judge, slog.New(slog.NewTextHandler(logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(deleted)
			if !slices.Equal(deleted, []string{"drop", "whole"}) {
				t.Errorf("deleted %v, want [drop whole]", deleted)
			}
			if got := seen["drop"]; !slices.Equal(got, []string{prefix + ".b"}) {
				t.Errorf("drop's filters %q", got)
			}
			if got := seen["whole"]; len(got) != 0 {
				t.Errorf("whole's filters %q, want none", got)
			}
			if delivers["whole"] != "inbox.whole" || delivers["keep"] != "" {
				t.Errorf("deliver subjects %q, want whole's inbox.whole and none for the pull consumers", delivers)
			}
			for _, line := range []string{
				`consumer=drop identity=someone reason="wider than granted"`,
				`consumer=whole identity="someone else" reason="reads everything"`,
			} {
				if !strings.Contains(logs.String(), line) {
					t.Errorf("the log lacks %s:\n%s", line, logs)
				}
			}
			st, err := js.Stream(ctx, stream)
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for name := range st.ConsumerNames(ctx).Name() {
				left = append(left, name)
			}
			if !slices.Equal(left, []string{"keep"}) {
				t.Errorf("consumers left %v, want [keep]", left)
			}
		})
	}
}
