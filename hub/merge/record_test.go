package merge

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// arrivalOrders returns the events as listed in one batch, one by one as
// listed, and one by one in a few shuffled orders.
func arrivalOrders(events []hub.Input, seed uint64) [][][]hub.Input {
	orders := [][][]hub.Input{{events}, oneByOne(events)}
	return append(orders, shuffledOneByOne(events, rand.New(rand.NewPCG(seed, 11)), 6)...)
}

// TestRecordListsCurrentPermits: the record's residence_permits lists only
// the permits PermitSpans has not ended, in any arrival order.
func TestRecordListsCurrentPermits(t *testing.T) {
	p := id(t, male)
	reg := registered(t, p, "r1", "2020-01-01T08:00:00+08:00", "440106001001", "1", "1990-01-01")
	issue := func(eid, when, city, addr, validUntil string) hub.Input {
		data := map[string]any{"city_code": city, "address_code": addr, "basis": "employment"}
		if validUntil != "" {
			data["valid_until"] = validUntil
		}
		return ev(t, schemas.ResidencePermitIssued, p, eid, when, data)
	}
	revoke := func(eid, when, city string) hub.Input {
		return ev(t, schemas.ResidencePermitRevoked, p, eid, when, map[string]any{"city_code": city})
	}
	cancel := func(eid, when, reason string) hub.Input {
		return ev(t, schemas.HukouCancelled, p, eid, when, map[string]any{"reason": reason})
	}
	death := func(eid, when string) hub.Input {
		return ev(t, schemas.DeathCertified, p, eid, when, map[string]any{"date_of_death": when[:10], "certificate_no": "D1"})
	}
	harbin := issue("p1", "2022-01-01T08:00:00+08:00", "230100", "230102001001", "")
	daqing := hub.ResidencePermit{CityCode: "230600", AddressCode: "230602013004", Basis: "employment", Since: "2024-01-01"}
	tests := []struct {
		name   string
		events []hub.Input
		want   []hub.ResidencePermit
	}{
		{"a permit issued in another city ends the previous city's",
			[]hub.Input{harbin, issue("p2", "2024-01-01T08:00:00+08:00", "230600", "230602013004", "")},
			[]hub.ResidencePermit{daqing}},
		{"revoked by a county's code",
			[]hub.Input{harbin, revoke("x1", "2023-01-01T08:00:00+08:00", "230102")}, nil},
		{"renewed under a county's code: the renewal is listed",
			[]hub.Input{harbin, issue("p2", "2023-01-01T08:00:00+08:00", "230103", "230103002002", "2027-12-31")},
			[]hub.ResidencePermit{{CityCode: "230103", AddressCode: "230103002002", Basis: "employment", Since: "2023-01-01", ValidUntil: "2027-12-31"}}},
		{"renewed as long-term (valid until 9999-12-31): the renewal is listed",
			[]hub.Input{harbin, issue("p2", "2023-01-01T08:00:00+08:00", "230100", "230102001001", "9999-12-31")},
			[]hub.ResidencePermit{{CityCode: "230100", AddressCode: "230102001001", Basis: "employment", Since: "2023-01-01", ValidUntil: "9999-12-31"}}},
		{"issued already expired: not listed",
			[]hub.Input{issue("p1", "2024-01-01T08:00:00+08:00", "230100", "230102001001", "2023-12-31")}, nil},
		{"death ends it",
			[]hub.Input{reg, harbin, death("d1", "2025-03-04T23:00:00+08:00")}, nil},
		{"a permit issued after death is not held",
			[]hub.Input{reg, death("d1", "2021-03-04T23:00:00+08:00"), harbin}, nil},
		{"emigration ends it",
			[]hub.Input{reg, harbin, cancel("c1", "2024-09-01T08:00:00+08:00", "emigration")}, nil},
		{"enlistment leaves it",
			[]hub.Input{reg, harbin, cancel("c1", "2024-09-01T08:00:00+08:00", "military")},
			[]hub.ResidencePermit{{CityCode: "230100", AddressCode: "230102001001", Basis: "employment", Since: "2022-01-01"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, batches := range arrivalOrders(tc.events, 1) {
				states, _ := run(batches...)
				if got := states[p].Record().ResidencePermits; !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("residence permits %+v, want %+v", got, tc.want)
				}
			}
		})
	}
}

