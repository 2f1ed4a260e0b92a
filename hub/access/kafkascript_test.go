package access

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
		"$KC --alter --entity-type users --entity-name marriage --delete-config SCRAM-SHA-512 || echo",
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
	if i, j, k := strings.Index(script, "--remove"), strings.Index(script, "--add"), strings.Index(script, "--delete-config"); i < 0 || j < i || k < strings.LastIndex(script, "--add") {
		t.Errorf("the script does not remove ACLs first, grant next and delete users last")
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

// stubKafkaTools puts kafka-configs.sh and kafka-acls.sh on PATH that
// behave as a broker does where it matters here: they log every call, and
// deleting a SCRAM credential that the cluster does not have fails
// (AlterUserScramCredentials answers RESOURCE_NOT_FOUND, "Attempt to
// delete a user credential that does not exist"; kfake's
// 51_alter_user_scram_credentials.go does the same), so kafka-configs.sh
// exits 1. users is the file of users that have a credential.
func stubKafkaTools(t *testing.T) (dir, calls, users string) {
	t.Helper()
	dir = t.TempDir()
	calls, users = filepath.Join(dir, "calls"), filepath.Join(dir, "users")
	// Every call authenticates as the user its --command-config file
	// names (user=NAME): a broker refuses a user without a credential.
	auth := `for a in "$@"; do case "$prev" in --command-config) u=$(sed -n 's/^user=//p' "$a"); [ -z "$u" ] || grep -qx "$u" "` + users + `" || { echo "Authentication failed for $u" >&2; exit 1; };; esac; prev="$a"; done
`
	configs := `#!/bin/sh
echo "kafka-configs.sh $*" >> "` + calls + `"
` + auth + `name=""; del=""; add=""
while [ $# -gt 0 ]; do
  case "$1" in
    --entity-name) name="$2"; shift;;
    --delete-config) del=1;;
    --add-config) add=1;;
  esac
  shift
done
touch "` + users + `"
if [ -n "$del" ]; then
  grep -qx "$name" "` + users + `" || { echo "Error while executing config command with args: Attempt to delete a user credential that does not exist" >&2; exit 1; }
  grep -vx "$name" "` + users + `" > "` + users + `.new" || true
  mv "` + users + `.new" "` + users + `"
fi
if [ -n "$add" ]; then
  grep -qx "$name" "` + users + `" || echo "$name" >> "` + users + `"
fi
exit 0
`
	acls := `#!/bin/sh
echo "kafka-acls.sh $*" >> "` + calls + `"
` + auth + `exit 0
`
	for name, text := range map[string]string{"kafka-configs.sh": configs, "kafka-acls.sh": acls} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, calls, users
}

// runScript runs a kafka-acls script with the stubs and the example's
// Kafka password variables set.
func runScript(t *testing.T, script, dir string, env ...string) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "acls.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", path)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "KAFKA_BOOTSTRAP=127.0.0.1:9092", "KAFKA_ADMIN_CONFIG=/dev/null")
	cmd.Env = append(cmd.Env, env...)
	for _, line := range strings.Split(script, "\n") {
		if i := strings.Index(line, "${POPHUB_KAFKA_PW_"); i >= 0 {
			v := line[i+2:]
			v = v[:strings.Index(v, ":?}")]
			cmd.Env = append(cmd.Env, v+"=pw-"+v)
		}
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestKafkaScriptRunsAgain: the script of a narrowed policy deletes the
// SCRAM user of an identity gone, and a broker refuses to delete a
// credential it does not have; the script still runs whole a second time
// (after a failure half way, on a second cluster, on a cluster where the
// user was removed by hand), under set -e, grants included.
func TestKafkaScriptRunsAgain(t *testing.T) {
	b, err := os.ReadFile("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	example := string(b)
	from, to := strings.Index(example, "  - name: marriage\n"), strings.Index(example, "  - name: si-harbin\n")
	if from < 0 || to < from {
		t.Fatal("the example policy no longer has marriage before si-harbin")
	}
	narrowed := example[:from] + example[to:] // the marriage department is gone
	p, err := Parse([]byte(narrowed))
	if err != nil {
		t.Fatal(err)
	}
	script := p.KafkaScript(examplePolicy(t))
	dir, calls, users := stubKafkaTools(t)

	// The cluster as the previous policy's script left it.
	if out, err := runScript(t, examplePolicy(t).KafkaScript(nil), dir); err != nil {
		t.Fatalf("setting the cluster up: %v\n%s", err, out)
	}
	if out, err := runScript(t, script, dir); err != nil {
		t.Fatalf("the first run of the narrowed script failed: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(users)
	if strings.Contains(string(got), "marriage\n") {
		t.Fatalf("marriage still has a credential after the first run: %s", got)
	}
	os.Remove(calls)
	out, err := runScript(t, script, dir)
	log, _ := os.ReadFile(calls)
	if err != nil || !strings.Contains(string(log), "--add --allow-principal User:hub") {
		t.Errorf("running the same script again stops at the deletion of a user already gone (err %v), "+
			"so none of the policy's grants is applied:\n%s\ncalls:\n%s", err, out, log)
	}
}

// TestKafkaScriptKeepsItsOwnAdmin: the administrator is renamed (admin
// becomes ops-admin). Until the brokers restart with the new super.users
// the only superuser they know is admin, so the script runs as admin;
// it must create ops-admin and leave admin's user in place (saying when
// to delete it), not delete the user it runs as and stop.
func TestKafkaScriptKeepsItsOwnAdmin(t *testing.T) {
	b, err := os.ReadFile("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	example := string(b)
	if strings.Count(example, "  - name: admin\n") != 1 {
		t.Fatal("the example policy no longer has one identity named admin")
	}
	p, err := Parse([]byte(strings.Replace(example, "  - name: admin\n", "  - name: ops-admin\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	dir, calls, users := stubKafkaTools(t)
	adminConfig := filepath.Join(t.TempDir(), "admin.properties")
	if err := os.WriteFile(adminConfig, []byte("user=admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users, []byte("admin\n"), 0o600); err != nil { // bootstrapped by hand
		t.Fatal(err)
	}
	if out, err := runScript(t, examplePolicy(t).KafkaScript(nil), dir, "KAFKA_ADMIN_CONFIG="+adminConfig); err != nil {
		t.Fatalf("setting the cluster up: %v\n%s", err, out)
	}
	os.Remove(calls)
	out, err := runScript(t, p.KafkaScript(examplePolicy(t)), dir, "KAFKA_ADMIN_CONFIG="+adminConfig)
	got, _ := os.ReadFile(users)
	if err != nil || !strings.Contains(string(got), "ops-admin\n") {
		log, _ := os.ReadFile(calls)
		t.Errorf("the script run by the administrator the brokers know (err %v) never creates ops-admin; users now: %q\n%s\ncalls:\n%s", err, got, out, log)
	}
	if !slices.Contains(strings.Split(string(got), "\n"), "admin") || !strings.Contains(out+p.KafkaScript(examplePolicy(t)), "admin was an administrator: once the brokers run with the new super.users, delete it") {
		t.Errorf("the script deleted the administrator it runs as, or does not say when to; users now: %q", got)
	}
}
