package eligibility_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas"
)

// siEnrolled is a social_insurance.enrolled registered at time at, with
// the scheme's start.
func siEnrolled(at, scheme, region, start string, kinds ...string) eligibility.CaseEvent {
	ks := make([]any, len(kinds))
	for i, k := range kinds {
		ks[i] = k
	}
	return eligibility.CaseEvent{Type: schemas.InsuranceEnrolled, Time: at,
		Data: map[string]any{"scheme": scheme, "insurances": ks, "region": region, "start": start}}
}

// contribRecordedOn is one contribution event per month of from..to, all
// recorded on day at (a back payment, 补缴, or a department's load of its
// history).
func contribRecordedOn(at, region, from, to string, kinds ...string) []eligibility.CaseEvent {
	ks := make([]any, len(kinds))
	for i, k := range kinds {
		ks[i] = k
	}
	first, _ := time.Parse("2006-01", from)
	last, _ := time.Parse("2006-01", to)
	var out []eligibility.CaseEvent
	for m := first; !m.After(last); m = m.AddDate(0, 1, 0) {
		out = append(out, eligibility.CaseEvent{Type: schemas.ContributionRecorded, Time: at,
			Data: map[string]any{"region": region, "insurances": ks, "month": m.Format("2006-01")}})
	}
	return out
}

func insuranceCondition(t *testing.T, r eligibility.CaseResult) eligibility.ConditionResult {
	t.Helper()
	for _, c := range r.Decision.Conditions {
		if c.ID == "insurance" {
			return c
		}
	}
	t.Fatalf("no insurance condition:\n%s", decisionText(r.Decision))
	return eligibility.ConditionResult{}
}

// TestSchemeIsPerInsurance: social_insurance.enrolled names the scheme
// *and the insurances* it enrols (schemas/catalogue.go InsuranceEnrolledData),
// and README says a month counts "by the `scheme` of the latest
// `social_insurance.enrolled` in the month's region". A pension month's
// scheme is the scheme the pension was enrolled under; the hub takes the
// scheme of whichever enrolment in the region came last, whatever it
// enrolled. A flexible worker (灵活就业) in Daqing in the employee pension
// who joins the residents' medical insurance there loses every urban
// pension month; a villager paying the residents' pension whose county
// employer enrols him in work-injury insurance only gains them all.
func TestSchemeIsPerInsurance(t *testing.T) {
	const daqing = "230602"
	tests := []struct {
		name    string
		events  []eligibility.CaseEvent
		wantMet bool
	}{
		{"employee pension, then resident medical in the same city", evs(
			siEnrolled("2021-01-01", "employee", daqing, "2021-01-01", "pension"),
			siEnrolled("2021-01-05", "resident", daqing, "2021-01-01", "medical"),
			contrib(daqing, "2021-01..2023-12", "pension"),
			contrib(daqing, "2021-01..2023-12", "medical")), true},
		{"resident pension, then employee work injury in the same county", evs(
			siEnrolled("2021-01-01", "resident", "231221", "2021-01-01", "pension"),
			siEnrolled("2021-01-05", "employee", "231221", "2021-01-01", "work_injury"),
			contrib("231221", "2021-01..2023-12", "pension"),
			contrib("231221", "2021-01..2023-12", "work_injury")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := append(tt.events, contract("C1", daqing, "2021-01-01", ""), lease("L1", daqingAddr, "2021-06-01", ""))
			r := runShipped(t, "heilongjiang/daqing", eligibility.Case{Name: tt.name, AsOf: "2024-01-20", Person: outsider, Events: events})
			if c := insuranceCondition(t, r); c.Met != tt.wantMet {
				t.Errorf("参加城镇社会保险满2年 met = %t, want %t (36 pension months; the pension's own scheme decides): %s", c.Met, tt.wantMet, c.Facts[0].Text)
			}
		})
	}
}

// TestSchemeByEnrolmentStart: an enrolment states the day its scheme
// starts (start); a month belongs to the scheme in force in that month.
// The hub gives a contribution the scheme of the latest enrolment
// *applied before it in effective time*, so (a) an enrolment registered
// after its start (sent late, or by a department that joined the hub
// later) leaves the months before its registration of no scheme, counted
// as urban; (b) resident months paid back (补缴) after a re-enrolment into
// the employee scheme take the employee scheme.
func TestSchemeByEnrolmentStart(t *testing.T) {
	const county = "231221"
	tests := []struct {
		name   string
		events []eligibility.CaseEvent
	}{
		{"resident enrolment registered after its contributions", evs(
			contrib(county, "2021-01..2023-12", "pension"),
			siEnrolled("2023-12-20", "resident", county, "2021-01-01", "pension"))},
		{"resident months paid back after re-enrolling as an employee", evs(
			siEnrolled("2020-01-01", "resident", county, "2020-01-01", "pension"),
			siEnrolled("2023-01-01", "employee", county, "2023-01-01", "pension"),
			contribRecordedOn("2023-03-01", county, "2021-01", "2022-12", "pension"),
			contrib(county, "2023-01..2023-06", "pension"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := append(tt.events, contract("C1", "230602", "2021-01-01", ""), lease("L1", daqingAddr, "2021-06-01", ""))
			r := runShipped(t, "heilongjiang/daqing", eligibility.Case{Name: tt.name, AsOf: "2024-01-20", Person: outsider, Events: events})
			if c := insuranceCondition(t, r); c.Met {
				t.Errorf("参加城镇社会保险满2年 met by months paid under the residents' scheme (fewer than 24 employee months): %s\n%s",
					c.Facts[0].Text, fmt.Sprint(r.Decision.Eligible))
			}
		})
	}
}
