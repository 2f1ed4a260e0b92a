package merge

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/codes"
)

// id builds a valid citizen ID from 17 digits.
func id(t testing.TB, first17 string) citizenid.ID {
	t.Helper()
	v, err := citizenid.Parse(first17 + string(citizenid.CheckChar(first17)))
	if err != nil {
		t.Fatalf("building test ID: %v", err)
	}
	return v
}

func uscc(t testing.TB, first17 string) string {
	t.Helper()
	c, ok := codes.USCCCheckChar(first17)
	if !ok {
		t.Fatalf("bad USCC prefix %q", first17)
	}
	return first17 + string(c)
}

var (
	male   = "23010219900101123" // 17th digit 3: male, born 1990-01-01
	female = "23010219920202124" // 17th digit 4: female, born 1992-02-02
)

// ev builds and decodes one event, as the hub would receive it.
func ev(t testing.TB, typ schemas.Type, subject citizenid.ID, eventID, when string, data any) hub.Input {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]any{"specversion": "1.0", "id": eventID, "source": schemas.SourceOf(typ), "type": typ,
		"subject": string(subject), "time": when, "datacontenttype": "application/json", "data": json.RawMessage(raw)}
	b, _ := json.Marshal(env)
	e, err := schemas.Decode(schemas.Input{Value: b})
	if err != nil {
		t.Fatalf("decoding test event %s: %v", eventID, err)
	}
	return hub.Input{Event: e}
}

func registered(t testing.TB, p citizenid.ID, eventID, when, addr, gender, birth string) hub.Input {
	return ev(t, schemas.HukouRegistered, p, eventID, when, map[string]any{"name": "张伟", "gender": gender,
		"birth_date": birth, "ethnicity": "01", "address_code": addr, "household_id": "H1", "reason": "birth"})
}

