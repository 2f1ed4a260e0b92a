package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestSubscriberWithoutStreamInfo: the hub's access policy grants a
// subscriber no $JS.API.STREAM.INFO (with a subjects_filter it would
// answer per-subject counts of the whole stream, every region's). Under
// those permissions the subscriber still sets up, consumes, dead-letters
// and binds to its consumers after a restart, without retrying and
// without logging the refusal as an error, and a stream info request of
// its own is refused.
func TestSubscriberWithoutStreamInfo(t *testing.T) {
	const inbox, n = "_INBOX_si", "si"
	filters := []sdk.Filter{out2301, death2301}
	url, admin := startNotListable(t, n, inbox, filters)

	publish := func(from, to int) {
		var msgs []*nats.Msg
		for i := from; i < to; i++ {
			m := sdktest.Migration(fmt.Sprintf("c%d", i), sdktest.CitizenID(i), 1, daoli, beijing)
			msgs = append(msgs, sdktest.Msg(sdktest.Subject("pop", m, ""), m, ""))
		}
		sdktest.Publish(t, admin, msgs...)
	}
	rec := newRecorder()
	rec.fail = func(d *sdk.Delivery) error {
		if d.ChangeID == "c0" {
			return errors.New("poison")
		}
		return nil
	}
	var logs testenv.LogBuffer
	run := func(while func()) {
		t.Helper()
		sub, err := sdk.New(sdk.Config{Name: n, URL: url, User: n, Password: "si", InboxPrefix: inbox, ConsumerPerFilter: true,
			Filters: filters, Handler: rec.handle, Logger: debugLogger(&logs), Start: sdk.Start{Policy: sdk.StartAll},
			MaxAttempts: 2, Backoff: []time.Duration{time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sub.Run(ctx) }()
		waitFor(t, "the subscriber consuming", 30*time.Second, func() bool { return sub.Health() == nil })
		while()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v; logs:\n%s", err, logs.String())
		}
	}

	publish(0, 5)
	run(func() {
		waitFor(t, "four handled and one dead-lettered", 30*time.Second, func() bool {
			st, err := admin.Stream(context.Background(), "POPDLQ")
			return err == nil && st.CachedInfo().State.Msgs == 1 && rec.distinct() == 4
		})
	})
	before := consumersOf(t, admin)
	publish(5, 8)
	run(func() {
		waitFor(t, "the new ones handled after a restart", 30*time.Second, func() bool { return rec.distinct() == 7 })
	})
	if after := consumersOf(t, admin); len(after) != len(before) {
		t.Errorf("%d consumers after the restart, %d before: it did not bind to its own", len(after), len(before))
	}
	if d := rec.duplicates(); d != 0 {
		t.Errorf("%d duplicates after the restart", d)
	}
	for _, bad := range []string{"setting up, retrying", "NATS connection error"} {
		if strings.Contains(logs.String(), bad) {
			t.Errorf("logs contain %q:\n%s", bad, logs.String())
		}
	}

	nc, err := nats.Connect(url, nats.UserInfo(n, "si"), nats.CustomInboxPrefix(inbox), nats.Timeout(20*time.Second), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, stream := range []string{schemas.StreamName, "POPDLQ"} {
		subj := "$JS.API.STREAM.INFO." + stream
		if msg, err := nc.Request(subj, []byte(`{"subjects_filter":">"}`), time.Second); err == nil {
			t.Errorf("%s answered: %s", subj, msg.Data)
		}
		if last := nc.LastError(); !errors.Is(last, nats.ErrPermissionViolation) || !strings.Contains(last.Error(), subj) {
			t.Errorf("%s: last error %v, want a permission violation", subj, last)
		}
	}
}
