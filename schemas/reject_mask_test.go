package schemas

import (
	"errors"
	"strings"
	"testing"

	"github.com/pophub/pophub/schemas/citizenid"
)

// TestRejectMasksIDsInMemberNames: a member a producer named with a
// citizen ID (a map keyed by ID encoded into data by mistake), or a
// source or type holding one, is rejected without the ID in the reject's
// field or text, which reach the DLQ, the hub's log and `pophub dlq list`.
// The repeated-name check already masks such names; the unknown-member
// rejects must too.
func TestRejectMasksIDsInMemberNames(t *testing.T) {
	const id = "110105194912310021" // not the subject, so only the name can leak it
	tests := []struct {
		name   string
		src    Source
		typ    Type
		value  string
		reason string
		field  string
	}{
		{"unknown data member named with an ID", PublicSecurity, HukouCancelled,
			env("public_security", "hukou.cancelled", validID, `{"reason":"death","`+id+`":"x"}`),
			ReasonInvalidData, "data.(a name holding 15 or more digits)"},
		{"unknown data member holding an ID", PublicSecurity, HukouCancelled,
			env("public_security", "hukou.cancelled", validID, `{"reason":"death","spouse_`+id+`":"x"}`),
			ReasonInvalidData, "data.(a name holding 15 or more digits)"},
		{"envelope member holding an ID that is no attribute name", PublicSecurity, HukouCancelled,
			strings.Replace(env("public_security", "hukou.cancelled", validID, `{"reason":"death"}`), `"id":"e-1"`, `"id":"e-1","ID_`+id+`":"x"`, 1),
			ReasonNotCloudEvent, ""},
		// The values of source and type are quoted by the rejects that
		// refuse them, unless they may hold an ID (a column mapped to
		// the wrong attribute).
		{"type holding an ID", PublicSecurity, HukouCancelled,
			env("public_security", "hukou.cancelled."+id, validID, `{"reason":"death"}`),
			ReasonUnknownType, "type"},
		{"type that is an ID", PublicSecurity, HukouCancelled,
			env("public_security", id, validID, `{"reason":"death"}`),
			ReasonUnknownType, "type"},
		{"source holding an ID", PublicSecurity, HukouCancelled,
			env("ps_"+id, "hukou.cancelled", validID, `{"reason":"death"}`),
			ReasonSourceMismatch, "source"},
		// Every form MaskText takes for an ID: full-width digits as a
		// Chinese input method types them, groups, and a long value cut
		// to its first 64 bytes, which would still show most digits.
		{"type that is a full-width ID", PublicSecurity, HukouCancelled,
			env("public_security", "１１０１０５１９４９１２３１００２１", validID, `{"reason":"death"}`),
			ReasonUnknownType, "type"},
		{"long type holding a full-width ID", PublicSecurity, HukouCancelled,
			env("public_security", "hukou.cancelled.１１０１０５１９４９１２３１００２１", validID, `{"reason":"death"}`),
			ReasonUnknownType, "type"},
		{"source holding a grouped ID", PublicSecurity, HukouCancelled,
			env("330602-19851021-0103", "hukou.cancelled", validID, `{"reason":"death"}`),
			ReasonSourceMismatch, "source"},
		{"data member named with a full-width ID", PublicSecurity, HukouCancelled,
			env("public_security", "hukou.cancelled", validID, `{"reason":"death","１１０１０５１９４９１２３１００２１":"x"}`),
			ReasonInvalidData, "data.(a name holding 15 or more digits)"},
		// A name with fewer digits is no ID: named as is, so a producer
		// can find it in its code.
		{"unknown data member with a short number", PublicSecurity, HukouCancelled,
			env("public_security", "hukou.cancelled", validID, `{"reason":"death","cause_2026":"x"}`),
			ReasonInvalidData, "data.cause_2026"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Topic: Topic(tc.src), Key: []byte(validID), Value: []byte(tc.value), Now: fixedNow, FromKafka: true}
			for name, decode := range map[string]func(Input) (Event, error){"Decode": Decode, "decodeStd": decodeStd} {
				_, err := decode(in)
				var re *RejectError
				if !errors.As(err, &re) || re.Reason != tc.reason || re.Field != tc.field {
					t.Errorf("%s = %v; want %s at %q", name, err, tc.reason, tc.field)
					continue
				}
				if strings.Contains(re.Field, id) || strings.Contains(re.Error(), id) || citizenid.MaskText(re.Error()) != re.Error() ||
					strings.Contains(re.Error(), "１１０１０５１９４９１２３１") || strings.Contains(re.Error(), "19851021") {
					t.Errorf("%s: reject field %q, text %q carry the ID %s", name, re.Field, re.Error(), id)
				}
			}
		})
	}
}

// TestQuoteValue: a rejected value is quoted as is when short and free of
// ID-like digit runs, cut when long, and masked when it may hold an ID.
func TestQuoteValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"hukou.registerd", `"hukou.registerd"`},
		{"户籍", `"户籍"`},
		{"emp-2026-000123", `"emp-2026-000123"`},
		{"x110105194912310021", maskedValue},
		{"11010519491231002", maskedValue},
		{"hukou.１１０１０５１９４９１２３１００２１", maskedValue},
		{"id 330602 19851021 0103", maskedValue},
		{strings.Repeat("a", 70), `"` + strings.Repeat("a", 64) + `"…`},
		{strings.Repeat("户", 30), `"` + strings.Repeat("户", 21) + `"…`}, // cut on a whole character
	}
	for _, tc := range tests {
		if got := QuoteValue(tc.in); got != tc.want {
			t.Errorf("QuoteValue(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
