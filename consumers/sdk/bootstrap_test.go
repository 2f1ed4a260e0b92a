package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// fakeHub serves GET /v1/persons as the hub's contract says, from golden
// records built from the same changes it publishes to the stream: every
// change bumps a citizen's version and publishes its notification, so the
// records and the stream agree as they do in the hub.
type fakeHub struct {
	t        *testing.T
	js       jetstream.JetStream
	citizens int
	mu       sync.Mutex
	version  []int64
	// afterFirstPage runs once, after the first page was served: the
	// hub keeps applying changes while the subscriber walks.
	afterFirstPage func()
	pages          int
	errs           []string
}

func (h *fakeHub) change(c int) *nats.Msg {
	h.version[c]++
	v := h.version[c]
	n := sdktest.Migration(fmt.Sprintf("c%d-v%d", c, v), sdktest.CitizenID(c), v, daoli, daoli)
	n.Section, n.EventType, n.FromAddressCode, n.ToAddressCode = string(schemas.SecHukou), schemas.HukouRegistered, "", ""
	return sdktest.Msg(sdktest.Subject("pop", n, daoli), n, "")
}

// changeAll applies one change to every citizen and publishes it.
func (h *fakeHub) changeAll() {
	h.mu.Lock()
	msgs := make([]*nats.Msg, h.citizens)
	for c := range msgs {
		msgs[c] = h.change(c)
	}
	h.mu.Unlock()
	sdktest.Publish(h.t, h.js, msgs...)
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/persons" || r.Header.Get("X-Purpose") != "si-test" || r.Header.Get("Authorization") != "Bearer s3cret" {
		h.mu.Lock()
		h.errs = append(h.errs, fmt.Sprintf("request %s purpose=%q auth=%q", r.URL.Path, r.Header.Get("X-Purpose"), r.Header.Get("Authorization")))
		h.mu.Unlock()
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	var seq uint64
	offset := 0
	if after := q.Get("after"); after != "" {
		s, o, _ := strings.Cut(after, ":")
		seq, _ = strconv.ParseUint(s, 10, 64)
		offset, _ = strconv.Atoi(o)
	} else {
		info, err := h.js.Stream(r.Context(), schemas.StreamName)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		seq = info.CachedInfo().State.LastSeq
	}
	h.mu.Lock()
	if q.Get("region") != "2301" {
		h.errs = append(h.errs, "region "+q.Get("region"))
	}
	var persons []map[string]any
	end := min(offset+limit, h.citizens)
	for c := offset; c < end; c++ {
		persons = append(persons, map[string]any{"citizen_id": sdktest.CitizenID(c), "version": h.version[c], "status": "active",
			"hukou": map[string]any{"address_code": daoli, "region_code": "230102"}})
	}
	h.pages++
	first := h.pages == 1
	h.mu.Unlock()
	next := ""
	if end < h.citizens {
		next = fmt.Sprintf("%d:%d", seq, end)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"persons": persons, "next": next, "stream_sequence": seq})
	if first && h.afterFirstPage != nil {
		h.afterFirstPage()
	}
}

// TestBootstrapNothingMissedNothingTwice: the snapshot's first page
// reflects versions 3, later pages version 4 (the hub moved on during the
// walk), and versions 5 and 6 come after; every version of every citizen
// reaches the subscriber exactly once, through the snapshot or a
// notification. With a consumer per filter the two filters overlap (every
// citizen lives in Daoli, which both cover), so both consumers start from
// the snapshot and deliver every notification: still once, and in order.
// The same holds when the city is written in six digits (230100).
func TestBootstrapNothingMissedNothingTwice(t *testing.T) {
	for _, tc := range []struct {
		name      string
		perFilter bool
		filters   []sdk.Filter
	}{
		{"one consumer", false, []sdk.Filter{{Kind: sdk.Changes, Region: "2301"}}},
		{"consumer per filter", true, []sdk.Filter{{Kind: sdk.Changes, Region: "2301"}, {Kind: sdk.Changes, Region: "230102"}}},
		// 230100 is the city 2301: the county in it is walked with it, once.
		{"city in six digits and a county in it", true, []sdk.Filter{{Kind: sdk.Changes, Region: "230100"}, {Kind: sdk.Changes, Region: "230102"}}},
	} {
		t.Run(tc.name, func(t *testing.T) { testBootstrap(t, tc.perFilter, tc.filters) })
	}
}

