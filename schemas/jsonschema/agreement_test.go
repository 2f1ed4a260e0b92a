package jsonschema

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/codes"
)

// decodeNow is the decoder's "now" in these tests, so that dates relative
// to today do not drift.
var decodeNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// decodeData wraps data in an envelope of type t and decodes it.
func decodeData(t schemas.Type, data []byte) error {
	_, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(schemas.SourceOf(t)), Value: envelope(t, data), Now: decodeNow})
	return err
}

// dataSchema is the part of a data schema the tests inspect.
type dataSchema struct {
	Properties map[string]struct {
		Ref  string   `json:"$ref"`
		Enum []string `json:"enum"`
		Type string   `json:"type"`
	} `json:"properties"`
	Required             []string          `json:"required"`
	AdditionalProperties *bool             `json:"additionalProperties"`
	Examples             []json.RawMessage `json:"examples"`
	ID                   string            `json:"$id"`
	Schema               string            `json:"$schema"`
}

func readDataSchema(t testing.TB, typ schemas.Type) dataSchema {
	t.Helper()
	b, err := DataSchema(typ)
	if err != nil {
		t.Fatal(err)
	}
	var s dataSchema
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	return s
}

// kindOf names what a property holds: the shared definition it refers to,
// "enum" for an inline enumeration, or its JSON type.
func (s dataSchema) kindOf(prop string) string {
	p := s.Properties[prop]
	switch {
	case p.Ref != "":
		return strings.TrimPrefix(p.Ref, "defs.schema.json#/$defs/")
	case p.Enum != nil:
		return "enum"
	}
	return p.Type
}

// TestDataSchemasMirrorStructs: every data schema is a closed 2020-12
// object whose properties are the JSON fields of the type's Go struct, the
// required ones being those without omitempty.
func TestDataSchemasMirrorStructs(t *testing.T) {
	for _, typ := range schemas.Types() {
		s := readDataSchema(t, typ)
		if s.Schema != "https://json-schema.org/draft/2020-12/schema" || s.ID != BaseURI+string(typ)+".schema.json" {
			t.Errorf("%s: $schema %q, $id %q", typ, s.Schema, s.ID)
		}
		if s.AdditionalProperties == nil || *s.AdditionalProperties {
			t.Errorf("%s: additionalProperties is not false", typ)
		}
		var fields, required []string
		st := reflect.TypeOf(schemas.NewData(typ)).Elem()
		for i := 0; i < st.NumField(); i++ {
			name, opts, _ := strings.Cut(st.Field(i).Tag.Get("json"), ",")
			fields = append(fields, name)
			if opts != "omitempty" {
				required = append(required, name)
			}
		}
		var props []string
		for p := range s.Properties {
			props = append(props, p)
		}
		sort.Strings(fields)
		sort.Strings(required)
		sort.Strings(props)
		got := append([]string(nil), s.Required...)
		sort.Strings(got)
		if !slices.Equal(props, fields) {
			t.Errorf("%s: schema properties %v, Go fields %v", typ, props, fields)
		}
		if !slices.Equal(got, required) {
			t.Errorf("%s: schema requires %v, Go requires %v", typ, got, required)
		}
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sorted[S ~string](in []S) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s)
	}
	sort.Strings(out)
	return out
}

