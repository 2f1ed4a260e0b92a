package sdk

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pophub/pophub/schemas/region"
)

func TestCover(t *testing.T) {
	tests := []struct {
		name    string
		filters []Filter
		want    string
	}{
		{"one filter is exact", []Filter{{MigrationsOut, "2301"}}, "pop.migration.23.2301.*.*.*.*"},
		{"in and out merge token-wise", []Filter{{MigrationsOut, "2301"}, {MigrationsIn, "2301"}}, "pop.migration.*.*.*.*.*.*"},
		{"kinds of different shape share the prefix", []Filter{{MigrationsOut, "2301"}, {MigrationsIn, "2301"}, {Deaths, "2301"}}, "pop.>"},
		{"deaths in two cities", []Filter{{Deaths, "2301"}, {Deaths, "2306"}}, "pop.death.23.*.*"},
		{"duplicates collapse", []Filter{{Deaths, "23"}, {Deaths, "23"}}, "pop.death.23.*.*"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := newFilterSet("pop", tc.filters).cover; got != tc.want {
				t.Errorf("cover = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFilterSetMatch(t *testing.T) {
	fs := newFilterSet("pop", []Filter{{MigrationsOut, "2301"}, {MigrationsIn, "2301"}, {Deaths, "2301"}})
	tests := []struct {
		subject string
		want    bool
	}{
		{"pop.migration.23.2301.230102.11.1101.110105", true},  // out
		{"pop.migration.11.1101.110105.23.2301.230103", true},  // in
		{"pop.migration.23.2301.230102.23.2301.230103", true},  // within
		{"pop.migration.23.2306.230602.11.1101.110105", false}, // another city
		{"pop.death.23.2301.230102", true},
		{"pop.death.23.2306.230602", false},
		{"pop.changed.23.2301.230102.hukou", false},
		{"pop.death.23.2301", false},
		{"pop.death.23.2301.230102.x", false},
	}
	for _, tc := range tests {
		if got := fs.match(tc.subject); got != tc.want {
			t.Errorf("match(%s) = %v, want %v", tc.subject, got, tc.want)
		}
		// The server-side cover must let through everything matched.
		if tc.want && !matchSubject(strings.Split(fs.cover, "."), tc.subject) {
			t.Errorf("cover %s does not match %s", fs.cover, tc.subject)
		}
	}
}

// TestFilterCityInSixDigits: a city written in six digits (230100, as
// the statistics routes and the hub's persons list accept it) subscribes
// to the city, as its 4-digit code does, not to a county that never
// occurs.
func TestFilterCityInSixDigits(t *testing.T) {
	for _, kind := range []Kind{MigrationsOut, MigrationsIn, Deaths, Changes} {
		got, want := Filter{kind, "230100"}.Subject("pop"), Filter{kind, "2301"}.Subject("pop")
		if got != want {
			t.Errorf("%s in 230100: subject %s, want %s", kind, got, want)
		}
	}
	if got := RegionCode("230100"); got != "2301" {
		t.Errorf(`RegionCode("230100") = %q, want "2301"`, got)
	}
	for _, code := range []string{"", "23", "2301", "230102", "230000"} {
		if got := RegionCode(code); got != code {
			t.Errorf("RegionCode(%q) = %q, want it unchanged", code, got)
		}
	}
}

func TestFilterSubjectPrefix(t *testing.T) {
	if got, want := (Filter{Deaths, "230102"}).Subject("poptest"), "poptest.death.23.2301.230102"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestOutermost(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"2301", "2301", "230102"}, "2301"},
		{[]string{"2301", "2306"}, "2301,2306"},
		{[]string{"23", "", "44"}, ""},
		// A city in six digits is the city: its counties are inside it,
		// and walking both would hand their persons over twice.
		{[]string{"230100", "230102"}, "2301"},
		{[]string{"230102", "230100", "2301"}, "2301"},
	}
	for _, tc := range tests {
		if got := strings.Join(outermost(tc.in), ","); got != tc.want {
			t.Errorf("outermost(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := func(c *Config) {}
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"valid", ok, true},
		{"bad name", func(c *Config) { c.Name = "a.b" }, false},
		{"no filters", func(c *Config) { c.Filters = nil }, false},
		{"bad region", func(c *Config) { c.Filters = []Filter{{Deaths, "999"}} }, false},
		{"bad kind", func(c *Config) { c.Filters = []Filter{{"births", "23"}} }, false},
		{"dlq under pop", func(c *Config) { c.DeadLetterPrefix = "pop" }, false},
		{"time without time", func(c *Config) { c.Start.Policy = StartTime }, false},
		{"bootstrap without purpose", func(c *Config) { c.Bootstrap = &Bootstrap{HubURL: "http://x"} }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Name: "si-2301", Filters: []Filter{{Deaths, "2301"}}, Handler: func(context.Context, *Delivery) error { return nil }}
			tc.mutate(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestFilterRegionErrors: a filter's region error says what is wrong:
// the length, a character, or a province that does not exist (a
// well-formed code is not blamed for its length).
func TestFilterRegionErrors(t *testing.T) {
	tests := []struct {
		region string
		want   string // "" for no error
	}{
		{"", ""},
		{"23", ""},
		{"2301", ""},
		{"230102", ""},
		{"999", `filter region "999": want a 2-, 4- or 6-digit division code`},
		{"230102001", `filter region "230102001": want a 2-, 4- or 6-digit division code`},
		{"99", `filter region "99": not a division code: 99 is not a province code`},
		{"9901", `filter region "9901": not a division code: 99 is not a province code`},
		{"00", `filter region "00": not a division code: 00 is not a province code`},
		{"23a1", `filter region "23a1": not a division code: it has a character other than a digit`},
		{"230100", ""}, // Harbin in six digits, as departments write a city-wide region
		{"2399", `filter region "2399": not in the region table`},
		{"230199", `filter region "230199": not in the region table`},
		{"239900", `filter region "239900": not in the region table`},
		{"230000", `filter region "230000": not in the region table: a province is written in two digits, 23`},
	}
	for _, tc := range tests {
		err := Filter{Deaths, tc.region}.validate()
		if got := fmt.Sprint(err); tc.want == "" && err != nil || tc.want != "" && got != tc.want {
			t.Errorf("region %q: %v, want %q", tc.region, err, tc.want)
		}
	}
}

// TestCheckRegionKnowsCountiesOfTheOfficialTable: pophub regions import
// adds only the villages of the official table, so a county newer than
// the built-in table is never itself an entry; the hub still classifies
// and announces its persons under it, so a region is known when the table
// has it or any division beneath it.
func TestCheckRegionKnowsCountiesOfTheOfficialTable(t *testing.T) {
	o, err := region.ParseNBS(strings.NewReader("230199001001,111,新区居委会\n239901001001,220,新村村委会\n"))
	if err != nil {
		t.Fatal(err)
	}
	tab, _, _ := region.Builtin().With(o)
	old := region.Default()
	region.SetDefault(tab)
	t.Cleanup(func() { region.SetDefault(old) })
	tests := []struct {
		region string
		want   string // "" for no error
	}{
		{"230199", ""}, // a county known through its village
		{"2399", ""},   // a city known through its village
		{"239900", ""}, // the same city in six digits
		{"230102", ""},
		{"230198", `"230198": not in the region table`},
		{"2398", `"2398": not in the region table`},
		{"230000", `"230000": not in the region table: a province is written in two digits, 23`},
		{"99", `"99": not a division code: 99 is not a province code`},
	}
	for _, tc := range tests {
		err := CheckRegion(tc.region)
		if got := fmt.Sprint(err); tc.want == "" && err != nil || tc.want != "" && got != tc.want {
			t.Errorf("CheckRegion(%q) = %v, want %q", tc.region, err, tc.want)
		}
	}
}
