package sdk_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

var (
	out2301   = sdk.Filter{Kind: sdk.MigrationsOut, Region: "2301"}
	death2301 = sdk.Filter{Kind: sdk.Deaths, Region: "2301"}
	out2302   = sdk.Filter{Kind: sdk.MigrationsOut, Region: "2302"}
	death2302 = sdk.Filter{Kind: sdk.Deaths, Region: "2302"}
	// The changes of a city: every section, or one.
	changed2301 = sdk.Filter{Kind: sdk.Changes, Region: "2301"}
	status2301  = sdk.Filter{Kind: sdk.Changes, Region: "2301", Section: "status"}
	hukou2301   = sdk.Filter{Kind: sdk.Changes, Region: "2301", Section: "hukou"}
)

// TestConsumerPerFilterLeftovers: with ConsumerPerFilter the consumer
// names hash the subjects, so a subscriber whose filters changed under the
// same name (si-subscriber's --region) never binds its old consumers. Run
// must find them and return ErrFilterChanged naming them, before creating
// the new filters' consumers, rather than start those at Config.Start and
// leave the old ones on the server. Consumers of other subscribers whose
// names only look alike ("si-x-…", a subscriber named "si-" and eight hex
// digits) are not the subscriber's.
func TestConsumerPerFilterLeftovers(t *testing.T) {
	// lookalike is a subscriber's name that is "si-" and eight hex digits:
	// that of si's consumer for a subject, but its own single consumer
	// filters another.
	lookalike := schemas.FilterConsumerName("si", out2301.Subject("pop"))
	tests := []struct {
		name   string
		before []sdk.Config // run first, one after the other, to create their consumers
		now    []sdk.Filter
		named  []string // the leftover consumers the error must name; none: Run consumes
	}{
		{
			name:   "region changed",
			before: []sdk.Config{{Name: "si", Filters: []sdk.Filter{out2301, death2301}, ConsumerPerFilter: true}},
			now:    []sdk.Filter{out2302, death2302},
			named: []string{
				schemas.FilterConsumerName("si", out2301.Subject("pop")),
				schemas.FilterConsumerName("si", death2301.Subject("pop")),
			},
		},
		{
			name:   "a filter dropped",
			before: []sdk.Config{{Name: "si", Filters: []sdk.Filter{out2301, death2301}, ConsumerPerFilter: true}},
			now:    []sdk.Filter{out2301},
			named:  []string{schemas.FilterConsumerName("si", death2301.Subject("pop"))},
		},
		{
			name:   "a filter added",
			before: []sdk.Config{{Name: "si", Filters: []sdk.Filter{out2301}, ConsumerPerFilter: true}},
			now:    []sdk.Filter{out2301, death2301},
		},
		{
			// A subscriber that followed every section and now follows
			// status only: the every-section consumer is the old one.
			name:   "a section named",
			before: []sdk.Config{{Name: "si", Filters: []sdk.Filter{death2301, changed2301}, ConsumerPerFilter: true}},
			now:    []sdk.Filter{death2301, status2301},
			named:  []string{schemas.FilterConsumerName("si", changed2301.Subject("pop"))},
		},
		{
			name:   "a section dropped",
			before: []sdk.Config{{Name: "si", Filters: []sdk.Filter{status2301, hukou2301}, ConsumerPerFilter: true}},
			now:    []sdk.Filter{status2301},
			named:  []string{schemas.FilterConsumerName("si", hukou2301.Subject("pop"))},
		},
		{
			name:   "a section added",
			before: []sdk.Config{{Name: "si", Filters: []sdk.Filter{death2301, status2301}, ConsumerPerFilter: true}},
			now:    []sdk.Filter{death2301, status2301, hukou2301},
		},
		{
			// Consumers created before filters had sections bind again.
			name:   "no section, as before",
			before: []sdk.Config{{Name: "si", Filters: []sdk.Filter{out2301, changed2301}, ConsumerPerFilter: true}},
			now:    []sdk.Filter{out2301, changed2301},
		},
		{
			name: "other subscribers' consumers alike in name",
			before: []sdk.Config{
				{Name: "si-x", Filters: []sdk.Filter{out2301, death2301}, ConsumerPerFilter: true},
				{Name: lookalike, Filters: []sdk.Filter{death2301}},
				{Name: "si", Filters: []sdk.Filter{out2301}}, // the single consumer of the other mode
			},
			now: []sdk.Filter{out2302, death2302},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			rec := newRecorder()
			for _, cfg := range tc.before {
				cfg.URL, cfg.Handler = e.srv.URL(), rec.handle
				s, err := sdk.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				durables := s.Durables()
				s.Close()
				stop := run(t, cfg)
				waitFor(t, "the consumers of "+cfg.Name, 10*time.Second, func() bool {
					have := consumersOf(t, e.js)
					for _, d := range durables {
						if _, ok := have[d.Name]; !ok {
							return false
						}
					}
					return true
				})
				stop()
			}
			existing := slices.Sorted(maps.Keys(consumersOf(t, e.js)))

			var logs testenv.LogBuffer
			cfg := sdk.Config{Name: "si", URL: e.srv.URL(), Filters: tc.now, ConsumerPerFilter: true, Handler: rec.handle, Logger: debugLogger(&logs)}
			if tc.named == nil {
				run(t, cfg)
				want := slices.Clone(existing)
				for _, f := range tc.now {
					if n := schemas.FilterConsumerName("si", f.Subject("pop")); !slices.Contains(want, n) {
						want = append(want, n)
					}
				}
				slices.Sort(want)
				waitFor(t, "the new filters' consumers", 10*time.Second, func() bool {
					return slices.Equal(slices.Sorted(maps.Keys(consumersOf(t, e.js))), want)
				})
				return
			}
			s, err := sdk.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = s.Run(ctx)
			if !errors.Is(err, sdk.ErrFilterChanged) || ctx.Err() != nil {
				t.Fatalf("Run = %v (ctx %v); want ErrFilterChanged at once; logs:\n%s", err, ctx.Err(), logs.String())
			}
			for _, n := range tc.named {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("Run = %v; want it to name the leftover consumer %s", err, n)
				}
			}
			if !strings.Contains(err.Error(), "or use another name") {
				t.Errorf("Run = %v; want it to say what to do", err)
			}
			if h := s.Health(); !errors.Is(h, sdk.ErrFilterChanged) {
				t.Errorf("Health = %v after Run failed; want ErrFilterChanged", h)
			}
			if now := slices.Sorted(maps.Keys(consumersOf(t, e.js))); !slices.Equal(now, existing) {
				t.Errorf("consumers %v after Run failed, want those before it, %v: none created", now, existing)
			}
		})
	}
}

