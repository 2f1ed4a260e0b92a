package eligibility_test

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pophub/pophub/hub/eligibility"
)

// pointsFacts lists the fact texts of the points condition.
func pointsFacts(d eligibility.Decision) []string {
	var out []string
	for _, c := range d.Conditions {
		if c.ID == "points" {
			for _, f := range c.Facts {
				out = append(out, f.Text)
			}
		}
	}
	return out
}

// TestPointsGroupScoresOneHome: the points tables score a legal stable
// residence as an owned home OR a rental (合法稳定住所（含租赁）), not both: a
// person who owns a home and rents too gets the better of the two, and the
// facts say which counted.
func TestPointsGroupScoresOneHome(t *testing.T) {
	tests := []struct {
		policy string
		c      eligibility.Case
		want   []string // fragments of the points facts
	}{
		{"hunan/over-3m", eligibility.Case{
			Name: "owns a home and rents", AsOf: "2024-07-15", Person: outsider,
			Events: evs(contract("C1", "430102", "2023-07-01", ""), lease("L1", changsha, "2021-07-01", ""),
				home("P1", "430103001001", "2024-07-01")),
			// 10 (employment) + 20 (home; the rental's 15 does not add) + 15 (residence) = 45.
			Expect: eligibility.CaseExpect{Eligible: false, Conditions: map[string]bool{"points": false}}},
			[]string{"home: 1 (yes=1) → 20 points (counted: the best of group housing)",
				"rental: 36 months → 15 points (not counted: group housing counts only its best, home)",
				"45 points of 60 needed"}},
		{"hunan/over-3m", eligibility.Case{
			Name: "rents only", AsOf: "2024-07-15", Person: outsider,
			Events: evs(contract("C1", "430102", "2021-07-01", ""), lease("L1", changsha, "2021-07-01", "")),
			// 30 (employment) + 15 (rental) + 15 (residence) = 60.
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"points": true}}},
			[]string{"home: 0 (yes=1) → 0 points (not counted: group housing counts only its best, rental)",
				"rental: 36 months → 15 points (counted: the best of group housing)", "60 points of 60 needed"}},
		{"heilongjiang/harbin", eligibility.Case{
			Name: "owns a home and rents", AsOf: "2025-01-15", Person: outsider,
			Events: evs(contract("C1", "230103", "2022-01-01", ""), lease("L1", harbinAddr, "2022-01-01", ""),
				home("P1", harbinAddr, "2024-12-01"), contrib("230602", "2022-01..2024-12", "pension")),
			// 15 (employment) + 20 (home; not the rental's 15 too) + 15 (insurance) + 9 (residence) = 59.
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"points": true}}},
			[]string{"rental: 36 months → 15 points (not counted: group housing counts only its best, home)", "59 points of 50 needed"}},
	}
	for _, tt := range tests {
		t.Run(tt.policy+"/"+tt.c.Name, func(t *testing.T) {
			r := runShipped(t, tt.policy, tt.c)
			if !r.Passed {
				t.Errorf("%s", strings.Join(r.Problems, "; "))
			}
			facts := pointsFacts(r.Decision)
			for _, w := range tt.want {
				if !slices.Contains(facts, w) {
					t.Errorf("points facts lack %q:\n%s", w, strings.Join(facts, "\n"))
				}
			}
		})
	}
}

// TestPointsGroupPrediction: the day a person will qualify counts a group
// by its best item on that day too, so a rental that will outscore the
// home only adds what it scores above it.
func TestPointsGroupPrediction(t *testing.T) {
	const policy = `id: test/points
title: test
seed: {doc: 黑政发〔2014〕25号, file: 000_03dd86b7a0fe4cb2.txt}
places: [{name: 哈尔滨市城区, codes: ["230103"]}]
clauses:
  - id: points
    ref: 一（三）
    text: 积分
    condition:
      points:
        threshold: 20
        items:
          - {id: home, text: 自有, measure: owns_home, points: 10, group: housing}
          - {id: rental, text: 租赁, measure: rental_months, points: 5, per_months: 12, max: 20, group: housing}
`
	cat, err := eligibility.Load(fstest.MapFS{"test/points.yaml": {Data: []byte(policy)}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cat.Policy("test/points")
	// Home 10 now, rental 10 now: 10 points, not 20. The rental reaches 20
	// points after four years, on 2025-12-31.
	r := eligibility.RunCase(p, eligibility.Case{
		Name: "home and a rental", AsOf: "2024-07-15", Person: outsider,
		Events: evs(lease("L1", harbinAddr, "2022-01-01", ""), home("P1", harbinAddr, "2024-01-01")),
		Expect: eligibility.CaseExpect{Eligible: false, QualifiesOn: "2025-12-31"},
	})
	if !r.Passed {
		t.Errorf("%s\n%s", strings.Join(r.Problems, "; "), strings.Join(pointsFacts(r.Decision), "\n"))
	}
}

// TestPointsGroupValidation: a group is non-empty text naming two items
// or more listed one after another, so that a misspelt group name does
// not silently make an item score on its own.
func TestPointsGroupValidation(t *testing.T) {
	const policy = `id: test/points
title: test
seed: {doc: 黑政发〔2014〕25号, file: 000_03dd86b7a0fe4cb2.txt}
places: [{name: 哈尔滨市城区, codes: ["230103"]}]
clauses:
  - id: points
    ref: 一（三）
    text: 积分
    condition: {points: {threshold: 10, items: [ITEMS]}}
`
	const (
		homeItem   = "{id: home, text: 自有, measure: owns_home, points: 20GROUP}"
		rentalItem = "{id: rental, text: 租赁, measure: rental_months, points: 5, per_months: 12, max: 15GROUP}"
		workItem   = "{id: work, text: 就业, measure: employed_months, points: 5, per_months: 12, max: 20}"
	)
	item := func(it, group string) string { return strings.Replace(it, "GROUP", group, 1) }
	tests := []struct {
		name    string
		items   []string
		wantErr string
	}{
		{"a group of two", []string{item(homeItem, ", group: housing"), item(rentalItem, ", group: housing"), workItem}, ""},
		{"no groups", []string{item(homeItem, ""), item(rentalItem, ""), workItem}, ""},
		{"an empty group", []string{item(homeItem, `, group: ""`), item(rentalItem, `, group: ""`)},
			`points item home: group must be non-empty text`},
		{"a blank group", []string{item(homeItem, `, group: " "`), item(rentalItem, `, group: " "`)},
			`points item home: group must be non-empty text`},
		{"a list as group", []string{item(homeItem, ", group: [housing]"), item(rentalItem, ", group: housing")},
			`points item home: group must be non-empty text`},
		{"a group of one", []string{item(homeItem, ", group: housing"), item(rentalItem, ", group: housng")},
			`points: group housing has only item home`},
		{"a group split by another item", []string{item(homeItem, ", group: housing"), workItem, item(rentalItem, ", group: housing")},
			`points: item rental of group housing is not listed right after the group's other items`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(policy, "ITEMS", strings.Join(tt.items, ", "), 1)
			_, err := eligibility.Load(fstest.MapFS{"test/points.yaml": {Data: []byte(src)}})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}
