package eligibility_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas"
)

const validPolicy = `id: test/city
title: test
seed: {doc: 黑政发〔2014〕25号, file: 000_03dd86b7a0fe4cb2.txt}
places: [{name: 大庆市市区, codes: ["230602"]}]
family: [spouse]
clauses:
  - id: insurance
    ref: 一（二）
    text: 参加城镇社会保险满2年
    condition: {insurance_months: {kinds: [pension], min_months: 24}}
`

func TestLoadRejectsInvalidPolicies(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		body    string
		wantErr []string // fragments the error must contain
	}{
		{"unknown kind", "test/city.yaml", strings.Replace(validPolicy, "insurance_months:", "insurance_month:", 1),
			[]string{"test/city.yaml", `unknown condition kind "insurance_month"`}},
		{"missing threshold", "test/city.yaml", strings.Replace(validPolicy, ", min_months: 24", "", 1),
			[]string{"test/city.yaml", "policy test/city", "clause insurance", "min_months is required"}},
		{"above the seed's cap", "test/city.yaml", strings.Replace(validPolicy, "family: [spouse]", "family: [spouse]\ncap_months: 12", 1),
			[]string{"policy test/city", "clause insurance", "24 months exceeds the seed's cap of 12 months"}},
		{"unknown insurance", "test/city.yaml", strings.Replace(validPolicy, "[pension]", "[pensions]", 1),
			[]string{"clause insurance", `"pensions" is not an insurance`}},
		{"unknown parameter", "test/city.yaml", strings.Replace(validPolicy, "min_months: 24", "min_month: 24", 1),
			[]string{`has no parameter "min_month"`}},
		{"id does not match the path", "test/other.yaml", validPolicy,
			[]string{"test/other.yaml", `does not match the file's path "test/other"`}},
		{"dot in the name", "test/city.v2.yaml", strings.Replace(validPolicy, "id: test/city", "id: test/city.v2", 1),
			[]string{"test/city.v2.yaml", `id "test/city.v2" is not <group>/<name>`}},
		{"capitals", "Test/City.yaml", strings.Replace(validPolicy, "id: test/city", "id: Test/City", 1),
			[]string{`id "Test/City" is not <group>/<name>`}},
		{"underscore", "test/city_2026.yaml", strings.Replace(validPolicy, "id: test/city", "id: test/city_2026", 1),
			[]string{`id "test/city_2026" is not <group>/<name>`}},
		{"no group", "city.yaml", strings.Replace(validPolicy, "id: test/city", "id: city", 1),
			[]string{`id "city" is not <group>/<name>`}},
		{"leading hyphen", "-test/city.yaml", strings.Replace(validPolicy, "id: test/city", "id: -test/city", 1),
			[]string{`id "-test/city" is not <group>/<name>`}},
		{"nested folders", "test/north/city.yaml", strings.Replace(validPolicy, "id: test/city", "id: test/north/city", 1),
			[]string{`id "test/north/city" is not <group>/<name>`}},
		{"unknown field", "test/city.yaml", validPolicy + "colour: red\n", []string{"test/city.yaml", "colour"}},
		{"unknown family word", "test/city.yaml", strings.Replace(validPolicy, "[spouse]", "[cousins]", 1), []string{`"cousins"`}},
		{"route names no clause", "test/city.yaml", validPolicy + "routes: [{id: r, clauses: [nope]}]\n", []string{`route r: no clause "nope"`}},
		{"unreachable points threshold", "test/city.yaml", strings.Replace(validPolicy,
			"{insurance_months: {kinds: [pension], min_months: 24}}",
			"{points: {threshold: 100, items: [{id: home, text: 自有住房, measure: owns_home, points: 20}]}}", 1),
			[]string{"clause insurance", "threshold 100 is above the 20 points"}},
		{"points item above the cap", "test/city.yaml", strings.Replace(strings.Replace(validPolicy,
			"{insurance_months: {kinds: [pension], min_months: 24}}",
			"{points: {threshold: 10, items: [{id: job, text: 就业, measure: employed_months, points: 5, per_months: 12, max: 25}]}}", 1),
			"family: [spouse]", "family: [spouse]\ncap_months: 36", 1),
			[]string{"item job keeps scoring up to 60 months, above the seed's cap of 36 months"}},
		{"together with one kind", "test/city.yaml", strings.Replace(validPolicy, "min_months: 24}", "min_months: 24, together: true}", 1),
			[]string{"clause insurance", "together needs at least two kinds"}},
		{"to_spouse without rural_to_urban", "test/city.yaml", strings.Replace(validPolicy,
			"{insurance_months: {kinds: [pension], min_months: 24}}", "{hukou_elsewhere: {to_spouse: true}}", 1),
			[]string{"clause insurance", "to_spouse needs rural_to_urban"}},
		{"home_waived without rural_to_urban", "test/city.yaml", strings.Replace(validPolicy,
			"{insurance_months: {kinds: [pension], min_months: 24}}", "{hukou_elsewhere: {home_waived: true}}", 1),
			[]string{"clause insurance", "home_waived needs rural_to_urban"}},
		{"unknown scheme", "test/city.yaml", strings.Replace(validPolicy, "min_months: 24}", "min_months: 24, schemes: [urban]}", 1),
			[]string{"clause insurance", `"urban" is not a social-insurance scheme (employee, resident)`}},
		{"diploma level", "test/city.yaml", strings.Replace(validPolicy,
			"{insurance_months: {kinds: [pension], min_months: 24}}", `{diploma: {levels: ["99"]}}`, 1),
			[]string{`"99" is not a GB/T 4658 education level`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := eligibility.Load(fstest.MapFS{tt.file: {Data: []byte(tt.body)}})
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, frag := range tt.wantErr {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error %q does not contain %q", err, frag)
				}
			}
			var pe *eligibility.PolicyError
			if !errors.As(err, &pe) || pe.File != tt.file {
				t.Errorf("error %v is not a *PolicyError for %s", err, tt.file)
			}
		})
	}
}

