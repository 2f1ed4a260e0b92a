package sdk_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// memPositions keeps positions the way a subscriber's own database would.
type memPositions struct {
	mu    sync.Mutex
	saved map[string]sdk.Position
}

func (m *memPositions) Load(_ context.Context, consumer string) (sdk.Position, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.saved[consumer]
	return p, ok, nil
}

func (m *memPositions) Save(_ context.Context, consumer string, p sdk.Position) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.saved == nil {
		m.saved = map[string]sdk.Position{}
	}
	m.saved[consumer] = p
	return nil
}

// TestConsumerLostWhileStopped: a subscriber is stopped (maintenance, a
// county system down for days) and meanwhile its durable consumer
// disappears: an administrator removes inactive consumers, or NATS loses
// its store. With its positions saved, it starts again where it left off
// and takes what was published while it was away; what the stream deleted
// meanwhile is reported as a gap, not skipped in silence.
func TestConsumerLostWhileStopped(t *testing.T) {
	tests := []struct {
		name          string
		purge         bool // the stream deletes what came while it was away
		wantHandled   int
		wantRecreated bool
		wantGap       bool
	}{
		{name: "published while away, still in the stream", wantHandled: 15, wantRecreated: true},
		{name: "published while away and deleted", purge: true, wantHandled: 10, wantRecreated: true, wantGap: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			rec := newRecorder()
			reader := sdkmetric.NewManualReader()
			var logs testenv.LogBuffer
			cfg := sdk.Config{Name: "county", URL: e.srv.URL(), Filters: []sdk.Filter{{Kind: sdk.MigrationsOut, Region: "2301"}},
				Handler: rec.handle, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
				Logger: debugLogger(&logs), Positions: &memPositions{}}
			stop := run(t, cfg)
			waitFor(t, "the consumer", 10*time.Second, func() bool {
				_, err := e.js.Consumer(context.Background(), schemas.StreamName, "county")
				return err == nil
			})
			sdktest.Publish(t, e.js, migrationMsgs(0, 5)...)
			waitFor(t, "the first five", 10*time.Second, func() bool { return rec.distinct() == 5 })
			stop()

			if err := e.js.DeleteConsumer(context.Background(), schemas.StreamName, "county"); err != nil {
				t.Fatal(err)
			}
			sdktest.Publish(t, e.js, migrationMsgs(5, 5)...)
			if tt.purge {
				st, err := e.js.Stream(context.Background(), schemas.StreamName)
				if err != nil {
					t.Fatal(err)
				}
				if err := st.Purge(context.Background()); err != nil { // as MaxAge would
					t.Fatal(err)
				}
			}

			run(t, cfg)
			waitFor(t, "the consumer again", 10*time.Second, func() bool {
				_, err := e.js.Consumer(context.Background(), schemas.StreamName, "county")
				return err == nil
			})
			sdktest.Publish(t, e.js, migrationMsgs(10, 5)...)
			waitFor(t, "the notifications", 10*time.Second, func() bool { return rec.distinct() >= tt.wantHandled })
			time.Sleep(500 * time.Millisecond) // anything more would show

			if got := rec.distinct(); got != tt.wantHandled {
				t.Errorf("handled %d distinct notifications, want %d; logs:\n%s", got, tt.wantHandled, logs.String())
			}
			if got := counter(t, reader, "pophub_sdk_consumers_recreated_total"); (got > 0) != tt.wantRecreated {
				t.Errorf("pophub_sdk_consumers_recreated_total = %d, want recreated %v", got, tt.wantRecreated)
			}
			if got := counter(t, reader, "pophub_sdk_gaps_total"); (got > 0) != tt.wantGap {
				t.Errorf("pophub_sdk_gaps_total = %d, want a gap %v; logs:\n%s", got, tt.wantGap, logs.String())
			}
			if !strings.Contains(logs.String(), "created it again where the subscriber left off") {
				t.Errorf("the subscriber did not say it resumed a lost consumer; logs:\n%s", logs.String())
			}
		})
	}
}

// TestSavedPositionOfAnotherFilter: a subscriber whose filters changed
// under the same name is told to delete its consumer (ErrFilterChanged);
// its new consumer starts as a new one, at Start, not from the position
// saved for the old filter.
func TestSavedPositionOfAnotherFilter(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	var logs testenv.LogBuffer
	cfg := sdk.Config{Name: "county", URL: e.srv.URL(), Filters: []sdk.Filter{{Kind: sdk.MigrationsOut, Region: "2301"}},
		Handler: rec.handle, Logger: debugLogger(&logs), Positions: &memPositions{}}
	stop := run(t, cfg)
	waitFor(t, "the consumer", 10*time.Second, func() bool {
		_, err := e.js.Consumer(context.Background(), schemas.StreamName, "county")
		return err == nil
	})
	sdktest.Publish(t, e.js, migrationMsgs(0, 5)...) // out of Harbin
	waitFor(t, "the first five", 10*time.Second, func() bool { return rec.distinct() == 5 })
	stop()

	// Moves into Beijing, published before the subscriber is reconfigured
	// to them (Start: new ones only).
	var before []*nats.Msg
	for i := 10; i < 13; i++ {
		m := sdktest.Migration(fmt.Sprintf("in%d", i), sdktest.CitizenID(i), 1, daoli, beijing)
		before = append(before, sdktest.Msg(sdktest.Subject("pop", m, ""), m, ""))
	}
	sdktest.Publish(t, e.js, before...)
	if err := e.js.DeleteConsumer(context.Background(), schemas.StreamName, "county"); err != nil {
		t.Fatal(err)
	}
	cfg.Filters = []sdk.Filter{{Kind: sdk.MigrationsIn, Region: "11"}}
	run(t, cfg)
	waitFor(t, "the new consumer", 10*time.Second, func() bool {
		_, err := e.js.Consumer(context.Background(), schemas.StreamName, "county")
		return err == nil
	})
	time.Sleep(time.Second) // anything delivered would show
	if got := rec.distinct(); got != 5 {
		t.Errorf("the reconfigured subscriber handled %d notifications published before its consumer; logs:\n%s", got-5, logs.String())
	}
	if !strings.Contains(logs.String(), "saved position is of a consumer with another filter") {
		t.Errorf("the subscriber did not say it left the other filter's position; logs:\n%s", logs.String())
	}
}
