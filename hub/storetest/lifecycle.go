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
	// statusFrom is the event, counted from 1 as listed, that
	// provenance.status names: the one the status rests on. 0 for none,
	// as while active.
	statusFrom int
}

// lifecycleCases are the README's lifecycle rules where a late or
// repeated event must not outweigh a newer one: within a section changes
// take effect in order of time; a later hukou.registered (restored) makes
// the person active again, also over a death certified as of an earlier
// time; a cancellation for death stays until such a registration; public
// security knowing the hukou by any of its events is a registration;
// id_mismatch counts from when the disagreeing value was first recorded;
// and the status's provenance names the event the status rests on.
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
			anomalies:  []hub.Anomaly{{Kind: hub.AnomalyDeathNotCancelled, Since: "2025-02-28"}},
			statusFrom: 4,
		},
		{
			name: "known to public security only by a migration: registered, and the death not cancelled",
			events: func(p citizenid.ID, add func(schemas.Type, string, any)) {
				add(schemas.HukouMigrated, "2020-01-01", migrate)
				add(schemas.DeathCertified, "2025-03-01", cert)
			},
			status: hub.StatusDeceased, death: "2025-02-28", deaths: 1,
			anomalies:  []hub.Anomaly{{Kind: hub.AnomalyDeathNotCancelled, Since: "2025-02-28"}},
			statusFrom: 2,
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
			status: hub.StatusCancelled, statusFrom: 1,
		},
		{
			name: "a later cancellation for another reason leaves the death",
			events: func(p citizenid.ID, add func(schemas.Type, string, any)) {
				add(schemas.HukouRegistered, "2000-01-01", register(p, "", "birth"))
				add(schemas.HukouCancelled, "2025-03-01", cancel("death"))
				add(schemas.HukouCancelled, "2025-06-01", cancel("other"))
			},
			status: hub.StatusDeceased, death: "2025-03-01", deaths: 1, statusFrom: 2,
		},
		{
			name: "a certificate and a cancellation for death: the certificate, which carries the date of death",
			events: func(p citizenid.ID, add func(schemas.Type, string, any)) {
				add(schemas.HukouRegistered, "2000-01-01", register(p, "", "birth"))
				add(schemas.DeathCertified, "2025-03-01", cert)
				add(schemas.HukouCancelled, "2025-03-10", cancel("death"))
			},
			status: hub.StatusDeceased, death: "2025-02-28", deaths: 1, statusFrom: 2,
		},
		{
			name: "a later cancellation: the latest, whose reason stands",
			events: func(p citizenid.ID, add func(schemas.Type, string, any)) {
				add(schemas.HukouRegistered, "2000-01-01", register(p, "", "birth"))
				add(schemas.HukouCancelled, "2023-08-01", cancel("emigration"))
				add(schemas.HukouCancelled, "2023-09-01", cancel("other"))
				add(schemas.HukouRegistered, "2010-01-01", register(p, "", "restored"))
			},
			status: hub.StatusCancelled, statusFrom: 3,
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
			in := lifecycleEvents(t, tc, p, fmt.Sprintf("life-%d", i))
			for _, e := range in {
				if _, err := s.Apply(ctx, []hub.Input{e}); err != nil {
					t.Fatal(err)
				}
			}
			r, err := s.Person(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tc.status {
				t.Errorf("status %q, want %q", r.Status, tc.status)
			}
			checkStatusFrom(t, r, in, tc.statusFrom)
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
			// The status and the event it rests on are the same when the
			// events arrive the other way round (another person's).
			q := ValidID(8_100_000 + 7*i + 3)
			rev := lifecycleEvents(t, tc, q, fmt.Sprintf("life-rev-%d", i))
			for k := len(rev) - 1; k >= 0; k-- {
				if _, err := s.Apply(ctx, []hub.Input{rev[k]}); err != nil {
					t.Fatal(err)
				}
			}
			rr, err := s.Person(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if rr.Status != tc.status {
				t.Errorf("arriving in reverse: status %q, want %q", rr.Status, tc.status)
			}
			checkStatusFrom(t, rr, rev, tc.statusFrom)
		})
	}
}

// lifecycleEvents are tc's events for person p, in the order listed, with
// event ids prefix-1, prefix-2, and so on.
func lifecycleEvents(t *testing.T, tc lifecycleCase, p citizenid.ID, prefix string) []hub.Input {
	t.Helper()
	var in []hub.Input
	tc.events(p, func(typ schemas.Type, date string, data any) {
		d, err := time.ParseInLocation(time.DateOnly, date, cst)
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, Event(t, typ, p, fmt.Sprintf("%s-%d", prefix, len(in)+1), d.Add(9*time.Hour), data))
	})
	return in
}

// checkStatusFrom checks that r's provenance.status names in[from-1], the
// event the status rests on, or nothing for from 0.
func checkStatusFrom(t *testing.T, r hub.Record, in []hub.Input, from int) {
	t.Helper()
	got, ok := r.Provenance[string(schemas.SecStatus)]
	if from == 0 {
		if ok {
			t.Errorf("status %s: provenance.status %+v, want none", r.Status, got)
		}
		return
	}
	e := in[from-1].Event
	if !ok || got.Source != e.Source || got.EventID != e.ID || !got.Time.Equal(e.Time) {
		t.Errorf("status %s: provenance.status %+v (present %v), want %s %s at %s", r.Status, got, ok, e.Source, e.ID, e.Time)
	}
}
