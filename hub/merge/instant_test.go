package merge

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/codes"
)

// versionedID is an event id of publisher.EventID's form, which pophub
// import and pophub cdc send: the record key's hash, then the version
// (for cdc, the change's WAL position) with its sign bit flipped, so that
// a record's versions sort as they do.
func versionedID(src schemas.Source, key string, version int64) string {
	sum := sha256.Sum256([]byte(string(src) + "\x00" + key))
	return fmt.Sprintf("%s-%x-%016x", src, sum[:12], uint64(version)^1<<63)
}

// TestEndAndStartAtOneInstant: an end (a contract, lease or insurance
// ended, a property transferred, a business deregistered, a residence
// permit revoked, a divorce, a hukou cancelled, a death) and the start it
// ends (or the registration that restores) at the same time take effect
// in the hub's order of changes, time then source then event id: of the
// same source, the one whose id sorts last is in effect, whichever
// arrives first. pophub cdc
// dates every change of one transaction by its commit time, and a DELETE
// followed by an INSERT of the same row (an ORM's "replace") must leave
// the row shown as it is in the table.
func TestEndAndStartAtOneInstant(t *testing.T) {
	p := id(t, male)
	spouse := id(t, female)
	emp := uscc(t, "91230102MA1B2C3D4")
	const at = "2026-12-06T18:01:30.303524+08:00"
	const earlier = "2026-12-06T17:01:30+08:00"
	contract := map[string]any{"contract_id": "C1", "employer_id": emp, "employer_name": "龙江机械", "work_region": "230102", "start": "2025-01-01"}
	lease := map[string]any{"lease_id": "7", "address_code": "230102001002", "start": "2025-01-01"}
	tests := []struct {
		name       string
		start, end schemas.Type
		startData  any
		endData    any
		// before are events at an earlier time, arriving first.
		before []hub.Input
		// started reports whether r shows the start in effect, not
		// ended; what describes what r shows.
		started func(r hub.Record) (ok bool, what string)
		// prov is the section whose provenance must name the event in
		// effect; "" when the end leaves nothing to name.
		prov schemas.Section
		// spans, if set, are the statistics' spans, which must count the
		// person from the instant on exactly when the start is in effect.
		spans func(s *State) []hub.Interval
	}{
		{
			name:  "contract started and ended",
			start: schemas.ContractStarted, startData: contract,
			end: schemas.ContractEnded, endData: map[string]any{"contract_id": "C1", "end": "2026-12-06"},
			started: func(r hub.Record) (bool, string) {
				return len(r.Employment) == 1 && r.Employment[0].End == "", fmt.Sprintf("%+v", r.Employment)
			},
			prov: schemas.SecEmployment,
		},
		{
			name:  "insurance enrolled and terminated",
			start: schemas.InsuranceEnrolled, startData: map[string]any{"scheme": "employee", "insurances": []string{"pension"}, "region": "230102", "start": "2025-01-01"},
			end: schemas.InsuranceTerminated, endData: map[string]any{"insurances": []string{"pension"}, "region": "230102", "end": "2026-12-06"},
			started: func(r hub.Record) (bool, string) {
				if r.SocialInsurance == nil {
					return false, "no social insurance"
				}
				l, ok := r.SocialInsurance.Insurances["pension"]
				return ok && l.Until == "", fmt.Sprintf("%+v", r.SocialInsurance.Insurances)
			},
			prov: schemas.SecSocialInsurance,
		},
		{
			name:  "rental registered and ended",
			start: schemas.RentalRegistered, startData: lease,
			end: schemas.RentalEnded, endData: map[string]any{"lease_id": "7", "end": "2026-12-06"},
			started: func(r hub.Record) (bool, string) {
				if r.Housing == nil {
					return false, "no housing"
				}
				return len(r.Housing.Rentals) == 1 && r.Housing.Rentals[0].End == "", fmt.Sprintf("%+v", r.Housing.Rentals)
			},
			prov: schemas.SecHousing,
		},
		{
			// pophub cdc: a lease registered an hour before, then a DELETE
			// and an INSERT of its row in one transaction.
			name:  "rental deleted and inserted again in one transaction",
			start: schemas.RentalRegistered, startData: lease,
			end: schemas.RentalEnded, endData: map[string]any{"lease_id": "7", "end": "2026-12-06"},
			before: []hub.Input{ev(t, schemas.RentalRegistered, p, versionedID(schemas.Housing, "7", 1), earlier,
				map[string]any{"lease_id": "7", "address_code": "230102001001", "start": "2025-01-01"})},
			started: func(r hub.Record) (bool, string) {
				if r.Housing == nil {
					return false, "no housing"
				}
				rs := r.Housing.Rentals
				return len(rs) == 1 && rs[0].End == "" && rs[0].AddressCode == "230102001002", fmt.Sprintf("%+v", rs)
			},
			prov: schemas.SecHousing,
		},
		{
			name:  "property registered and transferred",
			start: schemas.PropertyRegistered, startData: map[string]any{"property_id": "P1", "address_code": "230102001001", "acquired": "purchase"},
			end: schemas.PropertyTransferred, endData: map[string]any{"property_id": "P1"},
			started: func(r hub.Record) (bool, string) {
				if r.Housing == nil {
					return false, "no housing"
				}
				return len(r.Housing.Owned) == 1, fmt.Sprintf("%+v", r.Housing.Owned)
			},
		},
		{
			name:  "business registered and deregistered",
			start: schemas.BusinessRegistered, startData: map[string]any{"business_id": emp, "region": "230102"},
			end: schemas.BusinessDeregistered, endData: map[string]any{"business_id": emp},
			started: func(r hub.Record) (bool, string) {
				if r.Tax == nil {
					return false, "no tax"
				}
				return len(r.Tax.Businesses) == 1, fmt.Sprintf("%+v", r.Tax.Businesses)
			},
		},
		{
			name:  "residence permit issued and revoked",
			start: schemas.ResidencePermitIssued, startData: map[string]any{"city_code": "330602", "address_code": "330602001004", "basis": "employment", "valid_until": "2030-01-01"},
			end: schemas.ResidencePermitRevoked, endData: map[string]any{"city_code": "330602"},
			started: func(r hub.Record) (bool, string) {
				return len(r.ResidencePermits) == 1, fmt.Sprintf("%+v", r.ResidencePermits)
			},
			spans: (*State).PermitSpans,
		},
		{
			name:  "marriage registered and divorced",
			start: schemas.MarriageRegistered, startData: map[string]any{"spouse_id": string(spouse)},
			end: schemas.MarriageDivorced, endData: map[string]any{"spouse_id": string(spouse)},
			started: func(r hub.Record) (bool, string) {
				return r.Marital != nil && r.Marital.Status == codes.MaritalMarried, fmt.Sprintf("%+v", r.Marital)
			},
			prov: schemas.SecMarital,
		},
		{
			name:  "hukou registered and cancelled",
			start: schemas.HukouRegistered, startData: registeredData("230102001001"),
			end: schemas.HukouCancelled, endData: map[string]any{"reason": "emigration"},
			started: func(r hub.Record) (bool, string) { return r.Status == hub.StatusActive, r.Status },
			spans:   (*State).Registrations,
		},
		{
			name:  "hukou registered and cancelled for death",
			start: schemas.HukouRegistered, startData: registeredData("230102001001"),
			end: schemas.HukouCancelled, endData: map[string]any{"reason": "death"},
			started: func(r hub.Record) (bool, string) { return r.Status == hub.StatusActive, r.Status },
			spans:   (*State).Registrations,
		},
		{
			name:  "hukou registered and death certified",
			start: schemas.HukouRegistered, startData: registeredData("230102001001"),
			end: schemas.DeathCertified, endData: map[string]any{"date_of_death": "2026-12-06", "certificate_no": "D1"},
			started: func(r hub.Record) (bool, string) { return r.Status == hub.StatusActive, r.Status },
			spans:   (*State).Registrations,
		},
	}
	for _, tc := range tests {
		for _, startLast := range []bool{true, false} {
			// Both ids are the same record's versions, as pophub cdc
			// derives them from one row's key and WAL positions.
			startV, endV := int64(0x315b3f488), int64(0x315b3f500)
			if startLast {
				startV, endV = endV, startV
			}
			startSrc, endSrc := schemas.SourceOf(tc.start), schemas.SourceOf(tc.end)
			start := ev(t, tc.start, p, versionedID(startSrc, "row", startV), at, tc.startData)
			end := ev(t, tc.end, p, versionedID(endSrc, "row", endV), at, tc.endData)
			// The source decides first: a registration (public_security)
			// wins a tie with a death certificate (health) whatever the ids.
			wantStart := startLast
			if startSrc != endSrc {
				wantStart = startSrc > endSrc
			}
			arrivals := map[string][][]hub.Input{
				"start arrives first":     {{start}, {end}},
				"end arrives first":       {{end}, {start}},
				"start, end in one batch": {{start, end}},
				"end, start in one batch": {{end, start}},
			}
			for arrival, batches := range arrivals {
				t.Run(fmt.Sprintf("%s/%s's id sorts last/%s", tc.name, winner(startLast), arrival), func(t *testing.T) {
					states, _ := run(append([][]hub.Input{tc.before}, batches...)...)
					r := states[p].Record()
					if ok, what := tc.started(r); ok != wantStart {
						t.Errorf("record shows %s; want the %s in effect", what, winner(wantStart))
					}
					if tc.spans != nil {
						if counted := countsOn(tc.spans(states[p]), "2026-12-06"); counted != wantStart {
							t.Errorf("spans %+v; want the %s in effect", tc.spans(states[p]), winner(wantStart))
						}
					}
					if tc.prov == "" {
						return
					}
					want := end.Event.ID
					if wantStart {
						want = start.Event.ID
					}
					if got := r.Provenance[string(tc.prov)].EventID; got != want {
						t.Errorf("%s provenance names %q, want the %s's %q", tc.prov, got, winner(wantStart), want)
					}
				})
			}
		}
	}
}

