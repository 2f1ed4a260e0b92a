package access

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// startNATS starts an embedded NATS server running p and returns its URL.
func startNATS(t *testing.T, p *Policy) string {
	t.Helper()
	return testenv.NATS(t, embedded.NATSConfig{Authorize: p.NATSAuthorize}).ClientURL()
}

// onEachNATSServer runs test against the embedded server and against the
// machine's nats-server binary (Debian's 2.9, what an operator's own
// server may be) including `pophub policy nats-config`'s output, each
// running the example policy.
func onEachNATSServer(t *testing.T, test func(t *testing.T, p *Policy, url string)) {
	for _, server := range []struct {
		name  string
		start func(*testing.T, *Policy) string
	}{
		{"embedded", startNATS},
		{"nats-server binary", func(t *testing.T, p *Policy) string { return testenv.NATSServerProcess(t, p.NATSConfig()) }},
	} {
		t.Run(server.name, func(t *testing.T) {
			p := examplePolicy(t)
			test(t, p, server.start(t, p))
		})
	}
}

func connect(t *testing.T, url string, p *Policy, name string, errs chan<- error) *nats.Conn {
	t.Helper()
	id := mustID(t, p, name)
	// bcrypt on the server takes a while under -race on a busy machine.
	nc, err := nats.Connect(url, nats.UserInfo(name, DemoSecret("nats:"+name)), nats.Timeout(time.Minute),
		nats.CustomInboxPrefix(id.Credentials.NATS.InboxPrefix),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errs != nil {
				errs <- err
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestNATSPermissions(t *testing.T) { onEachNATSServer(t, testNATSPermissions) }

func testNATSPermissions(t *testing.T, p *Policy, srv string) {
	// A bound for the whole test, connections included: under -race on a
	// busy machine each connection's bcrypt check alone takes seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The hub creates the streams and publishes a death in Harbin and one elsewhere.
	hubNC := connect(t, srv, p, "hub", nil)
	hjs, _ := jetstream.New(hubNC)
	if _, err := hjs.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: schemas.StreamName, Subjects: []string{schemas.StreamSubjects}}); err != nil {
		t.Fatalf("hub creating POP: %v", err)
	}
	if _, err := hjs.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: DeadLetterStream, Subjects: []string{DeadLetterPrefix + ".>"}}); err != nil {
		t.Fatalf("hub creating POPDLQ: %v", err)
	}
	harbin := schemas.DeathSubject("230102001001")
	other := schemas.DeathSubject("440103001001")
	leaving := schemas.MigrationSubject("230102001001", "110105001001") // out of Harbin
	status := schemas.ChangedSubject("230102001001", schemas.SecStatus)
	tax := schemas.ChangedSubject("230102001001", schemas.SecTax) // a section si-harbin may not read
	for _, s := range []string{harbin, other, leaving, status, tax} {
		if _, err := hjs.Publish(ctx, s, []byte(`{}`)); err != nil {
			t.Fatalf("hub publishing %s: %v", s, err)
		}
	}

	errs := make(chan error, 16)
	nc := connect(t, srv, p, "si-harbin", errs)
	t.Run("core subscribe", func(t *testing.T) {
		for _, tc := range []struct {
			subject string
			ok      bool
		}{
			{"pop.death.23.2301.*", true},
			{"pop.death.44.4401.*", false},
			{"pop.changed.23.2301.230102.tax", false},
			{"pop.changed.23.2301.*.status", true},
			{"pop.changed.23.2301.*.*", false},
			{"_INBOX.>", false},
			{"_INBOX_hub.>", false},
		} {
			// A late violation of the previous subject must not be
			// taken for this one's.
			for len(errs) > 0 {
				<-errs
			}
			sub, err := nc.SubscribeSync(tc.subject)
			if err != nil {
				t.Fatal(err)
			}
			_ = nc.Flush()
			// A refusal comes back asynchronously: wait for it long enough
			// on a loaded machine; an allowed subscription has none to wait
			// for, so its wait is shorter.
			wait := 300 * time.Millisecond
			if !tc.ok {
				wait = 5 * time.Second
			}
			var violation error
			select {
			case violation = <-errs:
			case <-time.After(wait):
			}
			if ok := violation == nil; ok != tc.ok {
				t.Errorf("subscribe %s: violation %v, want allowed=%v", tc.subject, violation, tc.ok)
			}
			_ = sub.Unsubscribe()
		}
	})

	js, _ := jetstream.New(nc)
	t.Run("durable pull consumer on its subject", func(t *testing.T) {
		cons, err := js.CreateOrUpdateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{
			Durable: "si-harbin", FilterSubject: "pop.death.23.2301.*", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy})
		if err != nil {
			t.Fatalf("creating consumer: %v", err)
		}
		batch, err := cons.Fetch(5, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for m := range batch.Messages() {
			got = append(got, m.Subject())
			if err := m.DoubleAck(ctx); err != nil {
				t.Errorf("ack: %v", err)
			}
		}
		if len(got) != 1 || got[0] != harbin {
			t.Errorf("fetched %v, want [%s]", got, harbin)
		}
		if _, err := js.Consumer(ctx, schemas.StreamName, "si-harbin"); err != nil {
			t.Errorf("binding to the consumer: %v", err)
		}
		if _, err := js.StreamNameBySubject(ctx, DeadLetterPrefix+".si-harbin"); err != nil {
			t.Errorf("dead-letter stream lookup: %v", err)
		}
		if _, err := js.Publish(ctx, DeadLetterPrefix+".si-harbin", []byte(`{}`)); err != nil {
			t.Errorf("publishing a dead letter: %v", err)
		}
	})
	// Stream info is not granted: with a subjects_filter it answers how
	// many messages every subject of the stream holds, every region's
	// (and on POPDLQ, other subscribers' dead letters), and NATS cannot
	// look at the request's body.
	t.Run("stream info refused", func(t *testing.T) {
		for _, stream := range []string{schemas.StreamName, DeadLetterStream} {
			subj := "$JS.API.STREAM.INFO." + stream
			if msg, err := nc.Request(subj, []byte(`{"subjects_filter":">"}`), time.Second); err == nil {
				t.Errorf("%s answered: %s", subj, msg.Data)
			}
			var violation error
			select {
			case violation = <-errs:
			case <-time.After(2 * time.Second):
			}
			if !errors.Is(violation, nats.ErrPermissionViolation) || !strings.Contains(violation.Error(), subj) {
				t.Errorf("%s: got %v, want a permission violation", subj, violation)
			}
		}
	})
	// The subscriber SDK's per-filter mode: a consumer per subject, named
	// schemas.FilterConsumerName(identity, subject), created, bound,
	// pulled from and acked with the identity's own credentials.
	t.Run("a durable pull consumer per subject", func(t *testing.T) {
		id := mustID(t, p, "si-harbin")
		want := map[string][]string{ // subject → what its consumer delivers
			"pop.migration.23.2301.*.*.*.*": {leaving},
			"pop.migration.*.*.*.23.2301.*": nil,
			"pop.death.23.2301.*":           {harbin},
			"pop.changed.23.2301.*.status":  {status},
		}
		if len(id.Subscribe) != len(want) {
			t.Fatalf("si-harbin subscribes to %v; the test expects %d subjects", id.Subscribe, len(want))
		}
		for _, subj := range id.Subscribe {
			name := schemas.FilterConsumerName("si-harbin", subj)
			cons, err := js.CreateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{
				Durable: name, FilterSubject: subj, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy})
			if err != nil {
				t.Fatalf("creating consumer %s on %s: %v", name, subj, err)
			}
			batch, err := cons.Fetch(5, jetstream.FetchMaxWait(time.Second))
			if err != nil {
				t.Fatalf("pulling from %s: %v", name, err)
			}
			var got []string
			for m := range batch.Messages() {
				got = append(got, m.Subject())
				if err := m.DoubleAck(ctx); err != nil {
					t.Errorf("ack on %s: %v", name, err)
				}
			}
			if strings.Join(got, " ") != strings.Join(want[subj], " ") {
				t.Errorf("consumer on %s delivered %v, want %v", subj, got, want[subj])
			}
			bound, err := js.Consumer(ctx, schemas.StreamName, name)
			if err != nil {
				t.Fatalf("binding to %s: %v", name, err)
			}
			info, err := bound.Info(ctx)
			if err != nil || info.NumAckPending != 0 || info.Config.FilterSubject != subj {
				t.Errorf("consumer %s: %+v, %v; want filter %s, everything acked", name, info, err, subj)
			}
		}
	})
	t.Run("refused", func(t *testing.T) {
		death, out := "pop.death.23.2301.*", "pop.migration.23.2301.*.*.*.*"
		for _, tc := range []struct {
			name string
			cfg  jetstream.ConsumerConfig
		}{
			{"other subject", jetstream.ConsumerConfig{Durable: "si-harbin2", FilterSubject: "pop.death.44.4401.*"}},
			{"wider subject", jetstream.ConsumerConfig{Durable: "si-harbin", FilterSubject: "pop.>"}},
			{"no filter", jetstream.ConsumerConfig{Durable: "si-harbin"}},
			{"several filters", jetstream.ConsumerConfig{Durable: "si-harbin", FilterSubjects: []string{"pop.death.23.2301.*", "pop.death.44.4401.*"}}},
			{"another's name", jetstream.ConsumerConfig{Durable: "hub", FilterSubject: "pop.death.23.2301.*"}},
			{"per-subject name on a subject it lacks", jetstream.ConsumerConfig{
				Durable: schemas.FilterConsumerName("si-harbin", "pop.death.44.4401.*"), FilterSubject: "pop.death.44.4401.*"}},
			{"per-subject name on the cover", jetstream.ConsumerConfig{
				Durable: schemas.FilterConsumerName("si-harbin", "pop.>"), FilterSubject: "pop.>"}},
			{"per-subject name on another of its subjects", jetstream.ConsumerConfig{
				Durable: schemas.FilterConsumerName("si-harbin", death), FilterSubject: out}},
			{"per-subject name of another identity", jetstream.ConsumerConfig{
				Durable: schemas.FilterConsumerName("researcher", death), FilterSubject: death}},
		} {
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.CreateOrUpdateConsumer(c, schemas.StreamName, tc.cfg)
			cancel()
			if err == nil {
				t.Errorf("%s: consumer created", tc.name)
			}
		}
		// The filter-less legacy API and stream creation are not granted.
		if _, err := nc.Request("$JS.API.CONSUMER.DURABLE.CREATE.POP.si-harbin", []byte(`{}`), time.Second); err == nil {
			t.Error("legacy durable create answered")
		}
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := js.CreateStream(c, jetstream.StreamConfig{Name: "SNOOP", Subjects: []string{"_INBOX_hub.>"}}); err == nil {
			t.Error("subscriber created a stream")
		}
		if _, err := js.Publish(c, "pop.death.23.2301.230102", []byte(`{}`)); err == nil {
			t.Error("subscriber published a notification")
		}
	})
	t.Run("body filter must match the subject", func(t *testing.T) {
		req := `{"stream_name":"POP","config":{"durable_name":"si-harbin","filter_subject":"pop.>","ack_policy":"explicit"},"action":""}`
		msg, err := nc.Request("$JS.API.CONSUMER.CREATE.POP.si-harbin.pop.death.23.2301.*", []byte(req), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(msg.Data), `"error"`) {
			t.Errorf("server accepted a body filter wider than the subject's: %s", msg.Data)
		}
	})
}

