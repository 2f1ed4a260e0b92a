package schemas

import (
	"testing"
	"time"
)

// TestCheckEncodedInvalidUTF8: the encoder writes a string that is not
// UTF-8 with U+FFFD in place of each bad byte, so its encoding reads back
// as other text: ids "ps-\xfe" and "ps-\xff" would become one id (the
// second dropped as a duplicate) and a GBK name would be stored garbled.
// CheckEncoded refuses such an event as not_json, the hub's reason for
// raw bytes that are not UTF-8, and names the field.
func TestCheckEncodedInvalidUTF8(t *testing.T) {
	at := fixedNow.Add(-time.Hour)
	cancelled := func(id string) Event {
		return Event{ID: id, Source: PublicSecurity, Type: HukouCancelled, Subject: validID, Time: at,
			Payload: &HukouCancelledData{Reason: "death"}}
	}
	registered := func(name string) Event {
		return Event{ID: "r-1", Source: PublicSecurity, Type: HukouRegistered, Subject: validID, Time: at,
			Payload: &HukouRegisteredData{Name: name, Gender: "1", BirthDate: "2026-01-01", Ethnicity: "01",
				AddressCode: "230102001001", HouseholdID: "h-1"}}
	}
	enrolled := Event{ID: "s-1", Source: SocialInsurance, Type: InsuranceEnrolled, Subject: validID, Time: at,
		Payload: &InsuranceEnrolledData{Scheme: "employee", Insurances: []string{"medical", "\xff"}, Region: "230102", Start: "2026-01-01"}}
	contentType := cancelled("c-1")
	contentType.DataContentType = "application/json; charset=\xff"
	source := cancelled("c-1")
	source.Source = "public_security\xff"

	tests := []struct {
		name      string
		ev        Event
		wantField string // "" for an event CheckEncoded accepts
	}{
		{"id with byte FE", cancelled("ps-\xfe"), "id"},
		{"id with byte FF", cancelled("ps-\xff"), "id"},
		{"id with U+FFFD itself", cancelled("ps-\uFFFD"), ""},
		{"GBK name", registered("\xd5\xc5\xc8\xfd"), "data.name"},
		{"UTF-8 name", registered("张三"), ""},
		{"list item", enrolled, "data.insurances"},
		{"subject", func() Event { e := cancelled("c-1"); e.Subject = "23010219900101123\xff"; return e }(), "subject"},
		{"source", source, "source"},
		{"datacontenttype", contentType, "datacontenttype"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			value, err := Encode(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			got := CheckEncoded(&tc.ev, Input{Value: value, Now: fixedNow})
			if tc.wantField == "" {
				if got != nil {
					t.Fatalf("CheckEncoded = %v, want nil", got)
				}
				return
			}
			re, ok := got.(*RejectError)
			if !ok || re.Reason != ReasonNotJSON || re.Field != tc.wantField {
				t.Fatalf("CheckEncoded = %v, want not_json at %s", got, tc.wantField)
			}
		})
	}
}
