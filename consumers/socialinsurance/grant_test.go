package socialinsurance

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub/access"
)

// TestMissingGrantNamed: under an access policy that does not let the
// bureau's identity subscribe to one of its consumers' subjects (here the
// status section, which older policies lack), the subscriber keeps
// setting up and its health names the subject the policy must grant,
// rather than only a lookup that timed out.
func TestMissingGrantNamed(t *testing.T) {
	b, err := os.ReadFile("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const grant = "      - pop.changed.23.2301.*.status\n"
	if !strings.Contains(string(b), grant) {
		t.Fatalf("the example policy no longer grants si-harbin %q", grant)
	}
	p, err := access.Parse([]byte(strings.Replace(string(b), grant, "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	url, _ := policyNATSOf(t, p)
	cfg := Config{APIToken: testAPIToken, NATS: url, Name: "si-harbin", ConsumerPerFilter: true,
		NATSUser: "si-harbin", NATSPassword: access.DemoSecret("nats:si-harbin"), NATSInboxPrefix: "_INBOX_si-harbin"}
	svc, _ := runService(t, cfg)
	const want = "the access policy must let this subscriber's identity subscribe to pop.changed.23.2301.*.status"
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := svc.sub.Health()
		if err != nil && strings.Contains(err.Error(), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health %v; want it to say %q", err, want)
		}
	}
}