// countsOn reports whether a span covers day d.
func countsOn(spans []hub.Interval, d string) bool {
	for _, sp := range spans {
		if sp.From <= d && (sp.To == "" || d < sp.To) {
			return true
		}
	}
	return false
}

func winner(startLast bool) string {
	if startLast {
		return "start"
	}
	return "end"
}

// registeredData is a hukou.registered's data at addr for male.
func registeredData(addr string) map[string]any {
	return map[string]any{"name": "张三", "gender": "1", "birth_date": "1990-01-01", "ethnicity": "01",
		"address_code": addr, "household_id": "H1", "reason": "birth"}
}

// TestFinishedRecordBackfilledAtOneInstant: a finished contract, lease or
// insurance back-filled with its start and its end at one time, as
// different department records — pophub import's 合同签订 and 合同终止 rows
// with one filing time, whose ids hash unrelated keys, or ids of no
// particular form — is shown ended, whichever id sorts last and in every
// arrival order: ids that are not versions of one record are chance, not
// an order.
func TestFinishedRecordBackfilledAtOneInstant(t *testing.T) {
	p := id(t, male)
	emp := uscc(t, "91230102MA1B2C3D4")
	const at = "2026-03-01T09:00:00+08:00"
	tests := []struct {
		name      string
		start     schemas.Type
		startData any
		end       schemas.Type
		endData   any
		ended     func(r hub.Record) (bool, string)
	}{
		{"contract", schemas.ContractStarted,
			map[string]any{"contract_id": "C1", "employer_id": emp, "employer_name": "龙江机械", "work_region": "230102", "start": "2024-01-01"},
			schemas.ContractEnded, map[string]any{"contract_id": "C1", "end": "2025-12-31"},
			func(r hub.Record) (bool, string) {
				return len(r.Employment) == 1 && r.Employment[0].End == "2025-12-31", fmt.Sprintf("%+v", r.Employment)
			}},
		{"lease", schemas.RentalRegistered, map[string]any{"lease_id": "7", "address_code": "230102001002", "start": "2024-01-01"},
			schemas.RentalEnded, map[string]any{"lease_id": "7", "end": "2025-12-31"},
			func(r hub.Record) (bool, string) {
				if r.Housing == nil {
					return false, "no housing"
				}
				return len(r.Housing.Rentals) == 1 && r.Housing.Rentals[0].End == "2025-12-31", fmt.Sprintf("%+v", r.Housing.Rentals)
			}},
		{"insurance", schemas.InsuranceEnrolled, map[string]any{"scheme": "employee", "insurances": []string{"pension"}, "region": "230102", "start": "2024-01-01"},
			schemas.InsuranceTerminated, map[string]any{"insurances": []string{"pension"}, "region": "230102", "end": "2025-12-31"},
			func(r hub.Record) (bool, string) {
				if r.SocialInsurance == nil {
					return false, "no social insurance"
				}
				l := r.SocialInsurance.Insurances["pension"]
				return l.Until != "", fmt.Sprintf("%+v", r.SocialInsurance.Insurances)
			}},
	}
	ids := map[string]func(src schemas.Source, kind string, n int) string{
		"import ids of two records": func(src schemas.Source, kind string, n int) string {
			return versionedID(src, fmt.Sprintf("%s\x1fC1\x1f%d", kind, n), 1)
		},
		"ids of no particular form": func(src schemas.Source, kind string, n int) string { return fmt.Sprintf("%s-%s-%d", src, kind, n) },
	}
	for _, tc := range tests {
		for form, idOf := range ids {
			// Try several keys, so that the start's id sorts last in some.
			for n := range 6 {
				src := schemas.SourceOf(tc.start)
				start := ev(t, tc.start, p, idOf(src, "start", n), at, tc.startData)
				end := ev(t, tc.end, p, idOf(src, "end", n), at, tc.endData)
				for arrival, batches := range map[string][][]hub.Input{
					"start first": {{start}, {end}}, "end first": {{end}, {start}}, "one batch": {{start, end}}, "one batch, end first": {{end, start}},
				} {
					t.Run(fmt.Sprintf("%s/%s %d/%s", tc.name, form, n, arrival), func(t *testing.T) {
						states, _ := run(batches...)
						if ok, what := tc.ended(states[p].Record()); !ok {
							t.Errorf("record shows %s; want it ended (start id %s, end id %s)", what, start.Event.ID, end.Event.ID)
						}
					})
				}
			}
		}
	}
}
