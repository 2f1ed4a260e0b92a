package socialinsurance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestMissedDeathFromSnapshot: a bootstrap over an existing roster (the
// way back after a gap) finds in the snapshot the deaths no notification
// brought, and makes them tasks; a snapshot person the roster did not
// list (a first bootstrap) or already knew dead is only recorded.
func TestMissedDeathFromSnapshot(t *testing.T) {
	tests := []struct {
		name     string
		roster   string // the roster's status before the snapshot, "" when not listed
		snapshot sdk.Person
		wantTask bool
	}{
		{name: "alive in the roster, dead in the snapshot", roster: "active",
			snapshot: sdk.Person{Version: 3, Status: "deceased", AddressCode: daoli}, wantTask: true},
		{name: "first bootstrap", snapshot: sdk.Person{Version: 3, Status: "deceased", AddressCode: daoli}},
		{name: "dead already", roster: "deceased", snapshot: sdk.Person{Version: 3, Status: "deceased", AddressCode: daoli}},
		{name: "died elsewhere", roster: "active", snapshot: sdk.Person{Version: 3, Status: "deceased", AddressCode: beijing}},
		{name: "alive", roster: "active", snapshot: sdk.Person{Version: 3, Status: "active", AddressCode: daoli}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := openBureau(t, "2301")
			ctx := context.Background()
			id := sdktest.CitizenID(40 + i)
			if tt.roster != "" {
				if err := b.handler.HandlePerson(ctx, sdk.Person{CitizenID: id, Version: 1, Status: tt.roster, AddressCode: daoli}); err != nil {
					t.Fatal(err)
				}
			}
			p := tt.snapshot
			p.CitizenID = id
			for range 2 { // a walk listing the person twice, or run again, makes one task
				if err := b.handler.HandlePerson(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			task := stopBenefits(t, b, id)
			if (task.ID != 0) != tt.wantTask {
				t.Fatalf("stop_benefits task %+v, want one %v", task, tt.wantTask)
			}
			if tt.wantTask && (task.Status != StatusOpen || task.FromRegion != "230102" || task.DateOfDeath != "" ||
				task.ChangeID != "snapshot."+string(id)+".v3") {
				t.Errorf("task %+v, want an open one from 230102 without a date of death", task)
			}
			if _, status := b.rosterPerson(t, id); status != p.Status {
				t.Errorf("roster status %q, want the snapshot's %q", status, p.Status)
			}
		})
	}
}

// TestDeathsWhileStopped: the service is stopped while a person of its
// region dies, and its consumer is deleted meanwhile. Started again, it
// resumes where it left off and makes the death a task with its date;
// when the stream has deleted the notification too, the way back the
// gap's log names (delete the consumers, start over from a bootstrap)
// still makes it a task.
func TestDeathsWhileStopped(t *testing.T) {
	id := sdktest.CitizenID(7)
	hub := &fakeHub{id: id, status: "active", version: 1}
	hubSrv := httptest.NewServer(hub)
	t.Cleanup(hubSrv.Close)
	srv := sdktest.StartServer(t)
	_, js := sdktest.Connect(t, srv.URL())
	sdktest.CreateStream(t, js, schemas.StreamName, "pop")
	cfg := Config{Region: "2301", NATS: srv.URL(), Postgres: testenv.PostgresURL(), Schema: testenv.Schema(t), Hub: hubSrv.URL, APIToken: testAPIToken}
	start := func(startOver bool) (*Service, func()) {
		c := cfg
		c.StartOver = startOver
		svc, err := New(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- svc.Run(ctx) }()
		waitConsuming(t, svc)
		return svc, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			svc.Close()
		}
	}
	deleteConsumers := func(svc *Service) {
		for _, d := range svc.sub.Durables() {
			if err := js.DeleteConsumer(context.Background(), schemas.StreamName, d.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitTask := func(svc *Service) Task {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if task := stopBenefits(t, bureau{store: svc.store}, id); task.ID != 0 {
				return task
			}
		}
		t.Fatal("no stop_benefits task")
		return Task{}
	}

	svc, stop := start(false) // the first start bootstraps: the person alive
	stop()
	deleteConsumers(svc)
	death := sdktest.Death("d7.death", id, 2, "2026-03-01")
	seq := sdktest.Publish(t, js, sdktest.Msg(sdktest.Subject("pop", death, daoli), death, ""))
	hub.set("deceased", 2, seq)

	svc, stop = start(false)
	if task := waitTask(svc); task.DateOfDeath != "2026-03-01" || task.ChangeID != "d7.death" {
		t.Errorf("resumed: task %+v, want the notification's with its date of death", task)
	}
	stop()

	// Gone from the stream too: the task comes from the snapshot.
	other := sdktest.CitizenID(8)
	store, err := OpenStore(context.Background(), cfg.Postgres, cfg.Schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = store.upsertPerson(context.Background(), other, 1, daoli, "active") // on the roster, alive
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	deleteConsumers(svc)
	st, err := js.Stream(context.Background(), schemas.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if err = st.Purge(context.Background()); err != nil { // as MaxAge would
		t.Fatal(err)
	}
	hub.setPerson(other)
	svc, stop = start(true)
	defer stop()
	id = other
	if task := waitTask(svc); task.DateOfDeath != "" || task.Status != StatusOpen {
		t.Errorf("started over: task %+v, want an open one without a date of death", task)
	}
}

// fakeHub answers GET /v1/persons with one person of Harbin.
type fakeHub struct {
	mu      sync.Mutex
	id      citizenid.ID
	status  string
	version int64
	seq     uint64
}

func (h *fakeHub) set(status string, version int64, seq uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status, h.version, h.seq = status, version, seq
}

func (h *fakeHub) setPerson(id citizenid.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.id = id
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{
		"persons": []map[string]any{{"citizen_id": h.id, "version": h.version, "status": h.status,
			"hukou": map[string]any{"address_code": daoli}}},
		"next": "", "stream_sequence": h.seq})
}

// TestMissedDeathTakesItsNotification: a death during a start-over walk
// is in the snapshot and is also announced after the stream sequence the
// walk carries. The task the snapshot made takes the notification's date
// of death, as it is still open, or keeps the completion's date and
// shows the notification's as the corrected one for review once done.
func TestMissedDeathTakesItsNotification(t *testing.T) {
	for _, done := range []bool{false, true} {
		t.Run(fmt.Sprintf("completed first %v", done), func(t *testing.T) {
			b := openBureau(t, "2301")
			ctx := context.Background()
			id := sdktest.CitizenID(91)
			for _, p := range []sdk.Person{
				{CitizenID: id, Version: 1, Status: "active", AddressCode: daoli},   // the roster before
				{CitizenID: id, Version: 2, Status: "deceased", AddressCode: daoli}, // the walk
			} {
				if err := b.handler.HandlePerson(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			task := stopBenefits(t, b, id)
			if done {
				if err := b.store.markDone(ctx, task.ID, "ev-1", "2026-12-07"); err != nil {
					t.Fatal(err)
				}
			}
			b.deliverDeath(t, sdktest.Death("d91.death", id, 2, "2026-03-01"), daoli)
			task = stopBenefits(t, b, id)
			switch {
			case !done && (task.DateOfDeath != "2026-03-01" || task.Status != StatusOpen):
				t.Errorf("open task %+v: want the notification's date of death 2026-03-01", task)
			case done && (task.DateOfDeath != "2026-12-07" || task.CorrectedDateOfDeath != "2026-03-01" || task.Status != StatusDone):
				t.Errorf("done task %+v: want the completion's date kept and 2026-03-01 as the corrected one", task)
			}
			if _, status := b.rosterPerson(t, id); status != "deceased" {
				t.Errorf("roster status %q, want deceased", status)
			}
		})
	}
}
