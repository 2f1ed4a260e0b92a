package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestReleaseSnapshot: a consumer's snapshot goes once its info shows
// every message up to the snapshot's end acked, and not before.
func TestReleaseSnapshot(t *testing.T) {
	created := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	stream := func(last uint64) *jetstream.StreamInfo {
		return &jetstream.StreamInfo{Created: created, State: jetstream.StreamState{LastSeq: last}}
	}
	consumer := func(ackFloor, pending, ackPending uint64) *jetstream.ConsumerInfo {
		return &jetstream.ConsumerInfo{AckFloor: jetstream.SequenceInfo{Stream: ackFloor}, NumPending: pending, NumAckPending: int(ackPending)}
	}
	tests := []struct {
		name     string
		si       *jetstream.StreamInfo
		ci       *jetstream.ConsumerInfo
		wantKept bool
	}{
		{"acked short of the end", stream(120), consumer(99, 10, 5), true},
		{"acked up to the end", stream(120), consumer(100, 10, 5), false},
		{"acked beyond the end", stream(120), consumer(110, 0, 1), false},
		{"delivered beyond the end, not acked", stream(120), consumer(90, 0, 30), true},
		{"caught up: nothing pending, nothing unacked", stream(100), consumer(60, 0, 0), false},
		{"nothing unacked, some pending", stream(120), consumer(60, 3, 0), true},
		{"nothing pending on a stream read before the end", stream(99), consumer(60, 0, 0), true},
		{"a stream created again", &jetstream.StreamInfo{Created: created.Add(time.Hour), State: jetstream.StreamState{LastSeq: 7}}, consumer(0, 7, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Subscriber{cfg: Config{Name: "si", Logger: slog.New(slog.DiscardHandler)}}
			d := &durable{name: "si"}
			snap := &snapshot{versions: map[citizenid.ID]int64{sdktest.CitizenID(1): 3}, through: 100, stream: created}
			d.snapshot.Store(snap)
			s.releaseSnapshot(d, tt.si, tt.ci)
			if kept := d.snapshot.Load() == snap; kept != tt.wantKept {
				t.Errorf("snapshot kept: %t, want %t", kept, tt.wantKept)
			}
		})
	}
	d := &durable{name: "si"}
	(&Subscriber{cfg: Config{Logger: slog.New(slog.DiscardHandler)}}).releaseSnapshot(d, stream(1), consumer(1, 0, 0))
	if d.snapshot.Load() != nil {
		t.Error("a consumer without a snapshot got one")
	}
}

