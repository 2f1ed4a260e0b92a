package socialinsurance

import (
	"context"
	"encoding/json"
	"io/fs"
	"reflect"
	"strconv"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/internal/pgmigrate"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

const yuelu = "430104001001" // Changsha

// hubPublisher stands in for Kafka: it encodes each event as the
// publisher would and decodes it as the hub's ingest does, so the events
// it keeps are the ones the hub would apply.
type hubPublisher struct {
	t      *testing.T
	inputs []hub.Input
}

func (p *hubPublisher) Publish(_ context.Context, events ...schemas.Event) ([]publisher.Result, error) {
	p.t.Helper()
	results := make([]publisher.Result, len(events))
	for i, ev := range events {
		value, err := schemas.Encode(ev)
		if err != nil {
			p.t.Fatalf("encoding %s: %v", ev.Type, err)
		}
		decoded, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(ev.Source), Key: []byte(ev.Subject), Value: value, FromKafka: true})
		if err != nil {
			p.t.Fatalf("the hub would reject %s: %v", ev.Type, err)
		}
		p.inputs = append(p.inputs, hub.Input{Event: decoded, Raw: value})
		results[i] = publisher.Result{ID: ev.ID}
	}
	return results, nil
}

// applyInArrivalOrder merges the events one batch each, in the order the
// hub received them, and returns the person's golden record.
func applyInArrivalOrder(t *testing.T, id citizenid.ID, inputs []hub.Input) hub.Record {
	t.Helper()
	loaded := map[citizenid.ID]*merge.State{}
	for _, in := range inputs {
		out := merge.Batch(loaded, []hub.Input{in}, time.Now())
		if st, ok := out.States[id]; ok {
			loaded[id] = st
		}
	}
	st, ok := loaded[id]
	if !ok {
		t.Fatal("the hub holds no record of the person")
	}
	return st.Record()
}

// bureau is one social-insurance bureau: its store and its handler.
type bureau struct {
	store   *Store
	handler *Handler
}

