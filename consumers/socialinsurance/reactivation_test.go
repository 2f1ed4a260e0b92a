package socialinsurance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric/noop"
	"golang.org/x/crypto/bcrypt"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/internal/pgmigrate"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestRestoredHukouCancelsStopBenefits: a hukou cancelled for death is
// restored (hukou.registered, reason restored), and the hub makes the
// person active again, announcing only a status change. The bureau,
// following its region's status changes, must not terminate a living
// person's insurances: an open stop_benefits task is cancelled and cannot
// be completed, a done one is flagged for review, and the roster says
// active. A later real death reopens the task. The same notifications
// delivered again change nothing.
func TestRestoredHukouCancelsStopBenefits(t *testing.T) {
	tests := []struct {
		name string
		// steps are event names applied at the hub in arrival order, or
		// "complete": the bureau completes its open stop_benefits tasks.
		steps []string
		// statusFirst hands the bureau the status changes before the other
		// notifications, as separate consumers (ConsumerPerFilter) may.
		statusFirst  bool
		wantStatus   string // of the person's stop_benefits task
		wantDate     string // its date of death
		wantReactive bool   // flagged as active again (reactivated_at)
		wantRoster   string
		wantUntil    string // the pension's end at the hub; "" while insured
	}{
		{name: "restored while the task is open", steps: []string{"cancel", "restore"},
			wantStatus: StatusCancelled, wantDate: "2025-03-01", wantReactive: true, wantRoster: "active"},
		{name: "restored after the task was completed", steps: []string{"cancel", "complete", "restore"},
			wantStatus: StatusDone, wantDate: "2025-03-01", wantReactive: true, wantRoster: "active", wantUntil: "2025-03-01"},
		{name: "died after the restoration", steps: []string{"cancel", "restore", "death", "complete"},
			wantStatus: StatusDone, wantDate: "2025-05-01", wantRoster: "deceased", wantUntil: "2025-05-01"},
		{name: "restoration handled before the death", steps: []string{"cancel", "restore"}, statusFirst: true,
			wantStatus: StatusCancelled, wantDate: "2025-03-01", wantReactive: true, wantRoster: "active"},
		// A death newer than the restoration of a completed task reopens
		// it: the bureau may have re-enrolled the person after its review.
		{name: "died again after a completed task was restored", steps: []string{"cancel", "complete", "restore", "death"},
			wantStatus: StatusOpen, wantDate: "2025-05-01", wantRoster: "deceased", wantUntil: "2025-03-01"},
		// Completing the reopened task reaches the hub (a new event id, not
		// the first completion's), ending the insurances re-enrolled after
		// the restoration.
		{name: "re-enrolled after the restoration, then died", steps: []string{"cancel", "complete", "restore", "reenrol", "death", "complete"},
			wantStatus: StatusDone, wantDate: "2025-05-01", wantRoster: "deceased", wantUntil: "2025-05-01"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			harbin := openBureau(t, "2301")
			id := sdktest.CitizenID(960 + i)
			regData := schemas.HukouRegisteredData{Name: "王伟", Gender: "1", BirthDate: "1980-05-05", Ethnicity: "01",
				AddressCode: daoli, HouseholdID: "H1", Reason: "birth"}
			restored := regData
			restored.Reason = "restored"
			events := map[string]hub.Input{
				"cancel":  hubEvent(t, schemas.HukouCancelled, id, "cancel", "2025-03-01T09:00:00+08:00", schemas.HukouCancelledData{Reason: "death"}),
				"restore": hubEvent(t, schemas.HukouRegistered, id, "restore", "2025-03-10T09:00:00+08:00", restored),
				"death": hubEvent(t, schemas.DeathCertified, id, "death", "2025-05-01T09:00:00+08:00",
					schemas.DeathCertifiedData{DateOfDeath: "2025-05-01", CertificateNo: "D1"}),
				"reenrol": hubEvent(t, schemas.InsuranceEnrolled, id, "reenrol", "2025-03-20T09:00:00+08:00", schemas.InsuranceEnrolledData{
					Scheme: "employee", Insurances: []string{"pension", "medical"}, Region: "230102", Start: "2025-03-20"}),
			}
			h := newHubSim(t)
			h.apply(hubEvent(t, schemas.HukouRegistered, id, "reg", "2020-01-01T09:00:00+08:00", regData))
			h.apply(hubEvent(t, schemas.InsuranceEnrolled, id, "enrol", "2021-01-01T09:00:00+08:00", schemas.InsuranceEnrolledData{
				Scheme: "employee", Insurances: []string{"pension", "medical"}, Region: "230102", Start: "2021-01-01"}))
			filters := Filters("2301")

			var delivered []hub.OutboxEntry
			deliver := func(entries []hub.OutboxEntry) {
				if tt.statusFirst {
					var status, rest []hub.OutboxEntry
					for _, e := range entries {
						if subjectMatches(StatusFilter("2301").Subject("pop"), e.Subject) {
							status = append(status, e)
						} else {
							rest = append(rest, e)
						}
					}
					entries = append(status, rest...)
				}
				harbin.deliverEntries(t, entries)
				delivered = append(delivered, entries...)
			}
			pub := &hubPublisher{t: t}
			var pending []hub.OutboxEntry
			for _, step := range tt.steps {
				if step != "complete" {
					pending = append(pending, subscribed(filters, h.apply(events[step]))...)
					if !tt.statusFirst {
						deliver(pending)
						pending = nil
					}
					continue
				}
				open, err := harbin.store.Tasks(ctx, TaskFilter{CitizenID: id, Status: StatusOpen})
				if err != nil {
					t.Fatal(err)
				}
				for _, task := range open {
					if _, err := Complete(ctx, harbin.store, pub, task.ID); err != nil {
						t.Fatal(err)
					}
				}
				for _, in := range pub.inputs {
					h.apply(in)
				}
				pub.inputs = nil
			}
			deliver(pending)

			tasks, err := harbin.store.Tasks(ctx, TaskFilter{CitizenID: id})
			if err != nil {
				t.Fatal(err)
			}
			if len(tasks) != 1 || tasks[0].Kind != StopBenefits {
				t.Fatalf("tasks %+v, want one stop_benefits task", tasks)
			}
			task := tasks[0]
			if task.Status != tt.wantStatus || task.DateOfDeath != tt.wantDate || task.ReactivatedAt.IsZero() == tt.wantReactive {
				t.Errorf("task: status %s, date of death %s, reactivated at %v; want %s, %s, reactivated %v",
					task.Status, task.DateOfDeath, task.ReactivatedAt, tt.wantStatus, tt.wantDate, tt.wantReactive)
			}
			if (task.Status == StatusCancelled) != (task.CancelReason != "") {
				t.Errorf("task status %s with cancel reason %q", task.Status, task.CancelReason)
			}
			if task.Status == StatusCancelled {
				_, err := Complete(ctx, harbin.store, pub, task.ID)
				if !errors.Is(err, ErrTaskCancelled) {
					t.Errorf("completing a cancelled task: %v, want ErrTaskCancelled", err)
				}
				if len(pub.inputs) != 0 {
					t.Errorf("completing a cancelled task published %d events", len(pub.inputs))
				}
			}
			flagged, err := harbin.store.Tasks(ctx, TaskFilter{Reactivated: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(flagged) == 1; got != tt.wantReactive {
				t.Errorf("listed as reactivated: %v, want %v", got, tt.wantReactive)
			}
			if _, status := harbin.rosterPerson(t, id); status != tt.wantRoster {
				t.Errorf("roster status %s, want %s", status, tt.wantRoster)
			}
			if r := h.record(id); r.SocialInsurance == nil || r.SocialInsurance.Insurances["pension"].Until != tt.wantUntil {
				t.Errorf("the hub's social insurance %+v, want the pension until %q", r.SocialInsurance, tt.wantUntil)
			}

			// The same notifications again, in the same order: nothing changes.
			harbin.deliverEntries(t, delivered)
			again, err := harbin.store.Tasks(ctx, TaskFilter{CitizenID: id})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again, tasks) {
				t.Errorf("redelivery changed the tasks:\n%+v\nto\n%+v", tasks, again)
			}
			if _, status := harbin.rosterPerson(t, id); status != tt.wantRoster {
				t.Errorf("roster status after redelivery %s, want %s", status, tt.wantRoster)
			}
		})
	}
}

