package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// sameAsStd decodes in with Decode and with the encoding/json reference
// and fails unless both give the same event and the same error.
func sameAsStd(t testing.TB, name string, in Input) {
	t.Helper()
	got, gotErr := Decode(in)
	want, wantErr := decodeStd(in)
	if !reflect.DeepEqual(gotErr, wantErr) {
		t.Fatalf("%s: value %q\nDecode error    %v\ndecodeStd error %v", name, in.Value, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: value %q\nDecode    %#v\ndecodeStd %#v", name, in.Value, got, want)
	}
}

// member is one key and value of a JSON object whose order, duplicates
// and spelling the mutations control. A value is a string, a raw JSON
// text (rawJSON), an obj or a []string.
type member struct {
	key string
	val any
}

type obj []member

type rawJSON string

// render writes o as JSON; quote writes each string (key or value).
func render(o obj, quote func(string) string, space string) string {
	var b strings.Builder
	b.WriteString("{" + space)
	for i, m := range o {
		if i > 0 {
			b.WriteString(space + "," + space)
		}
		b.WriteString(quote(m.key) + space + ":" + space)
		switch v := m.val.(type) {
		case string:
			b.WriteString(quote(v))
		case rawJSON:
			b.WriteString(string(v))
		case obj:
			b.WriteString(render(v, quote, space))
		case []string:
			b.WriteString("[" + space)
			for j, s := range v {
				if j > 0 {
					b.WriteString("," + space)
				}
				b.WriteString(quote(s))
			}
			b.WriteString(space + "]")
		default:
			panic(fmt.Sprintf("member value %T", v))
		}
	}
	b.WriteString(space + "}")
	return b.String()
}

func plainQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// escapeQuote writes every character as a \u escape, non-BMP ones as a
// surrogate pair.
func escapeQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r > 0xffff {
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04X\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			continue
		}
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	b.WriteByte('"')
	return b.String()
}

// shortEscapeQuote uses the two-character escapes where it can.
func shortEscapeQuote(s string) string {
	r := strings.NewReplacer(`/`, `\/`, "\\", `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`, "\b", `\b`, "\f", `\f`, "\r", `\r`)
	return `"` + r.Replace(s) + `"`
}

// fixture is a valid event in mutable form.
type fixture struct {
	name  string
	env   obj // without data
	data  obj
	topic string
}

func (f fixture) value(quote func(string) string, space string) string {
	env := append(obj{}, f.env...)
	env = append(env, member{"data", f.data})
	return render(env, quote, space)
}

