package merge_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestTiesConvergeWhateverTheArrival: departments' events about a few
// persons, drawn to collide (equal instants written in different zones or
// differing below a microsecond, either side of China's midnight, permits
// issued and revoked at once, marriages naming different spouses at the
// same time, contracts and leases started and ended together, ids in the
// versioned form sharing record keys), give the same golden records,
// versions, provenance, registration and permit timelines whatever the
// arrival order, the batch boundaries and the repeats, as production
// interleaves the departments' topics arbitrarily.
func TestTiesConvergeWhateverTheArrival(t *testing.T) {
	for seed := uint64(0); seed < 600; seed++ {
		r := rand.New(rand.NewPCG(seed, 5))
		in := tieHeavy(t, r, 3, 4+r.IntN(30))
		want := convergenceView(mergeInBatches(t, [][]hub.Input{in}))
		for range 8 {
			got := convergenceView(mergeInBatches(t, arrival(r, in)))
			for id, w := range want {
				if g := got[id]; g != w {
					t.Fatalf("seed %d, person %v:\n got %s\nwant %s\nevents:\n%s", seed, id, g, w, listEvents(in))
				}
			}
		}
	}
}

// tieHeavy draws events of the given number for that many persons, from
// small pools of instants, dates, codes and ids, so that ties abound.
func tieHeavy(t testing.TB, r *rand.Rand, persons, events int) []hub.Input {
	t.Helper()
	cst := time.FixedZone("CST", 8*3600)
	instants := []time.Time{
		time.Date(2025, 3, 1, 9, 0, 0, 0, cst),
		time.Date(2025, 3, 1, 1, 0, 0, 0, time.UTC), // the same instant
		time.Date(2025, 3, 1, 9, 0, 0, 400, cst),    // the same microsecond
		time.Date(2025, 3, 1, 9, 0, 0, 999, cst),
		time.Date(2025, 3, 1, 21, 0, 0, 0, cst),
		time.Date(2025, 3, 1, 16, 0, 0, 0, time.UTC), // China's midnight
		time.Date(2025, 3, 1, 15, 59, 59, 999999999, time.UTC),
		time.Date(2025, 3, 2, 9, 0, 0, 0, cst),
		time.Date(2025, 5, 1, 9, 0, 0, 0, cst),
	}
	dates := []string{"2025-02-27", "2025-03-01", "2025-03-02", "2025-04-30", "2025-05-01"}
	addresses := []string{"230102001001", "230103002002", "230602013001", "110105001024"}
	ids := make([]citizenid.ID, persons)
	for i := range ids {
		ids[i] = storetest.ValidID(1000 + i*7919)
	}
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	var out []hub.Input
	for n := 0; len(out) < events; n++ {
		p := ids[r.IntN(persons)]
		other := ids[r.IntN(persons)]
		birth := string(p)[6:10] + "-" + string(p)[10:12] + "-" + string(p)[12:14]
		var typ schemas.Type
		var data any
		switch r.IntN(17) {
		case 0, 1:
			gender := p.Gender()
			if r.IntN(4) == 0 { // disagreeing with the ID: id_mismatch
				gender = map[string]string{"1": "2", "2": "1"}[gender]
			}
			typ, data = schemas.HukouRegistered, schemas.HukouRegisteredData{Name: "张伟", Gender: gender, BirthDate: birth, Ethnicity: "01",
				AddressCode: pick(addresses), HouseholdID: pick([]string{"H1", "H2"}), Reason: pick([]string{"birth", "restored"})}
		case 2:
			typ, data = schemas.HukouMigrated, schemas.HukouMigratedData{FromAddressCode: pick(addresses), ToAddressCode: pick(addresses), Reason: "employment"}
		case 3:
			typ, data = schemas.HukouCancelled, schemas.HukouCancelledData{Reason: pick([]string{"death", "emigration", "duplicate", "other", "military"})}
		case 4:
			typ, data = schemas.DeathCertified, schemas.DeathCertifiedData{DateOfDeath: pick(dates), CertificateNo: pick([]string{"D1", "D2"})}
		case 5:
			c := r.IntN(3)
			d := schemas.ResidencePermitIssuedData{CityCode: []string{"230100", "230102", "230600"}[c],
				AddressCode: []string{"230102001001", "230102001001", "230602013001"}[c], Basis: "employment"}
			if r.IntN(2) == 0 {
				d.ValidUntil = pick([]string{"2025-03-01", "2025-04-30", "2027-01-01"})
			}
			typ, data = schemas.ResidencePermitIssued, d
		case 6:
			typ, data = schemas.ResidencePermitRevoked, schemas.ResidencePermitRevokedData{CityCode: pick([]string{"230100", "230103", "230600"})}
		case 7:
			d := schemas.IdentityCorrectedData{}
			if r.IntN(2) == 0 {
				d.Gender = pick([]string{"1", "2"})
			} else {
				d.BirthDate = pick([]string{birth, "1980-01-01"})
			}
			typ, data = schemas.IdentityCorrected, d
		case 8, 9:
			if other == p {
				continue
			}
			typ, data = schemas.MarriageRegistered, schemas.MarriageRegisteredData{SpouseID: other}
			if r.IntN(2) == 0 {
				typ, data = schemas.MarriageDivorced, schemas.MarriageDivorcedData{SpouseID: other}
			}
		case 10:
			d := schemas.ContractStartedData{ContractID: pick([]string{"C1", "C2"}), EmployerID: "91230102MA1B2C3D46",
				EmployerName: pick([]string{"甲", "乙"}), WorkRegion: "230102", Start: pick(dates)}
			if r.IntN(2) == 0 {
				d.End = pick(dates)
			}
			typ, data = schemas.ContractStarted, d
		case 11:
			typ, data = schemas.ContractEnded, schemas.ContractEndedData{ContractID: pick([]string{"C1", "C2"}), End: pick(dates)}
		case 12:
			typ, data = schemas.InsuranceEnrolled, schemas.InsuranceEnrolledData{Scheme: pick([]string{"employee", "resident"}),
				Insurances: []string{pick([]string{"pension", "medical"})}, Region: pick([]string{"230102", "230103"}), Start: pick(dates)}
		case 13:
			typ, data = schemas.InsuranceTerminated, schemas.InsuranceTerminatedData{Insurances: []string{pick([]string{"pension", "medical"})}, Region: "230102", End: pick(dates)}
		case 14:
			typ, data = schemas.ContributionRecorded, schemas.ContributionRecordedData{Month: pick([]string{"2025-01", "2025-02", "2025-03"}),
				Region: "230102", Insurances: []string{pick([]string{"pension", "medical"})}}
		case 15:
			typ, data = schemas.RentalRegistered, schemas.RentalRegisteredData{LeaseID: pick([]string{"L1", "L2"}), AddressCode: pick(addresses), Start: pick(dates)}
		case 16:
			typ, data = schemas.RentalEnded, schemas.RentalEndedData{LeaseID: pick([]string{"L1", "L2"}), End: pick(dates)}
		}
		// A third of the ids in the versioned form of publisher.EventID,
		// few record keys shared among them: the same-record tie rule.
		id := fmt.Sprintf("e-%03d", n)
		if r.IntN(3) == 0 {
			id = fmt.Sprintf("%s-%024x-%016x", schemas.SourceOf(typ), r.IntN(3), n)
		}
		in, err := storetest.NewEvent(typ, p, id, instants[r.IntN(len(instants))], data)
		if err != nil {
			continue // a draw the schemas refuse (a date before birth)
		}
		out = append(out, in)
	}
	return out
}