// TestEndingPermitsIsAChange: a death or cancellation that ends a permit
// changes residence_permits, so history lists it and subscribers hear.
func TestEndingPermitsIsAChange(t *testing.T) {
	p := id(t, male)
	_, outs := run(
		[]hub.Input{registered(t, p, "r1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01")},
		[]hub.Input{ev(t, schemas.ResidencePermitIssued, p, "p1", "2022-01-01T08:00:00+08:00",
			map[string]any{"city_code": "440100", "address_code": "440106001001", "basis": "employment"})},
		[]hub.Input{ev(t, schemas.HukouCancelled, p, "c1", "2024-09-01T08:00:00+08:00", map[string]any{"reason": "emigration"})},
	)
	last := outs[len(outs)-1]
	if got := last.History[0].Change.Sections; !reflect.DeepEqual(got, []string{"residence_permits", "status"}) {
		t.Errorf("sections = %v, want [residence_permits status]", got)
	}
	want := "pop.changed.23.2301.230102.residence_permits"
	if got := subjects(last); len(got) == 0 || got[0] != want {
		t.Errorf("subjects = %v, want %s first", got, want)
	}
}

// TestIDMismatchSince: id_mismatch counts from when the mismatch began,
// not from a later correction that left it open, in any arrival order.
func TestIDMismatchSince(t *testing.T) {
	p := id(t, male) // male, born 1990-01-01
	correct := func(eid, when string, data map[string]any) hub.Input {
		return ev(t, schemas.IdentityCorrected, p, eid, when, data)
	}
	tests := []struct {
		name   string
		events []hub.Input
		want   []hub.Anomaly
	}{
		{"gender disagrees, then a birth date correction disagrees too",
			[]hub.Input{registered(t, p, "r1", "2020-01-01T08:00:00+08:00", "230102001001", "2", "1990-01-01"),
				correct("c1", "2024-01-01T08:00:00+08:00", map[string]any{"birth_date": "1990-01-02"})},
			[]hub.Anomaly{{Kind: hub.AnomalyIDMismatch, Since: "2020-01-01"}}},
		{"birth date disagrees, then a gender correction disagrees too",
			[]hub.Input{registered(t, p, "r1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1991-01-01"),
				correct("c1", "2024-01-01T08:00:00+08:00", map[string]any{"gender": "2"})},
			[]hub.Anomaly{{Kind: hub.AnomalyIDMismatch, Since: "2020-01-01"}}},
		{"gender corrected, birth date wrong later: since the birth date",
			[]hub.Input{registered(t, p, "r1", "2020-01-01T08:00:00+08:00", "230102001001", "2", "1990-01-01"),
				correct("c1", "2022-01-01T08:00:00+08:00", map[string]any{"gender": "1"}),
				correct("c2", "2024-01-01T08:00:00+08:00", map[string]any{"birth_date": "1990-01-02"})},
			[]hub.Anomaly{{Kind: hub.AnomalyIDMismatch, Since: "2024-01-01"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, batches := range arrivalOrders(tc.events, 2) {
				states, _ := run(batches...)
				if got := states[p].Record().Anomalies; !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("anomalies %+v, want %+v", got, tc.want)
				}
			}
		})
	}
}