// TestConsumerPerFilterLeftoversNotListable: under the hub's access policy
// the subscriber's NATS user may not list the stream's consumers
// ($JS.API.CONSUMER.LIST is not granted; the user here has the policy's
// permissions for an identity allowed both regions, see hub/access
// NATSPermissions). The server drops the request, so waiting for its
// answer would only time out and setting up retry for ever: the SDK tells
// the refusal at once, warns once and consumes without the check.
func TestConsumerPerFilterLeftoversNotListable(t *testing.T) {
	const inbox, n = "_INBOX_si", "si"
	url, js := startNotListable(t, n, inbox, []sdk.Filter{out2301, death2301, out2302, death2302})

	rec := newRecorder()
	var logs testenv.LogBuffer
	cfg := sdk.Config{Name: n, URL: url, User: n, Password: "si", InboxPrefix: inbox, ConsumerPerFilter: true,
		Handler: rec.handle, Logger: debugLogger(&logs)}
	runUntilConsuming := func(filters []sdk.Filter, while func(*sdk.Subscriber)) {
		t.Helper()
		cfg.Filters = filters
		sub, err := sdk.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sub.Run(ctx) }()
		waitFor(t, "the subscriber consuming", 30*time.Second, func() bool { return sub.Health() == nil })
		while(sub)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v; logs:\n%s", err, logs.String())
		}
	}
	runUntilConsuming([]sdk.Filter{out2301, death2301}, func(*sdk.Subscriber) {})
	// Unnoticed: the SDK may not list the 2301 consumers. A consumer
	// deleted while it runs makes it set up again, without a second
	// warning.
	runUntilConsuming([]sdk.Filter{out2302, death2302}, func(sub *sdk.Subscriber) {
		name := sub.Durables()[0].Name
		if err := js.DeleteConsumer(context.Background(), schemas.StreamName, name); err != nil {
			t.Fatal(err)
		}
		// The SDK finds its consumer gone and makes it again: seconds,
		// more on a loaded machine under -race.
		waitFor(t, "the deleted consumer created again", 90*time.Second, func() bool {
			_, ok := consumersOf(t, js)[name]
			return ok && sub.Health() == nil
		})
	})

	const warning = "may not list the stream's consumers"
	if got := strings.Count(logs.String(), warning); got != 2 {
		t.Errorf("warned %d times in two subscribers' runs (the second setting up twice), want once each; logs:\n%s", got, logs.String())
	}
	if strings.Contains(logs.String(), "retrying") {
		t.Errorf("setting up retried; logs:\n%s", logs.String())
	}
	if got := len(consumersOf(t, js)); got != 4 {
		t.Errorf("%d consumers, want both regions' 4", got)
	}
}