func openBureau(t *testing.T, region string) bureau {
	t.Helper()
	store, err := OpenStore(context.Background(), testenv.PostgresURL(), testenv.Schema(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	h, err := NewHandler(store, region, noop.NewMeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	return bureau{store: store, handler: h}
}

func (b bureau) deliver(t *testing.T, n schemas.Notification) {
	t.Helper()
	if err := b.handler.Handle(context.Background(), &sdk.Delivery{Notification: n, Subject: sdktest.Subject("pop", n, "")}); err != nil {
		t.Fatal(err)
	}
}

// task returns the bureau's one task of the change and kind.
func (b bureau) task(t *testing.T, id citizenid.ID, changeID, kind string) Task {
	t.Helper()
	tasks, err := b.store.Tasks(context.Background(), TaskFilter{CitizenID: id})
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if task.ChangeID == changeID && task.Kind == kind {
			return task
		}
	}
	t.Fatalf("no %s task for change %s in %v", kind, changeID, tasks)
	return Task{}
}

// TestCompletionFollowsTheMoves: a person moves Harbin → Changsha in
// January and Changsha → Beijing in June. Whatever order the three
// bureaus complete the four transfer tasks in, the golden record's
// social-insurance region is Beijing's once all are done.
func TestCompletionFollowsTheMoves(t *testing.T) {
	harbin, changsha, peking := openBureau(t, "2301"), openBureau(t, "4301"), openBureau(t, "1101")
	type step struct {
		bureau   *bureau
		changeID string // "m1" (to Changsha) or "m2" (to Beijing), prefixed per case
		kind     string
	}
	harbinOut1 := step{&harbin, "m1", TransferOut}
	changshaIn1 := step{&changsha, "m1", TransferIn}
	changshaOut2 := step{&changsha, "m2", TransferOut}
	beijingIn2 := step{&peking, "m2", TransferIn}
	tests := []struct {
		name  string
		order []step
	}{
		{"in the order of the moves", []step{harbinOut1, changshaIn1, changshaOut2, beijingIn2}},
		{"Harbin completes the first move last", []step{changshaIn1, changshaOut2, beijingIn2, harbinOut1}},
		{"Changsha takes the person in last", []step{harbinOut1, changshaOut2, beijingIn2, changshaIn1}},
		{"in reverse", []step{beijingIn2, changshaOut2, changshaIn1, harbinOut1}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := sdktest.CitizenID(100 + i)
			prefix := "case" + strconv.Itoa(i) + "-"
			m1 := sdktest.Migration(prefix+"m1", id, 2, daoli, yuelu)
			m1.Time = time.Date(2025, 1, 15, 9, 0, 0, 0, time.UTC)
			m2 := sdktest.Migration(prefix+"m2", id, 3, yuelu, beijing)
			m2.Time = time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
			// Each bureau hears of the moves across its region.
			harbin.deliver(t, m1)
			changsha.deliver(t, m1)
			changsha.deliver(t, m2)
			peking.deliver(t, m2)

			pub := &hubPublisher{t: t}
			for _, s := range tc.order {
				task := s.bureau.task(t, id, prefix+s.changeID, s.kind)
				if _, err := Complete(context.Background(), s.bureau.store, pub, task.ID); err != nil {
					t.Fatal(err)
				}
			}
			r := applyInArrivalOrder(t, id, pub.inputs)
			if r.SocialInsurance == nil || r.SocialInsurance.Region != "110105" {
				t.Errorf("social_insurance = %+v, want region 110105 (Beijing, the last move)", r.SocialInsurance)
			}
		})
	}
}

// TestEventIsTheSameWhenCompletedAgain: completing a task a second time,
// after a crash between publishing and marking it done, sends the same
// event, which the hub applies once; the event takes effect when the
// change behind the task did.
func TestEventIsTheSameWhenCompletedAgain(t *testing.T) {
	id := sdktest.CitizenID(1)
	moved := time.Date(2025, 3, 1, 8, 30, 0, 0, time.FixedZone("CST", 8*3600))
	recorded := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		task     Task
		wantTime time.Time
	}{
		{"transfer", Task{Kind: TransferOut, CitizenID: id, ChangeID: "c1", FromRegion: "230102", ToRegion: "110105", ChangedAt: moved, CreatedAt: recorded}, moved},
		{"stop benefits, at the end of the day of death", Task{Kind: StopBenefits, CitizenID: id, ChangeID: "c2", FromRegion: "230102", DateOfDeath: "2025-02-27", ChangedAt: moved, CreatedAt: recorded},
			time.Date(2025, 2, 27, 23, 59, 59, 999999000, china)},
		{"recorded before the change time was kept", Task{Kind: TransferIn, CitizenID: id, ChangeID: "c3", FromRegion: "110105", ToRegion: "230102", CreatedAt: recorded}, recorded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first := Event(tc.task, time.Date(2025, 7, 1, 10, 0, 0, 0, time.UTC))
			again := Event(tc.task, time.Date(2025, 7, 9, 16, 0, 0, 0, time.UTC))
			if first.ID != again.ID || !first.Time.Equal(again.Time) {
				t.Errorf("completed again: event %s at %v, first %s at %v", again.ID, again.Time, first.ID, first.Time)
			}
			if !first.Time.Equal(tc.wantTime) {
				t.Errorf("event time %v, want %v", first.Time, tc.wantTime)
			}
		})
	}
}

