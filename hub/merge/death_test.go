package merge

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// announced is one pop.death notification as a subscriber reads it.
type announced struct {
	Subject, DateOfDeath string
	Time                 time.Time
}

func deaths(t *testing.T, outs []Outcome) []announced {
	t.Helper()
	var got []announced
	for _, o := range outs {
		for _, e := range o.Outbox {
			if !strings.HasPrefix(e.Subject, "pop.death.") {
				continue
			}
			var n schemas.Notification
			if err := schemas.DecodeNotification(e.Body, &n); err != nil {
				t.Fatal(err)
			}
			got = append(got, announced{e.Subject, n.DateOfDeath, n.Time.UTC()})
		}
	}
	return got
}

// TestDeathAnnouncements checks what subscribers hear of a death in each
// arrival order: the date they act on is the certified one, once it is
// known, and every announcement carries the time the death took effect.
func TestDeathAnnouncements(t *testing.T) {
	p := id(t, male)
	const home, unknown = "pop.death.23.2301.230102", "pop.death.00.0000.000000"
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	reg := registered(t, p, "ps-1", "1990-01-05T08:00:00+08:00", "230102001001", "1", "1990-01-01")
	cert := ev(t, schemas.DeathCertified, p, "h-1", "2025-03-01T10:00:00+08:00", map[string]any{"date_of_death": "2025-02-28", "certificate_no": "D1"})
	cancel := ev(t, schemas.HukouCancelled, p, "ps-2", "2025-03-10T10:00:00+08:00", map[string]any{"reason": "death"})
	migrate := ev(t, schemas.HukouMigrated, p, "ps-3", "2024-05-01T00:00:00+08:00", map[string]any{
		"from_address_code": "230102001001", "to_address_code": "430104001001", "reason": "employment"})
	// A migration taking effect after the death, and one within the
	// county before it.
	migrateAfter := ev(t, schemas.HukouMigrated, p, "ps-4", "2025-06-01T00:00:00+08:00", map[string]any{
		"from_address_code": "230102001001", "to_address_code": "430104001001", "reason": "family"})
	moveWithin := ev(t, schemas.HukouMigrated, p, "ps-5", "2024-05-01T00:00:00+08:00", map[string]any{
		"from_address_code": "230102001001", "to_address_code": "230102002001", "reason": "housing"})
	certTime, cancelTime := at("2025-03-01T10:00:00+08:00"), at("2025-03-10T10:00:00+08:00")
	one := func(evs ...hub.Input) [][]hub.Input { // each event in its own batch
		var b [][]hub.Input
		for _, e := range evs {
			b = append(b, []hub.Input{e})
		}
		return b
	}
	tests := []struct {
		name    string
		batches [][]hub.Input
		want    []announced
	}{
		{
			name:    "certificate, then cancellation for death: one announcement",
			batches: one(reg, cert, cancel),
			want:    []announced{{home, "2025-02-28", certTime}},
		},
		{
			name:    "cancellation for death, then certificate: the certified date is announced",
			batches: one(reg, cancel, cert),
			want:    []announced{{home, "2025-03-10", cancelTime}, {home, "2025-02-28", certTime}},
		},
		{
			name:    "cancellation for death and certificate in one batch",
			batches: [][]hub.Input{{reg}, {cancel, cert}},
			want:    []announced{{home, "2025-03-10", cancelTime}, {home, "2025-02-28", certTime}},
		},
		{
			name:    "registration, then certificate",
			batches: one(reg, cert),
			want:    []announced{{home, "2025-02-28", certTime}},
		},
		{
			name:    "certificate, then registration: announced again at the death's time",
			batches: one(cert, reg),
			want:    []announced{{unknown, "2025-02-28", certTime}, {home, "2025-02-28", certTime}},
		},
		{
			name:    "cancellation for death, then registration: announced again at the cancellation's time",
			batches: one(cancel, reg),
			want:    []announced{{unknown, "2025-03-10", cancelTime}, {home, "2025-03-10", cancelTime}},
		},
		{
			name:    "certificate, then an earlier migration: announced again at the death's time",
			batches: one(reg, cert, migrate),
			want:    []announced{{home, "2025-02-28", certTime}, {"pop.death.43.4301.430104", "2025-02-28", certTime}},
		},
		{
			name:    "certificate, then a migration taking effect after the death: not announced where the person never lived alive",
			batches: one(reg, cert, migrateAfter),
			want:    []announced{{home, "2025-02-28", certTime}},
		},
		{
			name:    "certificate, then an earlier move within the county: the county's subscribers heard it once",
			batches: one(reg, cert, moveWithin),
			want:    []announced{{home, "2025-02-28", certTime}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, outs := run(tc.batches...)
			if got := deaths(t, outs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("death notifications = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestTerminationShowsOnlyInsurancesHeld checks that a termination naming
// insurances the person never had adds none to the record, in either
// arrival order, and that a late enrolment shows its termination.
func TestTerminationShowsOnlyInsurancesHeld(t *testing.T) {
	p := id(t, male)
	enrol := ev(t, schemas.InsuranceEnrolled, p, "si-1", "2015-06-26T09:00:00+08:00", map[string]any{"scheme": "resident",
		"insurances": []string{"pension", "medical"}, "region": "230111", "start": "2015-06-26"})
	paid := ev(t, schemas.ContributionRecorded, p, "si-2", "2016-01-31T00:00:00+08:00", map[string]any{"month": "2016-01",
		"region": "230111", "insurances": []string{"injury"}})
	term := ev(t, schemas.InsuranceTerminated, p, "si-3", "2024-11-16T09:00:00+08:00", map[string]any{"insurances": schemas.Insurances,
		"region": "230111", "end": "2024-11-15"})
	ended := hub.InsuranceLine{Since: "2015-06-26", Until: "2024-11-15"}
	both := map[string]hub.InsuranceLine{"pension": ended, "medical": ended}
	tests := []struct {
		name   string
		events []hub.Input
		want   map[string]hub.InsuranceLine // nil: no social_insurance section
	}{
		{name: "enrolment, then termination", events: []hub.Input{enrol, term}, want: both},
		{name: "termination, then enrolment", events: []hub.Input{term, enrol}, want: both},
		{name: "termination alone", events: []hub.Input{term}, want: nil},
		{
			name:   "a contribution without enrolment still shows, ended",
			events: []hub.Input{term, paid, enrol},
			want: map[string]hub.InsuranceLine{"pension": ended, "medical": ended,
				"injury": {Months: 1, LastMonth: "2016-01", Until: "2024-11-15"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var batches [][]hub.Input
			for _, e := range tc.events {
				batches = append(batches, []hub.Input{e})
			}
			states, outs := run(batches...)
			r := states[p].Record()
			var got map[string]hub.InsuranceLine
			if r.SocialInsurance != nil {
				got = r.SocialInsurance.Insurances
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("insurances = %+v\nwant %+v", got, tc.want)
			}
			if tc.want == nil {
				if _, ok := r.Provenance[string(schemas.SecSocialInsurance)]; ok || r.SocialInsurance != nil {
					t.Errorf("record = %+v, want no social_insurance section", r)
				}
				for _, s := range subjects(outs[len(outs)-1]) {
					if strings.HasSuffix(s, ".social_insurance") {
						t.Errorf("notification %s, want none of social_insurance", s)
					}
				}
			}
		})
	}
}

// TestDeathAnnouncedAgainInCST: a death announced again from a state
// stored before event times were kept in China Standard Time (its stamp
// in the offset the department wrote) carries the time in +08:00, as
// every other notification does.
func TestDeathAnnouncedAgainInCST(t *testing.T) {
	p := id(t, male)
	states, _ := run([]hub.Input{ev(t, schemas.DeathCertified, p, "d-1", "2025-03-01T02:00:00Z",
		map[string]any{"date_of_death": "2025-02-28", "certificate_no": "D1"})})
	b, err := json.Marshal(states[p])
	if err != nil {
		t.Fatal(err)
	}
	stored := strings.ReplaceAll(string(b), "2025-03-01T10:00:00+08:00", "2025-03-01T02:00:00Z") // as an earlier release stored it
	if stored == string(b) {
		t.Fatalf("the state holds no +08:00 stamp to rewrite: %s", b)
	}
	var st State
	if err := json.Unmarshal([]byte(stored), &st); err != nil {
		t.Fatal(err)
	}
	o := Batch(map[citizenid.ID]*State{p: &st}, []hub.Input{registered(t, p, "r-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01")}, now)
	for _, e := range o.Outbox {
		if strings.HasPrefix(e.Subject, "pop.death.") {
			if !strings.Contains(string(e.Body), `"time":"2025-03-01T10:00:00+08:00"`) {
				t.Errorf("death notification %s: %s; want time 2025-03-01T10:00:00+08:00", e.Subject, e.Body)
			}
			return
		}
	}
	t.Fatal("no death notification announced again")
}