func TestNATSConfigParses(t *testing.T) {
	p := examplePolicy(t)
	path := t.TempDir() + "/auth.conf"
	if err := writeFile(path, p.NATSConfig()); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server rejects the generated config: %v", err)
	}
	// Each identity with a NATS credential is a user of its account: the
	// hub and administrators of the hub's, every other of its own, with
	// exactly NATSPermissions.
	users := map[string]*server.User{}
	for _, u := range opts.Users {
		users[u.Username] = u
	}
	for _, id := range p.natsIdentities() {
		u, ok := users[id.Name]
		if !ok {
			t.Errorf("%s: no user", id.Name)
			continue
		}
		wantAccount := id.Name
		if id.Kind == KindHub || id.Kind == KindAdmin {
			wantAccount = schemas.NATSAccount
		}
		if u.Account == nil || u.Account.Name != wantAccount {
			t.Errorf("%s: account %v, want %s", id.Name, u.Account, wantAccount)
		}
		w := NATSPermissions(id)
		if u.Password != id.Credentials.NATS.PasswordBcrypt || (u.Permissions == nil) != (w == nil) {
			t.Errorf("%s: %+v, want password %s and permissions %+v", id.Name, u, id.Credentials.NATS.PasswordBcrypt, w)
			continue
		}
		if w != nil && (strings.Join(u.Permissions.Publish.Allow, " ") != strings.Join(w.Publish.Allow, " ") ||
			strings.Join(u.Permissions.Subscribe.Allow, " ") != strings.Join(w.Subscribe.Allow, " ")) {
			t.Errorf("%s: permissions differ", id.Name)
		}
	}
	if len(users) != len(p.natsIdentities()) {
		t.Errorf("%d users, want %d", len(users), len(p.natsIdentities()))
	}
}

