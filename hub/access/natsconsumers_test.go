package access

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/notify"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

func TestSubjectWithin(t *testing.T) {
	tests := []struct {
		filter, pattern string
		want            bool
	}{
		{"pop.death.23.2301.*", "pop.death.23.2301.*", true},
		{"pop.death.23.2301.230102001001", "pop.death.23.2301.*", true},
		{"pop.death.23.2301.*", "pop.death.23.>", true},
		{"pop.death.23.2301.*", "pop.>", true},
		{"pop.death.>", "pop.death.23.>", false},
		{"pop.death.23.>", "pop.death.23.2301.*", false},
		{"pop.death.23.*.*", "pop.death.23.2301.*", false},
		{"pop.death.23.2301.*", "pop.death.23.2302.*", false},
		{"pop.death.23", "pop.death.23.>", false},
		{"pop.death.23.2301", "pop.death.23.2301.*", false},
		{"pop.death.23.2301.*.x", "pop.death.23.2301.*", false},
		{">", "pop.>", false},
		{"pop.changed.23.2301.*.status", "pop.changed.23.2301.*.*", true},
	}
	for _, tt := range tests {
		if got := subjectWithin(tt.filter, tt.pattern); got != tt.want {
			t.Errorf("subjectWithin(%q, %q) = %v, want %v", tt.filter, tt.pattern, got, tt.want)
		}
	}
}

// narrowedPolicy is the example policy with si-harbin's subscriptions
// reduced to status changes: its deaths and migrations are revoked.
func narrowedPolicy(t testing.TB) *Policy {
	t.Helper()
	p := examplePolicy(t)
	for i := range p.Identities {
		if p.Identities[i].Name == "si-harbin" {
			p.Identities[i].Subscribe = []string{"pop.changed.23.2301.*.status"}
		}
	}
	return p
}

func TestConsumerProblem(t *testing.T) {
	p := narrowedPolicy(t)
	const (
		death  = "pop.death.23.2301.*"
		status = "pop.changed.23.2301.*.status"
	)
	tests := []struct {
		name, consumer string
		filters        []string
		owner, problem string // problem: a part of it; "" to keep
	}{
		{"own name, granted subject", "si-harbin", []string{status}, "si-harbin", ""},
		{"own name, narrower than granted", "si-harbin", []string{"pop.changed.23.2301.230102001001.status"}, "si-harbin", ""},
		{"own name, revoked subject", "si-harbin", []string{death}, "si-harbin", "filter pop.death.23.2301.* is not within"},
		{"own name, wider than granted", "si-harbin", []string{"pop.changed.23.>"}, "si-harbin", "not within"},
		{"own name, whole stream", "si-harbin", nil, "si-harbin", "whole stream"},
		{"own name, one of two filters revoked", "si-harbin", []string{status, death}, "si-harbin", "filter pop.death.23.2301.*"},
		{"per-subject, granted", schemas.FilterConsumerName("si-harbin", status), []string{status}, "si-harbin", ""},
		{"per-subject, revoked subject", schemas.FilterConsumerName("si-harbin", death), []string{death}, "si-harbin", "not within"},
		{"identity without NATS credential", "health", []string{death}, "health", "no NATS credential"},
		{"identity of the hub's kind", "hub", nil, "hub", ""},
		{"administrator's per-subject form", "admin-0123abcd", nil, "admin", ""},
		{"hub's eligibility watcher", "pophub-eligibility", []string{"pop.changed.>"}, "", ""},
		{"administrator's tap, no owner", "ops-tap", []string{"pop.>"}, "", ""},
		// An administrator's SDK subscriber under a name of its own, and
		// a dropped identity's consumer: no identity may pull from them.
		{"administrator's SDK subscriber", "audit-replay", []string{"pop.death.23.2301.*"}, "", ""},
		{"consumer of a dropped identity", "si-daqing", []string{"pop.death.23.2306.*"}, "", ""},
		{"per-subject consumer of a dropped identity", "si-daqing-0123abcd", []string{"pop.death.23.2306.*"}, "", ""},
		{"not hex: not a per-subject name", "si-harbin-0123abcz", []string{death}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			owner, problem := p.ConsumerProblem(tt.consumer, tt.filters, "")
			judged(t, owner, problem, tt.owner, tt.problem)
		})
	}
}

