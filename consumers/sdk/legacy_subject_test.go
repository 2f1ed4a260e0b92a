package sdk_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/schemas"
)

// TestLegacySubjectConsumerKept: an SDK before it read 441900 (Dongguan,
// the one county of a city without districts) as a county filtered
// deaths there with pop.death.44.4419.*, the subject of the city; the
// SDK now computes pop.death.44.4419.441900, which matches the same
// messages. A subscriber whose configuration did not change keeps
// running on the consumer the older SDK created, where it left off, in
// both consumer modes: no ErrFilterChanged, no new consumer, nothing the
// older SDK acked handled again.
func TestLegacySubjectConsumerKept(t *testing.T) {
	const dongguan = "441900003001"
	filters := []sdk.Filter{{Kind: sdk.Deaths, Region: "441900"}, {Kind: sdk.Deaths, Region: "2301"}}
	for _, tc := range []struct {
		name      string
		perFilter bool
		filters   []sdk.Filter
		// legacy are the consumers the older SDK created: name → filter.
		legacy func(name string) map[string]string
	}{
		{"single consumer", false, filters[:1], func(name string) map[string]string {
			return map[string]string{name: "pop.death.44.4419.*"}
		}},
		{"consumer per filter", true, filters, func(name string) map[string]string {
			return map[string]string{
				schemas.FilterConsumerName(name, "pop.death.44.4419.*"): "pop.death.44.4419.*",
				schemas.FilterConsumerName(name, "pop.death.23.2301.*"): "pop.death.23.2301.*",
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			name := "dg"
			legacy := tc.legacy(name)
			for n, f := range legacy {
				if _, err := e.js.CreateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{
					Durable: n, FilterSubject: f, AckPolicy: jetstream.AckExplicitPolicy,
					DeliverPolicy: jetstream.DeliverAllPolicy}); err != nil {
					t.Fatal(err)
				}
			}
			batch := func(tag string, first int) (msgs []*nats.Msg, ids []string) {
				for i := range 4 {
					address := dongguan
					if i%2 == 1 && tc.perFilter {
						address = nangang
					}
					change := fmt.Sprintf("%s%d", tag, i)
					note := sdktest.Death(change, sdktest.CitizenID(first+i), 1, "2026-01-02")
					msgs = append(msgs, sdktest.Msg(sdktest.Subject("pop", note, address), note, ""))
					ids = append(ids, change)
				}
				return msgs, ids
			}
			// What the older SDK handled and acked before the upgrade.
			old, _ := batch("old", 0)
			sdktest.Publish(t, e.js, old...)
			// The legacy consumers hold them all once the stream has
			// passed them on.
			pending := map[string]int{}
			for deadline := time.Now().Add(10 * time.Second); ; {
				total := 0
				for n := range legacy {
					if cons, err := e.js.Consumer(ctx, schemas.StreamName, n); err == nil {
						if info, err := cons.Info(ctx); err == nil {
							pending[n] = int(info.NumPending)
						}
					}
					total += pending[n]
				}
				if total == len(old) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the legacy consumers hold %d of the older SDK's %d messages", total, len(old))
				}
				time.Sleep(10 * time.Millisecond)
			}
			acked := 0
			for n := range legacy {
				cons, err := e.js.Consumer(ctx, schemas.StreamName, n)
				if err != nil {
					t.Fatal(err)
				}
				fetched, err := cons.FetchNoWait(pending[n])
				if err != nil {
					t.Fatal(err)
				}
				for m := range fetched.Messages() {
					if err := m.DoubleAck(ctx); err != nil {
						t.Fatal(err)
					}
					acked++
				}
			}
			if acked != len(old) {
				t.Fatalf("the older SDK acked %d of %d", acked, len(old))
			}
			before := consumersOf(t, e.js)

			msgs, want := batch("new", 100)
			sdktest.Publish(t, e.js, msgs...)
			rec := newRecorder()
			cfg := sdk.Config{Name: name, URL: e.srv.URL(), Handler: rec.handle, Filters: tc.filters,
				ConsumerPerFilter: tc.perFilter, Start: sdk.Start{Policy: sdk.StartAll}}
			s, err := sdk.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- s.Run(rctx) }()
			deadline := time.After(20 * time.Second)
		wait:
			for rec.distinct() < len(want) {
				select {
				case err := <-done:
					cancel()
					s.Close()
					t.Fatalf("Run returned before handling what came after the upgrade: %v", err)
				case <-deadline:
					break wait
				case <-time.After(20 * time.Millisecond):
				}
			}
			time.Sleep(200 * time.Millisecond) // what is handled twice, or was acked before, would come by now
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			s.Close()

			rec.mu.Lock()
			for _, id := range want {
				if rec.byChange[id] != 1 {
					t.Errorf("notification %s handled %d times, want once", id, rec.byChange[id])
				}
			}
			if len(rec.byChange) != len(want) {
				t.Errorf("handled %v, want only %q: the older SDK's position was lost", rec.byChange, want)
			}
			rec.mu.Unlock()
			after := consumersOf(t, e.js)
			if len(after) != len(before) {
				t.Errorf("consumers after the upgrade: %d, want the older SDK's %d", len(after), len(before))
			}
			for n, info := range before {
				if a, ok := after[n]; !ok || !a.Created.Equal(info.Created) || a.Config.FilterSubject != legacy[n] {
					t.Errorf("consumer %s (%q) not kept: now %q, present %v", n, legacy[n], a.Config.FilterSubject, ok)
				}
			}
		})
	}
}
