package merge

import (
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// TestPermitRevokedUnderAnotherCodeOfItsCity: README "Events" (the
// cross-field rule of residence_permit.issued) accepts, as the city of a
// permit, "a province's code for any address of the province; any code of
// Beijing, Tianjin, Shanghai or Chongqing for any address of that
// municipality, Chongqing's counties 5002… included", and README
// "Statistics" says "A permit is its city's whichever code the department
// wrote in city_code: a permit issued as 230100 is renewed or revoked by an
// event written 230102". A permit issued under one of those accepted codes
// and revoked under another code of the same city (the municipality, or
// the city its address lies in) must no longer be listed nor counted.
func TestPermitRevokedUnderAnotherCodeOfItsCity(t *testing.T) {
	p := id(t, male)
	issue := func(city, addr string) hub.Input {
		return ev(t, schemas.ResidencePermitIssued, p, "ps-issue", "2024-01-01T08:00:00+08:00",
			map[string]any{"city_code": city, "address_code": addr, "basis": "employment"})
	}
	revoke := func(city string) hub.Input {
		return ev(t, schemas.ResidencePermitRevoked, p, "ps-revoke", "2024-05-01T08:00:00+08:00", map[string]any{"city_code": city})
	}
	tests := []struct {
		name            string
		issued, address string
		revoked         string
	}{
		{"Beijing issued as the municipality, revoked by 东城区", "110000", "110101001001", "110101"},
		{"Beijing issued by 东城区, revoked as the municipality", "110101", "110101001001", "110000"},
		{"Chongqing issued by 城口县, revoked as the city", "500229", "500229001001", "500100"},
		{"Chongqing issued as the city for a 城口县 address, revoked by 城口县", "500100", "500229001001", "500229"},
		{"Harbin address issued under the province's code, revoked by Harbin", "230000", "230102001001", "230100"},
		{"Harbin address issued under the province's code, revoked by 道里区", "230000", "230102001001", "230102"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			states, _ := run([]hub.Input{issue(tc.issued, tc.address), revoke(tc.revoked)})
			st := states[p]
			if got := st.Record().ResidencePermits; len(got) != 0 {
				t.Errorf("after the revocation the record still lists %+v", got)
			}
			spans := st.PermitSpans()
			for _, s := range spans {
				if s.To == "" {
					t.Errorf("after the revocation the permit is counted on for ever: spans %+v", spans)
				}
			}
		})
	}
}