func testBootstrap(t *testing.T, perFilter bool, filters []sdk.Filter) {
	e := newEnv(t)
	const citizens, pageSize = 60, 10
	hub := &fakeHub{t: t, js: e.js, citizens: citizens, version: make([]int64, citizens)}
	for range 3 {
		hub.changeAll()
	}
	hub.afterFirstPage = hub.changeAll
	srv := httptest.NewServer(hub)
	t.Cleanup(srv.Close)

	var mu sync.Mutex
	snap := map[citizenid.ID]int64{}
	rec := newRecorder()
	run(t, sdk.Config{Name: "bootstrapped", URL: e.srv.URL(), Filters: filters, ConsumerPerFilter: perFilter, Handler: rec.handle,
		Bootstrap: &sdk.Bootstrap{HubURL: srv.URL, Purpose: "si-test", Token: "s3cret", PageSize: pageSize,
			Handle: func(ctx context.Context, p sdk.Person) error {
				mu.Lock()
				defer mu.Unlock()
				if _, dup := snap[p.CitizenID]; dup {
					t.Errorf("snapshot person twice")
				}
				if p.AddressCode != daoli || p.Status != "active" {
					t.Errorf("snapshot person %+v", p)
				}
				snap[p.CitizenID] = p.Version
				return nil
			}}})
	waitFor(t, "the snapshot", 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(snap) == citizens })
	hub.changeAll()
	hub.changeAll()

	waitFor(t, "versions up to 6", 20*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for c := 0; c < citizens; c++ {
			if rec.last[sdktest.CitizenID(c)] != 6 {
				return false
			}
		}
		return true
	})
	time.Sleep(200 * time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	hub.mu.Lock()
	defer hub.mu.Unlock()
	for _, e := range append(hub.errs, rec.errs...) {
		t.Error(e)
	}
	for c := 0; c < citizens; c++ {
		id := sdktest.CitizenID(c)
		want := int64(3)
		if c >= pageSize {
			want = 4 // served after the hub applied version 4
		}
		if snap[id] != want {
			t.Errorf("citizen %d: snapshot version %d, want %d", c, snap[id], want)
		}
		var expect []int64
		for v := want + 1; v <= 6; v++ {
			expect = append(expect, v)
		}
		if got := rec.versions[id]; fmt.Sprint(got) != fmt.Sprint(expect) {
			t.Errorf("citizen %d: notifications %v, want %v", c, got, expect)
		}
	}
}

// TestBootstrapRefusedStopsRun: a hub that refuses the bootstrap (a wrong
// token, a purpose the identity may not use) makes Run return at once,
// saying so, instead of retrying a request that can never succeed; a
// hub that fails for a while is retried.
func TestBootstrapRefusedStopsRun(t *testing.T) {
	tests := []struct {
		status  int
		refused bool
	}{
		{http.StatusForbidden, true},
		{http.StatusUnauthorized, true},
		{http.StatusServiceUnavailable, false},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			e := newEnv(t)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, `{"title":"may not act for this purpose"}`, tc.status)
			}))
			t.Cleanup(srv.Close)
			s, err := sdk.New(sdk.Config{Name: "refused", URL: e.srv.URL(), Filters: []sdk.Filter{{Kind: sdk.Changes, Region: "2301"}},
				Handler:   func(context.Context, *sdk.Delivery) error { return nil },
				Bootstrap: &sdk.Bootstrap{HubURL: srv.URL, Purpose: "wrong", Handle: func(context.Context, sdk.Person) error { return nil }}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err = s.Run(ctx)
			if tc.refused {
				if !errors.Is(err, sdk.ErrBootstrapRefused) || !strings.Contains(err.Error(), "may not act for this purpose") || ctx.Err() != nil {
					t.Fatalf("Run = %v (ctx %v); want ErrBootstrapRefused with the hub's reason, at once", err, ctx.Err())
				}
				return
			}
			if err != nil || ctx.Err() == nil {
				t.Fatalf("Run = %v before its context ended; want retries until then", err)
			}
		})
	}
}
