package schemas

import (
	"encoding/json"
	"errors"
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

// TestDelimitArray: the elements of an array whose structure is intact are
// delimited even where an element is not valid JSON; where the structure is
// broken, the error names the byte and the element.
func TestDelimitArray(t *testing.T) {
	tests := []struct {
		in     string
		want   []string // the elements; nil when refused
		offset int      // of the refusal
		index  int      // of the refusal
		reason string   // in the refusal
	}{
		{in: "[]", want: []string{}},
		{in: " [ 1 , {\"a\":[2]} ] \n", want: []string{"1", `{"a":[2]}`}},
		{in: "[{\"a\":\"x\ty\"},2]", want: []string{"{\"a\":\"x\ty\"}", "2"}},
		{in: `[{"a":"\x"},"\"]"]`, want: []string{`{"a":"\x"}`, `"\"]"`}},
		{in: "[tru,01,-,NaN,\"\xff\"]", want: []string{"tru", "01", "-", "NaN", "\"\xff\""}},
		{in: `[{"a":1,"a":2},{"A":1}]`, want: []string{`{"a":1,"a":2}`, `{"A":1}`}},

		{in: "", offset: 0, index: -1, reason: "not a JSON array"},
		{in: ` {"a":1}`, offset: 1, index: -1, reason: "not a JSON array"},
		{in: "[", offset: 1, index: 0, reason: "ends before the array is closed"},
		{in: `[1,{"a":`, offset: 8, index: 1, reason: "ends before the array is closed"},
		{in: `[1,{"a":"x}]`, offset: 12, index: 1, reason: "ends inside a string"},
		{in: `[1,{"a":"x"]]`, offset: 11, index: 1, reason: "','"},
		{in: `[1,{"a" 1}]`, offset: 8, index: 1, reason: "':'"},
		{in: `[1,{a:1}]`, offset: 4, index: 1, reason: "member name"},
		{in: `[1,{"a":1,}]`, offset: 10, index: 1, reason: "member name"},
		{in: `[1 2]`, offset: 3, index: 0, reason: "','"},
		{in: `[1,]`, offset: 3, index: 1, reason: "value"},
		{in: `[,1]`, offset: 1, index: 0, reason: "value"},
		{in: `[1,'a']`, offset: 3, index: 1, reason: "value"},
		{in: `[1] [2]`, offset: 4, index: -1, reason: "after the array"},
		{in: "[" + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "]", offset: 10000, index: 0, reason: "deeper"},
	}
	for _, tc := range tests {
		got, err := DelimitArray([]byte(tc.in))
		if tc.want != nil {
			if err != nil {
				t.Errorf("DelimitArray(%.40q): %v", tc.in, err)
				continue
			}
			gotS := make([]string, len(got))
			for i, g := range got {
				gotS[i] = string(g)
			}
			if !reflect.DeepEqual(gotS, tc.want) {
				t.Errorf("DelimitArray(%.40q) = %q, want %q", tc.in, gotS, tc.want)
			}
			continue
		}
		var ae *ArrayError
		if !errors.As(err, &ae) {
			t.Errorf("DelimitArray(%.40q) = %q, %v; want an *ArrayError", tc.in, got, err)
			continue
		}
		if ae.Offset != tc.offset || ae.Index != tc.index || !strings.Contains(ae.Reason, tc.reason) {
			t.Errorf("DelimitArray(%.40q): %+v, want byte %d, element %d, a reason saying %q", tc.in, *ae, tc.offset, tc.index, tc.reason)
		}
	}
}

// TestDelimitArrayAsEncodingJSON: on what encoding/json reads as an array,
// DelimitArray gives the same elements; and when each element it gives is
// valid JSON, encoding/json reads the array as it does. So an invalid
// element's index is the index the department gave it.
func TestDelimitArrayAsEncodingJSON(t *testing.T) {
	var events []string
	for _, f := range append(schemaFixtures(t), handFixtures()...) {
		events = append(events, f.value(plainQuote, ""), f.value(plainQuote, " \n"))
	}
	inputs := []string{
		"[]", " [ ] ", "[1]", `[1,"a",{"b":[null,true,false]},-0.5e+3]`, "[ {\"id\":\"x\"} , {} ]\n",
		"[" + strings.Join(events, ",") + "]",
		"[" + strings.Join(events, " ,\n ") + "]",
		"", " ", "{}", "[", "]", "[,]", "[1,]", "[1 2]", "[1]x", "[1] [2]", `["a\x"]`, "[01]", "[1.]", "[-]",
		"[tru]", "[nul]", `[{"a" 1}]`, `[{"a":1,}]`, `[{1:2}]`, "[\"a\nb\"]", "[" + strings.Repeat("[", 200) + strings.Repeat("]", 200) + "]",
		"[\"\xff\"]", `["\ud800"]`, `[{"a":1,"a":2}]`, `[{"\u0061":1}]`, "[\"\\\"\",\"\\\\\"]",
		"[" + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + "]",
		"[" + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "]",
	}
	for _, in := range inputs {
		checkDelimitArray(t, []byte(in))
	}
}

func FuzzDelimitArray(f *testing.F) {
	for _, s := range []string{"[]", `[1,"a",{"b":[null]}]`, "[{}, {}]", "[1,]", "[\"\t\", tru]", `[{"a":"\x"}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDelimitArray(t, b) })
}

// checkDelimitArray checks DelimitArray against encoding/json on b.
func checkDelimitArray(t *testing.T, b []byte) {
	t.Helper()
	got, err := DelimitArray(b)
	var want []json.RawMessage
	stdErr := json.Unmarshal(b, &want)
	if stdErr == nil && want == nil {
		if err == nil {
			t.Errorf("DelimitArray(%.60q) = %q, encoding/json reads null", b, got)
		}
		return // null: encoding/json reads no array, and DelimitArray refuses it
	}
	if stdErr == nil {
		if err != nil {
			t.Errorf("DelimitArray(%.60q): %v; encoding/json reads %d elements", b, err, len(want))
			return
		}
		if len(got) != len(want) {
			t.Errorf("DelimitArray(%.60q): %d elements, encoding/json gives %d", b, len(got), len(want))
			return
		}
		for i := range got {
			if string(got[i]) != string(want[i]) {
				t.Errorf("DelimitArray(%.60q): element %d is %q, encoding/json gives %q", b, i, got[i], want[i])
			}
		}
		return
	}
	if err != nil {
		return
	}
	for _, e := range got {
		if !json.Valid(e) {
			return // the element is reported, at its index
		}
	}
	t.Errorf("DelimitArray(%.60q) gave only valid elements; encoding/json refuses the array: %v", b, stdErr)
}
