package watch

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/internal/testenv"
)

// TestOpenSaysWhenTheBucketStalls: a watcher whose NATS user may not
// answer flow control (a server configured by hand, or by an older
// policy) gets its bucket only up to the server's first flow-control
// request. Open then fails saying so, rather than waiting for ever with
// no eligibility announced and nothing said.
func TestOpenSaysWhenTheBucketStalls(t *testing.T) {
	defer func(d time.Duration) { loadStall = d }(loadStall)
	loadStall = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := testenv.NATS(t, embedded.NATSConfig{Authorize: func(o *server.Options) error {
		o.Users = []*server.User{
			{Username: "admin", Password: "a"},
			{Username: "hub", Password: "h", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.>", "$JS.ACK.>", "$KV.pophub_eligibility.>"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}},
		}
		return nil
	}})
	jsAs := func(user, password string) jetstream.JetStream {
		return testenv.JetStream(t, srv.ClientURL(), nats.UserInfo(user, password))
	}
	admin := jsAs("admin", "a")
	if _, err := admin.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "pophub_eligibility"}); err != nil {
		t.Fatal(err)
	}
	// 3 MB of last decisions: past the server's 2 MiB without a reply.
	val := []byte(`{"eligible":false,"as_of":"2026-12-06","pad":"` + strings.Repeat("p", 100) + `"}`)
	for i := range 12000 {
		if _, err := admin.PublishAsync(fmt.Sprintf("$KV.pophub_eligibility.heilongjiang_harbin.%064x", i), val); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 {
			<-admin.PublishAsyncComplete()
		}
	}
	<-admin.PublishAsyncComplete()

	store, cat := storeAndCatalog(t)
	w, err := New(Config{JS: jsAs("hub", "h"), Store: store, Catalog: cat, Policies: []string{"heilongjiang/daqing"}})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Open(ctx)
	if err == nil || !strings.Contains(err.Error(), "$JS.FC") {
		t.Fatalf("Open: %v, want an error naming the missing $JS.FC permission", err)
	}
}
