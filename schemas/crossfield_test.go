package schemas

import (
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas/citizenid"
)

// TestRulesBetweenFields: rules that tie a data field to the subject or
// to another field, which JSON Schema cannot say. A marriage or divorce
// names the other spouse (the spouse's own event names the subject); a
// residence permit is for an address in the city that issues it. Decode,
// the standard library's path (decodeStd) and the publisher's check of a
// typed payload (CheckEncoded) agree.
func TestRulesBetweenFields(t *testing.T) {
	permit := func(city, address string) Data {
		return &ResidencePermitIssuedData{CityCode: city, AddressCode: address, Basis: "employment"}
	}
	tests := []struct {
		name          string
		typ           Type
		payload       Data
		field, detail string // "" when valid
	}{
		{"marriage to another", MarriageRegistered, &MarriageRegisteredData{SpouseID: "11010519491231002X"}, "", ""},
		{"marriage to oneself", MarriageRegistered, &MarriageRegisteredData{SpouseID: validID}, "data.spouse_id", "is the subject's own citizen ID"},
		{"divorce from oneself", MarriageDivorced, &MarriageDivorcedData{SpouseID: citizenid.ID(validID)}, "data.spouse_id", "is the subject's own citizen ID"},
		{"permit of the prefecture holding the address", ResidencePermitIssued, permit("230100", "230102001001"), "", ""},
		{"permit of the county holding the address", ResidencePermitIssued, permit("230102", "230102001001"), "", ""},
		{"permit written as another district of the city", ResidencePermitIssued, permit("230103", "230102001001"), "", ""},
		{"permit of a municipality written as its province", ResidencePermitIssued, permit("110000", "110105001024"), "", ""},
		{"permit of a Chongqing district, address in a Chongqing county", ResidencePermitIssued, permit("500103", "500229001001"), "", ""},
		{"permit of a Chongqing county, address in a Chongqing district", ResidencePermitIssued, permit("500229", "500101001001"), "", ""},
		{"permit of a municipality, address in another", ResidencePermitIssued, permit("500103", "110105001024"), "data.address_code", "does not lie in the city of city_code 500103"},
		{"permit of a county-level city a province administers", ResidencePermitIssued, permit("429004", "429004001001"), "", ""},
		{"permit of another prefecture", ResidencePermitIssued, permit("230200", "230102001001"), "data.address_code", "does not lie in the city of city_code 230200"},
		{"permit of another province", ResidencePermitIssued, permit("440000", "230102001001"), "data.address_code", "does not lie in the city of city_code 440000"},
		{"permit of one province-administered city, address in another", ResidencePermitIssued, permit("429004", "429006001001"), "data.address_code", "does not lie in the city of city_code 429004"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := SourceOf(tc.typ)
			ev := Event{ID: "e-1", Source: src, Type: tc.typ, Subject: validID, Time: fixedNow.Add(-24 * time.Hour), Payload: tc.payload}
			value, err := Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			in := Input{Topic: Topic(src), Key: []byte(validID), Value: value, Now: fixedNow}
			_, got := Decode(in)
			if _, std := decodeStd(in); !sameReject(got, std) {
				t.Fatalf("Decode says %v, decodeStd says %v", got, std)
			}
			if check := CheckEncoded(&ev, in); !sameReject(got, check) {
				t.Fatalf("Decode says %v, CheckEncoded says %v", got, check)
			}
			if tc.field == "" {
				if got != nil {
					t.Fatalf("Decode = %v, want valid", got)
				}
				return
			}
			re, ok := got.(*RejectError)
			if !ok || re.Reason != ReasonInvalidData || re.Field != tc.field || !strings.Contains(re.Detail, tc.detail) {
				t.Fatalf("Decode = %v, want invalid_data on %s: …%s…", got, tc.field, tc.detail)
			}
			if strings.Contains(re.Error(), validID) {
				t.Errorf("error %q contains the citizen ID", re)
			}
		})
	}
}