// TestEnumerationsMatchGo: code tables and enumerations in the schemas are
// those of the Go code.
func TestEnumerationsMatchGo(t *testing.T) {
	var defs struct {
		Defs map[string]struct {
			Enum  []string `json:"enum"`
			Items struct {
				Enum []string `json:"enum"`
			} `json:"items"`
		} `json:"$defs"`
	}
	readJSON(t, "defs.schema.json", &defs)
	tables := []struct {
		def  string
		want []string
	}{
		{"gender", keys(codes.Gender)},
		{"ethnicity", keys(codes.Ethnicity)},
		{"education_level", keys(codes.Education)},
		{"marital_status", keys(codes.Marital)},
		{"source", sorted(schemas.Sources)},
	}
	for _, tc := range tables {
		got := append([]string(nil), defs.Defs[tc.def].Enum...)
		sort.Strings(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("defs %s = %v, want %v", tc.def, got, tc.want)
		}
	}
	if got := defs.Defs["insurances"].Items.Enum; !slices.Equal(got, schemas.Insurances) {
		t.Errorf("defs insurances = %v, want %v", got, schemas.Insurances)
	}

	inline := map[string][]string{
		"hukou.registered.reason":              schemas.RegistrationReasons,
		"hukou.migrated.reason":                schemas.MigrationReasons,
		"hukou.cancelled.reason":               schemas.CancellationReasons,
		"residence_permit.issued.basis":        schemas.PermitBases,
		"social_insurance.enrolled.scheme":     schemas.Schemes,
		"housing.property_registered.acquired": schemas.AcquiredKinds,
	}
	seen := 0
	for _, typ := range schemas.Types() {
		s := readDataSchema(t, typ)
		for prop, p := range s.Properties {
			if p.Enum == nil {
				continue
			}
			want, ok := inline[string(typ)+"."+prop]
			if !ok {
				t.Errorf("%s.%s: enumeration not checked by this test", typ, prop)
				continue
			}
			seen++
			if !slices.Equal(p.Enum, want) {
				t.Errorf("%s.%s = %v, want %v", typ, prop, p.Enum, want)
			}
		}
	}
	if seen != len(inline) {
		t.Errorf("found %d inline enumerations, want %d", seen, len(inline))
	}

	// The envelope lists the catalogue and ties each type to its source.
	var ce struct {
		Properties struct {
			Type struct {
				Enum []string `json:"enum"`
			} `json:"type"`
		} `json:"properties"`
		AllOf []struct {
			If struct {
				Properties struct {
					Type struct {
						Const string `json:"const"`
					} `json:"type"`
				} `json:"properties"`
			} `json:"if"`
			Then struct {
				Properties struct {
					Source struct {
						Const string `json:"const"`
					} `json:"source"`
					Data struct {
						Ref string `json:"$ref"`
					} `json:"data"`
				} `json:"properties"`
			} `json:"then"`
		} `json:"allOf"`
	}
	readJSON(t, "cloudevent.schema.json", &ce)
	if got := append([]string(nil), ce.Properties.Type.Enum...); !slices.Equal(sorted(got), sorted(schemas.Types())) {
		t.Errorf("envelope types %v", got)
	}
	var branches []string
	for _, b := range ce.AllOf {
		typ := schemas.Type(b.If.Properties.Type.Const)
		branches = append(branches, string(typ))
		if b.Then.Properties.Source.Const != string(schemas.SourceOf(typ)) || b.Then.Properties.Data.Ref != string(typ)+".schema.json" {
			t.Errorf("envelope branch of %s: source %q, data %q", typ, b.Then.Properties.Source.Const, b.Then.Properties.Data.Ref)
		}
	}
	if !slices.Equal(sorted(branches), sorted(schemas.Types())) {
		t.Errorf("envelope branches %v", branches)
	}

	// Sections in history entries, notifications and provenance.
	sections := sorted(schemas.Sections)
	var change struct {
		Properties struct {
			Sections struct {
				Items struct {
					Enum []string `json:"enum"`
				} `json:"items"`
			} `json:"sections"`
		} `json:"properties"`
	}
	readJSON(t, "change.schema.json", &change)
	if got := change.Properties.Sections.Items.Enum; !slices.Equal(sorted(got), sections) {
		t.Errorf("change sections %v, want %v", got, sections)
	}
	var note struct {
		Properties struct {
			Section struct {
				Enum []string `json:"enum"`
			} `json:"section"`
		} `json:"properties"`
	}
	readJSON(t, "notification.schema.json", &note)
	if got, want := note.Properties.Section.Enum, sorted(append(append([]schemas.Section(nil), schemas.Sections...), schemas.KindMigration, schemas.KindDeath)); !slices.Equal(sorted(got), want) {
		t.Errorf("notification sections %v, want %v", got, want)
	}
}