// arrival is in shuffled, with a third more events repeated, cut into
// batches of random sizes.
func arrival(r *rand.Rand, in []hub.Input) [][]hub.Input {
	all := slices.Clone(in)
	for range len(in) / 3 {
		all = append(all, in[r.IntN(len(in))])
	}
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	var batches [][]hub.Input
	for len(all) > 0 {
		n := 1 + r.IntN(len(all))
		batches = append(batches, all[:n])
		all = all[n:]
	}
	return batches
}

// mergeInBatches merges the batches in turn as a store does: events
// applied before left out, states encoded and decoded between batches.
func mergeInBatches(t testing.TB, batches [][]hub.Input) map[citizenid.ID]*merge.State {
	t.Helper()
	states := map[citizenid.ID]*merge.State{}
	applied := map[schemas.EventKey]bool{}
	for _, b := range batches {
		var fresh []hub.Input
		for _, e := range b {
			if !applied[e.Event.Key()] {
				fresh = append(fresh, e)
			}
		}
		out := merge.Batch(states, fresh, time.Now())
		for id, st := range out.States {
			enc, err := merge.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			if states[id], err = merge.Unmarshal(enc); err != nil {
				t.Fatal(err)
			}
		}
		for _, h := range out.History {
			applied[schemas.EventKey{Source: h.Change.Source, ID: h.Change.EventID}] = true
		}
	}
	return states
}

// convergenceView is what must not depend on arrival: the record without
// updated_at (when it arrived), with its version and provenance, and the
// registration and permit timelines the statistics count from.
func convergenceView(states map[citizenid.ID]*merge.State) map[citizenid.ID]string {
	out := map[citizenid.ID]string{}
	for id, st := range states {
		rec := st.Record()
		rec.UpdatedAt = time.Time{}
		b, err := json.Marshal(struct {
			Record        hub.Record
			Registrations []hub.Interval
			Permits       []hub.Interval
		}{rec, st.Registrations(), st.PermitSpans()})
		if err != nil {
			panic(err)
		}
		out[id] = string(b)
	}
	return out
}

func listEvents(in []hub.Input) string {
	s := ""
	for _, e := range in {
		s += fmt.Sprintf("%s %s %s %s %s\n", e.Event.Subject, e.Event.Time.Format(time.RFC3339Nano), e.Event.Type, e.Event.ID, e.Event.Data)
	}
	return s
}