// schemaFixtures are the examples of every event type's JSON Schema, each
// wrapped in an envelope of its type, and the envelope schema's own
// examples.
func schemaFixtures(t testing.TB) []fixture {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("jsonschema", "*.schema.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no schemas: %v", err)
	}
	var out []fixture
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Title    string            `json:"title"`
			Examples []json.RawMessage `json:"examples"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		typ := Type(strings.TrimSuffix(filepath.Base(p), ".schema.json"))
		for i, ex := range doc.Examples {
			name := fmt.Sprintf("%s#%d", typ, i)
			if typ == "cloudevent" {
				env, data, ok := toObj(ex)
				if !ok {
					t.Fatalf("%s: example is not an object", name)
				}
				var d obj
				var e obj
				for _, m := range env {
					if m.key == "data" {
						d = data
						continue
					}
					e = append(e, m)
				}
				out = append(out, fixture{name: name, env: e, data: d})
				continue
			}
			src := SourceOf(typ)
			if src == "" {
				continue // not an event type (record, notification, …)
			}
			data, _, ok := toObj(ex)
			if !ok {
				t.Fatalf("%s: example is not an object", name)
			}
			out = append(out, fixture{name: name, topic: Topic(src), data: data, env: obj{
				{"specversion", "1.0"}, {"id", fmt.Sprintf("%s-%d", src, i)}, {"source", string(src)},
				{"type", string(typ)}, {"subject", validID}, {"time", "2026-03-01T00:00:00+08:00"},
				{"datacontenttype", "application/json"},
			}})
		}
	}
	return out
}

// toObj turns a flat JSON object (string, number and string-list members,
// and one level of nested object, returned as nested) into an obj.
func toObj(b []byte) (o, nested obj, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, false
		}
		key := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, false
		}
		var s string
		var list []string
		switch {
		case json.Unmarshal(raw, &s) == nil:
			o = append(o, member{key, s})
		case json.Unmarshal(raw, &list) == nil:
			o = append(o, member{key, list})
		case raw[0] == '{':
			n, _, ok := toObj(raw)
			if !ok {
				return nil, nil, false
			}
			nested = n
			o = append(o, member{key, n})
		default:
			o = append(o, member{key, rawJSON(raw)})
		}
	}
	return o, nested, true
}

// handFixtures cover what the schema examples do not: Chinese text, the
// number field, non-BMP characters, extension attributes.
func handFixtures() []fixture {
	envOf := func(src Source, typ Type, id string) obj {
		return obj{{"specversion", "1.0"}, {"id", id}, {"source", string(src)}, {"type", string(typ)},
			{"subject", validID}, {"time", "2025-12-31T23:59:59.123456789Z"}}
	}
	return []fixture{
		{name: "chinese names", topic: Topic(PublicSecurity), env: envOf(PublicSecurity, HukouRegistered, "公安-2026-龙"), data: obj{
			{"name", "欧阳娜娜"}, {"gender", "2"}, {"birth_date", "2001-06-18"}, {"ethnicity", "01"},
			{"address_code", "230102001001"}, {"household_id", "户H-001"}, {"relation", "女儿"}, {"reason", "birth"}}},
		{name: "non-BMP text", topic: Topic(Employment), env: envOf(Employment, ContractStarted, "emp-𠀀"), data: obj{
			{"contract_id", "C-𠀀"}, {"employer_id", "91350100M000100Y43"}, {"employer_name", "𠀀𠀁 科技 \"有限\" 公司"},
			{"work_region", "230102"}, {"start", "2026-01-01"}, {"end", "2027-01-01"}}},
		{name: "area", topic: Topic(Housing), env: envOf(Housing, PropertyRegistered, "hs-1"), data: obj{
			{"property_id", "P-1"}, {"address_code", "230102001001"}, {"acquired", "purchase"}, {"area_m2", rawJSON("88.25")}}},
		{name: "extensions", env: append(envOf(Tax, BusinessRegistered, "tax-1"),
			member{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			member{"dataschema", "https://pophub.dev/schemas/tax.business_registered.schema.json"},
			member{"ext", rawJSON(`{"a":[1,-2.5e3,true,false,null,{"b":"\u00e9"}],"c":[]}`)}),
			data: obj{{"business_id", "91350100M000100Y43"}, {"region", "230102"}, {"name", "龙江小吃"}}},
		{name: "insurances", topic: Topic(SocialInsurance), env: envOf(SocialInsurance, InsuranceEnrolled, "si-1"), data: obj{
			{"scheme", "employee"}, {"insurances", []string{"pension", "medical", "injury"}}, {"region", "230102"}, {"start", "2020-02-29"}}},
		{name: "divorce", topic: Topic(Marriage), env: envOf(Marriage, MarriageDivorced, "m-1"), data: obj{
			{"spouse_id", "11010519491231002X"}}},
		{name: "identity", env: envOf(PublicSecurity, IdentityCorrected, "ps-9"), data: obj{{"ethnicity", "02"}}},
	}
}

// mutations derives variants of f: every member removed, retyped,
// duplicated, renamed; extra members; other spellings of the same JSON.
func mutations(f fixture) map[string]string {
	out := map[string]string{}
	add := func(name, v string) { out[f.name+"/"+name] = v }
	with := func(env, data obj) fixture { return fixture{name: f.name, env: env, data: data} }
	v := f.value(plainQuote, "")
	add("original", v)
	add("indented", f.value(plainQuote, "\n\t "))
	add("escaped", f.value(escapeQuote, ""))
	add("short escapes", f.value(shortEscapeQuote, " "))
	var ind bytes.Buffer
	if json.Indent(&ind, []byte(v), "  ", "\t") == nil {
		add("json.Indent", ind.String())
	}
	for _, tail := range []string{" ", "\n\r\t", "x", "{}", "\x00", ",", "}", " null", "\xef\xbb\xbf"} {
		add("tail "+strconv.Quote(tail), v+tail)
	}
	for _, head := range []string{" ", "\xef\xbb\xbf", "[", "\t\n"} {
		add("head "+strconv.Quote(head), head+v)
	}
	values := []rawJSON{`5`, `-0`, `1e999`, `null`, `true`, `false`, `{}`, `[]`, `[null]`, `["pension",null]`, `["pension","pension"]`,
		`""`, `"x"`, `"龙江"`, `{"a":1}`, `"\ud800"`, `"\udc00\ud800"`, `"a\u0000b"`, `"\ud83d\ude00"`, `"\ud83d\u0041"`,
		"\"\xff\xfe\"", "\"\xed\xa0\x80\"", `"\/\b\f\n\r\t\\\""`, `0.000001`, `100000`, `1E5`, `2.5e-400`, `-1`, `"1990-01-01"`,
		`"230102"`, `"230102001001"`, `"11010519491231002X"`, `"2026-03-01T00:00:00Z"`, `"pension"`}
	for i, m := range f.env {
		rest := append(append(obj{}, f.env[:i]...), f.env[i+1:]...)
		add("env without "+m.key, with(rest, f.data).value(plainQuote, ""))
		for _, val := range values {
			e := append(obj{}, f.env...)
			e[i] = member{m.key, val}
			add("env "+m.key+" = "+string(val), with(e, f.data).value(plainQuote, ""))
		}
		for _, dup := range []any{m.val, rawJSON("null"), "other", rawJSON("7")} {
			e := append(append(obj{}, f.env...), member{m.key, dup})
			add(fmt.Sprintf("env %s twice, then %v", m.key, dup), with(e, f.data).value(plainQuote, ""))
			e = append(obj{{m.key, dup}}, f.env...)
			add(fmt.Sprintf("env %s twice, first %v", m.key, dup), with(e, f.data).value(plainQuote, ""))
		}
		for _, k := range []string{strings.ToUpper(m.key), strings.ToUpper(m.key[:1]) + m.key[1:], m.key + " ", "\u017f" + m.key} {
			e := append(obj{}, f.env...)
			e[i] = member{k, m.val}
			add("env key "+k, with(e, f.data).value(plainQuote, ""))
		}
		e := append(obj{}, f.env...)
		e[i] = member{m.key, m.val}
		add("env key escaped "+m.key, strings.Replace(with(e, f.data).value(plainQuote, ""), `"`+m.key+`"`, escapeQuote(m.key), 1))
	}
	for _, val := range values {
		add("data = "+string(val), strings.Replace(v, render(f.data, plainQuote, ""), string(val), 1))
	}
	for _, extra := range []member{{"traceparent", "x"}, {"Data", obj{}}, {"DATA", rawJSON("null")}, {"ext", rawJSON(`[[[[[[[[[[{}]]]]]]]]]]`)},
		{"", "empty key"}, {"spéc", "é"}, {"ext", rawJSON(strings.Repeat("[", 150) + strings.Repeat("]", 150))},
		{"ext", rawJSON(`[1,2`)}, {"ext", rawJSON(`{"a" 1}`)}, {"ext", rawJSON(`01`)}, {"ext", rawJSON(`1.`)}, {"ext", rawJSON(`.5`)},
		{"ext", rawJSON(`-`)}, {"ext", rawJSON(`tru`)}, {"ext", rawJSON(`nul`)}, {"ext", rawJSON(`"\x"`)}, {"ext", rawJSON(`"\u12"`)},
		{"ext", rawJSON("\"a\tb\"")}, {"ext", rawJSON(`"\'"`)}, {"ext", "\xff"}, {"ext", rawJSON(`1e+`)}, {"ext", rawJSON(`[1,]`)},
		{"ext", rawJSON(`{"a":1,}`)}, {"ext", rawJSON(`{,}`)}, {"ext", rawJSON(`{"a":1 "b":2}`)}} {
		add(fmt.Sprintf("env extra %q=%v", extra.key, extra.val), with(append(append(obj{}, f.env...), extra), f.data).value(plainQuote, ""))
	}
	for i, m := range f.data {
		rest := append(append(obj{}, f.data[:i]...), f.data[i+1:]...)
		add("data without "+m.key, with(f.env, rest).value(plainQuote, ""))
		for _, val := range values {
			d := append(obj{}, f.data...)
			d[i] = member{m.key, val}
			add("data "+m.key+" = "+string(val), with(f.env, d).value(plainQuote, ""))
		}
		for _, dup := range []any{m.val, rawJSON("null"), "other", []string{"medical"}, rawJSON("[]"), rawJSON("5")} {
			d := append(append(obj{}, f.data...), member{m.key, dup})
			add(fmt.Sprintf("data %s twice, then %v", m.key, dup), with(f.env, d).value(plainQuote, ""))
			d = append(obj{{m.key, dup}}, f.data...)
			add(fmt.Sprintf("data %s twice, first %v", m.key, dup), with(f.env, d).value(plainQuote, ""))
		}
		for _, k := range []string{strings.ToUpper(m.key), strings.ToUpper(m.key[:1]) + m.key[1:], "\u017f" + m.key[1:], m.key + "x"} {
			d := append(obj{}, f.data...)
			d[i] = member{k, m.val}
			add("data key "+k, with(f.env, d).value(plainQuote, ""))
		}
		d := append(obj{}, f.data...)
		add("data key escaped "+m.key, strings.Replace(with(f.env, d).value(plainQuote, ""), `"`+m.key+`"`, escapeQuote(m.key), 1))
	}
	add("data first", render(append(obj{{"data", f.data}}, f.env...), plainQuote, ""))
	for _, typ := range []any{f.env[3].val, "hukou.cancelled", "marriage.registered", rawJSON("null"), rawJSON("1")} {
		e := append(append(obj{}, f.env...), member{"data", f.data}, member{"type", typ})
		add(fmt.Sprintf("type %v after data", typ), render(e, plainQuote, ""))
		e = append(append(obj{{"type", typ}}, f.env...), member{"data", f.data})
		add(fmt.Sprintf("type %v before type", typ), render(e, plainQuote, ""))
		e = append(append(obj{}, f.env...), member{"data", f.data}, member{"data", obj{{"reason", "death"}}}, member{"type", typ})
		add(fmt.Sprintf("two data, type %v after", typ), render(e, plainQuote, ""))
	}
	add("data extra", with(f.env, append(append(obj{}, f.data...), member{"extra", "x"})).value(plainQuote, ""))
	add("data empty", with(f.env, obj{}).value(plainQuote, ""))
	add("data nested", with(f.env, append(obj{{"extra", obj{{"a", "b"}}}}, f.data...)).value(plainQuote, ""))
	for _, n := range []int{1, 2, 3, 7, 20, 50, 100, len(v) / 2, len(v) - 40, len(v) - 10, len(v) - 2, len(v) - 1} {
		if n > 0 && n < len(v) {
			add(fmt.Sprintf("truncated to %d", n), v[:n])
		}
	}
	return out
}

// diffCorpus is every fixture with its mutations, by name.
func diffCorpus(t testing.TB) (map[string]string, []fixture) {
	fixtures := append(schemaFixtures(t), handFixtures()...)
	all := map[string]string{}
	for _, f := range fixtures {
		for name, v := range mutations(f) {
			all[name] = v
		}
	}
	// Every truncation of a few events.
	for _, f := range fixtures[:3] {
		v := f.value(plainQuote, "")
		for n := range len(v) {
			all[fmt.Sprintf("%s/every truncation %d", f.name, n)] = v[:n]
		}
	}
	for name, v := range map[string]string{
		"empty": "", "space": " ", "null": "null", "string": `"event"`, "number": "1", "array": "[1,2]", "empty object": "{}",
		"object of nulls":   `{"specversion":null,"id":null,"source":null,"type":null,"subject":null,"time":null,"data":null}`,
		"deep":              strings.Repeat("[", 20000) + strings.Repeat("]", 20000),
		"deep in extension": `{"ext":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
		"big extension":     `{"ext":"` + strings.Repeat("龙", 1<<18) + `",` + handFixtures()[0].value(plainQuote, "")[1:],
		"binary":            "\x00\x01",
	} {
		all["special/"+name] = v
	}
	return all, fixtures
}