// TestSnapshotDroppedPastWalk: citizen A (not in the snapshot) migrates
// once and citizen B twice (v2, v3) while the snapshot is walked, after
// the stream sequence the walk carries, and the walk reads B at v3. The
// consumer keeps the snapshot while A's notification, before the walk's
// end, is unacked, and B's covered notifications are skipped, or with
// DeliverCovered marked, as without the drop. Once a notification after
// the walk's end was handled, the snapshot is dropped from every
// consumer, and a later notification of B no longer says B's snapshot
// version.
func TestSnapshotDroppedPastWalk(t *testing.T) {
	tests := []struct {
		name              string
		deliverCovered    bool
		consumerPerFilter bool
		want              []string // what the handler sees, sorted
	}{
		{"covered skipped", false, false, []string{"A v1 covered false", "B v4 covered false", "C v1 covered false"}},
		{"covered marked", true, false, []string{"A v1 covered false", "B v2 covered true", "B v3 covered true", "B v4 covered false", "C v1 covered false"}},
		// The deaths consumer never delivers anything: it is caught up.
		{"covered marked, a consumer per filter", true, true, []string{"A v1 covered false", "B v2 covered true", "B v3 covered true", "B v4 covered false", "C v1 covered false"}},
	}
	const from, to = "230102001001", "110105001001" // Harbin, Beijing
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := sdktest.StartServer(t)
			_, js := sdktest.Connect(t, srv.URL())
			sdktest.CreateStream(t, js, schemas.StreamName, "pop")
			citizens := map[string]citizenid.ID{"A": sdktest.CitizenID(1), "B": sdktest.CitizenID(2), "C": sdktest.CitizenID(3)}
			names := make(map[citizenid.ID]string)
			for name, id := range citizens {
				names[id] = name
			}
			migration := func(name string, v int64) *nats.Msg {
				n := sdktest.Migration(fmt.Sprintf("%s-v%d", name, v), citizens[name], v, from, to)
				return sdktest.Msg(sdktest.Subject("pop", n, ""), n, "")
			}

			var walkOnce sync.Once
			var walkBegan uint64
			var walkErr error
			hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				walkOnce.Do(func() {
					st, err := js.Stream(r.Context(), schemas.StreamName)
					if err != nil {
						walkErr = err
						return
					}
					walkBegan = st.CachedInfo().State.LastSeq
					for _, m := range []*nats.Msg{migration("A", 1), migration("B", 2), migration("B", 3)} { // applied during the walk
						if _, err := js.PublishMsg(r.Context(), m); err != nil {
							walkErr = err
							return
						}
					}
				})
				if walkErr != nil {
					http.Error(w, walkErr.Error(), http.StatusInternalServerError)
					return
				}
				_ = json.NewEncoder(w).Encode(map[string]any{"stream_sequence": walkBegan, "next": "", "persons": []map[string]any{
					{"citizen_id": string(citizens["B"]), "version": 3, "status": "active", "hukou": map[string]any{"address_code": from}}}})
			}))
			t.Cleanup(hub.Close)

			type seen struct {
				what     string
				snapshot int64
			}
			var mu sync.Mutex
			var got []seen
			releaseA := make(chan struct{})
			var releaseOnce sync.Once
			release := func() { releaseOnce.Do(func() { close(releaseA) }) }
			t.Cleanup(release)
			s, err := New(Config{Name: "walker", URL: srv.URL(), ConsumerPerFilter: tt.consumerPerFilter, Concurrency: 2,
				Filters: []Filter{{Kind: MigrationsOut, Region: "2301"}, {Kind: Deaths, Region: "2301"}},
				Bootstrap: &Bootstrap{HubURL: hub.URL, Purpose: "p", DeliverCovered: tt.deliverCovered,
					Handle: func(context.Context, Person) error { return nil }},
				Handler: func(_ context.Context, d *Delivery) error {
					name := names[d.CitizenID]
					if name == "A" {
						<-releaseA // holds the consumer's ack floor below the walk's end
					}
					mu.Lock()
					got = append(got, seen{fmt.Sprintf("%s v%d covered %t", name, d.Version, d.InSnapshot), d.SnapshotVersion})
					mu.Unlock()
					return nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			t.Cleanup(func() {
				release()
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
				s.Close()
			})
			migrationsOut, deaths := s.durables[0], (*durable)(nil)
			if tt.consumerPerFilter {
				byFilter := func(word string) *durable {
					return s.durables[slices.IndexFunc(s.durables, func(d *durable) bool { return strings.Contains(d.filter, word) })]
				}
				migrationsOut, deaths = byFilter(".migration."), byFilter(".death.")
			}

			// A's notification waits in the handler: the walk's end is not acked.
			waitUntil(t, "the consumer's snapshot", func() bool { return migrationsOut.snapshot.Load() != nil })
			snap := migrationsOut.snapshot.Load()
			if snap.through != 3 || snap.versions[citizens["B"]] != 3 || len(snap.versions) != 1 {
				t.Fatalf("snapshot through %d with %v, want through 3 (the walk's end) with B at v3", snap.through, snap.versions)
			}
			observeAll(t, s)
			if migrationsOut.snapshot.Load() == nil {
				t.Fatal("the snapshot was dropped while a notification before the walk's end was unacked")
			}
			if deaths != nil && deaths.snapshot.Load() != nil {
				t.Error("the deaths consumer, with nothing to deliver, kept the snapshot")
			}

			release()
			sdktest.Publish(t, js, migration("B", 4), migration("C", 1)) // after the walk's end
			waitUntil(t, "the notifications", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == len(tt.want) })
			waitUntil(t, "the snapshot's drop", func() bool {
				for _, d := range s.durables {
					if d.snapshot.Load() != nil {
						return false
					}
				}
				return true
			})
			sdktest.Publish(t, js, migration("B", 5))
			waitUntil(t, "B's notification after the drop", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == len(tt.want)+1 })

			mu.Lock()
			defer mu.Unlock()
			var whats []string
			for _, g := range got[:len(tt.want)] {
				whats = append(whats, g.what)
				if covered := strings.HasSuffix(g.what, "true"); covered && g.snapshot != 3 {
					t.Errorf("%s: snapshot version %d, want 3", g.what, g.snapshot)
				}
			}
			slices.Sort(whats) // citizens run in parallel
			if strings.Join(whats, "; ") != strings.Join(tt.want, "; ") {
				t.Errorf("handler saw\n  %s\nwant\n  %s", strings.Join(whats, "; "), strings.Join(tt.want, "; "))
			}
			if last := got[len(got)-1]; last.what != "B v5 covered false" || last.snapshot != 0 {
				t.Errorf("after the drop the handler saw %s with snapshot version %d, want B v5 uncovered with 0", last.what, last.snapshot)
			}
		})
	}
}

// observeAll reads the stream's info and then every consumer's, and
// records them as the backlog refresh does.
func observeAll(t *testing.T, s *Subscriber) {
	t.Helper()
	// Run binds the consumers one after another: the first may hold its
	// snapshot before the last is bound.
	waitUntil(t, "every consumer bound", func() bool {
		return !slices.ContainsFunc(s.durables, func(d *durable) bool { return d.consumer() == nil })
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	si, err := s.streamInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range s.durables {
		cons := d.consumer()
		ci, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s.observe(d, cons, si, ci)
	}
}

// waitUntil polls cond for up to 20 s: the backlog refresh that drops a
// snapshot runs every pendingRefresh.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(4*pendingRefresh + 10*time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
