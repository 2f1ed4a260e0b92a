package sdk

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/region"
)

func TestCover(t *testing.T) {
	tests := []struct {
		name    string
		filters []Filter
		want    string
	}{
		{"one filter is exact", []Filter{{Kind: MigrationsOut, Region: "2301"}}, "pop.migration.23.2301.*.*.*.*"},
		{"in and out merge token-wise", []Filter{{Kind: MigrationsOut, Region: "2301"}, {Kind: MigrationsIn, Region: "2301"}}, "pop.migration.*.*.*.*.*.*"},
		{"kinds of different shape share the prefix", []Filter{{Kind: MigrationsOut, Region: "2301"}, {Kind: MigrationsIn, Region: "2301"}, {Kind: Deaths, Region: "2301"}}, "pop.>"},
		{"deaths in two cities", []Filter{{Kind: Deaths, Region: "2301"}, {Kind: Deaths, Region: "2306"}}, "pop.death.23.*.*"},
		{"duplicates collapse", []Filter{{Kind: Deaths, Region: "23"}, {Kind: Deaths, Region: "23"}}, "pop.death.23.*.*"},
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
	fs := newFilterSet("pop", []Filter{{Kind: MigrationsOut, Region: "2301"}, {Kind: MigrationsIn, Region: "2301"}, {Kind: Deaths, Region: "2301"}})
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
		got, want := Filter{Kind: kind, Region: "230100"}.Subject("pop"), Filter{Kind: kind, Region: "2301"}.Subject("pop")
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
	if got, want := (Filter{Kind: Deaths, Region: "230102"}).Subject("poptest"), "poptest.death.23.2301.230102"; got != want {
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
		{"bad region", func(c *Config) { c.Filters = []Filter{{Kind: Deaths, Region: "999"}} }, false},
		{"bad kind", func(c *Config) { c.Filters = []Filter{{Kind: "births", Region: "23"}} }, false},
		{"dlq under pop", func(c *Config) { c.DeadLetterPrefix = "pop" }, false},
		{"time without time", func(c *Config) { c.Start.Policy = StartTime }, false},
		{"bootstrap without purpose", func(c *Config) { c.Bootstrap = &Bootstrap{HubURL: "http://x"} }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Name: "si-2301", Filters: []Filter{{Kind: Deaths, Region: "2301"}}, Handler: func(context.Context, *Delivery) error { return nil }}
			tc.mutate(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestFilterSection: a changes filter may name one section, so that a
// subscriber under the hub's access policy, which grants the changed
// subjects section by section, can follow the one it reads
// (pop.changed.23.2301.*.status) instead of every section of the region,
// which it may not read. Only a changes filter has a section, and only
// one of the hub's: anything else is refused, saying what is wanted,
// rather than subscribing to a subject that matches nothing. A filter
// without a section keeps its subject, and so its consumer name
// (schemas.FilterConsumerName hashes the subject): consumers created
// before sections existed are bound again; filters differing by section
// get consumers of their own.
func TestFilterSection(t *testing.T) {
	tests := []struct {
		name     string
		filter   Filter
		subject  string // "" when validate refuses the filter
		consumer string // FilterConsumerName("si-harbin", subject), when pinned
		err      string // what validate's error must say
	}{
		{name: "status of a city", filter: Filter{Kind: Changes, Region: "2301", Section: "status"},
			subject: "pop.changed.23.2301.*.status", consumer: "si-harbin-e46bacff"},
		{name: "no section: every section, as before", filter: Filter{Kind: Changes, Region: "2301"},
			subject: "pop.changed.23.2301.*.*", consumer: "si-harbin-dc8a962e"},
		{name: "deaths unchanged", filter: Filter{Kind: Deaths, Region: "2301"},
			subject: "pop.death.23.2301.*", consumer: "si-harbin-bcc33398"},
		{name: "hukou of a county", filter: Filter{Kind: Changes, Region: "230102", Section: "hukou"},
			subject: "pop.changed.23.2301.230102.hukou"},
		{name: "city in six digits", filter: Filter{Kind: Changes, Region: "230100", Section: "status"},
			subject: "pop.changed.23.2301.*.status"},
		{name: "a province", filter: Filter{Kind: Changes, Region: "23", Section: "social_insurance"},
			subject: "pop.changed.23.*.*.social_insurance"},
		{name: "the whole country", filter: Filter{Kind: Changes, Section: "anomalies"},
			subject: "pop.changed.*.*.*.anomalies"},
		{name: "section on deaths", filter: Filter{Kind: Deaths, Region: "2301", Section: "status"},
			err: `filter section "status": only a changes filter has a section, not deaths`},
		{name: "section on migrations", filter: Filter{Kind: MigrationsIn, Region: "2301", Section: "hukou"},
			err: `filter section "hukou": only a changes filter has a section, not migrations_in`},
		{name: "unknown section", filter: Filter{Kind: Changes, Region: "2301", Section: "statuses"},
			err: `filter section "statuses": not a section of the hub (identity, hukou, status, residence_permits, marital, education, employment, social_insurance, housing, tax, anomalies)`},
		{name: "upper case", filter: Filter{Kind: Changes, Region: "2301", Section: "Status"},
			err: `filter section "Status": not a section of the hub`},
		{name: "a wildcard", filter: Filter{Kind: Changes, Region: "2301", Section: "*"},
			err: `filter section "*": not a section of the hub`},
		{name: "a subject", filter: Filter{Kind: Changes, Region: "2301", Section: "status.x"},
			err: `filter section "status.x": not a section of the hub`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.filter.validate()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("validate() = %v, want an error saying %q", err, tc.err)
				}
				c := Config{Name: "si-harbin", Filters: []Filter{tc.filter}, Handler: func(context.Context, *Delivery) error { return nil }}
				if err := c.Validate(); err == nil {
					t.Errorf("Config.Validate() took the filter %+v", tc.filter)
				}
				return
			}
			if err != nil {
				t.Fatalf("validate() = %v, want the filter taken", err)
			}
			if got := tc.filter.Subject("pop"); got != tc.subject {
				t.Errorf("Subject = %q, want %q", got, tc.subject)
			}
			if got := tc.filter.Subject("poptest"); got != "poptest"+strings.TrimPrefix(tc.subject, "pop") {
				t.Errorf("Subject under poptest = %q", got)
			}
			if tc.consumer != "" {
				if got := schemas.FilterConsumerName("si-harbin", tc.filter.Subject("pop")); got != tc.consumer {
					t.Errorf("consumer name %s, want %s", got, tc.consumer)
				}
			}
		})
	}
}

// TestFilterSectionsAreDistinct: filters differing only by section are
// distinct subscriptions: each has its consumer (ConsumerPerFilter), the
// client-side match tells their subjects apart, and the single consumer's
// cover spans them.
func TestFilterSectionsAreDistinct(t *testing.T) {
	filters := []Filter{
		{Kind: Changes, Region: "2301", Section: "status"},
		{Kind: Changes, Region: "2301", Section: "hukou"},
		{Kind: Changes, Region: "2301"},
	}
	fs := newFilterSet("pop", filters)
	if len(fs.subjects) != 3 {
		t.Fatalf("subjects %v, want three", fs.subjects)
	}
	if err := checkFilterConsumers("si-harbin", fs); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, s := range fs.subjects {
		names[schemas.FilterConsumerName("si-harbin", s)] = true
	}
	if len(names) != 3 {
		t.Errorf("consumer names %v, want three", names)
	}
	if fs.cover != "pop.changed.23.2301.*.*" {
		t.Errorf("cover %s, want pop.changed.23.2301.*.*", fs.cover)
	}
	status := newFilterSet("pop", []Filter{filters[0], {Kind: Deaths, Region: "2301"}})
	for subject, want := range map[string]bool{
		"pop.changed.23.2301.230102.status":  true,
		"pop.changed.23.2301.230102.hukou":   false,
		"pop.changed.23.2306.230602.status":  false,
		"pop.death.23.2301.230102":           true,
		"pop.changed.23.2301.230102.status2": false,
	} {
		if got := status.match(subject); got != want {
			t.Errorf("match(%s) = %v, want %v", subject, got, want)
		}
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
		err := Filter{Kind: Deaths, Region: tc.region}.validate()
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