// TestDecodeSameAsStd: the scanner and encoding/json agree on every
// fixture and mutation, for inputs from Kafka and from elsewhere.
func TestDecodeSameAsStd(t *testing.T) {
	corpus, _ := diffCorpus(t)
	if len(corpus) < 500 {
		t.Fatalf("only %d inputs", len(corpus))
	}
	accepted := 0
	for name, v := range corpus {
		for _, in := range []Input{
			{Value: []byte(v), Now: fixedNow},
			{Value: []byte(v), Now: fixedNow, Topic: "pop.events.housing", Key: []byte(validID)},
			{Value: []byte(v), Now: fixedNow, Key: []byte{}},
			{Value: []byte(v)},
		} {
			sameAsStd(t, name, in)
		}
		if _, err := Decode(Input{Value: []byte(v), Now: fixedNow}); err == nil {
			accepted++
		}
	}
	t.Logf("%d inputs, %d accepted", len(corpus), accepted)
	if accepted < 100 {
		t.Errorf("only %d of %d inputs are accepted: the corpus no longer exercises the accepting path", accepted, len(corpus))
	}
}

// TestDecodeFixturesValid: every fixture is itself a valid event, so the
// mutations start from the accepting path.
func TestDecodeFixturesValid(t *testing.T) {
	_, fixtures := diffCorpus(t)
	for _, f := range fixtures {
		v := []byte(f.value(plainQuote, ""))
		if _, err := Decode(Input{Topic: f.topic, Value: v, Now: fixedNow}); err != nil {
			t.Errorf("%s: %v", f.name, err)
		}
		// The scanner reads them itself, without falling back.
		var a attrs
		s := scanner{b: v}
		if !s.envelope(&a) {
			t.Errorf("%s: the scanner hands the envelope to encoding/json", f.name)
			continue
		}
		ds := scanner{b: a.data}
		if !ds.data(NewData(Type(a.typ))) {
			t.Errorf("%s: the scanner hands it to encoding/json", f.name)
		}
	}
}