func TestKafkaACLs(t *testing.T) {
	p := examplePolicy(t)
	opts, err := p.KfakeOptions(DemoResolver)
	if err != nil {
		t.Fatal(err)
	}
	addr := testenv.Kafka(t, 1, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	mech := func(name string) SCRAMClient {
		ref := mustID(t, p, name).Credentials.Kafka.Password
		pw, _ := DemoResolver(ref)
		return SCRAMClient{User: name, Password: pw}
	}
	write := func(m SCRAMClient, topic string) error {
		w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
			BatchTimeout: 10 * time.Millisecond, Transport: &kafka.Transport{SASL: m}}
		defer w.Close()
		return w.WriteMessages(ctx, kafka.Message{Key: []byte(personID), Value: []byte(`{}`)})
	}
	tests := []struct {
		name  string
		who   SCRAMClient
		topic string
		ok    bool
	}{
		{"department writes its own topic", mech("health"), schemas.Topic(schemas.Health), true},
		{"department refused another's topic", mech("health"), schemas.Topic(schemas.Tax), false},
		{"department refused the DLQ", mech("health"), schemas.DLQTopic, false},
		{"wrong password", SCRAMClient{User: "health", Password: "guess"}, schemas.Topic(schemas.Health), false},
		{"hub writes the DLQ", mech("hub"), schemas.DLQTopic, true},
		{"hub writes a source topic (its gateway, for a department it authenticated)", mech("hub"), schemas.Topic(schemas.Health), true},
		{"an identity without a Kafka user refused", SCRAMClient{User: "si-harbin", Password: "guess"}, schemas.Topic(schemas.Health), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := write(tc.who, tc.topic)
			if (err == nil) != tc.ok {
				t.Fatalf("write %s as %s: %v, want ok=%v", tc.topic, tc.who.User, err, tc.ok)
			}
			// kfake, like Kafka, hides topics the principal may not describe
			// (unknown topic) and refuses writes it may not make (authorization).
			if err != nil && tc.who.Password != "guess" && !strings.Contains(err.Error(), "Unknown Topic") && !strings.Contains(err.Error(), "Authorization Failed") {
				t.Errorf("refused for another reason: %v", err)
			}
		})
	}

	read := func(m SCRAMClient, group string) error {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: group, Topic: schemas.Topic(schemas.Health),
			Dialer: &kafka.Dialer{Timeout: 5 * time.Second, SASLMechanism: m}, StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
		defer r.Close()
		c, cancel := context.WithTimeout(ctx, 8*time.Second)
		defer cancel()
		msg, err := r.FetchMessage(c)
		if err != nil {
			return err
		}
		if string(msg.Key) != personID {
			return errors.New("wrong message")
		}
		return r.CommitMessages(c, msg)
	}
	t.Run("hub reads in its group", func(t *testing.T) {
		if err := read(mech("hub"), p.KafkaGroup); err != nil {
			t.Errorf("hub reading: %v", err)
		}
	})
	t.Run("department cannot read", func(t *testing.T) {
		err := read(mech("tax"), "snoop")
		if err == nil {
			t.Error("a department read a source topic")
		}
	})
}

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o600) }