// TestProvenanceNamesWhatTheSectionShows: an event that changed nothing a
// section shows (an end of something never held) is not its provenance;
// the event named is one whose history lists the section; and neither
// depends on arrival order.
func TestProvenanceNamesWhatTheSectionShows(t *testing.T) {
	p := id(t, male)
	emp := uscc(t, "91230102MA1B2C3D4")
	enrol := ev(t, schemas.InsuranceEnrolled, p, "si-1", "2024-01-01T00:00:00+08:00", map[string]any{"scheme": "employee",
		"insurances": []string{"pension"}, "region": "230102", "start": "2024-01-01"})
	terminate := func(eid, when, name string) hub.Input {
		return ev(t, schemas.InsuranceTerminated, p, eid, when, map[string]any{"insurances": []string{name}, "region": "230102", "end": when[:10]})
	}
	start := ev(t, schemas.ContractStarted, p, "emp-1", "2023-03-01T00:00:00+08:00", map[string]any{"contract_id": "C1",
		"employer_id": emp, "employer_name": "龙江机械", "work_region": "230102", "start": "2023-03-01"})
	tests := []struct {
		name    string
		events  []hub.Input
		section schemas.Section
		want    string // event id; "" for no provenance
	}{
		{"a termination of an insurance never held", []hub.Input{enrol, terminate("si-2", "2024-06-01T00:00:00+08:00", "medical")},
			schemas.SecSocialInsurance, "si-1"},
		{"a termination of an insurance held", []hub.Input{enrol, terminate("si-2", "2024-06-01T00:00:00+08:00", "pension")},
			schemas.SecSocialInsurance, "si-2"},
		{"a contribution", []hub.Input{enrol, ev(t, schemas.ContributionRecorded, p, "si-3", "2024-02-29T00:00:00+08:00",
			map[string]any{"month": "2024-02", "region": "230102", "insurances": []string{"pension"}}), terminate("si-2", "2024-06-01T00:00:00+08:00", "medical")},
			schemas.SecSocialInsurance, "si-3"},
		{"a revocation for a city never held", []hub.Input{
			ev(t, schemas.ResidencePermitIssued, p, "ps-1", "2024-01-01T00:00:00+08:00", map[string]any{"city_code": "230100", "address_code": "230102001001", "basis": "employment"}),
			ev(t, schemas.ResidencePermitRevoked, p, "ps-2", "2024-06-01T00:00:00+08:00", map[string]any{"city_code": "440100"})},
			schemas.SecResidencePermits, "ps-1"},
		{"an end of a contract never started", []hub.Input{start,
			ev(t, schemas.ContractEnded, p, "emp-2", "2024-12-31T00:00:00+08:00", map[string]any{"contract_id": "C2", "end": "2024-12-31"})},
			schemas.SecEmployment, "emp-1"},
		{"an end of a lease never registered", []hub.Input{
			ev(t, schemas.RentalRegistered, p, "hs-1", "2021-01-01T00:00:00+08:00", map[string]any{"lease_id": "L1", "address_code": "230103001001", "start": "2021-01-01"}),
			ev(t, schemas.RentalEnded, p, "hs-2", "2021-12-31T00:00:00+08:00", map[string]any{"lease_id": "L2", "end": "2021-12-31"})},
			schemas.SecHousing, "hs-1"},
		{"a transfer of a property never held", []hub.Input{
			ev(t, schemas.PropertyRegistered, p, "hs-1", "2022-01-01T00:00:00+08:00", map[string]any{"property_id": "P1", "address_code": "230102001001", "acquired": "purchase"}),
			ev(t, schemas.PropertyTransferred, p, "hs-2", "2023-01-01T00:00:00+08:00", map[string]any{"property_id": "P2"})},
			schemas.SecHousing, "hs-1"},
		{"a deregistration of a business never held", []hub.Input{
			ev(t, schemas.BusinessRegistered, p, "tx-1", "2022-01-01T00:00:00+08:00", map[string]any{"business_id": emp, "region": "230102"}),
			ev(t, schemas.BusinessDeregistered, p, "tx-2", "2023-01-01T00:00:00+08:00", map[string]any{"business_id": uscc(t, "91230102MA1B2C3D5")})},
			schemas.SecTax, "tx-1"},
		{"an end repeating the end the contract's start carried", []hub.Input{
			ev(t, schemas.ContractStarted, p, "emp-1", "2022-12-01T00:00:00+08:00", map[string]any{"contract_id": "C1",
				"employer_id": emp, "employer_name": "龙江机械", "work_region": "230102", "start": "2022-12-01", "end": "2025-11-30"}),
			ev(t, schemas.ContractEnded, p, "emp-2", "2025-11-30T17:54:00+08:00", map[string]any{"contract_id": "C1", "end": "2025-11-30"})},
			schemas.SecEmployment, "emp-1"},
		{"an end repeating the end the lease carried", []hub.Input{
			ev(t, schemas.RentalRegistered, p, "hs-1", "2021-01-01T00:00:00+08:00", map[string]any{"lease_id": "L1", "address_code": "230103001001", "start": "2021-01-01", "end": "2021-12-31"}),
			ev(t, schemas.RentalEnded, p, "hs-2", "2021-12-31T18:00:00+08:00", map[string]any{"lease_id": "L1", "end": "2021-12-31"})},
			schemas.SecHousing, "hs-1"},
		{"an end earlier than the end the contract's start carried", []hub.Input{
			ev(t, schemas.ContractStarted, p, "emp-1", "2022-12-01T00:00:00+08:00", map[string]any{"contract_id": "C1",
				"employer_id": emp, "employer_name": "龙江机械", "work_region": "230102", "start": "2022-12-01", "end": "2025-11-30"}),
			ev(t, schemas.ContractEnded, p, "emp-2", "2024-06-30T17:54:00+08:00", map[string]any{"contract_id": "C1", "end": "2024-06-30"})},
			schemas.SecEmployment, "emp-2"},
		{"only an end of a contract never started", []hub.Input{
			ev(t, schemas.ContractEnded, p, "emp-2", "2024-12-31T00:00:00+08:00", map[string]any{"contract_id": "C2", "end": "2024-12-31"})},
			schemas.SecEmployment, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i, batches := range arrivalOrders(tc.events, 3) {
				states, outs := run(batches...)
				r := states[p].Record()
				got, ok := r.Provenance[string(tc.section)]
				if got.EventID != tc.want || ok != (tc.want != "") {
					t.Fatalf("order %d: %s provenance %+v (present %v), want %q", i, tc.section, got, ok, tc.want)
				}
				if !ok || i > 1 {
					continue
				}
				// Arriving in time order, the event named changed the
				// section when it was applied. (Out of order, an end can
				// arrive before what it ends, change nothing then, and
				// show once its start arrives: it is named, and the
				// start's history lists the section.)
				for _, o := range outs {
					for _, h := range o.History {
						if h.Change.EventID == tc.want && !slices.Contains(h.Change.Sections, string(tc.section)) {
							t.Fatalf("order %d: provenance %s, whose history lists sections %v", i, tc.want, h.Change.Sections)
						}
					}
				}
			}
		})
	}
}

