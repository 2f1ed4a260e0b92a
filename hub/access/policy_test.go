package access

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// base is a small valid policy; cases edit it.
const base = `version: 1
identities:
  - name: hub
    kind: hub
    credentials:
      kafka: {password: env:HUB_PW}
      nats: {password_bcrypt: "$2a$11$13jUY/34NnVpUIEi0G8uBOOcgqtptBPU7HlA9sQ4N.0dQ0dGgdVKy"}
  - name: tax
    kind: department
    publish: [tax]
    read: [identity, tax]
    credentials:
      token_sha256: 0000000000000000000000000000000000000000000000000000000000000001
  - name: si
    kind: subscriber
    read: [hukou, status]
    subscribe: [pop.death.23.2301.*]
    credentials:
      token_sha256: 0000000000000000000000000000000000000000000000000000000000000002
      nats: {nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4}
`

func TestParseExample(t *testing.T) {
	p, err := Load("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.VerifySecrets(DemoResolver); err != nil {
		t.Errorf("the example's SCRAM keys do not match its demo passwords: %v", err)
	}
	for _, id := range p.Identities {
		if h := id.Credentials.TokenSHA256; len(h) > 0 && !slices.Equal(h, Digests{HashToken(DemoSecret("token:" + id.Name))}) {
			t.Errorf("%s: token_sha256 is not the hash of its demo token", id.Name)
		}
	}
	if got := p.MinCell(mustID(t, p, "researcher")); got != 10 {
		t.Errorf("researcher min cell = %d, want 10", got)
	}
	if got := p.MinCell(mustID(t, p, "stats-bureau")); got != 0 {
		t.Errorf("bureau min cell = %d, want 0", got)
	}
}

func mustID(t testing.TB, p *Policy, name string) Identity {
	t.Helper()
	id, ok := p.Identity(name)
	if !ok {
		t.Fatalf("no identity %s", name)
	}
	return id
}

func TestParseBase(t *testing.T) {
	if _, err := Parse([]byte(base)); err != nil {
		t.Fatal(err)
	}
}

// siNATS is the NATS credential of base's subscriber si; siInbox gives it
// an inbox prefix.
const siNATS = "nats: {nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4}"

func siInbox(prefix string) string {
	return "nats: {nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4, inbox_prefix: " + prefix + "}"
}

