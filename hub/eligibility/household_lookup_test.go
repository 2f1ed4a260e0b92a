package eligibility_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// countingReader counts the records a lookup reads from the store.
type countingReader struct {
	eligibility.Reader
	records atomic.Int64
}

func (c *countingReader) Persons(ctx context.Context, q hub.PersonQuery) ([]hub.Record, string, error) {
	recs, next, err := c.Reader.Persons(ctx, q)
	c.records.Add(int64(len(recs)))
	return recs, next, err
}

// sizedID is the citizen ID of first17 with its check character.
func sizedID(t testing.TB, first17 string) citizenid.ID {
	t.Helper()
	id, err := citizenid.Parse(first17 + string(citizenid.CheckChar(first17)))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// registeredIn registers id at addr in household, with the registration's
// relation to the head of household (may be "").
func registeredIn(t testing.TB, id citizenid.ID, evid, addr, household, relation string) hub.Input {
	t.Helper()
	china := time.FixedZone("CST", 8*3600)
	d := schemas.HukouRegisteredData{Name: "张伟", Gender: id.Gender(), BirthDate: id.BirthDate().Format(time.DateOnly), Ethnicity: "01",
		AddressCode: addr, HouseholdID: household, Relation: relation, Reason: "birth"}
	raw, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return hub.Input{Event: schemas.Event{SpecVersion: schemas.SpecVersion, ID: evid, Source: schemas.SourceOf(schemas.HukouRegistered),
		Type: schemas.HukouRegistered, Subject: id, Time: time.Date(2020, 1, 1, 9, 0, 0, 0, china),
		DataContentType: "application/json", Data: raw, Payload: &d}}
}

// applyInBatches applies in to store, 2,000 events a batch.
func applyInBatches(t testing.TB, store hub.Store, in []hub.Input) {
	t.Helper()
	for i := 0; i < len(in); i += 2000 {
		if _, err := store.Apply(context.Background(), in[i:min(i+2000, len(in))]); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHouseholdFoundAtALargeAddress: a household's members are found
// whatever the size of the address they are registered at, by reading
// the household alone. A 12-digit address code is a residents' committee
// or village: a large urban community, or a university's or factory's
// collective hukou (集体户), registers tens of thousands of people under
// one code. Relatives walked every person at the address page by page and
// gave up silently after 20 pages of 1,000: a member whose key sorted
// after the first 20,000 residents was not found, the family list of
// every answer for that household left them out without a sign, and every
// decision read up to 20,000 records to find a handful.
func TestHouseholdFoundAtALargeAddress(t *testing.T) {
	const addr = "230102001001"
	const residents = 20_500
	tests := []struct {
		name string
		open func(t *testing.T) hub.Store
	}{
		{"memdb", func(t *testing.T) hub.Store {
			s, err := memdb.Open(context.Background(), memdb.Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
		{"postgres", func(t *testing.T) hub.Store {
			s, err := postgres.Open(context.Background(), postgres.Config{URL: testenv.Postgres(t), Schema: testenv.Schema(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			store := tc.open(t)
			// Residents of the address in households of their own, born
			// in January 1950 (their IDs sort before the household's).
			in := make([]hub.Input, 0, residents+2)
			for i := range residents {
				id := sizedID(t, fmt.Sprintf("2301021950%02d%02d%03d", 1, 1+i/1000, i%1000))
				in = append(in, registeredIn(t, id, fmt.Sprintf("r-%d", i), addr, fmt.Sprintf("F-%d", i), ""))
			}
			// The applicant and her daughter, one household.
			mother := sizedID(t, "23010219900315002")
			child := sizedID(t, "23010220150601002")
			in = append(in, registeredIn(t, mother, "mother", addr, "HX", "户主"), registeredIn(t, child, "child", addr, "HX", "女"))
			applyInBatches(t, store, in)

			rec, err := store.Person(ctx, mother)
			if err != nil {
				t.Fatal(err)
			}
			r := &countingReader{Reader: store}
			rel, err := eligibility.Relatives(ctx, r, rec)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("Relatives read %d records to find %d relatives of a household of 2 at an address of %d", r.records.Load(), len(rel), residents+2)
			if !slices.ContainsFunc(rel, func(m hub.Record) bool { return m.CitizenID == child }) {
				t.Errorf("the daughter, registered in the applicant's household HX at %s, is not among her relatives (%d found, %d records read)",
					addr, len(rel), r.records.Load())
			}
			if n := r.records.Load(); n > 2 {
				t.Errorf("Relatives read %d records to find a household of 2: it reads the address of %d, not the household", n, residents+2)
			}
			// What a clerk sees: GET /v1/eligibility's family list.
			d, err := eligibility.Decide(ctx, store, policy(t, "heilongjiang/daqing"), mother, time.Now(), true)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(d.Family, func(m eligibility.FamilyMember) bool { return m.CitizenID == child }) {
				t.Errorf("the decision's family list %+v leaves out the applicant's 11-year-old daughter of the same household", d.Family)
			}
		})
	}
}