// TestChangeForStatus: of the status changes in its region the bureau
// acts on a registration's (the person is active again); the others, and
// the other sections, need nothing from it.
func TestChangeForStatus(t *testing.T) {
	id := sdktest.CitizenID(8)
	tests := []struct {
		name       string
		section    string
		typ        schemas.Type
		wantActive bool
	}{
		{"restored", string(schemas.SecStatus), schemas.HukouRegistered, true},
		{"cancelled", string(schemas.SecStatus), schemas.HukouCancelled, false},
		{"certified", string(schemas.SecStatus), schemas.DeathCertified, false},
		{"hukou section", string(schemas.SecHukou), schemas.HukouRegistered, false},
		{"marital", string(schemas.SecMarital), schemas.MarriageRegistered, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := schemas.Notification{ChangeID: "c." + tt.section, CitizenID: id, Version: 4, Section: tt.section, EventType: tt.typ}
			c := changeFor(&sdk.Delivery{Notification: n, Subject: sdktest.Subject("pop", n, daoli)}, "2301")
			if c.reactivated != tt.wantActive || (c.status == "active") != tt.wantActive {
				t.Errorf("reactivated %v, status %q; want reactivated %v", c.reactivated, c.status, tt.wantActive)
			}
			if !tt.wantActive && !c.none() {
				t.Errorf("%+v: want nothing to record", c)
			}
		})
	}
}

