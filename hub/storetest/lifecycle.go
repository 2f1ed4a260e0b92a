package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// lifecycleCase is one person's hukou and death events, each applied in
// its own batch in the order listed, and what the record and the outbox
// must then say.
type lifecycleCase struct {
	name   string
	events func(p citizenid.ID, add func(typ schemas.Type, date string, data any))
	status string
	// death is the date_of_death the last pop.death notification
	// carries; "" for none.
	death string
	// anomalies are the open anomalies, sorted by kind.
	anomalies []hub.Anomaly
	deaths    int // pop.death notifications
	// lastSections, when set, are the sections the last event's history
	// row lists.
	lastSections []string
}

// lifecycleCases are the README's lifecycle rules where a late or
// repeated event must not outweigh a newer one: within a section changes
// take effect in order of time; a later hukou.registered (restored) makes
// the person active again, also over a death certified as of an earlier
// time; a cancellation for death stays until such a registration; public
// security knowing the hukou by any of its events is a registration; and
// id_mismatch counts from when the disagreeing value was first recorded.
func lifecycleCases() []lifecycleCase {
	register := func(p citizenid.ID, birth, reason string) schemas.HukouRegisteredData {
		if birth == "" {
			birth = p.BirthDate().Format(time.DateOnly)
		}
		return schemas.HukouRegisteredData{Name: "李娜", Gender: p.Gender(), BirthDate: birth, Ethnicity: "01",
			AddressCode: "230102001001", HouseholdID: "HL1", Reason: reason}
	}
	cancel := func(reason string) schemas.HukouCancelledData { return schemas.HukouCancelledData{Reason: reason} }
	cert := schemas.DeathCertifiedData{DateOfDeath: "2025-02-28", CertificateNo: "D-2025-1"}
	migrate := schemas.HukouMigratedData{FromAddressCode: "230102001001", ToAddressCode: "230103002002", Reason: "housing"}
	return []lifecycleCase{
		{
			name: "a restoration outweighs a death certified as of an earlier time",
			events: func(p citizenid.ID, add func(schemas.Type, string, any)) {
				add(schemas.HukouRegistered, "2000-01-01", register(p, "", "birth"))
				add(schemas.HukouCancelled, "2025-03-10", cancel("death"))
				add(schemas.HukouRegistered, "2025-05-01", register(p, "", "restored"))
				add(schemas.DeathCertified, "2025-03-01", cert)
			},
			// The one death announced is the cancellation's, before the
			// restoration.
			status: hub.StatusActive, death: "2025-03-10", deaths: 1,
		},
		{
			name: "a death certified after the restoration is a death",
			events: func(p citizenid.ID, add func(schemas.Type, string, any)) {
				add(schemas.HukouRegistered, "2000-01-01", register(p, "", "birth"))
				add(schemas.HukouCancelled, "2025-01-10", cancel("death"))
				add(schemas.HukouRegistered, "2025-02-01", register(p, "", "restored"))
				add(schemas.DeathCertified, "2025-03-01", cert)
			},
			status: hub.StatusDeceased, death: "2025-02-28", deaths: 2,
			anomalies: []hub.Anomaly{{Kind: hub.AnomalyDeathNotCancelled, Since: "2025-02-28"}},
		},
		{
			name: "known to public security only by a migration: registered, and the death not cancelled",
			events: func(p citizenid.ID, add func(schemas.Type, string, any)) {
				add(schemas.HukouMigrated, "2020-01-01", migrate)
				add(schemas.DeathCertified, "2025-03-01", cert)
			},
			status: hub.StatusDeceased, death: "2025-02-28", deaths: 1,
			anomalies: []hub.Anomaly{{Kind: hub.AnomalyDeathNotCancelled, Since: "2025-02-28"}},
		},
		{
			name: "a migration ends the unregistered anomaly an earlier record raised",
			events: func(p citizenid.ID, add func(schemas.Type, string, any)) {
				add(schemas.InsuranceEnrolled, "2019-01-01", schemas.InsuranceEnrolledData{Scheme: "resident",
					Insurances: []string{"pension"}, Region: "230102", Start: "2019-01-01"})
				add(schemas.HukouMigrated, "2020-01-01", migrate)
			},
			status: hub.StatusActive, lastSections: []string{"hukou", "anomalies"},
		},
		{
			name: "known to public security only by a cancellation: registered",
			events: func(p citizenid.ID, add func(schemas.Type, string, any)) {
				add(schemas.HukouCancelled, "2020-01-01", cancel("emigration"))
			},
			status: hub.StatusCancelled,
		},
		{
			name: "a later cancellation for another reason leaves the death",
			events: func(p citizenid.ID, add func(schemas.Type, string, any)) {
				add(schemas.HukouRegistered, "2000-01-01", register(p, "", "birth"))
				add(schemas.HukouCancelled, "2025-03-01", cancel("death"))
				add(schemas.HukouCancelled, "2025-06-01", cancel("other"))
			},
			status: hub.StatusDeceased, death: "2025-03-01", deaths: 1,
		},
		{
			name: "a correction repeating the wrong birth date leaves id_mismatch as it was",
			events: func(p citizenid.ID, add func(schemas.Type, string, any)) {
				add(schemas.HukouRegistered, "2020-01-01", register(p, "2000-01-01", "birth"))
				add(schemas.IdentityCorrected, "2021-01-01", schemas.IdentityCorrectedData{Name: "李娜娜", BirthDate: "2000-01-01"})
			},
			status:       hub.StatusActive,
			anomalies:    []hub.Anomaly{{Kind: hub.AnomalyIDMismatch, Since: "2020-01-01"}},
			lastSections: []string{"identity"},
		},
		{
			name: "the repeated wrong birth date arriving first: id_mismatch still counts from the earlier one",
			events: func(p citizenid.ID, add func(schemas.Type, string, any)) {
				add(schemas.IdentityCorrected, "2021-01-01", schemas.IdentityCorrectedData{Name: "李娜娜", BirthDate: "2000-01-01"})
				add(schemas.HukouRegistered, "2020-01-01", register(p, "2000-01-01", "birth"))
			},
			status:    hub.StatusActive,
			anomalies: []hub.Anomaly{{Kind: hub.AnomalyIDMismatch, Since: "2020-01-01"}},
		},
	}
}

