package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// asOfStores are the stores the as-of consistency tests run on: a decision
// must not depend on which one holds the records.
var asOfStores = []struct {
	name string
	open func(t *testing.T) hub.Store
}{
	{"memdb", func(t *testing.T) hub.Store { return newMemStore(t) }},
	{"postgres", func(t *testing.T) hub.Store {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := postgres.Open(ctx, postgres.Config{URL: testenv.Postgres(t), Schema: testenv.Schema(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// applyEach applies the batches in order, one Apply each: the order in
// which the events arrive.
func applyEach(t *testing.T, s hub.Store, batches ...[]hub.Input) {
	t.Helper()
	for _, b := range batches {
		if _, err := s.Apply(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

// decide asks GET /v1/eligibility for id under policy, as of asOf ("" for
// none).
func decide(t *testing.T, s hub.Store, id citizenid.ID, policy, asOf string) eligibility.Decision {
	t.Helper()
	srv := httptest.NewServer(api.New(api.Config{Store: s, Lister: s, Policies: loadPolicies(t)}).Handler())
	defer srv.Close()
	q := url.Values{"policy": {policy}}
	if asOf != "" {
		q.Set("as_of", asOf)
	}
	var d eligibility.Decision
	if code := getInto(t, srv.URL+"/v1/eligibility/"+string(id)+"?"+q.Encode(), &d); code != http.StatusOK {
		t.Fatalf("as_of %q: status %d", asOf, code)
	}
	return d
}

func condition(d eligibility.Decision, id string) (eligibility.ConditionResult, bool) {
	for _, c := range d.Conditions {
		if c.ID == id {
			return c, true
		}
	}
	return eligibility.ConditionResult{}, false
}

func migration(t testing.TB, who citizenid.ID, id string, at time.Time, from, to string) hub.Input {
	return storetest.Event(t, schemas.HukouMigrated, who, id, at,
		schemas.HukouMigratedData{FromAddressCode: from, ToAddressCode: to, Reason: "family"})
}

func certificate(t testing.TB, who citizenid.ID, id string, at time.Time, died string) hub.Input {
	return storetest.Event(t, schemas.DeathCertified, who, id, at,
		schemas.DeathCertifiedData{DateOfDeath: died, CertificateNo: "C-" + id})
}

// TestEligibilityDeathUsesCorrectedDate: a correction of the date of
// death moves the day from which eligibility treats the person as
// deceased, as it moves the record's and the counts' (hub/merge): dead
// from the earlier of the latest certificate's date and the day the first
// certificate took effect.
func TestEligibilityDeathUsesCorrectedDate(t *testing.T) {
	for _, st := range asOfStores {
		t.Run(st.name, func(t *testing.T) {
			s := st.open(t)
			reg := registration(t, 1, "230102001001", cstDay(2020, 1, 1))
			who := reg.Event.Subject
			applyEach(t, s, []hub.Input{reg},
				[]hub.Input{certificate(t, who, "hl-d1", cstDay(2026, 3, 15), "2026-03-01")},
				[]hub.Input{certificate(t, who, "hl-d2", cstDay(2026, 3, 20), "2026-03-10")})
			for _, tc := range []struct {
				asOf string
				dead bool
			}{
				{"2026-02-28", false},
				{"2026-03-01", false},
				{"2026-03-05", false},
				{"2026-03-09", false},
				{"2026-03-10", true},
				{"2026-03-15", true},
				{"2026-03-21", true},
			} {
				d := decide(t, s, who, "heilongjiang/harbin", tc.asOf)
				c, dead := condition(d, "status")
				if dead != tc.dead {
					t.Errorf("as of %s: deceased = %v, want %v (%+v)", tc.asOf, dead, tc.dead, c)
				}
			}
		})
	}
}

// TestEligibilityRelativesAsOf: a family reunion as of a past day is
// decided by the spouse's hukou and status of that day, not of today.
func TestEligibilityRelativesAsOf(t *testing.T) {
	const (
		daoli   = "230102001001"
		chifeng = "150402001001" // urban
	)
	married := cstDay(2023, 1, 1)
	for _, tc := range []struct {
		name   string
		spouse func(t *testing.T, spouse citizenid.ID) []hub.Input // after the registration
		want   map[string]bool                                     // as_of → family_reunion met
		cites  string                                              // event a met family_reunion cites
	}{
		{"spouse moves in later", func(t *testing.T, sp citizenid.ID) []hub.Input {
			return []hub.Input{migration(t, sp, "ps-m2", cstDay(2024, 9, 1), daoli, chifeng)}
		}, map[string]bool{"2024-07-01": false, "2024-08-31": false, "2024-09-01": true, "2024-10-01": true}, "ps-m2"},
		{"spouse moves away later", func(t *testing.T, sp citizenid.ID) []hub.Input {
			return []hub.Input{
				migration(t, sp, "ps-m3", cstDay(2022, 6, 1), daoli, chifeng),
				migration(t, sp, "ps-m4", cstDay(2024, 9, 1), chifeng, daoli),
			}
		}, map[string]bool{"2024-07-01": true, "2024-08-31": true, "2024-09-01": false}, "ps-m3"},
		{"spouse dies later", func(t *testing.T, sp citizenid.ID) []hub.Input {
			return []hub.Input{
				migration(t, sp, "ps-m3", cstDay(2022, 6, 1), daoli, chifeng),
				certificate(t, sp, "hl-d1", cstDay(2024, 9, 5), "2024-09-01"),
			}
		}, map[string]bool{"2024-07-01": true, "2024-08-31": true, "2024-09-01": false}, "ps-m3"},
	} {
		for _, st := range asOfStores {
			t.Run(tc.name+"/"+st.name, func(t *testing.T) {
				s := st.open(t)
				me, sp := storetest.ValidID(11), storetest.ValidID(12)
				in := []hub.Input{
					storetest.Event(t, schemas.HukouRegistered, me, "ps-r11", cstDay(2010, 1, 1), schemas.HukouRegisteredData{
						Name: "王芳", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: daoli, HouseholdID: "H11", Reason: "birth"}),
					storetest.Event(t, schemas.HukouRegistered, sp, "ps-r12", cstDay(2010, 1, 1), schemas.HukouRegisteredData{
						Name: "张伟", Gender: "1", BirthDate: "1989-01-01", Ethnicity: "01", AddressCode: daoli, HouseholdID: "H12", Reason: "birth"}),
					storetest.Event(t, schemas.MarriageRegistered, me, "mz-m11", married, schemas.MarriageRegisteredData{SpouseID: sp}),
					storetest.Event(t, schemas.MarriageRegistered, sp, "mz-m12", married, schemas.MarriageRegisteredData{SpouseID: me}),
					storetest.Event(t, schemas.RentalRegistered, me, "hs-l11", cstDay(2023, 7, 1), schemas.RentalRegisteredData{
						LeaseID: "L11", AddressCode: chifeng, Start: "2023-07-01"}),
				}
				applyEach(t, s, in, tc.spouse(t, sp))
				for asOf, want := range tc.want {
					d := decide(t, s, me, "chifeng/central", asOf)
					c, ok := condition(d, "family_reunion")
					if !ok {
						t.Fatalf("as of %s: no family_reunion condition", asOf)
					}
					if c.Met != want {
						t.Errorf("as of %s: family_reunion met = %v, want %v (%+v)", asOf, c.Met, want, c)
						continue
					}
					if !want {
						continue
					}
					cited := false
					for _, f := range c.Facts {
						cited = cited || f.EventID == tc.cites
					}
					if !cited {
						t.Errorf("as of %s: family_reunion cites %+v, want %s", asOf, c.Facts, tc.cites)
					}
				}
			})
		}
	}
}

// TestEligibilitySameTimeTies: two migrations with the same effective time
// are ordered as the record orders them, by source, then event id, the
// later winning, whatever order they arrived in.
func TestEligibilitySameTimeTies(t *testing.T) {
	at := time.Date(2024, 3, 1, 0, 0, 0, 0, cst)
	for _, st := range asOfStores {
		t.Run(st.name, func(t *testing.T) {
			s := st.open(t)
			reg := registration(t, 21, "150402001001", cstDay(2020, 1, 1))
			who := reg.Event.Subject
			applyEach(t, s, []hub.Input{reg},
				[]hub.Input{migration(t, who, "ps-m2", at, "150402001001", "230103001001")},
				[]hub.Input{migration(t, who, "ps-m1", at, "150402001001", "230102001001")})
			rec, err := s.Person(context.Background(), who)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Hukou == nil || rec.Hukou.AddressCode != "230103001001" {
				t.Fatalf("record hukou = %+v, want 230103001001", rec.Hukou)
			}
			for _, asOf := range []string{"2024-03-01", "2024-06-01", ""} {
				d := decide(t, s, who, "chifeng/central", asOf)
				c, _ := condition(d, "hukou_elsewhere")
				if len(c.Facts) == 0 || c.Facts[0].EventID != "ps-m2" || c.Facts[0].Text != "hukou registered at 230103001001" {
					t.Errorf("as of %q: hukou_elsewhere facts %+v, want 230103001001 from ps-m2", asOf, c.Facts)
				}
			}
		})
	}
}

// TestEligibilityDefaultsToEndOfToday: without as_of the decision is that
// of as_of today (China time): a change effective later today counts, as
// the counts of today count it.
func TestEligibilityDefaultsToEndOfToday(t *testing.T) {
	for _, st := range asOfStores {
		t.Run(st.name, func(t *testing.T) {
			s := st.open(t)
			now := time.Now().In(cst)
			y, m, dd := now.Date()
			endOfToday := time.Date(y, m, dd+1, 0, 0, 0, 0, cst)
			// Two minutes ahead (clock skew), but still today.
			at := now.Add(2 * time.Minute)
			if !at.Before(endOfToday) {
				at = now.Add(endOfToday.Sub(now) / 2)
			}
			today := now.Format(time.DateOnly)
			reg := registration(t, 31, "230102001001", cstDay(2020, 1, 1))
			who := reg.Event.Subject
			applyEach(t, s, []hub.Input{reg, migration(t, who, "ps-m31", at, "230102001001", "150402001001")})
			for _, asOf := range []string{today, ""} {
				d := decide(t, s, who, "chifeng/central", asOf)
				if d.AsOf != today {
					t.Errorf("as_of %q: decision as of %s, want %s", asOf, d.AsOf, today)
				}
				c, _ := condition(d, "hukou_elsewhere")
				if c.Met || len(c.Facts) == 0 || c.Facts[0].EventID != "ps-m31" {
					t.Errorf("as_of %q: hukou_elsewhere %+v, want not met, citing ps-m31 (effective %s)", asOf, c, at.Format(time.RFC3339))
				}
			}
		})
	}
}