// NATS checks a publish permission against a message's subject, never its
// reply subject, and a service answers on the reply subject: a subscriber
// asking JetStream something it may ask, with the reply subject set to a
// notification subject, a dead-letter subject, a bucket key or a
// JetStream API subject, must not get the answer written into the hub's
// streams or acted on as the hub's request.
func TestNATSReplySubjectsReachNothingOfTheHub(t *testing.T) {
	onEachNATSServer(t, testNATSReplySubjects)
}

func testNATSReplySubjects(t *testing.T, p *Policy, srv string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hjs, _ := jetstream.New(connect(t, srv, p, "hub", nil))
	pop, err := hjs.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: schemas.StreamName, Subjects: []string{schemas.StreamSubjects}})
	if err != nil {
		t.Fatalf("hub creating POP: %v", err)
	}
	dlq, err := hjs.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: DeadLetterStream, Subjects: []string{DeadLetterPrefix + ".>"}})
	if err != nil {
		t.Fatalf("hub creating POPDLQ: %v", err)
	}
	kv, err := hjs.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: EligibilityBucket})
	if err != nil {
		t.Fatalf("hub creating the eligibility bucket: %v", err)
	}
	harbin := schemas.DeathSubject("230102001001")
	if _, err := hjs.Publish(ctx, harbin, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}

	nc := connect(t, srv, p, "si-harbin", nil)
	replies := []string{
		harbin, // a subject it reads
		schemas.DeathSubject("440103001001"),
		DeadLetterPrefix + ".admin",
		"$KV." + EligibilityBucket + ".230102199001011234",
		"$JS.API.STREAM.PURGE." + schemas.StreamName,
		"$JS.API.STREAM.DELETE." + DeadLetterStream,
		"$JS.API.CONSUMER.CREATE." + schemas.StreamName + ".snoop",
	}
	for _, reply := range replies {
		if err := nc.PublishMsg(&nats.Msg{Subject: "$JS.API.INFO", Reply: reply}); err != nil {
			t.Fatal(err)
		}
	}
	// JetStream answers API requests in order: once this one is answered,
	// the answers above have been written wherever they went.
	if _, err := nc.Request("$JS.API.INFO", nil, 30*time.Second); err != nil {
		t.Fatalf("account info: %v", err)
	}
	time.Sleep(500 * time.Millisecond)

	if info, err := pop.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Errorf("POP holds %+v (%v), want only the hub's notification", info.State, err)
	}
	if info, err := dlq.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Errorf("POPDLQ holds %+v (%v), want nothing", info.State, err)
	}
	if keys, err := kv.ListKeys(ctx); err == nil {
		var got []string
		for k := range keys.Keys() {
			got = append(got, k)
		}
		if len(got) != 0 {
			t.Errorf("the eligibility bucket holds %v, want nothing", got)
		}
	}
	for name := range pop.ConsumerNames(ctx).Name() {
		t.Errorf("POP has consumer %s, which nobody made", name)
	}
}
