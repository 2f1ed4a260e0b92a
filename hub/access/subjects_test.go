package access

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"

	"github.com/pophub/pophub/schemas"
)

// subscriberPolicy is a policy with one subscriber "sub"; READ,
// ELIGIBILITY and SUBJECT are filled in by the cases.
const subscriberPolicy = `version: 1
identities:
  - name: hub
    kind: hub
    credentials:
      kafka: {password: env:HUB_PW}
      nats: {password_bcrypt: "$2a$11$13jUY/34NnVpUIEi0G8uBOOcgqtptBPU7HlA9sQ4N.0dQ0dGgdVKy"}
  - name: sub
    kind: subscriber
    read: READ
    eligibility: ELIGIBILITY
    subscribe: ["SUBJECT"]
    credentials:
      token_sha256: 0000000000000000000000000000000000000000000000000000000000000002
      nats: {nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4}
`

// TestSubscribeGrants: what a subscription needs beyond a valid subject.
// Changed and death subjects name the person's hukou county unless their
// region is one county; eligibility subjects name who qualifies for what.
func TestSubscribeGrants(t *testing.T) {
	const (
		hukouCounty = "names each person's hukou county"
		eligible    = "the identity needs eligibility: true"
	)
	tests := []struct {
		name        string
		read        string
		eligibility bool
		subject     string
		want        string // a problem the policy must report; "" for a valid policy
	}{
		{"changed in one county", "[social_insurance]", false, "pop.changed.23.2301.230102.social_insurance", ""},
		{"changed anywhere", "[social_insurance]", false, "pop.changed.*.*.*.social_insurance", hukouCounty},
		{"changed in a city", "[social_insurance]", false, "pop.changed.23.2301.*.social_insurance", hukouCounty},
		{"changed, section left open by >", "[social_insurance]", false, "pop.changed.23.>", "may not read: identity, hukou"},
		{"changed without a hukou registration", "[social_insurance]", false, "pop.changed.00.0000.000000.social_insurance", hukouCounty},
		{"changed anywhere, hukou readable", "[hukou, social_insurance]", false, "pop.changed.*.*.*.social_insurance", ""},
		{"death in one county", "[status]", false, "pop.death.23.2301.230102", ""},
		{"death in a city", "[status]", false, "pop.death.23.2301.*", hukouCounty},
		{"death in a city, hukou readable", "[hukou, status]", false, "pop.death.23.2301.*", ""},
		{"migration", "[status]", false, "pop.migration.23.2301.230102.*.*.*", "may not read: hukou"},
		{"eligibility under one policy", "[]", true, "pop.eligibility.heilongjiang_daqing.23.2306.*", ""},
		{"eligibility under a policy with a hyphen", "[]", true, "pop.eligibility.heilongjiang_nine-cities.23.>", ""},
		{"eligibility under every policy", "[]", true, "pop.eligibility.*.*.*.*", ""},
		{"eligibility, all of it", "[]", true, "pop.eligibility.>", ""},
		{"eligibility without the grant", `["*"]`, false, "pop.eligibility.heilongjiang_daqing.23.2306.*", eligible},
		{"eligibility policy token", "[]", true, "pop.eligibility.Daqing.23.2306.*", `policy token "Daqing"`},
		{"eligibility token count", "[]", true, "pop.eligibility.23.2306.*", "want 4 tokens after pop.eligibility"},
		{"eligibility region nesting", "[]", true, "pop.eligibility.heilongjiang_daqing.23.4401.*", `region token "4401" does not lie in "23"`},
		{"every notification", `["*"]`, true, "pop.>", ""},
		{"every notification without eligibility", `["*"]`, false, "pop.>", eligible},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.NewReplacer("READ", tc.read, "ELIGIBILITY", map[bool]string{true: "true", false: "false"}[tc.eligibility],
				"SUBJECT", tc.subject).Replace(subscriberPolicy)
			_, err := Parse([]byte(src))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("policy refused: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("policy accepted; want a problem %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("error lacks %q:\n%v", tc.want, err)
			}
		})
	}
}

