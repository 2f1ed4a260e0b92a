package access

import (
	"os"
	"strings"
	"testing"
)

// TestKafkaScriptTakesAwayWhatIsNoLongerGranted: a cluster keeps what
// earlier scripts granted, so the script of a narrowed policy, generated
// with the policy the cluster was set up from, removes the ACLs no longer
// granted and the users of identities gone; without it, it says that it
// only adds.
func TestKafkaScriptTakesAwayWhatIsNoLongerGranted(t *testing.T) {
	b, err := os.ReadFile("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	example := string(b)
	const taxPublish = `publish: ["tax"]`
	from, to := strings.Index(example, "  - name: marriage\n"), strings.Index(example, "  - name: si-harbin\n")
	if strings.Count(example, taxPublish) != 1 || from < 0 || to < from {
		t.Fatalf("the example policy no longer has %s once, or marriage before si-harbin", taxPublish)
	}
	// Tax may no longer publish (nor read, so that it keeps a reason to
	// exist), and the marriage department is gone.
	narrowed := strings.Replace(example, taxPublish, `publish: []`, 1)
	narrowed = narrowed[:strings.Index(narrowed, "  - name: marriage\n")] + narrowed[strings.Index(narrowed, "  - name: si-harbin\n"):]
	prev := examplePolicy(t)
	p, err := Parse([]byte(narrowed))
	if err != nil {
		t.Fatal(err)
	}

	script := p.KafkaScript(prev)
	for _, want := range []string{
		"$KA --remove --force --allow-principal User:tax --operation Write --operation Describe --topic pop.events.tax\n",
		"$KA --remove --force --allow-principal User:tax --operation Write --operation Describe --transactional-id tax. --resource-pattern-type prefixed\n",
		"$KC --alter --entity-type users --entity-name marriage --delete-config SCRAM-SHA-512\n",
		"$KA --remove --force --allow-principal User:marriage --operation Write --operation Describe --topic pop.events.marriage\n",
		// The hub still reads every source topic: nothing of it is removed.
		"$KA --add --allow-principal User:hub --operation Read --operation Describe --operation Create --operation Write --topic pop.events.marriage\n",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("the script lacks\n%s", want)
		}
	}
	removes := 0
	for _, line := range strings.Split(script, "\n") {
		if strings.Contains(line, "--remove") || strings.Contains(line, "--delete-config") {
			removes++
			if !strings.Contains(line, "User:tax ") && !strings.Contains(line, "User:marriage ") && !strings.Contains(line, "entity-name marriage ") {
				t.Errorf("the script takes away what the policy still grants: %s", line)
			}
		}
	}
	if i, j := strings.Index(script, "--remove"), strings.Index(script, "--add"); i < 0 || j < i {
		t.Errorf("the removals do not come before the grants")
	}
	if strings.Contains(script, "It only adds") {
		t.Error("a script made with the previous policy says it only adds")
	}

	if again := prev.KafkaScript(prev); strings.Contains(again, "--remove") || strings.Contains(again, "--delete-config") {
		t.Errorf("the script of an unchanged policy takes something away:\n%s", again)
	}
	if alone := p.KafkaScript(nil); strings.Contains(alone, "--remove") || !strings.Contains(alone, "# It only adds") {
		t.Errorf("the script without the previous policy does not say that it only adds")
	}
	t.Logf("%d removals", removes)
}
