package schemas

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestSplitArrayAsEncodingJSON: where SplitArray answers, it gives exactly
// the elements encoding/json gives, and it never accepts what encoding/json
// refuses.
func TestSplitArrayAsEncodingJSON(t *testing.T) {
	var events []string
	for _, f := range append(schemaFixtures(t), handFixtures()...) {
		events = append(events, f.value(plainQuote, ""), f.value(plainQuote, " \n"))
	}
	inputs := []string{
		"[]", " [ ] ", "[1]", `[1,"a",{"b":[null,true,false]},-0.5e+3]`, "[ {\"id\":\"x\"} , {} ]\n",
		"[" + strings.Join(events, ",") + "]",
		"[" + strings.Join(events, " ,\n ") + "]",
		// Refused by both, or left to encoding/json.
		"", " ", "{}", "[", "]", "[,]", "[1,]", "[1 2]", "[1]x", "[1] [2]", `["a\x"]`, "[01]", "[1.]", "[-]",
		"[tru]", "[nul]", `[{"a" 1}]`, `[{"a":1,}]`, `[{1:2}]`, "[\"a\nb\"]", "[" + strings.Repeat("[", 200) + strings.Repeat("]", 200) + "]",
		"[\"\xff\"]", `["\ud800"]`,
	}
	answered := 0
	for _, in := range inputs {
		got, ok := SplitArray([]byte(in))
		var want []json.RawMessage
		err := json.Unmarshal([]byte(in), &want)
		if !ok {
			continue
		}
		answered++
		if err != nil {
			t.Errorf("SplitArray(%.60q) accepted what encoding/json refuses: %v", in, err)
			continue
		}
		gotRaw := make([]json.RawMessage, len(got))
		for i, g := range got {
			gotRaw[i] = g
		}
		if !reflect.DeepEqual(gotRaw, want) {
			t.Errorf("SplitArray(%.60q) = %q, encoding/json gives %q", in, got, want)
		}
	}
	// Invalid UTF-8 and lone surrogates ("\xff", "\ud800") are left to
	// encoding/json, as Decode leaves them to decodeStd.
	if answered < 7 {
		t.Errorf("SplitArray answered only %d inputs", answered)
	}
}

func FuzzSplitArray(f *testing.F) {
	for _, s := range []string{"[]", `[1,"a",{"b":[null]}]`, "[{}, {}]", "[1,]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := SplitArray(b)
		if !ok {
			return
		}
		var want []json.RawMessage
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d elements, encoding/json gives %d", len(got), len(want))
		}
		for i := range got {
			if string(got[i]) != string(want[i]) {
				t.Fatalf("element %d: %q, encoding/json gives %q", i, got[i], want[i])
			}
		}
	})
}