// judged fails unless ConsumerProblem's owner is want and its problem
// says wantProblem ("" for the consumer kept).
func judged(t *testing.T, owner, problem, want, wantProblem string) {
	t.Helper()
	if owner != want {
		t.Errorf("owner = %q, want %q", owner, want)
	}
	switch {
	case wantProblem == "" && problem != "":
		t.Errorf("problem %q, want the consumer kept", problem)
	case wantProblem != "" && !strings.Contains(problem, wantProblem):
		t.Errorf("problem %q, want one about %q", problem, wantProblem)
	}
}

// TestConsumerProblemPush: an identity's push consumer stays while it
// delivers within the identity's inbox prefix. One delivering elsewhere
// goes: the server pushes with the account's rights, so it would put
// notifications into another identity's subscriptions.
func TestConsumerProblemPush(t *testing.T) {
	p := narrowedPolicy(t)
	const status = "pop.changed.23.2301.*.status"
	tests := []struct {
		name, consumer, deliver string
		owner, problem          string // problem: a part of it; "" to keep
	}{
		{"to its own inbox", "si-harbin", "_INBOX_si-harbin.push", "si-harbin", ""},
		{"to another's inbox", "si-harbin", "_INBOX_hub.x", "si-harbin", "outside the identity's inbox prefix _INBOX_si-harbin"},
		{"to a notification subject", schemas.FilterConsumerName("si-harbin", status), "pop.changed.23.2301.230102.status", "si-harbin", "outside"},
		{"an administrator's, anywhere", "admin", "anywhere", "admin", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			owner, problem := p.ConsumerProblem(tt.consumer, []string{status}, tt.deliver)
			judged(t, owner, problem, tt.owner, tt.problem)
		})
	}
}

