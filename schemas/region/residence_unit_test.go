package region

import "testing"

// TestResidenceUnit: where a province's residence-permit rule names
// county-level units (Heilongjiang, Inner Mongolia, Jilin), a city's
// districts are one unit and each county, banner or county-level city
// another; elsewhere the national rule's unit is the
// city.
func TestResidenceUnit(t *testing.T) {
	tests := []struct {
		name, address, want string
	}{
		{"道里区", "230102001001", "230100"},
		{"南岗区", "230103001001", "230100"},
		{"依兰县, a county of Harbin", "230123100200", "230123"},
		{"五常市, a county-level city of Harbin", "230184001001", "230184"},
		{"红山区", "150402001001", "150400"},
		{"阿鲁科尔沁旗", "150421100200", "150421"},
		{"昌邑区", "220202001001", "220200"},
		{"永吉县", "220221100200", "220221"},
		{"浏阳市, Changsha's county-level city", "430181001001", "430100"},
		{"岳麓区", "430104001001", "430100"},
		{"六枝特区", "520203100200", "520200"},
		{"城口县, a county of Chongqing", "500229001001", "500200"},
		{"东莞, a city without districts", "441900003001", "441900"},
		{"仙桃市, administered by its province", "429004001001", "429004"},
		{"神农架林区", "429021100200", "429021"},
	}
	for _, tt := range tests {
		if got := ResidenceUnit(tt.address); got != tt.want {
			t.Errorf("%s: ResidenceUnit(%s) = %s, want %s", tt.name, tt.address, got, tt.want)
		}
	}
}