// TestServiceFollowsStatusChanges: the running service hears the status
// change of a restored hukou on the hub's stream and cancels the open
// stop_benefits task; its API refuses to complete it (409, the reason
// given) and lists it as cancelled and as reactivated. It does so by
// default in both modes: with its one consumer, and with a consumer per
// filter as identity si-harbin under the example access policy (the NATS
// permissions the hub gives that identity), where its status consumer
// filters the status section only, the subject the policy grants, and
// no notification of another section reaches it.
func TestServiceFollowsStatusChanges(t *testing.T) {
	tests := []struct {
		name   string
		policy bool
		// want are the consumers' filter subjects.
		want []string
	}{
		{name: "one consumer", want: []string{"pop.>"}},
		{name: "consumer per filter under the access policy", policy: true, want: []string{
			"pop.migration.23.2301.*.*.*.*", "pop.migration.*.*.*.23.2301.*", "pop.death.23.2301.*", "pop.changed.23.2301.*.status"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{APIToken: testAPIToken}
			publishURL := "" // a user that may publish the hub's notifications
			if tt.policy {
				cfg.NATS, publishURL = policyNATS(t)
				cfg.Name, cfg.ConsumerPerFilter = "si-harbin", true
				cfg.NATSUser, cfg.NATSPassword, cfg.NATSInboxPrefix = "si-harbin", access.DemoSecret("nats:si-harbin"), "_INBOX_si-harbin"
			}
			svc := startService(t, cfg)
			if publishURL == "" {
				publishURL = svc.cfg.NATS
			}
			var subjects []string
			for _, d := range svc.sub.Durables() {
				subjects = append(subjects, d.FilterSubject)
				if tt.policy && d.Name != schemas.FilterConsumerName("si-harbin", d.FilterSubject) {
					t.Errorf("consumer %s on %s, want it named after the subject", d.Name, d.FilterSubject)
				}
			}
			if !reflect.DeepEqual(subjects, tt.want) {
				t.Errorf("consumers filter %v, want %v", subjects, tt.want)
			}

			_, js := sdktest.Connect(t, publishURL)
			id := sdktest.CitizenID(970)
			death := sdktest.Death("death", id, 3, "2025-03-01")
			restored := schemas.Notification{ChangeID: "restore.status", CitizenID: id, Version: 4, Section: string(schemas.SecStatus),
				EventID: "restore", EventType: schemas.HukouRegistered, Source: schemas.PublicSecurity, Time: time.Now().UTC(), AppliedAt: time.Now().UTC()}
			// The hukou section's change by the same registration: not
			// the status section, so no consumer of the status filter
			// gets it.
			hukou := restored
			hukou.ChangeID, hukou.Section = "restore.hukou", string(schemas.SecHukou)
			sdktest.Publish(t, js, sdktest.Msg(sdktest.Subject("pop", death, daoli), death, ""),
				sdktest.Msg(sdktest.Subject("pop", hukou, daoli), hukou, ""),
				sdktest.Msg(sdktest.Subject("pop", restored, daoli), restored, ""))

			var task Task
			for deadline := time.Now().Add(10 * time.Second); task.Status != StatusCancelled; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("task %+v, want it cancelled", task)
				}
				tasks, err := svc.store.Tasks(context.Background(), TaskFilter{CitizenID: id})
				if err != nil {
					t.Fatal(err)
				}
				if len(tasks) == 1 {
					task = tasks[0]
				}
			}

			api := httptest.NewServer(svc.Handler())
			t.Cleanup(api.Close)
			resp, err := bearerClient(testAPIToken, nil).Post(fmt.Sprintf("%s/tasks/%d/complete", api.URL, task.ID), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "active again") {
				t.Errorf("completing the cancelled task: %s %s, want 409 with the reason", resp.Status, body)
			}
			for _, query := range []string{"status=cancelled", "reactivated=true"} {
				got, _ := getTasks(t, api.URL+"/tasks?"+query)
				if len(got) != 1 || got[0]["status"] != StatusCancelled || got[0]["cancel_reason"] == nil || got[0]["reactivated_at"] == nil {
					t.Errorf("GET /tasks?%s: %v, want the cancelled task with its reason and time", query, got)
				}
			}
			if got, _ := getTasks(t, api.URL+"/tasks?status=open"); len(got) != 0 {
				t.Errorf("GET /tasks?status=open: %v, want none", got)
			}
		})
	}
}