// TestUpgradeKeepsOpenTasks: a bureau's database written before tasks kept
// the change's time opens after the upgrade; its open tasks list and
// complete (as of when they were recorded), repeats of their
// notifications still create nothing, and new tasks keep the change's
// time.
func TestUpgradeKeepsOpenTasks(t *testing.T) {
	ctx := context.Background()
	url, schema := testenv.PostgresURL(), testenv.Schema(t)
	id := sdktest.CitizenID(9)
	recorded := time.Date(2025, 4, 3, 2, 1, 0, 0, time.UTC)

	// The database as the first release left it, with an open task.
	first, err := fs.ReadFile(migrations, "migrations/0001_tasks.sql")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	old, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := pgmigrate.Apply(ctx, old, fstest.MapFS{"migrations/0001_tasks.sql": {Data: first}}, schema, "pophub-si-migrate", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(ctx, `INSERT INTO tasks (kind, citizen_id, change_id, version, from_region, to_region, created_at)
		VALUES ('transfer_out', $1, 'old-change', 2, '230102', '110105', $2)`, string(id), recorded); err != nil {
		t.Fatal(err)
	}
	old.Close()

	store, err := OpenStore(ctx, url, schema, nil)
	if err != nil {
		t.Fatalf("opening a database of the first release: %v", err)
	}
	defer store.Close()
	h, err := NewHandler(store, "2301", noop.NewMeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	b := bureau{store: store, handler: h}

	oldTask := b.task(t, id, "old-change", TransferOut)
	if !oldTask.ChangedAt.IsZero() {
		t.Errorf("task of the first release: changed_at %v, want none", oldTask.ChangedAt)
	}
	body, err := json.Marshal(oldTask)
	if err != nil {
		t.Fatal(err)
	}
	var shape map[string]any
	if err := json.Unmarshal(body, &shape); err != nil {
		t.Fatal(err)
	}
	if _, ok := shape["changed_at"]; ok {
		t.Errorf("task of the first release shows changed_at: %s", body)
	}

	// A repeat of its notification creates nothing; a new one keeps its time.
	repeat := sdktest.Migration("old-change", id, 2, daoli, beijing)
	b.deliver(t, repeat)
	moved := time.Date(2025, 5, 6, 7, 8, 9, 123456000, time.UTC)
	back := sdktest.Migration("new-change", id, 3, beijing, nangang)
	back.Time = moved
	b.deliver(t, back)
	tasks, err := store.Tasks(ctx, TaskFilter{CitizenID: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2 {
		t.Fatalf("%d tasks after a repeat and a new notification, want 2: %v", len(tasks), tasks)
	}
	newTask := b.task(t, id, "new-change", TransferIn)
	if !newTask.ChangedAt.Equal(moved) {
		t.Errorf("new task: changed_at %v, want %v", newTask.ChangedAt, moved)
	}

	pub := &hubPublisher{t: t}
	for _, task := range []Task{oldTask, newTask} {
		done, err := Complete(ctx, store, pub, task.ID)
		if err != nil {
			t.Fatalf("completing task %s: %v", task.ChangeID, err)
		}
		if done.Status != StatusDone {
			t.Errorf("task %s: status %s, want done", task.ChangeID, done.Status)
		}
	}
	if len(pub.inputs) != 2 {
		t.Fatalf("%d events published, want 2", len(pub.inputs))
	}
	for i, want := range []time.Time{recorded, moved} {
		if got := pub.inputs[i].Event.Time; !got.Equal(want) {
			t.Errorf("event %d takes effect at %v, want %v", i, got, want)
		}
	}
}

// deliverDeath hands the bureau a death notification on the death subject
// of address, the person's hukou address.
func (b bureau) deliverDeath(t *testing.T, n schemas.Notification, address string) {
	t.Helper()
	if err := b.handler.Handle(context.Background(), &sdk.Delivery{Notification: n, Subject: sdktest.Subject("pop", n, address)}); err != nil {
		t.Fatal(err)
	}
}

// hubEvent decodes an event as the hub's ingest does.
func hubEvent(t *testing.T, typ schemas.Type, id citizenid.ID, eventID, at string, data any) hub.Input {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	value, err := json.Marshal(map[string]any{"specversion": "1.0", "id": eventID, "source": schemas.SourceOf(typ), "type": typ,
		"subject": id, "time": at, "datacontenttype": "application/json", "data": json.RawMessage(raw)})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := schemas.Decode(schemas.Input{Value: value})
	if err != nil {
		t.Fatal(err)
	}
	return hub.Input{Event: ev, Raw: value}
}

// TestStopBenefitsEndsOnTheDateOfDeath: health certifies a death before
// public security's late registration (birth 1943) arrives, and the hub
// announces the death in the person's region under the registration,
// with its time. The completion still ends the pension and medical
// insurance enrolled in 2015 on the date of death.
func TestStopBenefitsEndsOnTheDateOfDeath(t *testing.T) {
	harbin := openBureau(t, "2301")
	id := sdktest.CitizenID(21)
	death := sdktest.Death("late-registration", id, 3, "2024-11-15")
	death.Time = time.Date(1943, 2, 18, 2, 2, 0, 0, time.UTC)
	harbin.deliverDeath(t, death, daoli)

	pub := &hubPublisher{t: t}
	task := harbin.task(t, id, "late-registration", StopBenefits)
	done, err := Complete(context.Background(), harbin.store, pub, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != StatusDone || done.DateOfDeath != "2024-11-15" {
		t.Errorf("completed task: status %s, date of death %q, want done, 2024-11-15", done.Status, done.DateOfDeath)
	}
	if got, want := pub.inputs[0].Event.Time, time.Date(2024, 11, 15, 23, 59, 59, 999999000, china); !got.Equal(want) {
		t.Errorf("termination takes effect at %v, want %v", got, want)
	}
	inputs := append([]hub.Input{
		hubEvent(t, schemas.InsuranceEnrolled, id, "si-1", "2015-06-26T09:00:00+08:00",
			map[string]any{"scheme": "resident", "insurances": []string{"pension", "medical"}, "region": "230102", "start": "2015-06-26"}),
		hubEvent(t, schemas.DeathCertified, id, "h-1", "2024-11-15T08:00:00+08:00", map[string]any{"date_of_death": "2024-11-15", "certificate_no": "D1"}),
	}, pub.inputs...)
	r := applyInArrivalOrder(t, id, inputs)
	if r.SocialInsurance == nil {
		t.Fatal("no social insurance on the record")
	}
	for _, name := range []string{"pension", "medical"} {
		if got := r.SocialInsurance.Insurances[name]; got.Until != "2024-11-15" {
			t.Errorf("%s after the completion = %+v, want until 2024-11-15", name, got)
		}
	}
}

// TestRepeatDeathNotificationsUpdateOneTask: the hub announces a person's
// death again — in another county of the bureau's region, with a
// corrected date, redelivered out of order — and the bureau keeps one
// stop_benefits task with the latest (highest version) date while it is
// open; once done, a different date is recorded as corrected, not as a
// new task.
func TestRepeatDeathNotificationsUpdateOneTask(t *testing.T) {
	ctx := context.Background()
	harbin := openBureau(t, "2301")
	id := sdktest.CitizenID(22)
	first := sdktest.Death("death-1", id, 3, "2024-11-15")
	elsewhere := sdktest.Death("death-2", id, 4, "2024-11-15") // a repeat under the hukou's new county
	corrected := sdktest.Death("death-3", id, 5, "2024-11-13")
	afterDone := sdktest.Death("death-4", id, 6, "2024-11-12")

	harbin.deliverDeath(t, first, daoli)
	harbin.deliverDeath(t, elsewhere, nangang)
	harbin.deliverDeath(t, corrected, daoli)
	harbin.deliverDeath(t, first, daoli) // redelivered late: older, changes nothing
	tasks, err := harbin.store.Tasks(ctx, TaskFilter{CitizenID: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 {
		t.Fatalf("%d tasks after four death notifications, want 1: %+v", len(tasks), tasks)
	}
	task := tasks[0]
	if task.Kind != StopBenefits || task.ChangeID != "death-1" || task.DateOfDeath != "2024-11-13" || task.Status != StatusOpen {
		t.Fatalf("task %+v, want the open stop_benefits task of death-1 with date 2024-11-13", task)
	}

	pub := &hubPublisher{t: t}
	if _, err := Complete(ctx, harbin.store, pub, task.ID); err != nil {
		t.Fatal(err)
	}
	d, ok := pub.inputs[0].Event.Payload.(*schemas.InsuranceTerminatedData)
	if !ok || d.End != "2024-11-13" {
		t.Errorf("termination %#v, want end 2024-11-13", pub.inputs[0].Event.Payload)
	}

	harbin.deliverDeath(t, afterDone, daoli)
	tasks, err = harbin.store.Tasks(ctx, TaskFilter{CitizenID: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 {
		t.Fatalf("%d tasks after a correction of a done task, want 1: %+v", len(tasks), tasks)
	}
	if got := tasks[0]; got.Status != StatusDone || got.DateOfDeath != "2024-11-13" || got.CorrectedDateOfDeath != "2024-11-12" {
		t.Errorf("done task after a correction: status %s, date %q, corrected %q; want done, 2024-11-13, 2024-11-12",
			got.Status, got.DateOfDeath, got.CorrectedDateOfDeath)
	}
	if _, err := Complete(ctx, harbin.store, pub, task.ID); err != nil || len(pub.inputs) != 1 {
		t.Errorf("completing the done task again: %v, %d events, want 1", err, len(pub.inputs))
	}
}

// TestUpgradeFoldsStopBenefitsTasks: a database of the releases that made a
// stop_benefits task per death notification opens after the upgrade with
// the person's first task as their one task, the later ones marked as its
// duplicates (their status kept), and a further death notification updates
// that task instead of adding one.
func TestUpgradeFoldsStopBenefitsTasks(t *testing.T) {
	ctx := context.Background()
	url, schema := testenv.PostgresURL(), testenv.Schema(t)
	id, other := sdktest.CitizenID(31), sdktest.CitizenID(32)

	// The database as the second release left it: two stop_benefits tasks
	// for one person (a repeat announcement), one for another.
	old := fstest.MapFS{}
	for _, name := range []string{"migrations/0001_tasks.sql", "migrations/0002_task_changed_at.sql"} {
		b, err := fs.ReadFile(migrations, name)
		if err != nil {
			t.Fatal(err)
		}
		old[name] = &fstest.MapFile{Data: b}
	}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	if err := pgmigrate.Apply(ctx, pool, old, schema, "pophub-si-migrate", nil); err != nil {
		t.Fatal(err)
	}
	for _, row := range []struct {
		citizen  citizenid.ID
		changeID string
		status   string
	}{{id, "death-a", "done"}, {id, "death-b", "open"}, {other, "death-c", "open"}} {
		if _, err := pool.Exec(ctx, `INSERT INTO tasks (kind, citizen_id, change_id, version, date_of_death, status)
			VALUES ('stop_benefits', $1, $2, 3, '2024-11-15', $3)`, string(row.citizen), row.changeID, row.status); err != nil {
			t.Fatal(err)
		}
	}
	pool.Close()

	store, err := OpenStore(ctx, url, schema, nil)
	if err != nil {
		t.Fatalf("opening a database with a person's repeated stop_benefits tasks: %v", err)
	}
	defer store.Close()
	check, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	folded := func() map[string]string {
		rows, err := check.Query(ctx, `SELECT t.change_id || ':' || t.status, coalesce(f.change_id, '')
			FROM tasks t LEFT JOIN tasks f ON f.id = t.duplicate_of ORDER BY t.id`)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (kv [2]string, err error) {
			err = r.Scan(&kv[0], &kv[1])
			return kv, err
		})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, kv := range got {
			m[kv[0]] = kv[1]
		}
		return m
	}
	want := map[string]string{"death-a:done": "", "death-b:open": "death-a", "death-c:open": ""}
	if got := folded(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after the upgrade, task (status) → duplicate of: %v, want %v", got, want)
	}

	h, err := NewHandler(store, "2301", noop.NewMeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	b := bureau{store: store, handler: h}
	b.deliverDeath(t, sdktest.Death("death-d", other, 4, "2024-11-13"), daoli)
	if got := folded(); !reflect.DeepEqual(got, want) {
		t.Errorf("a further death notification added a task: %v, want %v", got, want)
	}
	task := b.task(t, other, "death-c", StopBenefits)
	if task.DateOfDeath != "2024-11-13" {
		t.Errorf("the person's task after a corrected notification: date of death %s, want 2024-11-13", task.DateOfDeath)
	}
}