// testLifecycleFollowsTime applies each lifecycleCase to a person of its
// own and checks the record, the death notifications and history.
func testLifecycleFollowsTime(t *testing.T, s hub.Store) {
	ctx := context.Background()
	for i, tc := range lifecycleCases() {
		t.Run(tc.name, func(t *testing.T) {
			p := ValidID(8_100_000 + 7*i) // born 1950 or later, never 2000-01-01
			n := 0
			add := func(typ schemas.Type, date string, data any) {
				n++
				d, err := time.ParseInLocation(time.DateOnly, date, cst)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Apply(ctx, []hub.Input{Event(t, typ, p, fmt.Sprintf("life-%d-%d", i, n), d.Add(9*time.Hour), data)}); err != nil {
					t.Fatal(err)
				}
			}
			tc.events(p, add)
			r, err := s.Person(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tc.status {
				t.Errorf("status %q, want %q", r.Status, tc.status)
			}
			if !reflect.DeepEqual(r.Anomalies, tc.anomalies) {
				t.Errorf("anomalies %+v, want %+v", r.Anomalies, tc.anomalies)
			}
			deaths, date := 0, ""
			for _, e := range allPending(t, s, 100) {
				var n schemas.Notification
				if !strings.HasPrefix(e.Subject, "pop.death.") {
					continue
				}
				if err := schemas.DecodeNotification(e.Body, &n); err != nil {
					t.Fatal(err)
				}
				if n.CitizenID == p {
					deaths, date = deaths+1, n.DateOfDeath
				}
			}
			if deaths != tc.deaths || date != tc.death {
				t.Errorf("%d pop.death notifications, the last dated %q; want %d, %q", deaths, date, tc.deaths, tc.death)
			}
			if tc.lastSections != nil {
				h, err := s.History(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				if got := h[len(h)-1].Sections; !slices.Equal(got, tc.lastSections) {
					t.Errorf("last event changed %v, want %v", got, tc.lastSections)
				}
			}
		})
	}
}