// TestDataFieldCoversTags: dataField knows every json tag of every
// catalogue struct, pointing at that field, and nothing else.
func TestDataFieldCoversTags(t *testing.T) {
	for _, typ := range Types() {
		d := NewData(typ)
		rv := reflect.ValueOf(d).Elem()
		for i := range rv.NumField() {
			sf := rv.Type().Field(i)
			tag, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			f := dataField(d, []byte(tag))
			var ptr any
			switch {
			case f.str != nil:
				ptr = f.str
			case f.list != nil:
				ptr = f.list
			case f.num != nil:
				ptr = f.num
			case f.id != nil:
				ptr = f.id
			}
			if ptr == nil || reflect.ValueOf(ptr).Pointer() != rv.Field(i).Addr().Pointer() ||
				reflect.TypeOf(ptr).Elem() != sf.Type {
				t.Errorf("%s: dataField(%q) does not point at %s", typ, tag, sf.Name)
			}
			if f := dataField(d, []byte(strings.ToUpper(tag))); f != (field{}) {
				t.Errorf("%s: dataField(%q) matches", typ, strings.ToUpper(tag))
			}
		}
		if f := dataField(d, []byte("unknown")); f != (field{}) {
			t.Errorf("%s: dataField(unknown) matches", typ)
		}
	}
}

