package schemas

import (
	"testing"
	"time"
)

// TestHouseholdIDBlankOrPadded: a household is "its id at its 12-digit
// address" (README, Eligibility), matched byte for byte by the stores'
// household index and by the eligibility engine. An id that is blank
// ("   ", U+3000, what a CHAR(n) column of a register system holds for a
// 户号 left empty) or padded (" H230102000001", "H230102000001 ") is
// accepted today: a blank id makes every person registered with it at a
// community's address one "household", whose members eligibility presumes
// to be children and parents of one another, and a padded one splits a
// household in two, since `pophub import` trims every cell (plan.go
// trimCell) and `pophub cdc`, the publisher library and the gateway send
// the value as it is. The hub refuses a name that is blank or padded for
// the same reason ("with which it would show as another name, or as
// nothing, and never match it"); a household id, which decides who is
// family, is left unchecked. Each should be invalid_data on
// data.household_id, in a registration and in a migration alike.
func TestHouseholdIDBlankOrPadded(t *testing.T) {
	ids := []struct{ name, id string }{
		{"ASCII blanks", "   "},
		{"ideographic space", "\u3000"},
		{"leading space", " H230102000001"},
		{"trailing space", "H230102000001 "},
		{"trailing ideographic space", "H230102000001\u3000"},
	}
	for _, typ := range []Type{HukouRegistered, HukouMigrated} {
		for _, tc := range ids {
			t.Run(string(typ)+"/"+tc.name, func(t *testing.T) {
				var payload Data = &HukouRegisteredData{Name: "张伟", Gender: "1", BirthDate: "1990-01-01", Ethnicity: "01",
					AddressCode: "230102001001", HouseholdID: tc.id, Relation: "子", Reason: "birth"}
				if typ == HukouMigrated {
					payload = &HukouMigratedData{FromAddressCode: "230102001001", ToAddressCode: "230102001002", Reason: "family", HouseholdID: tc.id}
				}
				ev := Event{ID: "ps-1", Source: PublicSecurity, Type: typ, Subject: validID, Time: fixedNow.Add(-24 * time.Hour), Payload: payload}
				value, err := Encode(ev)
				if err != nil {
					t.Fatal(err)
				}
				_, got := Decode(Input{Topic: Topic(PublicSecurity), Key: []byte(validID), Value: value, Now: fixedNow})
				re, ok := got.(*RejectError)
				if !ok || re.Reason != ReasonInvalidData || re.Field != "data.household_id" {
					t.Errorf("household_id %q: Decode = %v, want invalid_data on data.household_id", tc.id, got)
				}
			})
		}
	}
}
