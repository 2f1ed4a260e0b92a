package merge

import (
	"reflect"
	"slices"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// TestRegistrationRestoresHukouCancelledForDeath: a hukou cancelled for
// death is restored by a registration stamped after the cancellation (an
// erroneous cancellation corrected): the person is active again, with no
// date of death, in any arrival order.
func TestRegistrationRestoresHukouCancelledForDeath(t *testing.T) {
	p := id(t, male)
	events := []hub.Input{
		registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
		ev(t, schemas.HukouCancelled, p, "ps-2", "2021-01-01T08:00:00+08:00", map[string]any{"reason": "death"}),
		registered(t, p, "ps-3", "2021-06-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
	}
	for _, batches := range arrivalOrders(events, 3) {
		states, _ := run(batches...)
		s := states[p]
		if got := s.Record().Status; got != hub.StatusActive {
			t.Fatalf("status = %s, want %s after the restoring registration", got, hub.StatusActive)
		}
		if got := s.DateOfDeath(); got != "" {
			t.Fatalf("date of death = %q, want none", got)
		}
	}
}

// TestNoIDMismatchForUnknownGender: GB/T 2261.1's 0 (unknown) and 9 (not
// stated) say nothing the ID number could contradict: only 1 and 2 can
// disagree with its 17th digit.
func TestNoIDMismatchForUnknownGender(t *testing.T) {
	p := id(t, male) // male, born 1990-01-01
	tests := []struct {
		gender string
		want   []hub.Anomaly
	}{
		{"0", nil},
		{"9", nil},
		{"1", nil},
		{"2", []hub.Anomaly{{Kind: hub.AnomalyIDMismatch, Since: "2020-01-01"}}},
	}
	for _, tc := range tests {
		t.Run("gender "+tc.gender, func(t *testing.T) {
			states, _ := run([]hub.Input{registered(t, p, "r1", "2020-01-01T08:00:00+08:00", "230102001001", tc.gender, "1990-01-01")})
			if got := states[p].Record().Anomalies; !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("anomalies = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestSameLevelGraduationKeepsLaterDate: of two graduations at the same
// level, education shows the later one (its institution and date),
// whatever the order of their event times and arrival.
func TestSameLevelGraduationKeepsLaterDate(t *testing.T) {
	p := id(t, male)
	grad := func(eid, when, inst, date string) hub.Input {
		return ev(t, schemas.EducationGraduated, p, eid, when, map[string]any{"institution": inst, "level": "21", "date": date, "certificate_no": eid})
	}
	tests := []struct {
		name   string
		events []hub.Input
	}{
		{"reported in date order", []hub.Input{
			grad("g-1", "2012-07-01T09:00:00+08:00", "哈尔滨工业大学", "2012-07-01"),
			grad("g-2", "2016-07-01T09:00:00+08:00", "黑龙江大学", "2016-07-01")}},
		{"later degree reported first", []hub.Input{
			grad("g-1", "2020-01-01T09:00:00+08:00", "哈尔滨工业大学", "2012-07-01"),
			grad("g-2", "2019-01-01T09:00:00+08:00", "黑龙江大学", "2016-07-01")}},
	}
	want := hub.Education{HighestLevel: "21", Institution: "黑龙江大学", GraduatedOn: "2016-07-01"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, batches := range arrivalOrders(tc.events, 4) {
				states, _ := run(batches...)
				if got := states[p].Record().Education; got == nil || !reflect.DeepEqual(*got, want) {
					t.Fatalf("education = %+v, want %+v", got, want)
				}
			}
		})
	}
}

// TestUnregisteredSinceEarliestEvent: the unregistered anomaly counts
// from the earliest event the hub holds of the person, not the latest
// one to arrive, in any arrival order.
func TestUnregisteredSinceEarliestEvent(t *testing.T) {
	p := id(t, male)
	emp := uscc(t, "91230102MA1B2C3D4")
	start := func(eid, when, contract, day string) hub.Input {
		return ev(t, schemas.ContractStarted, p, eid, when, map[string]any{"contract_id": contract,
			"employer_id": emp, "employer_name": "龙江机械", "work_region": "230102", "start": day})
	}
	events := []hub.Input{
		start("emp-1", "2021-03-01T09:00:00+08:00", "C1", "2021-03-01"),
		start("emp-2", "2023-05-01T09:00:00+08:00", "C2", "2023-05-01"),
	}
	want := []hub.Anomaly{{Kind: hub.AnomalyUnregistered, Since: "2021-03-01"}}
	for _, batches := range arrivalOrders(events, 5) {
		states, _ := run(batches...)
		if got := states[p].Record().Anomalies; !reflect.DeepEqual(got, want) {
			t.Fatalf("anomalies = %+v, want %+v", got, want)
		}
	}
}

// TestInsuranceUntilOnlyAfterLatestEnrolment: an insurance shows its
// until only when terminated at or after its latest enrolment; an
// enrolment after the termination (the person insured again) takes the
// until away, in any arrival order.
func TestInsuranceUntilOnlyAfterLatestEnrolment(t *testing.T) {
	p := id(t, male)
	enrol := func(eid, when, start string) hub.Input {
		return ev(t, schemas.InsuranceEnrolled, p, eid, when, map[string]any{"scheme": "employee",
			"insurances": []string{"pension"}, "region": "230102", "start": start})
	}
	terminate := func(eid, when, end string) hub.Input {
		return ev(t, schemas.InsuranceTerminated, p, eid, when, map[string]any{"insurances": []string{"pension"}, "region": "230102", "end": end})
	}
	tests := []struct {
		name   string
		events []hub.Input
		want   hub.InsuranceLine
	}{
		{"terminated after enrolment",
			[]hub.Input{enrol("si-1", "2015-01-01T09:00:00+08:00", "2015-01-01"), terminate("si-2", "2018-06-30T09:00:00+08:00", "2018-06-30")},
			hub.InsuranceLine{Since: "2015-01-01", Until: "2018-06-30"}},
		{"enrolled again after the termination",
			[]hub.Input{enrol("si-1", "2015-01-01T09:00:00+08:00", "2015-01-01"), terminate("si-2", "2018-06-30T09:00:00+08:00", "2018-06-30"),
				enrol("si-3", "2020-03-01T09:00:00+08:00", "2020-03-01")},
			hub.InsuranceLine{Since: "2020-03-01"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, batches := range arrivalOrders(tc.events, 6) {
				states, _ := run(batches...)
				si := states[p].Record().SocialInsurance
				if si == nil || !reflect.DeepEqual(si.Insurances["pension"], tc.want) {
					t.Fatalf("social insurance = %+v, want pension %+v", si, tc.want)
				}
			}
		})
	}
}

// TestRegistrationAfterDeathCertificateRestores: a death certificate is
// in force only until a registration stamped after it restores the hukou
// (a certificate issued in error, the person found alive): the person is
// active again, with no date of death and no death_not_cancelled, in any
// arrival order.
func TestRegistrationAfterDeathCertificateRestores(t *testing.T) {
	p := id(t, male)
	events := []hub.Input{
		registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
		ev(t, schemas.DeathCertified, p, "h-1", "2021-03-01T10:00:00+08:00", map[string]any{"date_of_death": "2021-02-28", "certificate_no": "D1"}),
		registered(t, p, "ps-2", "2022-06-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
	}
	for _, batches := range arrivalOrders(events, 7) {
		states, _ := run(batches...)
		s := states[p]
		r := s.Record()
		if r.Status != hub.StatusActive || len(r.Anomalies) != 0 {
			t.Fatalf("status %s anomalies %+v, want active with none", r.Status, r.Anomalies)
		}
		if got := s.DateOfDeath(); got != "" {
			t.Fatalf("date of death = %q, want none", got)
		}
	}
}

// TestEarlierEventMovingUnregisteredIsAChange: an event stamped before
// every other one of a person public security knows nothing of moves the
// unregistered anomaly's since back; arriving late, it lists anomalies
// among its changed sections and notifies it, as the record changed.
func TestEarlierEventMovingUnregisteredIsAChange(t *testing.T) {
	p := id(t, male)
	emp := uscc(t, "91230102MA1B2C3D4")
	start := func(eid, when, contract, day string) hub.Input {
		return ev(t, schemas.ContractStarted, p, eid, when, map[string]any{"contract_id": contract,
			"employer_id": emp, "employer_name": "龙江机械", "work_region": "230102", "start": day})
	}
	states, outs := run(
		[]hub.Input{start("emp-2", "2023-05-01T09:00:00+08:00", "C2", "2023-05-01")},
		[]hub.Input{start("emp-1", "2021-03-01T09:00:00+08:00", "C1", "2021-03-01")},
	)
	if got, want := states[p].Record().Anomalies, []hub.Anomaly{{Kind: hub.AnomalyUnregistered, Since: "2021-03-01"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("anomalies = %+v, want %+v", got, want)
	}
	last := outs[1]
	if len(last.History) != 1 || !slices.Contains(last.History[0].Change.Sections, string(schemas.SecAnomalies)) {
		t.Fatalf("history of the late event = %+v, want anomalies among its sections", last.History)
	}
	if got, want := subjects(last), "pop.changed.00.0000.000000.anomalies"; !slices.Contains(got, want) {
		t.Fatalf("subjects = %v, want %s among them", got, want)
	}
}