func readJSON(t testing.TB, name string, v any) {
	t.Helper()
	b, err := fs.ReadFile(FS(), name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// withCheck completes 17 digits with their GB 11643 check character.
func withCheck(first17 string) string { return first17 + string(citizenid.CheckChar(first17)) }

// samples are values of each kind of property: ones both the schema and
// the decoder accept, and ones both reject.
func samples(kind, prop string) (valid, invalid []any) {
	text := func(n int) ([]any, []any) {
		return []any{"x", strings.Repeat("x", n), "办理-1", "a\u00a0b"},
			[]any{strings.Repeat("x", n+1), "a\tb", "a\u0000b", "a\u007fb", "a\u0085b", "a\u009fb"}
	}
	switch kind {
	case "date":
		valid = []any{"2000-02-29", "1999-12-31"}
		if prop == "end" { // not before its start
			valid = []any{"2096-02-29"}
		}
		return valid, []any{"2001-02-29", "2024-02-30", "2024-04-31", "2024-13-01", "2024-1-01", "20240101", "2024-01-01T00:00:00Z", " 2024-01-01"}
	case "month":
		return []any{"2000-02", "1999-12"}, []any{"2024-13", "2024-00", "2024-5", "2024-05-01", "202405"}
	case "citizen_id":
		return []any{"11010519491231002X", "230102199001011230", withCheck("82000020000229001"), withCheck("83000019900101123")},
			[]any{"23010219900101123", "23010219900101123x", "2301021990010112300", withCheck("99010219900101123"), withCheck("84000019900101123"),
				withCheck("00010219900101123"), withCheck("23010218490101123"), withCheck("23010219901301123")}
	case "address_code":
		return []any{"110105001024", "230102001001", "230102019200"},
			[]any{"230000000000", "990102001001", "000000000000", "23010200100", "2301020010011", "23010200100a"}
	case "region_code":
		return []any{"230000", "110105", "820001"}, []any{"990102", "000000", "23010", "2301021", "23010a"}
	case "division_code":
		return []any{"230102", "230102001001"}, []any{"23010200", "990102", "230000000000", "2301020010"}
	case "uscc":
		return []any{"93440304MA5FXW7G24", "91350100M000100Y43"},
			[]any{"91230102MA1B2C3D4", "91230102MA1B2C3D4I", "91230102MA1B2C3D466", "91230102ma1b2c3d46"}
	case "name":
		return []any{"阿依古丽·买买提", strings.Repeat("汉", 64), "A", "张 伟", "J. Smith", "ᠪᠠᠲᠤ\u180eᠶᠠ", "क्\u200dष"},
			[]any{strings.Repeat("汉", 65), "张\n伟", "\u007f", "张\u0085伟", "\u0080", "张\ue000", "李\uf8ff明",
				"\u3000\u3000", " ", " 张伟", "张伟\u3000", "\u00a0张伟", "\ufeff张伟", "张伟\u200d", "张\u200b伟", "\u202e伟张", "张\u2066伟",
				"阿依古丽\u30fb买买提", "阿依古丽\u2022买买提", "阿依古丽\uff0e买买提", "阿依古丽\u2027买买提", "阿依古丽\uff65买买提", "阿依古丽\u2219买买提", "阿依古丽\u22c5买买提"}
	case "household_id":
		valid, invalid = text(64)
		return append(valid, "H230102000001", "户 1", "H\u200b1"),
			append(invalid, " ", "\u3000", "            ", " H1", "H1 ", "H1\u3000", "\u00a0H1", "\ufeffH1", "H1\u200d", "\u2060H1", "H1\u205f")
	case "text32":
		return text(32)
	case "text64":
		return text(64)
	case "text200":
		return text(200)
	case "gender":
		return []any{"0", "1", "2", "9"}, []any{"3", "M", "01"}
	case "ethnicity":
		return []any{"01", "56", "97", "98"}, []any{"1", "57", "99", "00"}
	case "education_level":
		return []any{"10", "21", "83", "90"}, []any{"24", "1", "99", "00"}
	case "insurances":
		return []any{[]string{"pension"}, schemas.Insurances},
			[]any{[]string{}, []string{"pension", "pension"}, []string{"bogus"}, "pension", []int{1}}
	case "number":
		return []any{0.01, 1, 89.5, 100000}, []any{0, -1, 100000.5, "89.5"}
	}
	return nil, nil
}

// betweenFields reports whether err is the decoder's refusal by a rule
// between a data field and the subject or another field, which a JSON
// Schema of the data alone cannot express: a spouse_id that is the
// subject's own, a residence permit's address outside its city, a date
// of the data, or the event's time, before the subject's birth.
func betweenFields(err error) bool {
	re, ok := errors.AsType[*schemas.RejectError](err)
	return ok && re.Reason == schemas.ReasonInvalidData &&
		(re.Field == "data.spouse_id" && strings.Contains(re.Detail, "the subject's own citizen ID") ||
			re.Field == "data.address_code" && strings.Contains(re.Detail, "does not lie in the city of city_code") ||
			strings.Contains(re.Detail, "before the subject's birth date"))
}

// TestMutationsAgree mutates each property of every example in many ways
// and checks that the JSON Schema and the Go decoder agree on every
// result, and that the decoder names the property it rejects.
func TestMutationsAgree(t *testing.T) {
	v := validator(t)
	cases := 0
	for _, typ := range schemas.Types() {
		s := readDataSchema(t, typ)
		for ei, ex := range s.Examples {
			var base map[string]any
			if err := json.Unmarshal(ex, &base); err != nil {
				t.Fatal(err)
			}
			check := func(label, prop string, data map[string]any, want *bool) {
				t.Helper()
				cases++
				b, _ := json.Marshal(data)
				schemaOK := v.ValidateData(typ, b) == nil
				err := decodeData(typ, b)
				goOK := err == nil
				if schemaOK && betweenFields(err) {
					return // a rule JSON Schema cannot say (defs.schema.json lists them)
				}
				if schemaOK != goOK {
					t.Errorf("%s example %d, %s: schema accepts %v, decoder %v (%v)\n%s", typ, ei, label, schemaOK, goOK, err, b)
					return
				}
				if want != nil && goOK != *want {
					t.Errorf("%s example %d, %s: accepted %v, want %v\n%s", typ, ei, label, goOK, *want, b)
				}
				if re, ok := errors.AsType[*schemas.RejectError](err); ok {
					field := "data." + prop
					if re.Reason != schemas.ReasonInvalidData || (re.Field != field && !(typ == schemas.IdentityCorrected && re.Field == "data")) {
						t.Errorf("%s, %s: rejected as %s on %q, want invalid_data on %q", typ, label, re.Reason, re.Field, field)
					}
				}
			}
			with := func(prop string, val any) map[string]any {
				m := map[string]any{}
				for k, v := range base {
					m[k] = v
				}
				if val == nil {
					delete(m, prop)
				} else {
					m[prop] = val
				}
				return m
			}
			yes, no := true, false
			check("as documented", "", base, &yes)
			check("unknown field", "x_note", with("x_note", "x"), &no)
			for prop := range s.Properties {
				required := slices.Contains(s.Required, prop)
				check("without "+prop, prop, with(prop, nil), nil)
				if _, present := base[prop]; !present {
					continue // mutate documented values only
				}
				kind := s.kindOf(prop)
				valid, invalid := samples(kind, prop)
				if kind == "enum" {
					for _, e := range s.Properties[prop].Enum {
						valid = append(valid, e)
					}
					invalid = []any{"unheard_of", strings.ToUpper(s.Properties[prop].Enum[0])}
				}
				if valid == nil {
					t.Errorf("%s.%s: no samples for kind %q", typ, prop, kind)
					continue
				}
				for _, val := range valid {
					check(fmt.Sprintf("%s=%v", prop, val), prop, with(prop, val), &yes)
				}
				invalid = append(invalid, true, map[string]any{})
				if kind != "number" {
					invalid = append(invalid, 12345)
				}
				if kind != "insurances" {
					invalid = append(invalid, []string{"x"})
				}
				for _, val := range invalid {
					check(fmt.Sprintf("%s=%#v", prop, val), prop, with(prop, val), &no)
				}
				if required {
					check(prop+" empty", prop, with(prop, ""), &no)
				}
			}
		}
	}
	if cases < 1000 {
		t.Errorf("only %d cases", cases)
	}
}

// TestKnownDifferences lists, and so documents, what the JSON Schemas
// cannot express: the decoder rejects these, the schemas accept them. And
// the reverse: the decoder reads an empty or null optional field as absent
// and matches field names case-insensitively (encoding/json), where the
// schemas ask for the field to be omitted and spelled exactly; and it
// judges an area as the float64 it reads, the schemas as written.
func TestKnownDifferences(t *testing.T) {
	v := validator(t)
	tests := []struct {
		name     string
		typ      schemas.Type
		data     string
		schemaOK bool
		goOK     bool
	}{
		{"citizen ID check character", schemas.MarriageRegistered, `{"spouse_id":"230102199001011231"}`, true, false},
		{"citizen ID birth date that does not exist", schemas.MarriageRegistered, `{"spouse_id":"` + withCheck("23010219900230123") + `"}`, true, false},
		{"citizen ID born in the future", schemas.MarriageDivorced, `{"spouse_id":"` + withCheck("23010220990101123") + `"}`, true, false},
		{"credit code check character", schemas.BusinessDeregistered, `{"business_id":"91230102MA1B2C3D47"}`, true, false},
		{"birth date in the future", schemas.HukouRegistered, `{"name":"张伟","gender":"1","birth_date":"2099-01-01","ethnicity":"01","address_code":"230102001001","household_id":"H1"}`, true, false},
		{"private-use name character beyond the BMP", schemas.IdentityCorrected, `{"name":"王` + "\U000F0001" + `"}`, true, false},
		{"format character beyond the BMP in a name", schemas.IdentityCorrected, `{"name":"王` + "\U000E0001" + `"}`, true, false},
		{"full stop beside a Han ideograph beyond the BMP in a name", schemas.IdentityCorrected, `{"name":"𠮷.野"}`, true, false},
		{"death before the subject's birth", schemas.DeathCertified, `{"date_of_death":"1900-01-01","certificate_no":"D1"}`, true, false},
		{"death in the future", schemas.DeathCertified, `{"date_of_death":"2099-01-01","certificate_no":"D1"}`, true, false},
		{"contract ends before it starts", schemas.ContractStarted, `{"contract_id":"C","employer_id":"91230102MA1B2C3D46","employer_name":"x","work_region":"230102","start":"2026-03-01","end":"2026-02-01"}`, true, false},
		{"lease ends before it starts", schemas.RentalRegistered, `{"lease_id":"L","address_code":"230102001001","start":"2026-03-01","end":"2026-02-01"}`, true, false},
		{"empty optional field", schemas.RentalRegistered, `{"lease_id":"L","address_code":"230102001001","start":"2026-03-01","end":""}`, false, true},
		{"null optional field", schemas.PropertyRegistered, `{"property_id":"P","address_code":"230102001001","acquired":"gift","area_m2":null}`, false, true},
		// The decoder reads numbers as float64, the schema compares their
		// decimal text: an area a hair above the maximum rounds to it, and
		// one a hair above zero underflows to it. The accepted area is
		// kept, and written back, as exactly 100000.
		{"area above the maximum by less than float64 resolution", schemas.PropertyRegistered, `{"property_id":"P","address_code":"230102001001","acquired":"gift","area_m2":100000.0000000000000001}`, false, true},
		{"area above zero by less than float64 resolution", schemas.PropertyRegistered, `{"property_id":"P","address_code":"230102001001","acquired":"gift","area_m2":1e-400}`, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			schemaErr := v.ValidateData(tc.typ, []byte(tc.data))
			goErr := decodeData(tc.typ, []byte(tc.data))
			if (schemaErr == nil) != tc.schemaOK || (goErr == nil) != tc.goOK {
				t.Errorf("schema: %v, decoder: %v; want schema accepts %v, decoder %v", schemaErr, goErr, tc.schemaOK, tc.goOK)
			}
		})
	}
}
