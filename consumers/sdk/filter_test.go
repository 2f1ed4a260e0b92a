package sdk

import (
	"context"
	"strings"
	"testing"
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