func TestValidation(t *testing.T) {
	tests := []struct {
		name string
		old  string // replaced in base by new; "" appends new
		new  string
		want []string // every one must appear, each as its own problem
	}{
		{"empty", base, "", []string{"the policy is empty"}},
		{"version", "version: 1", "version: 3", []string{"version: want 1, not 3"}},
		{"unknown top-level field", "version: 1", "version: 1\nfoo: 1", []string{"field foo not found"}},
		{"clear-text token field", "token_sha256: 0000000000000000000000000000000000000000000000000000000000000001", "token: hunter2hunter2", []string{"field token not found", "never written in clear"}},
		{"token not a hash", "0000000000000000000000000000000000000000000000000000000000000001", "hunter2", []string{`identities[1] "tax": credentials.token_sha256: want the 64 hexadecimal digits`}},
		{"clear-text kafka password", "env:HUB_PW", "hunter2", []string{`identities[0] "hub": credentials.kafka.password: a clear-text secret is not allowed`}},
		{"bad env ref", "env:HUB_PW", "env:1X", []string{"not an environment variable name"}},
		{"relative file ref", "env:HUB_PW", "file:secret.txt", []string{"want an absolute path"}},
		{"clear-text nats password", `"$2a$11$13jUY/34NnVpUIEi0G8uBOOcgqtptBPU7HlA9sQ4N.0dQ0dGgdVKy"`, "hunter2", []string{"credentials.nats.password_bcrypt: not a bcrypt hash"}},
		{"nkey seed", "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4", "SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4", []string{"want a user public nkey"}},
		{"duplicate name", "name: si\n", "name: tax\n", []string{`name "tax" is also identities[1]'s`}},
		{"the watcher's consumer as a name", "name: si\n", "name: pophub-eligibility\n", []string{`name "pophub-eligibility" is the hub's eligibility watcher's consumer`}},
		{"duplicate token", "0000000000000000000000000000000000000000000000000000000000000002", "0000000000000000000000000000000000000000000000000000000000000001", []string{`identities[2] "si": credentials.token_sha256: the same token as identities[1]`}},
		{"unknown kind", "kind: subscriber", "kind: auditor", []string{`kind "auditor": want one of`}},
		{"unknown section", "read: [identity, tax]", "read: [identity, salary]", []string{`identities[1] "tax": read[1]: unknown section "salary" (known: identity, hukou, status,`}},
		{"duplicate section", "read: [identity, tax]", "read: [tax, tax]", []string{"read[1]: section tax is listed twice"}},
		{"star with others", "read: [identity, tax]", `read: ["*", tax]`, []string{`"*" grants every section`}},
		{"foreign source", "publish: [tax]", "publish: [health]", []string{`identities[1] "tax": publish[0]: department "tax" may publish only its own source tax, not health`}},
		{"unknown source", "publish: [tax]", "publish: [police]", []string{`publish[0]: unknown source "police"`}},
		{"subscriber publishes", "subscribe: [pop.death.23.2301.*]", "subscribe: [pop.death.23.2301.*]\n    publish: [health]", []string{`identities[2] "si": publish[0]: only department identities publish`}},
		{"department without source", "name: tax\n", "name: taxes\n", []string{"must name its source"}},
		{"source on subscriber", "kind: subscriber", "kind: subscriber\n    source: tax", []string{"only department identities have a source"}},
		{"subject outside scheme", "pop.death.23.2301.*", "foo.bar", []string{`subscribe[0]: "foo.bar": not a hub subject`}},
		{"subject bad kind", "pop.death.23.2301.*", "pop.born.23.2301.*", []string{`unknown kind "born"`}},
		{"subject token count", "pop.death.23.2301.*", "pop.death.23.2301", []string{"want 3 tokens after pop.death"}},
		{"subject region nesting", "pop.death.23.2301.*", "pop.death.23.4401.*", []string{`region token "4401" does not lie in "23"`}},
		{"subject region width", "pop.death.23.2301.*", "pop.death.230.2301.*", []string{`region token "230": want 2 digits`}},
		{"subject unknown section", "pop.death.23.2301.*", "pop.changed.23.*.*.salary", []string{`unknown section "salary"`}},
		{"subject mid >", "pop.death.23.2301.*", "pop.>.death", []string{"'>' must be the last token"}},
		{"subject needs read", "pop.death.23.2301.*", "pop.changed.23.*.*.tax", []string{"carries data of sections the identity may not read: tax"}},
		{"subject wildcard section needs all", "pop.death.23.2301.*", "pop.changed.23.>", []string{"may not read: identity, residence_permits"}},
		{"subscribe without nats", "      nats: {nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4}\n", "", []string{"subscribes but has no nats credential"}},
		{"read without http credential", "      token_sha256: 0000000000000000000000000000000000000000000000000000000000000002\n", "", []string{`identities[2] "si": credentials: reads over HTTP but has neither`}},
		{"no hub", "kind: hub", "kind: admin", []string{"want exactly one identity of kind hub, not 0"}},
		{"hub reads", "kind: hub\n", "kind: hub\n    read: [tax]\n", []string{"the hub identity reads nothing"}},
		{"bureau without stats", "", "  - name: nbs\n    kind: statistics\n    credentials: {token_sha256: 0000000000000000000000000000000000000000000000000000000000000003}\n", []string{"the statistics bureau must have stats: true"}},
		{"bureau min cell", "", "  - name: nbs\n    kind: statistics\n    stats: true\n    stats_min_cell: 3\n    credentials: {token_sha256: 0000000000000000000000000000000000000000000000000000000000000003}\n", []string{"the statistics bureau sees every cell"}},
		{"min cell below policy", "", "  - name: r\n    kind: subscriber\n    stats: true\n    stats_min_cell: 3\n    credentials: {token_sha256: 0000000000000000000000000000000000000000000000000000000000000003}\n", []string{"stats_min_cell 3 is below the policy's 5"}},
		{"min cell without stats", "", "  - name: r\n    kind: subscriber\n    stats_min_cell: 30\n    credentials: {token_sha256: 0000000000000000000000000000000000000000000000000000000000000003}\n", []string{"stats_min_cell without stats: true"}},
		{"policy min cell 1", "version: 1", "version: 1\nstats_min_cell: 1", []string{"stats_min_cell: want 3 or more"}},
		{"policy min cell 2", "version: 1", "version: 1\nstats_min_cell: 2", []string{"stats_min_cell: want 3 or more"}},
		{"rate limit", "read: [identity, tax]", "read: [identity, tax]\n    rate_limit: {rps: 0, burst: 0}", []string{"rate_limit: rps must be positive", "rate_limit: burst must be at least 1"}},
		{"purpose control char", "read: [identity, tax]", "read: [identity, tax]\n    purposes: [\"a\\tb\", \"\"]", []string{"purposes[0]: a purpose must not contain control characters", "purposes[1]: a purpose must not be empty"}},
		{"scram malformed", "kafka: {password: env:HUB_PW}", "kafka: {scram_sha512: {salt: c2hvcnQ=, iterations: 100, stored_key: x, server_key: x}}", []string{"salt: want at least 16", "iterations: want at least 4096", "stored_key: want 64 bytes", "server_key: want 64 bytes"}},
		{"bad fingerprint", "      token_sha256: 0000000000000000000000000000000000000000000000000000000000000001\n", "      cert_sha256: zz\n", []string{"cert_sha256: want the certificate's SHA-256 fingerprint"}},
		{"named like another's consumer", "", "  - name: si-bcc33398\n    kind: subscriber\n    stats: true\n    credentials: {token_sha256: 0000000000000000000000000000000000000000000000000000000000000003}\n",
			[]string{`identities[3] "si-bcc33398": name is that of a durable consumer of identity "si"`}},
		{"inbox prefix is the notifications root", siNATS, siInbox("pop"), []string{`identities[2] "si": credentials.nats.inbox_prefix: "pop" is the hub's subject root pop (every notification)`, "leave inbox_prefix out for the default _INBOX_si or choose another"}},
		{"inbox prefix is the dead-letter root", siNATS, siInbox("popdlq"), []string{`credentials.nats.inbox_prefix: "popdlq" is the hub's subject root popdlq (every subscriber's dead letters)`}},
		{"inbox prefix is the shared inbox root", siNATS, siInbox("_INBOX"), []string{`credentials.nats.inbox_prefix: "_INBOX" is the hub's subject root _INBOX (the hub's replies)`}},
		{"inbox prefix is the server's reply root", siNATS, siInbox("_R_"), []string{`credentials.nats.inbox_prefix: "_R_" is the server's reply root _R_ (the answers to every identity's requests to the hub's account`}},
		{"inbox prefix is the gateways' reply root", siNATS, siInbox("_GR_"), []string{`credentials.nats.inbox_prefix: "_GR_" is the server's reply root _GR_`}},
		{"inbox prefix is a server subject", siNATS, siInbox(`"$KV"`), []string{`credentials.nats.inbox_prefix: "$KV" is a server subject root`}},
		{"inbox prefix with wildcard", siNATS, siInbox(`">"`), []string{`credentials.nats.inbox_prefix: ">": want one subject token`}},
		{"inbox prefix is another's default", `bcrypt: "$2a$11$13jUY/34NnVpUIEi0G8uBOOcgqtptBPU7HlA9sQ4N.0dQ0dGgdVKy"}`, `bcrypt: "$2a$11$13jUY/34NnVpUIEi0G8uBOOcgqtptBPU7HlA9sQ4N.0dQ0dGgdVKy", inbox_prefix: _INBOX_si}`,
			[]string{`identities[2] "si": credentials.nats.inbox_prefix: "_INBOX_si" is also identities[0]'s: inboxes must be private`}},
		{"several problems at once", "publish: [tax]\n    read: [identity, tax]", "publish: [health]\n    read: [salary]", []string{"publish[0]", "unknown section \"salary\""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := base + tc.new
			if tc.old != "" {
				if !strings.Contains(base, tc.old) {
					t.Fatalf("base lacks %q", tc.old)
				}
				src = strings.Replace(base, tc.old, tc.new, 1)
			}
			_, err := Parse([]byte(src))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
		})
	}
}

