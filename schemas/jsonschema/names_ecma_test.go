package jsonschema

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/pophub/pophub/internal/testenv"

	"github.com/pophub/pophub/schemas"
)

// TestNamePatternUnderECMA262: a department whose system is written in
// JavaScript validates with $defs/name as ECMA-262 reads it, with or
// without the u flag, and is told by it what the hub refuses. The one
// difference there is documented in the description: a name cut to a
// length in UTF-16 units (JavaScript's substring) can end in half of 𠮷,
// which JSON.stringify writes as "\ud842"; the pattern matches it, and
// the hub refuses the event as not_json.
func TestNamePatternUnderECMA262(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Unavailable(t, "node is not installed (Debian package nodejs): %v", err)
	}
	names := []string{
		"张三", "阿依古丽·买买提", "J. R. Smith", "阿依古丽.M", "𠮷野家", "野家𠮷", "ᠪᠠᠲᠤ\u180eᠶᠠ", "葛\U000E0100",
		"张\u00ad三", "张\u2063三", "\u3164\u3164", "张三\u115f", "张三\u180e", "\u180e", "阿依古丽.买买提",
		"阿依古丽。买买提", "豈.更", " 张三", "张\u200b三",
	}
	in, _ := json.Marshal(names)
	script := `const d=require(process.argv[1]).$defs.name; const ok=(n,f)=>new RegExp(d.pattern,f).test(n)&&!new RegExp(d.not.pattern,f).test(n);` +
		`const names=JSON.parse(process.argv[2]); names.push("张\ud842");` +
		`console.log(JSON.stringify(names.map(n=>[ok(n,""),ok(n,"u")])))`
	out, err := exec.Command(node, "-e", script, "./defs.schema.json", string(in)).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v: %s", err, out)
	}
	var got [][2]bool
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(names)+1 {
		t.Fatalf("node wrote %s (%v)", out, err)
	}
	for i, name := range names {
		_, hubErr := decodeName(name)
		if got[i][0] != (hubErr == nil) || got[i][1] != (hubErr == nil) {
			t.Errorf("name %+q: ECMA-262 accepts it (non-u, u): %v, the hub: %v", name, got[i], hubErr)
		}
	}
	if hubErr := decodeData(schemas.IdentityCorrected, []byte(`{"name":"张\ud842"}`)); hubErr == nil || got[len(names)] != [2]bool{true, true} {
		t.Errorf("name \"张\\ud842\": ECMA-262 accepts it (non-u, u): %v, the hub: %v; the description says the pattern matches it and the hub refuses it", got[len(names)], hubErr)
	}
	var defs struct {
		Defs map[string]struct{ Description string } `json:"$defs"`
	}
	readJSON(t, "defs.schema.json", &defs)
	if !strings.Contains(defs.Defs["name"].Description, "lone UTF-16 surrogate") {
		t.Error("$defs/name's description does not say that ECMA-262 matches a lone UTF-16 surrogate the hub refuses")
	}
}