// TestProvenanceOfStatesStoredBefore: a state stored before provenance was
// derived from what a section shows kept, per section, the latest event
// that touched it, and no contribution stamp of its own; the latest
// contribution it names stays the social-insurance section's provenance.
func TestProvenanceOfStatesStoredBefore(t *testing.T) {
	p := id(t, male)
	enrol := ev(t, schemas.InsuranceEnrolled, p, "si-1", "2019-10-02T09:38:00+08:00", map[string]any{"scheme": "employee",
		"insurances": []string{"pension"}, "region": "230102", "start": "2019-10-01"})
	paid := ev(t, schemas.ContributionRecorded, p, "si-5", "2025-01-20T10:03:00+08:00",
		map[string]any{"month": "2025-01", "region": "230102", "insurances": []string{"pension"}})
	states, _ := run([]hub.Input{enrol, paid})
	st := states[p]
	st.Prov = map[schemas.Section]Stamp{schemas.SecSocialInsurance: st.Prov[provPaid]} // as the earlier release stored it
	b, err := Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	old, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := old.Record().Provenance[string(schemas.SecSocialInsurance)]; got.EventID != "si-5" {
		t.Fatalf("social_insurance provenance %+v, want si-5", got)
	}
}

// TestStatusProvenance: the record's provenance names, for status, the
// event the status rests on by the lifecycle rules Status applies (the
// death certificate or cancellation for death in force, the cancellation
// in force), none while active, and nothing for anomalies; in any arrival
// order.
func TestStatusProvenance(t *testing.T) {
	p := id(t, male)
	reg := func(eid, when string) hub.Input {
		return registered(t, p, eid, when, "230102001001", "1", "1990-01-01")
	}
	cancel := func(eid, when, reason string) hub.Input {
		return ev(t, schemas.HukouCancelled, p, eid, when, map[string]any{"reason": reason})
	}
	certify := func(eid, when, died string) hub.Input {
		return ev(t, schemas.DeathCertified, p, eid, when, map[string]any{"date_of_death": died, "certificate_no": "D1"})
	}
	born := reg("r-1", "2000-01-01T09:00:00+08:00")
	tests := []struct {
		name   string
		events []hub.Input
		status string
		want   string // event id; "" for no provenance
	}{
		{"registered: active rests on no one event", []hub.Input{born}, hub.StatusActive, ""},
		{"a death certified", []hub.Input{born, certify("h-1", "2025-03-01T09:00:00+08:00", "2025-02-28")},
			hub.StatusDeceased, "h-1"},
		{"a death certified of a person never registered", []hub.Input{certify("h-1", "2025-03-01T09:00:00+08:00", "2025-02-28")},
			hub.StatusDeceased, "h-1"},
		{"the hukou cancelled for death", []hub.Input{born, cancel("c-1", "2025-03-10T09:00:00+08:00", "death")},
			hub.StatusDeceased, "c-1"},
		{"a certificate, then a cancellation for death: the certificate, which carries the date of death",
			[]hub.Input{born, certify("h-1", "2025-03-01T09:00:00+08:00", "2025-02-28"), cancel("c-1", "2025-03-10T09:00:00+08:00", "death")},
			hub.StatusDeceased, "h-1"},
		{"a corrected certificate: the latest, whose date of death stands",
			[]hub.Input{born, certify("h-1", "2024-03-20T09:00:00+08:00", "2024-03-15"), certify("h-2", "2024-04-02T09:00:00+08:00", "2024-03-10")},
			hub.StatusDeceased, "h-2"},
		{"a later cancellation for another reason leaves the cancellation for death",
			[]hub.Input{born, cancel("c-1", "2025-03-01T09:00:00+08:00", "death"), cancel("c-2", "2025-06-01T09:00:00+08:00", "other")},
			hub.StatusDeceased, "c-1"},
		{"a restoration outweighs a death certified as of an earlier time",
			[]hub.Input{born, cancel("c-1", "2025-03-10T09:00:00+08:00", "death"), reg("r-2", "2025-05-01T09:00:00+08:00"),
				certify("h-1", "2025-03-01T09:00:00+08:00", "2025-02-28")},
			hub.StatusActive, ""},
		{"a death certified after the restoration",
			[]hub.Input{born, cancel("c-1", "2025-01-10T09:00:00+08:00", "death"), reg("r-2", "2025-02-01T09:00:00+08:00"),
				certify("h-1", "2025-03-01T09:00:00+08:00", "2025-02-28")},
			hub.StatusDeceased, "h-1"},
		{"the hukou cancelled on emigration", []hub.Input{born, cancel("c-1", "2023-08-01T09:00:00+08:00", "emigration")},
			hub.StatusCancelled, "c-1"},
		{"a later cancellation: the latest, whose reason stands",
			[]hub.Input{born, cancel("c-1", "2023-08-01T09:00:00+08:00", "emigration"), cancel("c-2", "2023-09-01T09:00:00+08:00", "other")},
			hub.StatusCancelled, "c-2"},
		{"a registration older than the cancellation leaves it",
			[]hub.Input{born, cancel("c-1", "2023-08-01T09:00:00+08:00", "emigration"), reg("r-0", "2010-01-01T09:00:00+08:00")},
			hub.StatusCancelled, "c-1"},
		{"restored after emigration: active again, resting on no one event",
			[]hub.Input{born, cancel("c-1", "2023-08-01T09:00:00+08:00", "emigration"), reg("r-2", "2024-02-01T09:00:00+08:00")},
			hub.StatusActive, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want hub.Provenance
			for _, in := range tc.events {
				if in.Event.ID == tc.want {
					want = hub.Provenance{Source: in.Event.Source, EventID: in.Event.ID, Time: in.Event.Time}
				}
			}
			for i, batches := range arrivalOrders(tc.events, 5) {
				states, _ := run(batches...)
				r := states[p].Record()
				if r.Status != tc.status {
					t.Fatalf("order %d: status %q, want %q", i, r.Status, tc.status)
				}
				got, ok := r.Provenance[string(schemas.SecStatus)]
				if ok != (tc.want != "") || got.EventID != want.EventID || got.Source != want.Source || !got.Time.Equal(want.Time) {
					t.Fatalf("order %d: status provenance %+v (present %v), want %+v", i, got, ok, want)
				}
				if a, ok := r.Provenance[string(schemas.SecAnomalies)]; ok {
					t.Fatalf("order %d: anomalies provenance %+v, want none", i, a)
				}
			}
		})
	}
}