var now = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// run applies batches in sequence, each against the previous outcome.
// storedBefore is st as an earlier release stored it: a clone with what
// strip removes (fields points did not carry then), written by Marshal
// and read back by Unmarshal.
func storedBefore(t testing.TB, st *State, strip func(*State)) *State {
	t.Helper()
	c := st.Clone()
	strip(c)
	b, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func run(batches ...[]hub.Input) (map[citizenid.ID]*State, []Outcome) {
	states := map[citizenid.ID]*State{}
	var outs []Outcome
	seen := map[schemas.EventKey]bool{}
	for _, b := range batches {
		var fresh []hub.Input
		for _, in := range b {
			if !seen[in.Event.Key()] {
				fresh = append(fresh, in)
			}
		}
		o := Batch(states, fresh, now)
		for k, v := range o.States {
			states[k] = v
		}
		for _, h := range o.History {
			seen[schemas.EventKey{Source: h.Change.Source, ID: h.Change.EventID}] = true
		}
		outs = append(outs, o)
	}
	return states, outs
}

func subjects(o Outcome) []string {
	var s []string
	for _, e := range o.Outbox {
		s = append(s, e.Subject)
	}
	return s
}

func TestRules(t *testing.T) {
	p := id(t, male)
	f := id(t, female)
	emp := uscc(t, "91230102MA1B2C3D4")
	tests := []struct {
		name   string
		events []hub.Input
		check  func(t *testing.T, r hub.Record, last Outcome)
	}{
		{
			name:   "registration fills identity and hukou",
			events: []hub.Input{registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01")},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				want := hub.Hukou{AddressCode: "230102001001", RegionCode: "230102", Since: "2020-01-01", HouseholdID: "H1", UrbanRural: "urban"}
				if r.Hukou == nil || *r.Hukou != want {
					t.Errorf("hukou = %+v, want %+v", r.Hukou, want)
				}
				if r.Identity == nil || r.Identity.Name != "张伟" || r.Status != hub.StatusActive || r.Version != 1 {
					t.Errorf("record = %+v", r)
				}
				if len(r.Anomalies) != 0 {
					t.Errorf("anomalies = %+v, want none", r.Anomalies)
				}
				if r.Provenance["identity"].EventID != "ps-1" || r.Provenance["hukou"].Source != schemas.PublicSecurity {
					t.Errorf("provenance = %+v", r.Provenance)
				}
				wantSubj := []string{"pop.changed.23.2301.230102.identity", "pop.changed.23.2301.230102.hukou"}
				if got := subjects(last); !reflect.DeepEqual(got, wantSubj) {
					t.Errorf("subjects = %v, want %v", got, wantSubj)
				}
			},
		},
		{
			name: "migration moves hukou and notifies from and to",
			events: []hub.Input{
				registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
				ev(t, schemas.HukouMigrated, p, "ps-2", "2024-05-01T00:00:00+08:00", map[string]any{
					"from_address_code": "230102001001", "to_address_code": "230602013004", "reason": "employment"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				if r.Hukou.AddressCode != "230602013004" || r.Hukou.Since != "2024-05-01" || r.Hukou.HouseholdID != "H1" {
					t.Errorf("hukou = %+v", r.Hukou)
				}
				want := []string{"pop.changed.23.2306.230602.hukou", "pop.migration.23.2301.230102.23.2306.230602"}
				if got := subjects(last); !reflect.DeepEqual(got, want) {
					t.Errorf("subjects = %v, want %v", got, want)
				}
				var n schemas.Notification
				_ = json.Unmarshal(last.Outbox[1].Body, &n)
				if n.FromAddressCode != "230102001001" || n.ToAddressCode != "230602013004" || n.Reason != "employment" || n.Version != 2 {
					t.Errorf("migration notification = %+v", n)
				}
				if last.Outbox[1].MsgID != n.ChangeID || !strings.HasSuffix(n.ChangeID, ".migration") {
					t.Errorf("msg id %q, change id %q", last.Outbox[1].MsgID, n.ChangeID)
				}
			},
		},
		{
			name: "late migration goes to history without overriding",
			events: []hub.Input{
				registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
				ev(t, schemas.HukouMigrated, p, "ps-3", "2024-05-01T00:00:00+08:00", map[string]any{
					"from_address_code": "230102001001", "to_address_code": "230602013004", "reason": "employment"}),
				ev(t, schemas.HukouMigrated, p, "ps-2", "2022-05-01T00:00:00+08:00", map[string]any{
					"from_address_code": "230102001001", "to_address_code": "230103001001", "reason": "housing"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				if r.Hukou.AddressCode != "230602013004" || r.Version != 3 {
					t.Errorf("hukou = %+v version %d", r.Hukou, r.Version)
				}
				h := last.History[len(last.History)-1].Change
				if h.EventID != "ps-2" || len(h.Sections) != 0 {
					t.Errorf("late change = %+v, want no sections changed", h)
				}
				// The migration itself still happened and is announced.
				if got := subjects(last); len(got) != 1 || !strings.HasPrefix(got[0], "pop.migration.") {
					t.Errorf("subjects = %v", got)
				}
			},
		},
		{
			name: "death without cancellation is an anomaly until cancelled",
			events: []hub.Input{
				registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
				ev(t, schemas.DeathCertified, p, "h-1", "2025-03-01T10:00:00+08:00", map[string]any{"date_of_death": "2025-02-28", "certificate_no": "D1"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				if r.Status != hub.StatusDeceased {
					t.Errorf("status = %s", r.Status)
				}
				want := []hub.Anomaly{{Kind: hub.AnomalyDeathNotCancelled, Since: "2025-02-28"}}
				if !reflect.DeepEqual(r.Anomalies, want) {
					t.Errorf("anomalies = %+v, want %+v", r.Anomalies, want)
				}
				want2 := []string{"pop.changed.23.2301.230102.status", "pop.changed.23.2301.230102.anomalies", "pop.death.23.2301.230102"}
				if got := subjects(last); !reflect.DeepEqual(got, want2) {
					t.Errorf("subjects = %v, want %v", got, want2)
				}
			},
		},
		{
			name: "a death certified before the registration is announced again in the person's region",
			events: []hub.Input{
				ev(t, schemas.DeathCertified, p, "h-1", "2025-03-01T10:00:00+08:00", map[string]any{"date_of_death": "2025-02-28", "certificate_no": "D1"}),
				registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				if r.Status != hub.StatusDeceased || r.Hukou == nil || r.Hukou.RegionCode != "230102" {
					t.Fatalf("record = %+v", r)
				}
				if got := subjects(last); !slices.Contains(got, "pop.death.23.2301.230102") {
					t.Errorf("subjects = %v, want the death announced in 230102, where the Harbin bureau follows it", got)
				}
			},
		},
		{
			name: "a death that arrived before an earlier migration is announced again in the new region",
			events: []hub.Input{
				registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
				ev(t, schemas.DeathCertified, p, "h-1", "2025-03-01T10:00:00+08:00", map[string]any{"date_of_death": "2025-02-28", "certificate_no": "D1"}),
				ev(t, schemas.HukouMigrated, p, "ps-2", "2024-05-01T00:00:00+08:00", map[string]any{
					"from_address_code": "230102001001", "to_address_code": "430104001001", "reason": "employment"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				if r.Status != hub.StatusDeceased || r.Hukou == nil || r.Hukou.RegionCode != "430104" {
					t.Fatalf("record = %+v", r)
				}
				got := subjects(last)
				if !slices.Contains(got, "pop.death.43.4301.430104") || !slices.Contains(got, "pop.migration.23.2301.230102.43.4301.430104") {
					t.Errorf("subjects = %v, want the migration and the death announced in 430104, where the person was insured when they died", got)
				}
			},
		},
		{
			name: "a late migration older than the current hukou announces no second death",
			events: []hub.Input{
				registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
				ev(t, schemas.HukouMigrated, p, "ps-3", "2024-05-01T00:00:00+08:00", map[string]any{
					"from_address_code": "230102001001", "to_address_code": "430104001001", "reason": "employment"}),
				ev(t, schemas.DeathCertified, p, "h-1", "2025-03-01T10:00:00+08:00", map[string]any{"date_of_death": "2025-02-28", "certificate_no": "D1"}),
				ev(t, schemas.HukouMigrated, p, "ps-2", "2022-05-01T00:00:00+08:00", map[string]any{
					"from_address_code": "230102001001", "to_address_code": "230103001001", "reason": "housing"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				if r.Hukou == nil || r.Hukou.RegionCode != "430104" {
					t.Fatalf("record = %+v", r)
				}
				for _, s := range subjects(last) {
					if strings.HasPrefix(s, "pop.death.") {
						t.Errorf("second death notification %s", s)
					}
				}
			},
		},
		{
			name: "cancellation for death clears the anomaly and announces no second death",
			events: []hub.Input{
				registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
				ev(t, schemas.DeathCertified, p, "h-1", "2025-03-01T10:00:00+08:00", map[string]any{"date_of_death": "2025-02-28", "certificate_no": "D1"}),
				ev(t, schemas.HukouCancelled, p, "ps-2", "2025-03-10T10:00:00+08:00", map[string]any{"reason": "death"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				if r.Status != hub.StatusDeceased || len(r.Anomalies) != 0 {
					t.Errorf("status %s anomalies %+v", r.Status, r.Anomalies)
				}
				for _, s := range subjects(last) {
					if strings.HasPrefix(s, "pop.death.") {
						t.Errorf("second death notification %s", s)
					}
				}
			},
		},
		{
			name: "other cancellation, then restoration",
			events: []hub.Input{
				registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
				ev(t, schemas.HukouCancelled, p, "ps-2", "2021-01-01T00:00:00+08:00", map[string]any{"reason": "emigration"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				if r.Status != hub.StatusCancelled {
					t.Errorf("status = %s, want cancelled", r.Status)
				}
			},
		},
		{
			name: "a migration after a cancellation moves the address, not the status",
			events: []hub.Input{
				registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
				ev(t, schemas.HukouCancelled, p, "ps-2", "2021-01-01T00:00:00+08:00", map[string]any{"reason": "other"}),
				ev(t, schemas.HukouMigrated, p, "ps-3", "2022-01-01T00:00:00+08:00", map[string]any{"from_address_code": "230102001001",
					"to_address_code": "230103002002", "reason": "family"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				if r.Status != hub.StatusCancelled || r.Hukou == nil || r.Hukou.AddressCode != "230103002002" {
					t.Errorf("status = %s, hukou = %+v; want cancelled at 230103002002", r.Status, r.Hukou)
				}
			},
		},
		{
			name: "records without registration are unregistered",
			events: []hub.Input{
				ev(t, schemas.ContractStarted, p, "emp-1", "2023-03-01T00:00:00+08:00", map[string]any{"contract_id": "C1",
					"employer_id": emp, "employer_name": "龙江机械", "work_region": "230102", "start": "2023-03-01"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				want := []hub.Anomaly{{Kind: hub.AnomalyUnregistered, Since: "2023-03-01"}}
				if !reflect.DeepEqual(r.Anomalies, want) || r.Identity != nil || r.Hukou != nil {
					t.Errorf("record = %+v", r)
				}
				if got := subjects(last); len(got) != 2 || got[0] != "pop.changed.00.0000.000000.employment" {
					t.Errorf("subjects = %v", got)
				}
			},
		},
		{
			name: "registration disagreeing with the ID is an id_mismatch until corrected",
			events: []hub.Input{
				registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "2", "1990-01-01"),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				want := []hub.Anomaly{{Kind: hub.AnomalyIDMismatch, Since: "2020-01-01"}}
				if !reflect.DeepEqual(r.Anomalies, want) {
					t.Errorf("anomalies = %+v, want %+v", r.Anomalies, want)
				}
			},
		},
		{
			name: "correction clears id_mismatch",
			events: []hub.Input{
				registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1991-01-01"),
				ev(t, schemas.IdentityCorrected, p, "ps-2", "2021-01-01T00:00:00+08:00", map[string]any{"birth_date": "1990-01-01"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				if len(r.Anomalies) != 0 || r.Identity.BirthDate != "1990-01-01" {
					t.Errorf("record = %+v", r)
				}
			},
		},
		{
			name: "insurance months count distinct months per insurance",
			events: []hub.Input{
				ev(t, schemas.InsuranceEnrolled, p, "si-1", "2024-01-01T00:00:00+08:00", map[string]any{"scheme": "employee",
					"insurances": []string{"pension", "medical"}, "region": "230102", "start": "2024-01-01"}),
				ev(t, schemas.ContributionRecorded, p, "si-2", "2024-01-31T00:00:00+08:00", map[string]any{"month": "2024-01", "region": "230102", "insurances": []string{"pension", "medical"}}),
				ev(t, schemas.ContributionRecorded, p, "si-3", "2024-02-29T00:00:00+08:00", map[string]any{"month": "2024-02", "region": "230102", "insurances": []string{"pension"}}),
				ev(t, schemas.ContributionRecorded, p, "si-4", "2024-03-01T00:00:00+08:00", map[string]any{"month": "2024-01", "region": "230102", "insurances": []string{"pension"}}),
				ev(t, schemas.InsuranceTerminated, p, "si-5", "2024-06-01T00:00:00+08:00", map[string]any{"insurances": []string{"medical"}, "region": "230102", "end": "2024-05-31"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				si := r.SocialInsurance
				want := map[string]hub.InsuranceLine{
					"pension": {Since: "2024-01-01", Months: 2, LastMonth: "2024-02"},
					"medical": {Since: "2024-01-01", Months: 1, LastMonth: "2024-01", Until: "2024-05-31"},
				}
				if si == nil || si.Scheme != "employee" || si.Region != "230102" || !reflect.DeepEqual(si.Insurances, want) {
					t.Errorf("social insurance = %+v", si)
				}
			},
		},
		{
			name: "contract end arriving before its start",
			events: []hub.Input{
				ev(t, schemas.ContractEnded, p, "emp-2", "2024-12-31T00:00:00+08:00", map[string]any{"contract_id": "C1", "end": "2024-12-31"}),
				ev(t, schemas.ContractStarted, p, "emp-1", "2023-03-01T00:00:00+08:00", map[string]any{"contract_id": "C1",
					"employer_id": emp, "employer_name": "龙江机械", "work_region": "230102", "start": "2023-03-01"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				want := []hub.Contract{{ContractID: "C1", EmployerID: emp, EmployerName: "龙江机械", WorkRegion: "230102", Start: "2023-03-01", End: "2024-12-31"}}
				if !reflect.DeepEqual(r.Employment, want) {
					t.Errorf("employment = %+v", r.Employment)
				}
			},
		},
		{
			name: "a contract started again after its end runs again",
			events: []hub.Input{
				ev(t, schemas.ContractStarted, p, "emp-1", "2023-03-01T00:00:00+08:00", map[string]any{"contract_id": "C1",
					"employer_id": emp, "employer_name": "龙江机械", "work_region": "230102", "start": "2023-03-01"}),
				ev(t, schemas.ContractEnded, p, "emp-2", "2024-12-31T00:00:00+08:00", map[string]any{"contract_id": "C1", "end": "2024-12-31"}),
				ev(t, schemas.ContractStarted, p, "emp-3", "2025-03-01T00:00:00+08:00", map[string]any{"contract_id": "C1",
					"employer_id": emp, "employer_name": "龙江机械", "work_region": "230102", "start": "2025-03-01", "end": "2027-02-28"}),
				ev(t, schemas.RentalRegistered, p, "hs-1", "2021-01-01T00:00:00+08:00", map[string]any{"lease_id": "L1", "address_code": "230103001001", "start": "2021-01-01"}),
				ev(t, schemas.RentalEnded, p, "hs-2", "2021-12-31T00:00:00+08:00", map[string]any{"lease_id": "L1", "end": "2021-12-31"}),
				ev(t, schemas.RentalRegistered, p, "hs-3", "2022-06-01T00:00:00+08:00", map[string]any{"lease_id": "L1", "address_code": "230103001001", "start": "2022-06-01"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				wantE := []hub.Contract{{ContractID: "C1", EmployerID: emp, EmployerName: "龙江机械", WorkRegion: "230102", Start: "2025-03-01", End: "2027-02-28"}}
				if !reflect.DeepEqual(r.Employment, wantE) {
					t.Errorf("employment = %+v, want %+v", r.Employment, wantE)
				}
				wantR := []hub.Rental{{LeaseID: "L1", AddressCode: "230103001001", Start: "2022-06-01"}}
				if r.Housing == nil || !reflect.DeepEqual(r.Housing.Rentals, wantR) {
					t.Errorf("housing = %+v, want rentals %+v", r.Housing, wantR)
				}
			},
		},
		{
			name: "marriage then divorce",
			events: []hub.Input{
				ev(t, schemas.MarriageRegistered, p, "m-1", "2021-05-20T00:00:00+08:00", map[string]any{"spouse_id": string(f)}),
				ev(t, schemas.MarriageDivorced, p, "m-2", "2023-05-20T00:00:00+08:00", map[string]any{"spouse_id": string(f)}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				want := hub.Marital{Status: "40", Since: "2023-05-20"}
				if r.Marital == nil || *r.Marital != want {
					t.Errorf("marital = %+v", r.Marital)
				}
			},
		},
		{
			name: "education keeps the highest level",
			events: []hub.Input{
				ev(t, schemas.EducationGraduated, p, "e-2", "2016-07-01T00:00:00+08:00", map[string]any{"institution": "哈尔滨工业大学", "level": "21", "date": "2012-07-01", "certificate_no": "B1"}),
				ev(t, schemas.EducationGraduated, p, "e-1", "2012-07-01T00:00:00+08:00", map[string]any{"institution": "哈尔滨工业大学", "level": "14", "date": "2016-07-01", "certificate_no": "M1"}),
				ev(t, schemas.EducationGraduated, p, "e-3", "2020-07-01T00:00:00+08:00", map[string]any{"institution": "某职校", "level": "61", "date": "2020-07-01", "certificate_no": "H1"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				want := hub.Education{HighestLevel: "14", Institution: "哈尔滨工业大学", GraduatedOn: "2016-07-01"}
				if r.Education == nil || !reflect.DeepEqual(*r.Education, want) {
					t.Errorf("education = %+v", r.Education)
				}
				// The provenance names the graduation shown, not the later,
				// lower one (e-3) nor the earlier-arrived one it replaced.
				if got := r.Provenance["education"].EventID; got != "e-1" {
					t.Errorf("education provenance = %s, want e-1", got)
				}
			},
		},
		{
			name: "education provenance is the latest shown event, enrolments included",
			events: []hub.Input{
				ev(t, schemas.EducationGraduated, p, "e-1", "2012-07-01T00:00:00+08:00", map[string]any{"institution": "哈尔滨工业大学", "level": "21", "date": "2012-07-01", "certificate_no": "B1"}),
				ev(t, schemas.EducationEnrolled, p, "e-2", "2014-09-01T00:00:00+08:00", map[string]any{"institution": "哈尔滨工业大学", "level": "14", "region": "230102", "start": "2014-09-01"}),
				ev(t, schemas.EducationGraduated, p, "e-3", "2020-07-01T00:00:00+08:00", map[string]any{"institution": "某职校", "level": "61", "date": "2020-07-01", "certificate_no": "H1"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				if got := r.Provenance["education"].EventID; got != "e-2" {
					t.Errorf("education provenance = %s, want e-2", got)
				}
			},
		},
		{
			// At one instant the hub's order of changes decides (source,
			// then event id): the termination's id sorts last here.
			// TestEndAndStartAtOneInstant covers both orders of the ids.
			name: "an insurance ended at the instant it began is ended when the termination's id sorts last",
			events: []hub.Input{
				ev(t, schemas.InsuranceEnrolled, p, "si-a", "2024-01-01T00:00:00+08:00", map[string]any{"scheme": "employee",
					"insurances": []string{"pension", "medical"}, "region": "230102", "start": "2024-01-01"}),
				ev(t, schemas.InsuranceTerminated, p, "si-b", "2024-01-01T00:00:00+08:00", map[string]any{"insurances": []string{"pension"}, "region": "230102", "end": "2024-01-01"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				si := r.SocialInsurance
				if si == nil || si.Insurances["pension"].Until != "2024-01-01" || si.Insurances["medical"].Until != "" {
					t.Errorf("social insurance = %+v, want pension until 2024-01-01, medical running", si)
				}
			},
		},
		{
			name: "death of a person never registered is unregistered, not death_not_cancelled",
			events: []hub.Input{
				ev(t, schemas.DeathCertified, p, "h-1", "2025-03-01T10:00:00+08:00", map[string]any{"date_of_death": "2025-02-28", "certificate_no": "D1"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				want := []hub.Anomaly{{Kind: hub.AnomalyUnregistered, Since: "2025-03-01"}}
				if r.Status != hub.StatusDeceased || !reflect.DeepEqual(r.Anomalies, want) {
					t.Errorf("status %s anomalies %+v, want deceased and %+v", r.Status, r.Anomalies, want)
				}
			},
		},
		{
			name: "housing, tax and residence permits",
			events: []hub.Input{
				ev(t, schemas.PropertyRegistered, p, "hs-1", "2022-01-01T00:00:00+08:00", map[string]any{"property_id": "P1", "address_code": "230102001001", "acquired": "purchase"}),
				ev(t, schemas.PropertyRegistered, p, "hs-2", "2022-02-01T00:00:00+08:00", map[string]any{"property_id": "P2", "address_code": "230102001001", "acquired": "gift"}),
				ev(t, schemas.PropertyTransferred, p, "hs-3", "2023-01-01T00:00:00+08:00", map[string]any{"property_id": "P1"}),
				ev(t, schemas.RentalRegistered, p, "hs-4", "2021-01-01T00:00:00+08:00", map[string]any{"lease_id": "L1", "address_code": "230103001001", "start": "2021-01-01"}),
				ev(t, schemas.RentalEnded, p, "hs-5", "2021-12-31T00:00:00+08:00", map[string]any{"lease_id": "L1", "end": "2021-12-31"}),
				ev(t, schemas.BusinessRegistered, p, "tx-1", "2022-01-01T00:00:00+08:00", map[string]any{"business_id": emp, "region": "230102"}),
				ev(t, schemas.ResidencePermitIssued, p, "ps-9", "2022-01-01T00:00:00+08:00", map[string]any{"city_code": "330602", "address_code": "330602001004", "basis": "employment", "valid_until": "2027-01-01"}),
				// Issued and revoked before the 330602 permit: a permit issued
				// in another city after it would end it (PermitSpans).
				ev(t, schemas.ResidencePermitIssued, p, "ps-10", "2021-02-01T00:00:00+08:00", map[string]any{"city_code": "430102", "address_code": "430102001001", "basis": "study"}),
				ev(t, schemas.ResidencePermitRevoked, p, "ps-11", "2021-08-01T00:00:00+08:00", map[string]any{"city_code": "430102"}),
			},
			check: func(t *testing.T, r hub.Record, last Outcome) {
				wantH := hub.Housing{Owned: []hub.Property{{PropertyID: "P2", AddressCode: "230102001001", Since: "2022-02-01"}},
					Rentals: []hub.Rental{{LeaseID: "L1", AddressCode: "230103001001", Start: "2021-01-01", End: "2021-12-31"}}}
				if r.Housing == nil || !reflect.DeepEqual(*r.Housing, wantH) {
					t.Errorf("housing = %+v", r.Housing)
				}
				if r.Tax == nil || len(r.Tax.Businesses) != 1 || r.Tax.Businesses[0].Region != "230102" {
					t.Errorf("tax = %+v", r.Tax)
				}
				wantP := []hub.ResidencePermit{{CityCode: "330602", AddressCode: "330602001004", Basis: "employment", Since: "2022-01-01", ValidUntil: "2027-01-01"}}
				if !reflect.DeepEqual(r.ResidencePermits, wantP) {
					t.Errorf("permits = %+v", r.ResidencePermits)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var batches [][]hub.Input
			for _, e := range tc.events {
				batches = append(batches, []hub.Input{e})
			}
			states, outs := run(batches...)
			tc.check(t, states[tc.events[0].Event.Subject].Record(), outs[len(outs)-1])
		})
	}
}

func TestDuplicatesInBatchChangeNothing(t *testing.T) {
	p := id(t, male)
	e := registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01")
	o := Batch(nil, []hub.Input{e, e, e}, now)
	if o.Applied != 1 || o.Duplicates != 2 || o.States[p].Version() != 1 || len(o.History) != 1 {
		t.Errorf("applied %d duplicates %d version %d history %d", o.Applied, o.Duplicates, o.States[p].Version(), len(o.History))
	}
}

func TestBatchDoesNotModifyLoadedStates(t *testing.T) {
	p := id(t, male)
	states, _ := run([]hub.Input{registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01")})
	before, _ := Marshal(states[p])
	Batch(states, []hub.Input{ev(t, schemas.HukouMigrated, p, "ps-2", "2024-05-01T00:00:00+08:00", map[string]any{
		"from_address_code": "230102001001", "to_address_code": "230602013004", "reason": "employment"})}, now)
	after, _ := Marshal(states[p])
	if string(before) != string(after) {
		t.Error("Batch modified a loaded state")
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	events := scenario(t)
	states, _ := run(events)
	for k, s := range states {
		b, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normal(s.Record()), normal(back.Record())) {
			t.Errorf("%v: record changed through Marshal/Unmarshal", k)
		}
	}
}

// scenario is a mixed set of events over a few persons covering every type.
func scenario(t testing.TB) []hub.Input {
	p, f, g := id(t, male), id(t, female), id(t, "23010219850303124")
	emp := uscc(t, "91230102MA1B2C3D4")
	return []hub.Input{
		registered(t, p, "ps-1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
		registered(t, f, "ps-2", "2020-01-01T08:00:00+08:00", "230103001001", "2", "1992-02-02"),
		ev(t, schemas.HukouMigrated, p, "ps-3", "2024-05-01T00:00:00+08:00", map[string]any{"from_address_code": "230102001001", "to_address_code": "230602013004", "reason": "employment"}),
		ev(t, schemas.HukouMigrated, p, "ps-4", "2022-05-01T00:00:00+08:00", map[string]any{"from_address_code": "230102001001", "to_address_code": "230103001001", "reason": "housing", "household_id": "H9"}),
		ev(t, schemas.ResidencePermitIssued, f, "ps-5", "2022-01-01T00:00:00+08:00", map[string]any{"city_code": "330602", "address_code": "330602001004", "basis": "employment"}),
		ev(t, schemas.ResidencePermitRevoked, f, "ps-6", "2022-01-01T00:00:00+08:00", map[string]any{"city_code": "330602"}),
		ev(t, schemas.IdentityCorrected, f, "ps-7", "2023-01-01T00:00:00+08:00", map[string]any{"name": "李娜"}),
		ev(t, schemas.DeathCertified, p, "h-1", "2025-03-01T10:00:00+08:00", map[string]any{"date_of_death": "2025-02-28", "certificate_no": "D1"}),
		ev(t, schemas.HukouCancelled, p, "ps-8", "2025-03-10T10:00:00+08:00", map[string]any{"reason": "death"}),
		ev(t, schemas.ContractStarted, p, "emp-1", "2023-03-01T00:00:00+08:00", map[string]any{"contract_id": "C1", "employer_id": emp, "employer_name": "龙江机械", "work_region": "230102", "start": "2023-03-01"}),
		ev(t, schemas.ContractEnded, p, "emp-2", "2024-12-31T00:00:00+08:00", map[string]any{"contract_id": "C1", "end": "2024-12-31"}),
		ev(t, schemas.InsuranceEnrolled, f, "si-1", "2024-01-01T00:00:00+08:00", map[string]any{"scheme": "employee", "insurances": []string{"pension", "medical"}, "region": "230102", "start": "2024-01-01"}),
		ev(t, schemas.ContributionRecorded, f, "si-2", "2024-01-31T00:00:00+08:00", map[string]any{"month": "2024-01", "region": "230102", "insurances": []string{"pension", "medical"}}),
		ev(t, schemas.ContributionRecorded, f, "si-3", "2024-02-29T00:00:00+08:00", map[string]any{"month": "2024-02", "region": "230102", "insurances": []string{"pension"}}),
		ev(t, schemas.InsuranceTerminated, f, "si-4", "2024-06-01T00:00:00+08:00", map[string]any{"insurances": []string{"medical"}, "region": "230102", "end": "2024-05-31"}),
		ev(t, schemas.InsuranceTransferred, f, "si-5", "2024-07-01T00:00:00+08:00", map[string]any{"from_region": "230102", "to_region": "230602"}),
		ev(t, schemas.EducationEnrolled, f, "ed-1", "2010-09-01T00:00:00+08:00", map[string]any{"institution": "哈尔滨工业大学", "level": "21", "region": "230103", "start": "2010-09-01"}),
		ev(t, schemas.EducationGraduated, f, "ed-2", "2014-07-01T00:00:00+08:00", map[string]any{"institution": "哈尔滨工业大学", "level": "21", "date": "2014-07-01", "certificate_no": "B1"}),
		ev(t, schemas.PropertyRegistered, f, "hs-1", "2022-01-01T00:00:00+08:00", map[string]any{"property_id": "P1", "address_code": "230102001001", "acquired": "purchase"}),
		ev(t, schemas.PropertyTransferred, f, "hs-2", "2023-01-01T00:00:00+08:00", map[string]any{"property_id": "P1"}),
		ev(t, schemas.RentalRegistered, p, "hs-3", "2021-01-01T00:00:00+08:00", map[string]any{"lease_id": "L1", "address_code": "230103001001", "start": "2021-01-01"}),
		ev(t, schemas.RentalEnded, p, "hs-4", "2021-12-31T00:00:00+08:00", map[string]any{"lease_id": "L1", "end": "2021-12-31"}),
		ev(t, schemas.BusinessRegistered, f, "tx-1", "2022-01-01T00:00:00+08:00", map[string]any{"business_id": emp, "region": "230102"}),
		ev(t, schemas.BusinessDeregistered, f, "tx-2", "2022-01-01T00:00:00+08:00", map[string]any{"business_id": emp}),
		ev(t, schemas.MarriageRegistered, p, "m-1", "2021-05-20T00:00:00+08:00", map[string]any{"spouse_id": string(f)}),
		ev(t, schemas.MarriageRegistered, f, "m-2", "2021-05-20T00:00:00+08:00", map[string]any{"spouse_id": string(p)}),
		ev(t, schemas.MarriageDivorced, f, "m-3", "2023-05-20T00:00:00+08:00", map[string]any{"spouse_id": string(p)}),
		// p's former marriage, and a divorce naming that former spouse
		// registered during the marriage to f, which it leaves.
		ev(t, schemas.MarriageRegistered, p, "m-4", "2015-01-01T00:00:00+08:00", map[string]any{"spouse_id": string(g)}),
		ev(t, schemas.MarriageDivorced, p, "m-5", "2022-01-01T00:00:00+08:00", map[string]any{"spouse_id": string(g)}),
	}
}

// normal drops what depends on arrival rather than content.
func normal(r hub.Record) hub.Record {
	r.UpdatedAt = time.Time{}
	return r
}

func TestScenarioCoversCatalogue(t *testing.T) {
	seen := map[schemas.Type]bool{}
	for _, e := range scenario(t) {
		seen[e.Event.Type] = true
	}
	for _, typ := range schemas.Types() {
		if !seen[typ] {
			t.Errorf("scenario lacks %s", typ)
		}
	}
}

// TestOrderIndependence: the same events shuffled, split into batches
// differently and partly duplicated give the same golden records.
func TestOrderIndependence(t *testing.T) {
	events := scenario(t)
	want, _ := run(events)
	for seed := uint64(0); seed < 200; seed++ {
		got := shuffledRun(events, seed)
		compareStates(t, fmt.Sprintf("seed %d", seed), want, got)
	}
}

func shuffledRun(events []hub.Input, seed uint64) map[citizenid.ID]*State {
	r := rand.New(rand.NewPCG(seed, 7))
	shuffled := append([]hub.Input(nil), events...)
	for i := 0; i < len(events)/3; i++ {
		shuffled = append(shuffled, events[r.IntN(len(events))])
	}
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	var batches [][]hub.Input
	for len(shuffled) > 0 {
		n := 1 + r.IntN(len(shuffled))
		batches = append(batches, shuffled[:n])
		shuffled = shuffled[n:]
	}
	got, _ := run(batches...)
	return got
}

func compareStates(t *testing.T, label string, want, got map[citizenid.ID]*State) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d persons, want %d", label, len(got), len(want))
	}
	for k, w := range want {
		g := got[k]
		if g == nil {
			t.Fatalf("%s: person %v missing", label, k)
		}
		if !reflect.DeepEqual(normal(g.Record()), normal(w.Record())) {
			gb, _ := json.Marshal(normal(g.Record()))
			wb, _ := json.Marshal(normal(w.Record()))
			t.Fatalf("%s: person %v\n got %s\nwant %s", label, k, gb, wb)
		}
	}
}

func FuzzOrderIndependence(f *testing.F) {
	f.Add(uint64(1))
	f.Add(uint64(42))
	events := scenario(f)
	want, _ := run(events)
	f.Fuzz(func(t *testing.T, seed uint64) {
		compareStates(t, fmt.Sprintf("seed %d", seed), want, shuffledRun(events, seed))
	})
}

func BenchmarkBatch(b *testing.B) {
	events := scenario(b)
	b.ReportAllocs()
	for b.Loop() {
		Batch(nil, events, now)
	}
	b.ReportMetric(float64(len(events)*b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestBatchOrderIndependentOfCores: the history and outbox rows of a batch
// come out in the same order whether persons are merged in parallel or
// not, so that stores number outbox entries the same on any machine.
func TestBatchOrderIndependentOfCores(t *testing.T) {
	var in []hub.Input
	for k := 0; k < 40; k++ {
		for _, e := range scenario(t) {
			e.Event.ID = fmt.Sprintf("%s-%d", e.Event.ID, k)
			in = append(in, e)
		}
	}
	ptrs := make([]*hub.Input, len(in))
	for i := range in {
		ptrs[i] = &in[i]
	}
	seq := batchShard(nil, ptrs, now)
	for _, shards := range []int{2, 3, 7} {
		par := batchParallel(nil, ptrs, now, shards)
		if len(par.Outbox) != len(seq.Outbox) || len(par.History) != len(seq.History) {
			t.Fatalf("%d shards: %d/%d rows, want %d/%d", shards, len(par.History), len(par.Outbox), len(seq.History), len(seq.Outbox))
		}
		for i := range seq.Outbox {
			if par.Outbox[i].MsgID != seq.Outbox[i].MsgID {
				t.Fatalf("%d shards: outbox[%d] = %s, want %s", shards, i, par.Outbox[i].MsgID, seq.Outbox[i].MsgID)
			}
		}
		for i := range seq.History {
			if par.History[i].Change.EventID != seq.History[i].Change.EventID {
				t.Fatalf("%d shards: history[%d] = %s, want %s", shards, i, par.History[i].Change.EventID, seq.History[i].Change.EventID)
			}
		}
	}
}