// TestUnquote: escapes as encoding/json resolves them; a string that is
// not UTF-8 or holds a lone surrogate escape, which encoding/json reads as
// U+FFFD, is left to decodeStd (which rejects the value).
func TestUnquote(t *testing.T) {
	for _, raw := range []string{`a`, `\u00e9`, `\ud83d\ude00`, `\u0000`, `\uFFFD`, `\uDBFF\uDFFF`, `\\ud83d`, "\uFFFD",
		"龙", `\/\"\\\b\f\n\r\t`} {
		var want string
		if err := json.Unmarshal([]byte(`"`+raw+`"`), &want); err != nil {
			t.Fatal(err)
		}
		s := scanner{b: []byte(`"` + raw + `"`)}
		got, ok := s.stringValue()
		if !ok || got != want {
			t.Errorf("%q: got %q, %v, want %q", raw, got, ok, want)
		}
	}
	for _, raw := range []string{`\ud83d`, `\ude00`, `\ud83d\ud83d\ude00`, `\ud83dx`, `\ud83d\n`, `\ud83d\\ude00`, `\ude00\ud83d`,
		"\xff", "\xed\xa0\x80", "龙\xe9", "\xe9"} {
		s := scanner{b: []byte(`"` + raw + `"`)}
		if got, ok := s.stringValue(); ok {
			t.Errorf("%q: got %q, want it left to decodeStd", raw, got)
		}
	}
}