// policyNATS starts a NATS server whose users are the example access
// policy's (each identity with the permissions the hub gives it, and the
// demo passwords), with the hub's streams, and returns its URL and the
// URL with the administrator's login.
func policyNATS(t *testing.T) (url, adminURL string) {
	t.Helper()
	p, err := access.Load("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return policyNATSOf(t, p)
}

// policyNATSOf is policyNATS with the users of policy p.
func policyNATSOf(t *testing.T, p *access.Policy) (url, adminURL string) {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true}
	p.NATSAuthorize(opts)
	// The example policy's passwords are bcrypt hashes of cost 11. The
	// server checks one per connection, which under the race detector on
	// a loaded machine takes over two seconds: its first PING then
	// overtakes its PONG and the client gives up. The same passwords at
	// the lowest cost keep what is tested (the users, their permissions)
	// and leave the time out.
	for _, u := range opts.Users {
		if strings.HasPrefix(u.Password, "$2") {
			h, err := bcrypt.GenerateFromPassword([]byte(access.DemoSecret("nats:"+u.Username)), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			u.Password = string(h)
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	host := strings.TrimPrefix(srv.ClientURL(), "nats://")
	admin := "nats://admin:" + access.DemoSecret("nats:admin") + "@" + host
	_, js := sdktest.Connect(t, admin)
	sdktest.CreateStream(t, js, schemas.StreamName, "pop")
	// The hub creates the dead-letter stream, which the policy does not
	// let a subscriber do.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: access.DeadLetterStream, Subjects: []string{access.DeadLetterPrefix + ".>"}}); err != nil {
		t.Fatal(err)
	}
	return "nats://" + host, admin
}

// TestConfigFilters: the service follows the status section of its
// region in every mode, alongside the filters that create its tasks; with
// its one consumer the subject stays the one covering everything (pop.>),
// so an existing consumer binds again.
func TestConfigFilters(t *testing.T) {
	status := sdk.Filter{Kind: sdk.Changes, Region: "2301", Section: "status"}
	if got := StatusFilter("2301"); got != status {
		t.Errorf("StatusFilter = %+v, want %+v", got, status)
	}
	if got, want := StatusFilter("2301").Subject("pop"), "pop.changed.23.2301.*.status"; got != want {
		t.Errorf("status subject %s, want %s", got, want)
	}
	want := []sdk.Filter{{Kind: sdk.MigrationsOut, Region: "2301"}, {Kind: sdk.MigrationsIn, Region: "2301"}, {Kind: sdk.Deaths, Region: "2301"}, status}
	if got := Filters("2301"); !reflect.DeepEqual(got, want) {
		t.Errorf("Filters = %+v, want %+v", got, want)
	}
	srv := sdktest.StartServer(t)
	for _, perFilter := range []bool{false, true} {
		cfg := Config{Region: "2301", ConsumerPerFilter: perFilter}
		if got := cfg.filters(); !reflect.DeepEqual(got, want) {
			t.Errorf("per filter %v: filters %+v, want %+v", perFilter, got, want)
		}
		s, err := sdk.New(sdk.Config{Name: "si-harbin", URL: srv.URL(), Filters: cfg.filters(), ConsumerPerFilter: perFilter,
			Handler: func(context.Context, *sdk.Delivery) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		d := s.Durables()
		s.Close()
		if !perFilter && (len(d) != 1 || d[0] != sdk.Durable{Name: "si-harbin", FilterSubject: "pop.>"}) {
			t.Errorf("one consumer: %+v, want si-harbin on pop.>", d)
		}
		if perFilter && (len(d) != 4 || d[3] != sdk.Durable{Name: "si-harbin-e46bacff", FilterSubject: "pop.changed.23.2301.*.status"}) {
			t.Errorf("consumer per filter: %+v, want the status one si-harbin-e46bacff on pop.changed.23.2301.*.status", d)
		}
	}
}

// TestUpgradeToReactivation: a database of the release before tasks could
// be cancelled (migrations 0001–0003), with a person's open stop_benefits
// task and roster row, opens after the upgrade; a restoration cancels the
// task and makes the roster say active, and the roster's address, of
// unknown time, gives way to a newer move, whose time then keeps an older
// move's address out.
func TestUpgradeToReactivation(t *testing.T) {
	ctx := context.Background()
	url, schema := testenv.PostgresURL(), testenv.Schema(t)
	id := sdktest.CitizenID(980)
	old := fstest.MapFS{}
	for _, name := range []string{"0001_tasks.sql", "0002_task_changed_at.sql", "0003_stop_benefits_per_person.sql"} {
		data, err := fs.ReadFile(migrations, "migrations/"+name)
		if err != nil {
			t.Fatal(err)
		}
		old["migrations/"+name] = &fstest.MapFile{Data: data}
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
	defer pool.Close()
	if err := pgmigrate.Apply(ctx, pool, old, schema, "pophub-si-migrate", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `WITH t AS (INSERT INTO tasks (kind, citizen_id, change_id, version, from_region, date_of_death)
		VALUES ('stop_benefits', $1, 'old-death', 5, '230102', '2025-03-01'))
		INSERT INTO persons (citizen_id, version, address_code, status) VALUES ($1, 5, $2, 'deceased')`, string(id), daoli); err != nil {
		t.Fatal(err)
	}
	pool.Close()

	store, err := OpenStore(ctx, url, schema, nil)
	if err != nil {
		t.Fatalf("opening a database of the release before: %v", err)
	}
	defer store.Close()
	h, err := NewHandler(store, "2301", noop.NewMeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	b := bureau{store: store, handler: h}
	restored := schemas.Notification{ChangeID: "restore.status", CitizenID: id, Version: 6, Section: string(schemas.SecStatus),
		EventType: schemas.HukouRegistered, Time: time.Date(2025, 3, 10, 1, 0, 0, 0, time.UTC)}
	b.deliverDeath(t, restored, daoli)
	june := sdktest.Migration("june", id, 7, daoli, nangang)
	june.Time = time.Date(2025, 6, 2, 1, 0, 0, 0, time.UTC)
	b.deliver(t, june)
	january := sdktest.Migration("january", id, 8, daoli, saertu)
	january.Time = time.Date(2025, 1, 15, 1, 0, 0, 0, time.UTC)
	b.deliver(t, january)

	if task := b.task(t, id, "old-death", StopBenefits); task.Status != StatusCancelled || task.CancelReason == "" {
		t.Errorf("old task after the restoration: %+v, want it cancelled with a reason", task)
	}
	if address, status := b.rosterPerson(t, id); address != nangang || status != "active" {
		t.Errorf("roster %s, %s; want %s (June's move), active", address, status, nangang)
	}
}

// restoringPublisher hands the bureau a restoration while the completion
// is on its way to the hub.
type restoringPublisher struct {
	hubPublisher
	restore func()
}

func (p *restoringPublisher) Publish(ctx context.Context, events ...schemas.Event) ([]publisher.Result, error) {
	p.restore()
	return p.hubPublisher.Publish(ctx, events...)
}

// TestRestoredWhileCompleting: the restoration arrives between reading the
// open task and marking it done. The termination is on its way to the
// hub, so the task ends done, flagged for review, not cancelled.
func TestRestoredWhileCompleting(t *testing.T) {
	ctx := context.Background()
	harbin := openBureau(t, "2301")
	id := sdktest.CitizenID(990)
	harbin.deliverDeath(t, sdktest.Death("death", id, 3, "2025-03-01"), daoli)
	restored := schemas.Notification{ChangeID: "restore.status", CitizenID: id, Version: 4, Section: string(schemas.SecStatus),
		EventType: schemas.HukouRegistered, Time: time.Date(2025, 3, 10, 1, 0, 0, 0, time.UTC)}
	pub := &restoringPublisher{hubPublisher: hubPublisher{t: t}, restore: func() { harbin.deliverDeath(t, restored, daoli) }}
	task := harbin.task(t, id, "death", StopBenefits)
	done, err := Complete(ctx, harbin.store, pub, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(pub.inputs) != 1 || done.Status != StatusDone || done.ReactivatedAt.IsZero() || done.CancelReason != "" {
		t.Errorf("task %+v after %d events, want done and flagged as reactivated", done, len(pub.inputs))
	}
}

// TestRestoredHukouIsAnnouncedWhereTheDeathWas: a hukou cancelled for
// death in 方正县 (230124) is restored at an address in 道里区 (230102),
// where the person now lives. The bureau of 方正县 opened the
// stop_benefits task from the death announced there; it relies on hearing
// that the person is active again although the restored hukou is in
// another county, so that it cancels the open task, or flags a completed
// one for review, rather than end a living person's insurances.
func TestRestoredHukouIsAnnouncedWhereTheDeathWas(t *testing.T) {
	const (
		fangzheng = "230124100013"
		daoliAddr = "230102001001"
	)
	tests := []struct {
		name         string
		complete     bool // the bureau completes the task before the restoration
		wantStatus   string
		wantReactive bool
	}{
		{name: "restored while the task is open", wantStatus: StatusCancelled, wantReactive: true},
		{name: "restored after the task was completed", complete: true, wantStatus: StatusDone, wantReactive: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			id := sdktest.CitizenID(1991 + i)
			fz := openBureau(t, "230124")
			h := newHubSim(t)
			reg := func(name, at, addr, reason string) hub.Input {
				return hubEvent(t, schemas.HukouRegistered, id, name, at, schemas.HukouRegisteredData{
					Name: "王伟", Gender: "1", BirthDate: "1980-01-01", Ethnicity: "01", AddressCode: addr, HouseholdID: "H8", Reason: reason})
			}
			h.apply(reg("reg", "2020-01-01T09:00:00+08:00", fangzheng, "birth"))
			fz.deliverEntries(t, subscribed(Filters("230124"), h.apply(hubEvent(t, schemas.HukouCancelled, id, "cancel",
				"2025-03-01T09:00:00+08:00", schemas.HukouCancelledData{Reason: "death"}))))
			if tt.complete {
				pub := &hubPublisher{t: t}
				if _, err := Complete(ctx, fz.store, pub, stopBenefits(t, fz, id).ID); err != nil {
					t.Fatal(err)
				}
				for _, in := range pub.inputs {
					h.apply(in)
				}
			}
			restored := h.apply(reg("restore", "2025-03-10T09:00:00+08:00", daoliAddr, "restored"))
			fz.deliverEntries(t, subscribed(Filters("230124"), restored))
			if r := h.record(id); r.Status != hub.StatusActive || r.Hukou == nil || r.Hukou.RegionCode != "230102" {
				t.Fatalf("the hub's record: %+v", r)
			}
			task := stopBenefits(t, fz, id)
			if task.Status != tt.wantStatus || task.ReactivatedAt.IsZero() == tt.wantReactive {
				var subjects []string
				for _, e := range restored {
					subjects = append(subjects, e.Subject)
				}
				t.Errorf("方正县's stop_benefits task: status %s, reactivated at %v; want %s, reactivated %v (the restoration announced %v)",
					task.Status, task.ReactivatedAt, tt.wantStatus, tt.wantReactive, subjects)
			}
		})
	}
}
