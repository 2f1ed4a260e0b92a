package access

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/schemas"
)

// TestStreamInfoDoesNotListOtherRegions: a subscriber asking the stream's
// info with a subjects_filter would learn how many notifications every
// subject holds, other regions' and sections' included, past its
// subscriptions and the statistics' small-cell suppression; under the
// policy the request is refused.
func TestStreamInfoDoesNotListOtherRegions(t *testing.T) {
	p := examplePolicy(t)
	srv := startNATS(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hubNC := connect(t, srv, p, "hub", nil)
	hjs, _ := jetstream.New(hubNC)
	if _, err := hjs.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: schemas.StreamName, Subjects: []string{schemas.StreamSubjects}}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{schemas.DeathSubject("440103001001"), schemas.ChangedSubject("440103001001", schemas.SecTax), schemas.MigrationSubject("440103001001", "110105001001")} {
		if _, err := hjs.Publish(ctx, s, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	nc := connect(t, srv, p, "si-harbin", make(chan error, 16))
	js, _ := jetstream.New(nc)
	sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
	defer scancel()
	st, err := js.Stream(sctx, schemas.StreamName)
	if err != nil {
		return // refused
	}
	info, err := st.Info(sctx, jetstream.WithSubjectFilter("pop.>"))
	if err == nil && len(info.State.Subjects) > 0 {
		t.Errorf("si-harbin (Harbin only) sees the subjects and counts of other regions' notifications: %v", info.State.Subjects)
	}
	if err == nil {
		t.Error("si-harbin may read the stream's info")
	}
}