// TestNarrowedSubscriptionPruned: a durable consumer created under an
// older, wider policy kept delivering what the current policy no longer
// grants, because NATS grants pulling by the consumer's name whatever its
// filter. The hub now prunes such consumers when it starts under a policy
// (notify.PruneConsumers with Policy.ConsumerProblem, as cmd/pophub
// wires it); the consumers the policy still allows, the hub's own and
// administrators' stay.
func TestNarrowedSubscriptionPruned(t *testing.T) {
	store := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const (
		death  = "pop.death.23.2301.*"
		status = "pop.changed.23.2301.*.status"
	)

	// Under the example policy si-harbin creates a consumer on its deaths
	// and per-subject ones; the hub has its own and an administrator's.
	p1 := examplePolicy(t)
	n1 := testenv.NATS(t, embedded.NATSConfig{StoreDir: store, Authorize: p1.NATSAuthorize})
	hubNC := connect(t, n1.ClientURL(), p1, "hub", nil)
	hjs, _ := jetstream.New(hubNC)
	if _, err := hjs.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: schemas.StreamName, Subjects: []string{schemas.StreamSubjects}}); err != nil {
		t.Fatal(err)
	}
	nc := connect(t, n1.ClientURL(), p1, "si-harbin", nil)
	js, _ := jetstream.New(nc)
	for _, c := range []jetstream.ConsumerConfig{
		{Durable: "si-harbin", FilterSubject: death},
		{Durable: schemas.FilterConsumerName("si-harbin", death), FilterSubject: death},
		{Durable: schemas.FilterConsumerName("si-harbin", status), FilterSubject: status},
	} {
		c.AckPolicy, c.Description = jetstream.AckExplicitPolicy, "pophub subscriber si-harbin"
		if _, err := js.CreateOrUpdateConsumer(ctx, schemas.StreamName, c); err != nil {
			t.Fatalf("si-harbin creating %s: %v", c.Durable, err)
		}
	}
	for _, c := range []jetstream.ConsumerConfig{
		{Durable: "pophub-eligibility", FilterSubject: "pop.changed.>", Description: "pophub eligibility notifications"},
		{Durable: "ops-tap", FilterSubject: "pop.>"},
		// A subscriber the new policy no longer has: no one but
		// administrators may pull from it, so it stays.
		{Durable: "si-daqing", FilterSubject: "pop.death.23.2306.*", Description: "pophub subscriber si-daqing"},
	} {
		c.AckPolicy = jetstream.AckExplicitPolicy
		if _, err := hjs.CreateOrUpdateConsumer(ctx, schemas.StreamName, c); err != nil {
			t.Fatalf("hub creating %s: %v", c.Durable, err)
		}
	}
	nc.Close()
	hubNC.Close()
	n1.Close()

	// The server restarts under the narrowed policy and the hub starts.
	p2 := narrowedPolicy(t)
	n2 := testenv.NATS(t, embedded.NATSConfig{StoreDir: store, Authorize: p2.NATSAuthorize})
	hubNC = connect(t, n2.ClientURL(), p2, "hub", nil)
	hjs, _ = jetstream.New(hubNC)
	logs := &testenv.LogBuffer{}
	deleted, err := notify.PruneConsumers(ctx, hjs, schemas.StreamName, p2.ConsumerProblem, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("pruning: %v", err)
	}
	slices.Sort(deleted)
	want := []string{"si-harbin", schemas.FilterConsumerName("si-harbin", death)}
	slices.Sort(want)
	if !slices.Equal(deleted, want) {
		t.Errorf("deleted %v, want %v", deleted, want)
	}
	for _, line := range []string{
		`consumer=si-harbin identity=si-harbin reason="filter pop.death.23.2301.* is not within`,
	} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("the log lacks %s:\n%s", line, logs)
		}
	}
	st, err := hjs.Stream(ctx, schemas.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for name := range st.ConsumerNames(ctx).Name() {
		left = append(left, name)
	}
	slices.Sort(left)
	if keep := []string{"ops-tap", "pophub-eligibility", "si-daqing", schemas.FilterConsumerName("si-harbin", status)}; !slices.Equal(left, keep) {
		t.Errorf("consumers left %v, want %v", left, keep)
	}
	again, err := notify.PruneConsumers(ctx, hjs, schemas.StreamName, p2.ConsumerProblem, nil)
	if err != nil || len(again) != 0 {
		t.Errorf("pruning again: deleted %v, %v; want nothing", again, err)
	}

	// A death is published: si-harbin can neither bind its old consumer nor
	// make another on deaths; its status consumer stays and gets nothing.
	if _, err := hjs.Publish(ctx, schemas.DeathSubject("230102001001"), []byte(`{"citizen_id":"230102199001011230"}`)); err != nil {
		t.Fatal(err)
	}
	nc = connect(t, n2.ClientURL(), p2, "si-harbin", nil)
	js, _ = jetstream.New(nc)
	if _, err := js.Consumer(ctx, schemas.StreamName, "si-harbin"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("binding the revoked consumer: %v, want %v", err, jetstream.ErrConsumerNotFound)
	}
	// A refused request gets no reply: it ends with its context.
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = js.CreateOrUpdateConsumer(rctx, schemas.StreamName, jetstream.ConsumerConfig{
		Durable: "si-harbin", FilterSubject: death, AckPolicy: jetstream.AckExplicitPolicy})
	rcancel()
	if err == nil {
		t.Error("si-harbin created a consumer on deaths again under the narrowed policy")
	}
	cons, err := js.Consumer(ctx, schemas.StreamName, schemas.FilterConsumerName("si-harbin", status))
	if err != nil {
		t.Fatalf("binding the status consumer: %v", err)
	}
	batch, err := cons.Fetch(5, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		t.Errorf("si-harbin received %s after its death subscription was revoked", m.Subject())
	}
}

// TestPruneConsumersMissingStream: before the hub made the stream there
// is nothing to prune.
func TestPruneConsumersMissingStream(t *testing.T) {
	p := examplePolicy(t)
	srv := startNATS(t, p)
	hjs, _ := jetstream.New(connect(t, srv, p, "hub", nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if deleted, err := notify.PruneConsumers(ctx, hjs, schemas.StreamName, p.ConsumerProblem, nil); err != nil || deleted != nil {
		t.Errorf("PruneConsumers = %v, %v; want nothing", deleted, err)
	}
}