func TestLoadSkipsCasesAndListsPolicies(t *testing.T) {
	cat, err := eligibility.Load(fstest.MapFS{
		"test/city.yaml":       {Data: []byte(validPolicy)},
		"test/city_cases.yaml": {Data: []byte("cases: []")},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := cat.Policies()
	if len(got) != 1 || got[0].ID != "test/city" {
		t.Fatalf("Policies() = %v", got)
	}
	if _, ok := cat.Policy("test/none"); ok {
		t.Error("Policy found an unknown id")
	}
}

func TestShippedPolicyIDs(t *testing.T) {
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range cat.Policies() {
		ids = append(ids, s.ID)
	}
	for _, want := range []string{"heilongjiang/nine-cities", "heilongjiang/daqing", "heilongjiang/qiqihar", "heilongjiang/harbin",
		"jilin/counties", "jilin/city", "jilin/talent", "chifeng/central", "hunan/under-500k", "hunan/500k-1m", "hunan/1m-3m",
		"hunan/over-3m", "hunan/chang-zhu-tan", "shaoxing/city", "residence-permit/heilongjiang", "residence-permit/jilin",
		"residence-permit/chifeng", "residence-permit/shaoxing", "residence-permit/hunan"} {
		if !slices.Contains(ids, want) {
			t.Errorf("policy %s is not shipped", want)
		}
	}
	if !slices.IsSorted(ids) {
		t.Errorf("Policies() is not sorted: %v", ids)
	}
}

func TestRelevantSections(t *testing.T) {
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		policy string
		want   []schemas.Section
	}{
		{"heilongjiang/daqing", []schemas.Section{schemas.SecEmployment, schemas.SecHousing, schemas.SecHukou, schemas.SecMarital, schemas.SecSocialInsurance, schemas.SecStatus}},
		// A villager of Jilin City settles on moving to a town address: housing.
		{"jilin/talent", []schemas.Section{schemas.SecEducation, schemas.SecHousing, schemas.SecHukou, schemas.SecMarital, schemas.SecStatus}},
		{"residence-permit/jilin", []schemas.Section{schemas.SecEducation, schemas.SecEmployment, schemas.SecHousing, schemas.SecHukou, schemas.SecStatus}},
	}
	for _, tt := range tests {
		p, _ := cat.Policy(tt.policy)
		if got := eligibility.RelevantSections(p); !slices.Equal(got, tt.want) {
			t.Errorf("RelevantSections(%s) = %v, want %v", tt.policy, got, tt.want)
		}
	}
}

// TestDecisionJSON checks the response keys the issue specifies.
func TestDecisionJSON(t *testing.T) {
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cat.Policy("heilongjiang/nine-cities")
	r := eligibility.RunCase(p, clauseCases()[0].c)
	b, err := json.Marshal(r.Decision)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"citizen_id", "policy", "as_of", "eligible", "conditions", "qualifies_on", "family"} {
		if _, ok := m[k]; !ok {
			t.Errorf("decision JSON lacks %q: %s", k, b)
		}
	}
	c := m["conditions"].([]any)[1].(map[string]any)
	for _, k := range []string{"id", "text", "seed", "met", "facts"} {
		if _, ok := c[k]; !ok {
			t.Errorf("condition JSON lacks %q", k)
		}
	}
	f := c["facts"].([]any)[0].(map[string]any)
	if f["event_id"] == "" || f["source"] != "employment" {
		t.Errorf("contract fact lacks its source event: %v", f)
	}
}

func TestMissingSaysWhatIsLeft(t *testing.T) {
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cat.Policy("jilin/city")
	c := eligibility.Case{AsOf: "2025-01-20", Person: outsider,
		Events: evs(contract("C1", "220204", "2024-01-01", ""), lease("L1", jilinCity, "2023-01-01", ""),
			contrib("220202", "2024-01..2024-12", "pension", "medical"), contrib("220202", "2024-06..2024-12", "unemployment"))}
	r := eligibility.RunCase(p, c)
	for _, cr := range r.Decision.Conditions {
		if cr.ID == "insurance" && cr.Missing != "5 more months of pension, medical and unemployment insurance at the same time in 吉林市市区" {
			t.Errorf("missing = %q", cr.Missing)
		}
	}
	if r.Decision.QualifiesOn != "2025-05-01" {
		t.Errorf("qualifies_on = %q, want 2025-05-01 (contributions for 2025-01 … 2025-05, the fifth counted from its first day)", r.Decision.QualifiesOn)
	}
}