// TestEligibilitySubscription: an identity granted eligibility and an
// eligibility subject gets its notifications through its own durable
// consumer on the embedded NATS server, and no others; the generated
// nats-server configuration and Explain say the same.
func TestEligibilitySubscription(t *testing.T) {
	const subject = "pop.eligibility.heilongjiang_daqing.23.2306.*"
	hash, err := bcrypt.GenerateFromPassword([]byte(DemoSecret("nats:public_security")), 10)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	anchor := "    eligibility: true    # its registration desks decide settlement and residence permits\n"
	if !strings.Contains(string(raw), anchor) {
		t.Fatal("the example policy no longer grants public_security eligibility as the test expects")
	}
	src := strings.Replace(string(raw), anchor, anchor+"    subscribe: [\""+subject+"\"]\n", 1)
	src = strings.Replace(src, "      token_sha256: ce0d695da41f7ee61f5711d942b8878aed932ae90d72394b7b9fdc94f7530a43\n",
		"      token_sha256: ce0d695da41f7ee61f5711d942b8878aed932ae90d72394b7b9fdc94f7530a43\n      nats: {password_bcrypt: \""+string(hash)+"\"}\n", 1)
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("policy with an eligibility subscription: %v", err)
	}
	if id := mustID(t, p, "public_security"); len(id.Subscribe) != 1 || id.Credentials.NATS == nil {
		t.Fatalf("public_security: subscribe %v, nats %v; the edit of the example did not apply", id.Subscribe, id.Credentials.NATS)
	}
	consumer := schemas.FilterConsumerName("public_security", subject)

	t.Run("nats-config", func(t *testing.T) {
		conf := p.NATSConfig()
		for _, want := range []string{`"$JS.API.CONSUMER.CREATE.POP.` + consumer + `.` + subject + `"`, `"` + subject + `"`} {
			if !strings.Contains(conf, want) {
				t.Errorf("nats-config lacks %s", want)
			}
		}
		path := t.TempDir() + "/auth.conf"
		if err := writeFile(path, conf); err != nil {
			t.Fatal(err)
		}
		if _, err := server.ProcessConfigFile(path); err != nil {
			t.Errorf("nats-server rejects the generated config: %v", err)
		}
	})
	t.Run("explain", func(t *testing.T) {
		text, err := p.Explain("public_security")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"durable pull consumer " + consumer + " on " + subject, "GET /v1/eligibility/{id}"} {
			if !strings.Contains(text, want) {
				t.Errorf("Explain lacks %q:\n%s", want, text)
			}
		}
	})

	srv := startNATS(t, p)
	// A bound for the whole test, connections included: under -race on a
	// busy machine each connection's bcrypt check alone takes seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hjs, _ := jetstream.New(connect(t, srv, p, "hub", nil))
	if _, err := hjs.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: schemas.StreamName, Subjects: []string{schemas.StreamSubjects}}); err != nil {
		t.Fatalf("hub creating POP: %v", err)
	}
	daqing := schemas.EligibilitySubject("heilongjiang/daqing", "230602")
	for _, s := range []string{
		daqing,
		schemas.EligibilitySubject("heilongjiang/harbin", "230602"), // another policy
		schemas.EligibilitySubject("heilongjiang/daqing", "230102"), // another city
		schemas.DeathSubject("230602001001"),
	} {
		if _, err := hjs.Publish(ctx, s, []byte(`{}`)); err != nil {
			t.Fatalf("hub publishing %s: %v", s, err)
		}
	}

	js, _ := jetstream.New(connect(t, srv, p, "public_security", nil))
	t.Run("its consumer", func(t *testing.T) {
		cons, err := js.CreateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{
			Durable: consumer, FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy})
		if err != nil {
			t.Fatalf("creating consumer %s: %v", consumer, err)
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
		if len(got) != 1 || got[0] != daqing {
			t.Errorf("fetched %v, want [%s]", got, daqing)
		}
	})
	t.Run("refused", func(t *testing.T) {
		for _, filter := range []string{"pop.eligibility.>", "pop.eligibility.heilongjiang_harbin.23.2306.*", "pop.death.23.2306.*"} {
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.CreateOrUpdateConsumer(c, schemas.StreamName, jetstream.ConsumerConfig{
				Durable: schemas.FilterConsumerName("public_security", filter), FilterSubject: filter})
			cancel()
			if err == nil {
				t.Errorf("consumer on %s created", filter)
			}
		}
	})
}

// TestSubscribedCounties: the counties an identity's changed and death
// subscriptions are fixed to, which it may walk without the hukou grant;
// a subscription open over a county's region fixes none.
func TestSubscribedCounties(t *testing.T) {
	tests := []struct {
		name      string
		subscribe []string
		want      string
	}{
		{"a death subscription in one county", []string{"pop.death.23.2301.230102"}, "230102"},
		{"changes in one county", []string{"pop.changed.23.2301.230103.social_insurance", "pop.changed.23.2301.230103.status"}, "230103"},
		{"changes in one county, any section", []string{"pop.changed.23.2301.230103.>"}, "230103"},
		{"two counties", []string{"pop.death.23.2301.230102", "pop.changed.23.2301.230103.status"}, "230102,230103"},
		{"a city", []string{"pop.death.23.2301.*"}, ""},
		{"no hukou registration", []string{"pop.death.00.0000.000000"}, ""},
		{"migrations", []string{"pop.migration.23.2301.230102.*.*.*"}, ""},
		{"eligibility", []string{"pop.eligibility.heilongjiang_harbin.23.2301.230102"}, ""},
		{"everything", []string{"pop.>"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := Identity{Name: "sub", Kind: KindSubscriber, Subscribe: tc.subscribe}
			if got := strings.Join(id.SubscribedCounties(), ","); got != tc.want {
				t.Errorf("SubscribedCounties() = %q, want %q", got, tc.want)
			}
		})
	}
}
