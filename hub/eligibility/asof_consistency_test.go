package eligibility_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas"
)

var cst = time.FixedZone("CST", 8*3600)

// deathCert is one death certificate: its event id, effective time and
// certified date of death.
type deathCert struct {
	id   string
	at   time.Time
	died string
}

// deceasedDays evaluates a person registered in 2020 who has the
// certificates, as of each day from first to last, and returns the first
// day eligibility says "deceased" ("" for none), with the day from which
// the merge stops counting the person in the registered population (the
// end of their registration span, "" for none): the two must agree.
func deceasedDays(t *testing.T, p *eligibility.Policy, certs []deathCert, first, last time.Time) (elig, counts string) {
	t.Helper()
	who := storetest.ValidID(1)
	in := []hub.Input{storetest.Event(t, schemas.HukouRegistered, who, "ps-r1", time.Date(2020, 1, 1, 9, 0, 0, 0, cst),
		schemas.HukouRegisteredData{Name: "李娜", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: "230102001001", HouseholdID: "H1", Reason: "birth"})}
	for _, c := range certs {
		in = append(in, storetest.Event(t, schemas.DeathCertified, who, c.id, c.at, schemas.DeathCertifiedData{DateOfDeath: c.died, CertificateNo: "C-" + c.id}))
	}
	out := merge.Batch(nil, in, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	st := out.States[who]
	subj := eligibility.Subject{Record: st.Record()}
	for _, e := range out.History {
		subj.History = append(subj.History, e.Change)
	}
	if regs := st.Registrations(); len(regs) > 0 {
		counts = regs[len(regs)-1].To
	}
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		asOf, err := eligibility.AsOfDay(d.Format(time.DateOnly))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range eligibility.Evaluate(p, subj, nil, asOf).Conditions {
			if c.ID == "status" && strings.HasPrefix(c.Facts[0].Text, "status "+hub.StatusDeceased) {
				return d.Format(time.DateOnly), counts
			}
		}
	}
	return "", counts
}

// TestDeathDayAgreesWithMerge: eligibility treats a person as deceased
// from the day the merge ends their count in the registered population:
// the earlier of the latest certificate's date of death (latest by time,
// then source, then event id) and the day the first certificate took
// effect. Hand-worked cases, then random ones against the merge itself.
func TestDeathDayAgreesWithMerge(t *testing.T) {
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cat.Policy("heilongjiang/harbin")
	at := func(m time.Month, d, h int) time.Time { return time.Date(2026, m, d, h, 0, 0, 0, cst) }
	first, last := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 30, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		certs []deathCert
		want  string
	}{
		{"one certificate, dated before its issue", []deathCert{{"hl-d1", at(3, 15, 9), "2026-03-01"}}, "2026-03-01"},
		{"a correction moves the date later", []deathCert{{"hl-d1", at(3, 15, 9), "2026-03-01"}, {"hl-d2", at(3, 20, 9), "2026-03-10"}}, "2026-03-10"},
		{"a correction moves the date earlier", []deathCert{{"hl-d1", at(3, 15, 9), "2026-03-10"}, {"hl-d2", at(3, 20, 9), "2026-03-01"}}, "2026-03-01"},
		{"a corrected date after the first certificate's day is not believed", []deathCert{{"hl-d1", at(3, 15, 9), "2026-03-01"}, {"hl-d2", at(3, 20, 9), "2026-03-18"}}, "2026-03-15"},
		{"same time: the later event id is the latest", []deathCert{{"hl-d2", at(3, 15, 9), "2026-03-10"}, {"hl-d1", at(3, 15, 9), "2026-03-01"}}, "2026-03-10"},
		{"a late-arriving older certificate is not the latest", []deathCert{{"hl-d2", at(3, 20, 9), "2026-03-10"}, {"hl-d1", at(3, 15, 9), "2026-03-01"}}, "2026-03-10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			elig, counts := deceasedDays(t, p, tc.certs, first, last)
			if elig != tc.want || counts != tc.want {
				t.Errorf("deceased from %q by eligibility, %q by the counts; want %q", elig, counts, tc.want)
			}
		})
	}
	r := rand.New(rand.NewPCG(7, 11))
	for i := range 200 {
		var certs []deathCert
		for j := range 1 + r.IntN(3) {
			issued := at(3, 1+r.IntN(20), 8+r.IntN(3)) // some at the same time
			died := issued.AddDate(0, 0, r.IntN(20)-15).Format(time.DateOnly)
			certs = append(certs, deathCert{fmt.Sprintf("hl-d%d", r.IntN(9)*10+j), issued, died})
		}
		elig, counts := deceasedDays(t, p, certs, first, last)
		if elig != counts {
			t.Errorf("case %d %+v: deceased from %q by eligibility, %q by the counts", i, certs, elig, counts)
		}
	}
}

// TestSameTimeHukouTies: of two migrations with the same effective time the
// one the record shows (the later by source, then event id) is the hukou
// eligibility decides by, whatever order they are listed in.
func TestSameTimeHukouTies(t *testing.T) {
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cat.Policy("chifeng/central")
	who := storetest.ValidID(2)
	at := time.Date(2024, 3, 1, 0, 0, 0, 0, cst)
	reg := storetest.Event(t, schemas.HukouRegistered, who, "ps-r1", time.Date(2020, 1, 1, 9, 0, 0, 0, cst),
		schemas.HukouRegisteredData{Name: "李娜", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: "150402001001", HouseholdID: "H1", Reason: "birth"})
	m2 := storetest.Event(t, schemas.HukouMigrated, who, "ps-m2", at, schemas.HukouMigratedData{FromAddressCode: "150402001001", ToAddressCode: "230103001001", Reason: "family"})
	m1 := storetest.Event(t, schemas.HukouMigrated, who, "ps-m1", at, schemas.HukouMigratedData{FromAddressCode: "150402001001", ToAddressCode: "230102001001", Reason: "family"})
	for _, tc := range []struct {
		name  string
		order []hub.Input
	}{
		{"winner first", []hub.Input{reg, m2, m1}},
		{"winner last", []hub.Input{reg, m1, m2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := merge.Batch(nil, []hub.Input{reg, m2, m1}, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
			subj := eligibility.Subject{Record: out.States[who].Record()}
			if got := subj.Record.Hukou.AddressCode; got != "230103001001" {
				t.Fatalf("record hukou %s, want 230103001001", got)
			}
			// The history in the order given, as a store lists changes
			// applied one by one.
			byID := map[string]hub.Change{}
			for _, e := range out.History {
				byID[e.Change.EventID] = e.Change
			}
			for _, in := range tc.order {
				subj.History = append(subj.History, byID[in.Event.ID])
			}
			asOf, _ := eligibility.AsOfDay("2024-06-01")
			for _, c := range eligibility.Evaluate(p, subj, nil, asOf).Conditions {
				if c.ID == "hukou_elsewhere" && (len(c.Facts) == 0 || c.Facts[0].EventID != "ps-m2") {
					t.Errorf("hukou_elsewhere facts %+v, want 230103001001 from ps-m2", c.Facts)
				}
			}
		})
	}
}
