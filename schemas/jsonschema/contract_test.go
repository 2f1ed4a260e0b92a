package jsonschema

import (
	"encoding/json"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// readYAML reads an embedded YAML document as generic values.
func readYAML(t testing.TB, name string) map[string]any {
	t.Helper()
	b, err := fs.ReadFile(FS(), name)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parsing %s: %v", name, err)
	}
	return doc
}

// pointer resolves a JSON pointer ("/components/messages/x") in doc.
func pointer(doc any, ptr string) (any, bool) {
	if ptr == "" {
		return doc, true
	}
	cur := doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// refs collects every $ref value under v.
func refs(v any, out *[]string) {
	switch c := v.(type) {
	case map[string]any:
		for k, x := range c {
			if s, ok := x.(string); ok && k == "$ref" {
				*out = append(*out, s)
			}
			refs(x, out)
		}
	case []any:
		for _, x := range c {
			refs(x, out)
		}
	}
}

// resolve follows a $ref found in document name: "#/ptr" within it,
// "file.json" or "file.json#/ptr" in another embedded document.
func resolve(t testing.TB, name string, doc any, ref string) (any, bool) {
	t.Helper()
	file, ptr, _ := strings.Cut(ref, "#")
	if file == "" {
		return pointer(doc, ptr)
	}
	b, err := fs.ReadFile(FS(), file)
	if err != nil {
		return nil, false
	}
	var other any
	if err := json.Unmarshal(b, &other); err != nil {
		t.Fatalf("%s (referred to by %s): %v", file, name, err)
	}
	return pointer(other, ptr)
}

// TestEveryRefResolves: every $ref in the AsyncAPI and OpenAPI documents
// and in the schemas leads to an existing file and location.
func TestEveryRefResolves(t *testing.T) {
	names, _ := fs.Glob(FS(), "*.schema.json")
	docs := map[string]any{}
	for _, n := range names {
		var d any
		readJSON(t, n, &d)
		docs[n] = d
	}
	docs["asyncapi.yaml"] = readYAML(t, "asyncapi.yaml")
	docs["openapi.yaml"] = readYAML(t, "openapi.yaml")
	fileRefs := map[string]int{}
	for name, doc := range docs {
		var rs []string
		refs(doc, &rs)
		for _, r := range rs {
			if _, ok := resolve(t, name, doc, r); !ok {
				t.Errorf("%s: $ref %q does not resolve", name, r)
			}
			if f, _, _ := strings.Cut(r, "#"); f != "" && strings.HasSuffix(name, ".yaml") {
				fileRefs[name]++
			}
		}
	}
	for _, n := range []string{"asyncapi.yaml", "openapi.yaml"} {
		if fileRefs[n] == 0 {
			t.Errorf("%s refers to no schema file", n)
		}
	}
}

// TestAsyncAPIChannels: one channel per source topic carrying exactly that
// source's types keyed by citizen ID, the DLQ with the headers the consumer
// writes, and the three notification families with Nats-Msg-Id.
func TestAsyncAPIChannels(t *testing.T) {
	doc := readYAML(t, "asyncapi.yaml")
	if doc["asyncapi"] != "3.0.0" {
		t.Errorf("asyncapi version %v", doc["asyncapi"])
	}
	channels, _ := doc["channels"].(map[string]any)
	message := func(ch map[string]any) map[string]any {
		t.Helper()
		msgs, _ := ch["messages"].(map[string]any)
		if len(msgs) != 1 {
			t.Fatalf("channel %v has %d messages, want 1", ch["address"], len(msgs))
		}
		for _, m := range msgs {
			ref, _ := m.(map[string]any)["$ref"].(string)
			v, ok := resolve(t, "asyncapi.yaml", doc, ref)
			if !ok {
				t.Fatalf("message %q does not resolve", ref)
			}
			return v.(map[string]any)
		}
		return nil
	}
	byType := map[schemas.Source][]string{}
	for _, typ := range schemas.Types() {
		byType[schemas.SourceOf(typ)] = append(byType[schemas.SourceOf(typ)], string(typ))
	}
	var addresses []string
	for _, c := range channels {
		ch := c.(map[string]any)
		addr, _ := ch["address"].(string)
		addresses = append(addresses, addr)
		m := message(ch)
		switch {
		case schemas.SourceOfTopic(addr) != "":
			src := schemas.SourceOfTopic(addr)
			key, _ := pointer(m, "/bindings/kafka/key/$ref")
			if key != "#/components/schemas/citizenIdKey" {
				t.Errorf("%s: record key %v", addr, key)
			}
			payload, _ := pointer(m, "/payload/allOf")
			parts, _ := payload.([]any)
			if len(parts) != 2 || parts[0].(map[string]any)["$ref"] != "cloudevent.schema.json" {
				t.Fatalf("%s: payload is not the CloudEvent envelope narrowed to the source: %v", addr, payload)
			}
			if c, _ := pointer(parts[1], "/properties/source/const"); c != string(src) {
				t.Errorf("%s: source %v", addr, c)
			}
			enum, _ := pointer(parts[1], "/properties/type/enum")
			var types []string
			for _, e := range enum.([]any) {
				types = append(types, e.(string))
			}
			if !slices.Equal(sorted(types), byType[src]) {
				t.Errorf("%s: types %v, want %v", addr, types, byType[src])
			}
		case addr == schemas.DLQTopic:
			hs, _ := pointer(m, "/headers/properties")
			var got []string
			for h := range hs.(map[string]any) {
				got = append(got, h)
			}
			want := []string{ingest.HeaderReason, ingest.HeaderField, ingest.HeaderError, ingest.HeaderTopic, ingest.HeaderPartition, ingest.HeaderOffset, ingest.HeaderDropped, ingest.HeaderReplayOf}
			if !slices.Equal(sorted(got), sorted(want)) {
				t.Errorf("DLQ headers %v, want %v", got, want)
			}
			reasons, _ := pointer(m, "/headers/properties/"+ingest.HeaderReason+"/enum")
			var rs []string
			for _, r := range reasons.([]any) {
				rs = append(rs, r.(string))
			}
			if !slices.Equal(sorted(rs), sorted(schemas.Reasons)) {
				t.Errorf("DLQ reasons %v, want %v", rs, schemas.Reasons)
			}
			if f, _ := pointer(m, "/payload/format"); f != "binary" {
				t.Errorf("DLQ payload format %v, want the original bytes", f)
			}
		case addr == "popdlq.{subscriber}":
			// The subscriber SDK's dead letters (consumers/sdk checks
			// its subjects and headers against this channel).
			if ref, _ := pointer(m, "/payload/$ref"); ref != "notification.schema.json" {
				t.Errorf("%s: payload %v", addr, ref)
			}
			if _, ok := pointer(ch, "/parameters/subscriber"); !ok {
				t.Errorf("%s: parameter subscriber not declared", addr)
			}
		case strings.HasPrefix(addr, "pop."):
			want := "notification.schema.json"
			if strings.HasPrefix(addr, "pop.eligibility.") {
				want = "eligibility.schema.json"
			}
			if ref, _ := pointer(m, "/payload/$ref"); ref != want {
				t.Errorf("%s: payload %v", addr, ref)
			}
			req, _ := pointer(m, "/headers/required")
			if rs, _ := req.([]any); !slices.Contains(rs, any("Nats-Msg-Id")) {
				t.Errorf("%s: Nats-Msg-Id is not a required header", addr)
			}
			// Every {parameter} of the address is declared.
			for _, p := range strings.Split(addr, ".") {
				if strings.HasPrefix(p, "{") {
					if _, ok := pointer(ch, "/parameters/"+strings.Trim(p, "{}")); !ok {
						t.Errorf("%s: parameter %s not declared", addr, p)
					}
				}
			}
		default:
			t.Errorf("unexpected channel %s", addr)
		}
	}
	sort.Strings(addresses)
	want := append(schemas.Topics(), schemas.DLQTopic,
		"pop.changed.{province}.{city}.{county}.{section}",
		"pop.death.{province}.{city}.{county}",
		"pop.eligibility.{policy}.{province}.{city}.{county}",
		"pop.migration.{fromProvince}.{fromCity}.{fromCounty}.{toProvince}.{toCity}.{toCounty}",
		"popdlq.{subscriber}")
	sort.Strings(want)
	if !slices.Equal(addresses, want) {
		t.Errorf("channels %v\nwant %v", addresses, want)
	}
	// The section parameter lists the golden-record sections.
	sec, _ := pointer(doc, "/channels/changed/parameters/section/enum")
	var secs []string
	for _, s := range sec.([]any) {
		secs = append(secs, s.(string))
	}
	if !slices.Equal(sorted(secs), sorted(schemas.Sections)) {
		t.Errorf("section parameter %v", secs)
	}
}

// TestSubjectsFitTheChannels: the subjects the builders produce have the
// shape of the AsyncAPI addresses (one token per parameter).
func TestSubjectsFitTheChannels(t *testing.T) {
	tests := []struct{ subject, address string }{
		{schemas.ChangedSubject("230102001001", schemas.SecHukou), "pop.changed.{province}.{city}.{county}.{section}"},
		{schemas.ChangedSubject("", schemas.SecTax), "pop.changed.{province}.{city}.{county}.{section}"},
		{schemas.MigrationSubject("230102001001", "330602001004"), "pop.migration.{fromProvince}.{fromCity}.{fromCounty}.{toProvince}.{toCity}.{toCounty}"},
		{schemas.DeathSubject("230102001001"), "pop.death.{province}.{city}.{county}"},
		{schemas.EligibilitySubject("heilongjiang/daqing", "230602"), "pop.eligibility.{policy}.{province}.{city}.{county}"},
		{schemas.EligibilitySubject("residence-permit/jilin", ""), "pop.eligibility.{policy}.{province}.{city}.{county}"},
	}
	for _, tc := range tests {
		s, a := strings.Split(tc.subject, "."), strings.Split(tc.address, ".")
		if len(s) != len(a) {
			t.Errorf("%s has %d tokens, %s has %d", tc.subject, len(s), tc.address, len(a))
			continue
		}
		for i := range a {
			if !strings.HasPrefix(a[i], "{") && a[i] != s[i] {
				t.Errorf("%s does not fit %s", tc.subject, tc.address)
			}
		}
	}
}

// TestDocumentExamplesValidate: the examples in every schema and in the
// OpenAPI document validate against the schemas they illustrate.
func TestDocumentExamplesValidate(t *testing.T) {
	v := validator(t)
	names, _ := fs.Glob(FS(), "*.schema.json")
	n := 0
	for _, name := range names {
		var doc struct {
			Examples []json.RawMessage `json:"examples"`
		}
		readJSON(t, name, &doc)
		if name != "defs.schema.json" && name != "cloudevent.schema.json" && len(doc.Examples) == 0 {
			t.Errorf("%s has no examples", name)
		}
		for i, ex := range doc.Examples {
			n++
			if err := v.validate(name, ex); err != nil {
				t.Errorf("%s example %d: %v", name, i, err)
			}
		}
	}

	oa := readYAML(t, "openapi.yaml")
	var contents []any
	var walk func(x any)
	walk = func(x any) {
		switch c := x.(type) {
		case map[string]any:
			if ct, ok := c["content"].(map[string]any); ok {
				for _, m := range ct {
					contents = append(contents, m)
				}
			}
			for _, y := range c {
				walk(y)
			}
		case []any:
			for _, y := range c {
				walk(y)
			}
		}
	}
	walk(oa)
	covered := map[string]bool{}
	for _, c := range contents {
		m := c.(map[string]any)
		var values []any
		if ex, ok := m["example"]; ok {
			values = append(values, ex)
		}
		if exs, ok := m["examples"].(map[string]any); ok {
			for _, e := range exs {
				values = append(values, e.(map[string]any)["value"])
			}
		}
		schema, _ := m["schema"].(map[string]any)
		file, _ := schema["$ref"].(string)
		items := false
		if file == "" {
			if ref, ok := pointer(schema, "/items/$ref"); ok {
				file, items = ref.(string), true
			}
		}
		if !strings.HasSuffix(file, ".schema.json") {
			continue
		}
		if len(values) == 0 {
			t.Errorf("openapi.yaml: a %s response has no example", file)
		}
		for _, val := range values {
			list := []any{val}
			if items {
				list, _ = val.([]any)
			}
			for _, item := range list {
				b, err := json.Marshal(item)
				if err != nil {
					t.Fatal(err)
				}
				n++
				covered[file] = true
				if err := v.validate(file, b); err != nil {
					t.Errorf("openapi.yaml example of %s: %v\n%s", file, err, b)
				}
			}
		}
	}
	for _, f := range []string{"record.schema.json", "change.schema.json", "problem.schema.json"} {
		if !covered[f] {
			t.Errorf("openapi.yaml has no example of %s", f)
		}
	}
	if n < 20 {
		t.Errorf("validated only %d examples", n)
	}
}

// TestOpenAPIOperations: exactly the operations the API serves, the
// person routes answering problem details on 400, 404 and 500.
func TestOpenAPIOperations(t *testing.T) {
	oa := readYAML(t, "openapi.yaml")
	if oa["openapi"] != "3.1.0" {
		t.Errorf("openapi version %v", oa["openapi"])
	}
	for _, path := range []string{"/v1/persons/{citizen_id}", "/v1/persons/{citizen_id}/history"} {
		for _, code := range []string{"400", "404", "500"} {
			ref, _ := pointer(oa, "/paths/"+strings.ReplaceAll(path, "/", "~1")+"/get/responses/"+code+"/$ref")
			resp, ok := resolve(t, "openapi.yaml", oa, ref.(string))
			if !ok {
				t.Fatalf("%s %s: %v", path, code, ref)
			}
			if s, _ := pointer(resp, "/content/application~1problem+json/schema/$ref"); s != "problem.schema.json" {
				t.Errorf("GET %s %s answers %v, want problem+json", path, code, s)
			}
			if st, _ := pointer(resp, "/content/application~1problem+json/example/status"); st != mustAtoi(code) {
				t.Errorf("GET %s %s: example status %v", path, code, st)
			}
		}
	}
	for _, code := range []string{"200", "503"} {
		if s, _ := pointer(oa, "/paths/~1readyz/get/responses/"+code+"/content/application~1json/schema/$ref"); s != "#/components/schemas/readiness" {
			t.Errorf("readyz %s: %v", code, s)
		}
	}
	if props, _ := pointer(oa, "/components/schemas/readiness/properties"); len(props.(map[string]any)) != 2 {
		t.Errorf("readiness body %v, want status and checks", props)
	}
}

func mustAtoi(s string) int {
	i, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return i
}

// TestScenarioRecordsValidate: golden records, history entries and
// notifications hub/merge derives from a scenario touching every section
// (a student with an enrolment, a terminated insurance, a death not yet
// cancelled, a migration, a marriage) validate against their schemas.
func TestScenarioRecordsValidate(t *testing.T) {
	v := validator(t)
	out := scenario(t)
	var all strings.Builder
	for id, st := range out.States {
		b, err := json.Marshal(st.Record())
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
		if err := v.ValidateRecord(b); err != nil {
			t.Errorf("record of %v fails record.schema.json: %v\n%s", id, err, b)
		}
	}
	// The scenario exercises the optional parts of the schema.
	for _, part := range []string{`"enrolments"`, `"until"`, `"valid_until"`, `"anomalies"`, `"death_not_cancelled"`, `"unregistered"`,
		`"id_mismatch"`, `"spouse_id"`, `"residence_permits"`, `"rentals"`, `"owned"`, `"businesses"`, `"provenance"`, `"deceased"`} {
		if !strings.Contains(all.String(), part) {
			t.Errorf("no record has %s", part)
		}
	}
	for _, h := range out.History {
		b, _ := json.Marshal(h.Change)
		if err := v.ValidateChange(b); err != nil {
			t.Errorf("history entry fails change.schema.json: %v\n%s", err, b)
		}
	}
	kinds := map[string]bool{}
	for _, o := range out.Outbox {
		if err := v.ValidateNotification(o.Body); err != nil {
			t.Errorf("notification on %s fails notification.schema.json: %v", o.Subject, err)
		}
		kinds[strings.SplitN(o.Subject, ".", 3)[1]] = true
	}
	if !kinds["changed"] || !kinds["migration"] || !kinds["death"] {
		t.Errorf("notification families %v, want changed, migration and death", kinds)
	}
}

// scenario merges events touching every section for three persons: a
// student with an enrolment, a terminated insurance, a death not yet
// cancelled, a migration, a marriage.
func scenario(t *testing.T) merge.Outcome {
	t.Helper()
	man, woman, student := citizenid.ID("230102199001011230"), citizenid.ID("33060219850715231X"), citizenid.ID("440304200002290022")
	var in []hub.Input
	add := func(typ schemas.Type, who citizenid.ID, id, when string, data map[string]any) {
		t.Helper()
		d, _ := json.Marshal(data)
		b, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": id, "source": schemas.SourceOf(typ), "type": typ,
			"subject": string(who), "time": when, "data": json.RawMessage(d)})
		ev, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(schemas.SourceOf(typ)), Key: []byte(who), Value: b, Now: decodeNow})
		if err != nil {
			t.Fatalf("%s %s: %v", typ, id, err)
		}
		in = append(in, hub.Input{Event: ev, Raw: b})
	}
	add(schemas.HukouRegistered, man, "ps-1", "2015-01-01T08:00:00+08:00", map[string]any{"name": "张伟", "gender": "1", "birth_date": "1990-01-01", "ethnicity": "01", "address_code": "230102001001", "household_id": "H1"})
	add(schemas.HukouMigrated, man, "ps-2", "2024-05-01T00:00:00+08:00", map[string]any{"from_address_code": "230102001001", "to_address_code": "230602013004", "reason": "employment", "household_id": "H2"})
	add(schemas.ResidencePermitIssued, man, "ps-3", "2023-01-01T00:00:00+08:00", map[string]any{"city_code": "330602", "address_code": "330602001004", "basis": "housing", "valid_until": "2028-01-01"})
	add(schemas.HukouRegistered, woman, "ps-4", "2000-01-01T08:00:00+08:00", map[string]any{"name": "李娜", "gender": "1", "birth_date": "1985-07-16", "ethnicity": "03", "address_code": "330602001004", "household_id": "H3"}) // disagrees with her ID: id_mismatch
	add(schemas.MarriageRegistered, man, "m-1", "2021-05-20T00:00:00+08:00", map[string]any{"spouse_id": string(woman)})
	add(schemas.MarriageRegistered, woman, "m-2", "2021-05-20T00:00:00+08:00", map[string]any{"spouse_id": string(man)})
	add(schemas.ContractStarted, man, "emp-1", "2023-03-01T00:00:00+08:00", map[string]any{"contract_id": "C1", "employer_id": "91230102MA1B2C3D46", "employer_name": "龙江机械", "work_region": "230102", "start": "2023-03-01"})
	add(schemas.ContractStarted, man, "emp-2", "2019-07-01T00:00:00+08:00", map[string]any{"contract_id": "C0", "employer_id": "93440304MA5FXW7G24", "employer_name": "示例科技", "work_region": "440304", "start": "2019-07-01", "end": "2022-06-30"})
	add(schemas.InsuranceEnrolled, man, "si-1", "2023-03-01T00:00:00+08:00", map[string]any{"scheme": "employee", "insurances": schemas.Insurances, "region": "230102", "start": "2023-03-01"})
	add(schemas.ContributionRecorded, man, "si-2", "2023-03-31T00:00:00+08:00", map[string]any{"month": "2023-03", "region": "230102", "insurances": schemas.Insurances})
	add(schemas.ContributionRecorded, man, "si-3", "2023-04-30T00:00:00+08:00", map[string]any{"month": "2023-04", "region": "230102", "insurances": []string{"pension", "medical"}})
	add(schemas.InsuranceTerminated, man, "si-4", "2023-06-01T00:00:00+08:00", map[string]any{"insurances": []string{"maternity"}, "region": "230102", "end": "2023-05-31"})
	add(schemas.InsuranceTransferred, man, "si-5", "2024-06-01T00:00:00+08:00", map[string]any{"from_region": "230102", "to_region": "230602"})
	add(schemas.EducationGraduated, man, "ed-1", "2012-07-01T00:00:00+08:00", map[string]any{"institution": "哈尔滨工业大学", "level": "21", "date": "2012-07-01", "certificate_no": "B1"})
	add(schemas.PropertyRegistered, man, "hs-1", "2024-06-01T00:00:00+08:00", map[string]any{"property_id": "P1", "address_code": "230602013004", "acquired": "purchase", "area_m2": 89.5})
	add(schemas.RentalRegistered, man, "hs-2", "2023-03-01T00:00:00+08:00", map[string]any{"lease_id": "L1", "address_code": "230102001001", "start": "2023-03-01", "end": "2024-02-29"})
	add(schemas.BusinessRegistered, woman, "tx-1", "2022-01-01T00:00:00+08:00", map[string]any{"business_id": "92230102MA00X1Y2KE", "region": "230102", "name": "李记小吃"})
	add(schemas.IdentityCorrected, woman, "ps-5", "2026-01-01T00:00:00+08:00", map[string]any{"name": "李娜娜"})
	add(schemas.DeathCertified, woman, "h-1", "2026-03-01T10:00:00+08:00", map[string]any{"date_of_death": "2026-02-28", "certificate_no": "D1", "place_code": "330602"})
	add(schemas.EducationEnrolled, student, "ed-2", "2018-09-01T00:00:00+08:00", map[string]any{"institution": "深圳大学", "level": "21", "region": "440304", "start": "2018-09-01"})
	add(schemas.InsuranceEnrolled, student, "si-6", "2018-09-01T00:00:00+08:00", map[string]any{"scheme": "resident", "insurances": []string{"medical"}, "region": "440304", "start": "2018-09-01"})

	out := merge.Batch(nil, in, decodeNow)
	if out.Applied != len(in) || len(out.States) != 3 {
		t.Fatalf("applied %d of %d events to %d persons", out.Applied, len(in), len(out.States))
	}
	return out
}

// TestFilteredRecordsValidate: a record narrowed to what an identity may
// read (hub/access, GET /v1/persons/{id} under a policy) still validates
// against record.schema.json, for every identity of the example policy
// and every single section, status left out included.
func TestFilteredRecordsValidate(t *testing.T) {
	v := validator(t)
	policy, err := access.Load("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	grants := map[string][]schemas.Section{"nothing": nil}
	for _, s := range schemas.Sections {
		grants["only "+string(s)] = []schemas.Section{s}
	}
	for _, id := range policy.Identities {
		grants["identity "+id.Name] = id.Sections()
	}
	out := scenario(t)
	for name, readable := range grants {
		t.Run(name, func(t *testing.T) {
			for _, st := range out.States {
				b, err := json.Marshal(access.FilterRecord(st.Record(), readable))
				if err != nil {
					t.Fatal(err)
				}
				if err := v.ValidateRecord(b); err != nil {
					t.Errorf("filtered record fails record.schema.json: %v\n%s", err, b)
				}
			}
		})
	}
}
