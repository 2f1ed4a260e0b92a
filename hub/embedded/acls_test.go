package embedded

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/pophub/pophub/hub/tlsconf"
	"github.com/pophub/pophub/schemas"
)

// TestKafkaUsersAndACLsAtEveryStart: a broker restarted on its data
// directory with other users and ACLs enforces the new ones: a revoked
// grant is gone, a new one works, a rotated password is the only one
// accepted, and the records written before the restart are still there;
// the bootstrap superuser that installed the ACLs cannot log in.
func TestKafkaUsersAndACLsAtEveryStart(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", withTLS), func(t *testing.T) {
			testUsersAndACLsAtEveryStart(t, withTLS)
		})
	}
}

func testUsersAndACLsAtEveryStart(t *testing.T, withTLS bool) {
	var srvTLS, cliTLS *tls.Config
	if withTLS {
		files, err := tlsconf.EnsureDev(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if srvTLS, err = tlsconf.Server(files.Cert, files.Key); err != nil {
			t.Fatal(err)
		}
		if cliTLS, err = tlsconf.Client(files.CA); err != nil {
			t.Fatal(err)
		}
	}
	const mech = "SCRAM-SHA-512"
	taxTopic, marriageTopic := schemas.Topic(schemas.Tax), schemas.Topic(schemas.Marriage)
	grant := func(user, topic string) []kfake.ACL {
		var out []kfake.ACL
		for _, op := range []kmsg.ACLOperation{kmsg.ACLOperationWrite, kmsg.ACLOperationDescribe} {
			out = append(out, kfake.ACL{Principal: "User:" + user, Resource: kmsg.ACLResourceTypeTopic, Name: topic,
				Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true})
		}
		return out
	}
	dir := t.TempDir()
	start := func(taxPW string, acls []kfake.ACL) *Kafka {
		t.Helper()
		return startKafka(t, KafkaConfig{DataDir: dir, Partitions: 1, TLS: srvTLS, ACLs: acls, Options: []kfake.Opt{
			kfake.Superuser(mech, "admin", "admin-pw"),
			kfake.User(mech, "tax", taxPW),
			kfake.User(mech, "marriage", "marriage-pw"),
		}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := func(k *Kafka, user, pw string, opts ...kgo.Opt) *kgo.Client {
		t.Helper()
		opts = append(opts, kgo.SeedBrokers(k.Addr()), kgo.SASL(scram.Auth{User: user, Pass: pw}.AsSha512Mechanism()),
			kgo.RecordRetries(2), kgo.UnknownTopicRetries(2), kgo.RetryTimeout(5*time.Second))
		if cliTLS != nil {
			opts = append(opts, kgo.DialTLSConfig(cliTLS))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	write := func(k *Kafka, user, pw, topic string, n int) error {
		t.Helper()
		var recs []*kgo.Record
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%s-%d", user, i)})
		}
		return client(k, user, pw).ProduceSync(ctx, recs...).FirstErr()
	}

	k := start("tax-old", append(grant("tax", taxTopic), grant("marriage", "pop.events.other")...))
	if err := write(k, "tax", "tax-old", taxTopic, 3); err != nil {
		t.Fatalf("first start: tax writing its topic: %v", err)
	}
	if err := write(k, "marriage", "marriage-pw", marriageTopic, 1); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("first start: marriage writing %s without a grant: %v, want TOPIC_AUTHORIZATION_FAILED", marriageTopic, err)
	}
	k.Close()
	for _, name := range []string{"sasl.json", "acls.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("the first start left no %s to override: %v", name, err)
		}
	}

	// tax's grant revoked and its password rotated; marriage granted its
	// topic; the grant on pop.events.other gone.
	k = start("tax-new", grant("marriage", marriageTopic))
	// kfake closes the connection of a failed login.
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	if err := client(k, "tax", "tax-old").Ping(pctx); err == nil {
		t.Error("tax logged in with its old password")
	}
	pcancel()
	if err := write(k, "tax", "tax-new", taxTopic, 1); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("tax with its new password, its grant revoked: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if err := write(k, "marriage", "marriage-pw", marriageTopic, 1); err != nil {
		t.Errorf("marriage writing its newly granted topic: %v", err)
	}

	admin := client(k, "admin", "admin-pw", kgo.ConsumeTopics(taxTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got int
	for got < 3 && ctx.Err() == nil {
		fs := admin.PollFetches(ctx)
		if err := fs.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("reading %s: %v", taxTopic, err)
		}
		got += fs.NumRecords()
	}
	if got != 3 {
		t.Errorf("%s holds %d records after the restart, want the 3 written before it", taxTopic, got)
	}

	// Only the policy's users remain; the bootstrap superuser is gone.
	req := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	resp, err := req.RequestWith(ctx, client(k, "admin", "admin-pw"))
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]bool{}
	for _, r := range resp.Results {
		users[r.User] = true
	}
	if users[bootstrapUser] || !users["tax"] || !users["marriage"] || !users["admin"] || len(users) != 3 {
		t.Errorf("the broker's SCRAM users: %v, want admin, marriage and tax", users)
	}
	acls := kmsg.NewPtrDescribeACLsRequest()
	acls.ResourceType, acls.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	acls.Operation, acls.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	aresp, err := acls.RequestWith(ctx, client(k, "admin", "admin-pw"))
	if err != nil {
		t.Fatal(err)
	}
	var held []string
	for _, r := range aresp.Resources {
		for _, a := range r.ACLs {
			held = append(held, fmt.Sprintf("%s %s %s", a.Principal, r.ResourceName, a.Operation))
		}
	}
	if len(held) != 2 {
		t.Errorf("the broker holds ACLs %q, want marriage's two on %s", held, marriageTopic)
	}
}
