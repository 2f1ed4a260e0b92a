package region

import "testing"

// TestNamed: a city written in six digits is the city, unless the table
// has the code as a county; every other code is its own.
func TestNamed(t *testing.T) {
	for code, want := range map[string]string{
		"230100": "2301", "441900": "441900", "442000": "442000", "460400": "460400",
		"230000": "230000", "2301": "2301", "230102": "230102", "23": "23", "230102001": "230102001",
	} {
		if got := Named(code); got != want {
			t.Errorf("Named(%q) = %q, want %q", code, got, want)
		}
	}
}

// TestBelow: each level's next one down, none under a village.
func TestBelow(t *testing.T) {
	for l, want := range map[Level]Level{ProvinceLevel: CityLevel, CityLevel: CountyLevel, CountyLevel: TownshipLevel,
		TownshipLevel: VillageLevel, VillageLevel: 0, 5: 0} {
		if got := l.Below(); got != want {
			t.Errorf("%v.Below() = %v, want %v", l, got, want)
		}
	}
}