// startNotListable starts a NATS server with JetStream, the hub's
// streams, an admin user (whose JetStream context it returns) and the
// user n (password "si") with the permissions the hub's access policy
// gives an identity allowed filters (see hub/access NATSPermissions):
// its consumers' API, its inbox, and neither $JS.API.CONSUMER.LIST nor
// $JS.API.STREAM.INFO. It
// returns the URL n connects to.
func startNotListable(t *testing.T, n, inbox string, filters []sdk.Filter) (string, jetstream.JetStream) {
	t.Helper()
	var subjects []string
	for _, f := range filters {
		subjects = append(subjects, f.Subject("pop"))
	}
	s := schemas.StreamName
	publish := []string{"$JS.API.INFO", "$JS.API.STREAM.NAMES",
		"$JS.API.CONSUMER.INFO." + s + "." + n, "$JS.API.CONSUMER.DELETE." + s + "." + n,
		"$JS.API.CONSUMER.MSG.NEXT." + s + "." + n, "$JS.ACK." + s + "." + n + ".>", "popdlq." + n}
	subscribe := []string{inbox + ".>"}
	for _, subj := range subjects {
		c := schemas.FilterConsumerName(n, subj)
		publish = append(publish, "$JS.API.CONSUMER.CREATE."+s+"."+n+"."+subj, "$JS.API.CONSUMER.CREATE."+s+"."+c+"."+subj,
			"$JS.API.CONSUMER.INFO."+s+"."+c, "$JS.API.CONSUMER.DELETE."+s+"."+c,
			"$JS.API.CONSUMER.MSG.NEXT."+s+"."+c, "$JS.ACK."+s+"."+c+".>")
		subscribe = append(subscribe, subj)
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Users: []*server.User{
			{Username: "admin", Password: "admin"},
			{Username: n, Password: "si", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: publish},
				Subscribe: &server.SubjectPermission{Allow: subscribe},
			}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	url := "nats://admin:admin@" + strings.TrimPrefix(srv.ClientURL(), "nats://")
	_, js := sdktest.Connect(t, url)
	sdktest.CreateStream(t, js, schemas.StreamName, "pop")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "POPDLQ", Subjects: []string{"popdlq.>"}}); err != nil {
		t.Fatal(err)
	}
	return srv.ClientURL(), js
}

// TestConsumerListRefusalWarnsOnce: the refusal of the consumer list
// request reaches the client a second time, as an asynchronous error of
// the connection, which nats.go's default handler writes to standard
// error ("nats: permissions violation: …"). The subscriber's own
// connection takes it as the expected refusal it already warned about:
// one warning, nothing on standard error and nothing at error level.
func TestConsumerListRefusalWarnsOnce(t *testing.T) {
	const inbox, n = "_INBOX_si", "si"
	url, _ := startNotListable(t, n, inbox, []sdk.Filter{out2301, death2301})
	stderr := sdk.CaptureStderr(t)

	var logs testenv.LogBuffer
	sub, err := sdk.New(sdk.Config{Name: n, URL: url, User: n, Password: "si", InboxPrefix: inbox, ConsumerPerFilter: true,
		Filters: []sdk.Filter{out2301, death2301}, Handler: newRecorder().handle, Logger: debugLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx) }()
	waitFor(t, "the subscriber consuming", 30*time.Second, func() bool { return sub.Health() == nil })
	// The connection's asynchronous errors are handled in order on one
	// goroutine: a round trip after consuming leaves time for the
	// refusal's, which came before the consumers were set up.
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v; logs:\n%s", err, logs.String())
	}
	sub.Close()

	if got := strings.Count(logs.String(), "may not list the stream's consumers"); got != 1 {
		t.Errorf("warned %d times, want once; logs:\n%s", got, logs.String())
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("an error logged for the expected refusal; logs:\n%s", logs.String())
	}
	if out := stderr(); out != "" {
		t.Errorf("standard error got %q, want nothing", out)
	}
}
