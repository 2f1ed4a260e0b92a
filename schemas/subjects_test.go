package schemas

import (
	"fmt"
	"testing"
)

func TestSubjectBuilders(t *testing.T) {
	tests := []struct{ got, want string }{
		{ChangedSubject("230102001001", SecHukou), "pop.changed.23.2301.230102.hukou"},
		{ChangedSubject("230102", SecMarital), "pop.changed.23.2301.230102.marital"},
		{ChangedSubject("", SecIdentity), "pop.changed.00.0000.000000.identity"},
		{MigrationSubject("230102001001", "110105001001"), "pop.migration.23.2301.230102.11.1101.110105"},
		{MigrationSubject("", "110105001001"), "pop.migration.00.0000.000000.11.1101.110105"},
		{DeathSubject("440304001002"), "pop.death.44.4403.440304"},
		{ChangedFilter("2301"), "pop.changed.23.2301.*.*"},
		{ChangedFilter("23"), "pop.changed.23.*.*.*"},
		{ChangedFilter("230102"), "pop.changed.23.2301.230102.*"},
		{MigrationOutFilter("2301"), "pop.migration.23.2301.*.*.*.*"},
		{MigrationInFilter("2301"), "pop.migration.*.*.*.23.2301.*"},
		{DeathFilter("23"), "pop.death.23.*.*"},
		{DeathFilter(""), "pop.death.*.*.*"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}

// TestFiltersMatchAtEveryLevel: a filter for a province, a city or a county
// matches exactly the subjects of persons registered below it.
func TestFiltersMatchAtEveryLevel(t *testing.T) {
	daoli := "230102001001"   // 道里区, 哈尔滨 2301, 黑龙江 23
	nangang := "230103002001" // 南岗区, 哈尔滨
	saertu := "230602002003"  // 萨尔图区, 大庆 2306
	futian := "440304001002"  // 福田区, 深圳 4403, 广东 44
	tests := []struct {
		code string
		in   []string
		out  []string
	}{
		{"23", []string{daoli, nangang, saertu}, []string{futian, ""}},
		{"2301", []string{daoli, nangang}, []string{saertu, futian, ""}},
		{"230102", []string{daoli}, []string{nangang, saertu, futian, ""}},
		{"44", []string{futian}, []string{daoli, ""}},
		{"", []string{daoli, futian, ""}, nil}, // no region: everything
	}
	for _, tc := range tests {
		for _, addr := range append(append([]string(nil), tc.in...), tc.out...) {
			want := false
			for _, a := range tc.in {
				want = want || a == addr
			}
			for _, sec := range Sections {
				if got := match(ChangedFilter(tc.code), ChangedSubject(addr, sec)); got != want {
					t.Errorf("%s matches %s = %v, want %v", ChangedFilter(tc.code), ChangedSubject(addr, sec), got, want)
				}
			}
			if got := match(DeathFilter(tc.code), DeathSubject(addr)); got != want {
				t.Errorf("%s matches %s = %v, want %v", DeathFilter(tc.code), DeathSubject(addr), got, want)
			}
			// Migrations: out of addr into futian, and into addr from daoli.
			if got := match(MigrationOutFilter(tc.code), MigrationSubject(addr, futian)); got != want {
				t.Errorf("%s matches %s = %v, want %v", MigrationOutFilter(tc.code), MigrationSubject(addr, futian), got, want)
			}
			if got := match(MigrationInFilter(tc.code), MigrationSubject(daoli, addr)); got != want {
				t.Errorf("%s matches %s = %v, want %v", MigrationInFilter(tc.code), MigrationSubject(daoli, addr), got, want)
			}
			for _, subj := range []string{ChangedSubject(addr, SecTax), MigrationSubject(addr, addr), DeathSubject(addr)} {
				if !match(StreamSubjects, subj) {
					t.Errorf("stream subjects %s miss %s", StreamSubjects, subj)
				}
			}
		}
	}
	// The matcher itself.
	for _, tc := range []struct {
		filter, subject string
		want            bool
	}{
		{"a.*", "a.b", true}, {"a.*", "a.b.c", false}, {"a.>", "a", false}, {"a.>", "a.b.c", true}, {"a.b", "a.b", true}, {"a.b", "a.c", false},
	} {
		if got := match(tc.filter, tc.subject); got != tc.want {
			t.Errorf("match(%s, %s) = %v", tc.filter, tc.subject, got)
		}
	}
}

func TestTopics(t *testing.T) {
	if got := Topics(); len(got) != 8 || got[0] != "pop.events.public_security" || got[7] != "pop.events.marriage" {
		t.Errorf("Topics() = %v", got)
	}
	tests := []struct {
		topic string
		want  Source
	}{
		{"pop.events.health", Health},
		{"pop.events.social_insurance", SocialInsurance},
		{DLQTopic, ""},
		{"pop.events.", ""},
		{"events.health", ""},
		{"xpop.events.health", ""},
	}
	for _, tc := range tests {
		if got := SourceOfTopic(tc.topic); got != tc.want {
			t.Errorf("SourceOfTopic(%q) = %q, want %q", tc.topic, got, tc.want)
		}
	}
	for _, typ := range Types() {
		if !SourceOf(typ).Valid() || NewData(typ) == nil {
			t.Errorf("%s: source %q", typ, SourceOf(typ))
		}
	}
	if len(Types()) != 23 || SourceOf("x.y") != "" || NewData("x.y") != nil {
		t.Errorf("catalogue of %d types", len(Types()))
	}
}

func ExampleChangedSubject() {
	fmt.Println(ChangedSubject("230102001001", SecHukou))
	fmt.Println(ChangedSubject("", SecIdentity))
	fmt.Println(ChangedFilter("2301"))
	fmt.Println(ChangedFilter("23"))
	// Output:
	// pop.changed.23.2301.230102.hukou
	// pop.changed.00.0000.000000.identity
	// pop.changed.23.2301.*.*
	// pop.changed.23.*.*.*
}

func ExampleDeathSubject() {
	fmt.Println(DeathSubject("230102001001"))
	fmt.Println(DeathFilter("2301"))
	// Output:
	// pop.death.23.2301.230102
	// pop.death.23.2301.*
}