// TestInboxPrefixAccepted: prefixes of the identity's own are valid, also
// those that merely begin like a shared root.
func TestInboxPrefixAccepted(t *testing.T) {
	for _, pre := range []string{"_INBOX_harbin", "si-inbox", "popular", "_INBOXES"} {
		p, err := Parse([]byte(strings.Replace(base, siNATS, siInbox(pre), 1)))
		if err != nil {
			t.Errorf("inbox_prefix %s: %v", pre, err)
			continue
		}
		if got := mustID(t, p, "si").Credentials.NATS.InboxPrefix; got != pre {
			t.Errorf("inbox_prefix %s read as %q", pre, got)
		}
	}
}

func TestSCRAMKeys(t *testing.T) {
	k, err := NewSCRAMKeys("pw", 4096)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Verify("pw") || k.Verify("other") {
		t.Error("Verify does not tell the password from another")
	}
}

func TestExplain(t *testing.T) {
	p, err := Load("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, want string }{
		{"health", "write topic pop.events.health"},
		{"health", "write transactional ids health.*"},
		{"hub", "read group pophub"},
		{"researcher", "cells below 10 suppressed"},
		{"stats-bureau", "every cell"},
		{"admin", "superuser"},
		{"admin", "GET /v1/admin/status, POST /v1/admin/known-events"},
		{"stats-bureau", "GET /v1/policies"},
		{"public_security", "whatever the read list above"},
		{"si-harbin", "durable pull consumer si-harbin-bcc33398 on pop.death.23.2301.*"},
	} {
		text, err := p.Explain(tc.name)
		if err != nil || !strings.Contains(text, tc.want) {
			t.Errorf("Explain(%s) = %q, %v; want it to contain %q", tc.name, text, err, tc.want)
		}
	}
}
