package storetest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/codes"
	"github.com/pophub/pophub/schemas/region"
)

// Event builds one event as a department would publish it: the data (a
// catalogue struct, a map, or raw JSON) is encoded into a CloudEvent, and
// the CloudEvent is passed through schemas.Decode, so that the input is
// exactly what the ingest path hands a store (Payload set, Raw the record
// value). The source is the one that owns typ. It fails the test if the
// event does not validate.
func Event(t testing.TB, typ schemas.Type, subject citizenid.ID, id string, at time.Time, data any) hub.Input {
	t.Helper()
	in, err := NewEvent(typ, subject, id, at, data)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// NewEvent is Event for code that has no testing.TB.
func NewEvent(typ schemas.Type, subject citizenid.ID, id string, at time.Time, data any) (hub.Input, error) {
	var raw json.RawMessage
	switch d := data.(type) {
	case json.RawMessage:
		raw = d
	case []byte:
		raw = d
	default:
		b, err := json.Marshal(data)
		if err != nil {
			return hub.Input{}, fmt.Errorf("encoding data of %s %s: %w", typ, id, err)
		}
		raw = b
	}
	src := schemas.SourceOf(typ)
	value, err := schemas.Encode(schemas.Event{ID: id, Source: src, Type: typ, Subject: subject, Time: at, Data: raw})
	if err != nil {
		return hub.Input{}, fmt.Errorf("encoding event %s: %w", id, err)
	}
	ev, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(src), Key: []byte(subject), Value: value})
	if err != nil {
		return hub.Input{}, fmt.Errorf("event %s of type %s does not decode: %w", id, typ, err)
	}
	return hub.Input{Event: ev, Raw: value}, nil
}

// idCounties are the issuing counties ValidID cycles through.
var idCounties = []string{"230102", "110101", "310104", "440106", "510107", "430102", "150402"}

// idDays is the span of birth dates ValidID uses: 1950-01-01 onwards.
const idDays = 20000

// ValidID returns a valid 18-digit citizen ID (GB 11643 check character,
// real province, real birth date in 1950–2004) that is a function of n:
// distinct n below 140,000,000 give distinct IDs.
func ValidID(n int) citizenid.ID {
	if n < 0 {
		n = -n
	}
	county := idCounties[n%len(idCounties)]
	n /= len(idCounties)
	birth := time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, n%idDays)
	seq := (n / idDays) % 1000
	first17 := county + birth.Format("20060102") + fmt.Sprintf("%03d", seq)
	return citizenid.ID(first17 + string(citizenid.CheckChar(first17)))
}

// Population returns the decoded events of a synthetic population of
// persons, in the order of their effective times (as departments would
// publish them). Every person gets a life of about a dozen events from the
// eight sources; every 10th person gets at least one event of every
// catalogue type, so any population of one or more persons covers all 23.
// Some persons are never registered by public security, some have an ID
// that disagrees with their registered birth date until it is corrected,
// some die with or without their hukou cancelled, and pairs of persons
// marry (one event each) and sometimes divorce. The same (persons, seed)
// always gives the same events; different seeds give different persons and
// event ids.
func Population(t testing.TB, persons int, seed int64) []hub.Input {
	t.Helper()
	in, err := PopulationEvents(persons, seed)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// PopulationEvents is Population for code that has no testing.TB.
//
// Raw is left empty, so that a test may change an event without leaving a
// stale record value behind; the conformance suite applies the same events
// with Raw set, as the ingest path does.
func PopulationEvents(persons int, seed int64) ([]hub.Input, error) {
	in, err := populationRaw(persons, seed)
	for i := range in {
		in[i].Raw = nil
	}
	return in, err
}

// population is Population with Raw set.
func population(t testing.TB, persons int, seed int64) []hub.Input {
	t.Helper()
	in, err := populationRaw(persons, seed)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func populationRaw(persons int, seed int64) ([]hub.Input, error) {
	g := &generator{seed: seed}
	ids := make([]citizenid.ID, persons)
	for i := range ids {
		ids[i] = ValidID(int(seed%139)*1_000_003 + i)
	}
	for i := range ids {
		g.person(i, ids)
	}
	sort.SliceStable(g.evs, func(i, j int) bool { return g.evs[i].at.Before(g.evs[j].at) })
	out := make([]hub.Input, len(g.evs))
	for i, e := range g.evs {
		in, err := NewEvent(e.typ, e.subject, e.id, e.at, e.data)
		if err != nil {
			return nil, err
		}
		out[i] = in
	}
	return out, nil
}

type genEvent struct {
	typ     schemas.Type
	subject citizenid.ID
	id      string
	at      time.Time
	data    any
}

type generator struct {
	seed int64
	n    int
	evs  []genEvent
}

var (
	cst        = time.FixedZone("CST", 8*3600)
	genStart   = time.Date(2016, 1, 1, 0, 0, 0, 0, cst)
	genDays    = 365 * 9 // events fall in 2016–2024
	surnames   = []string{"王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙"}
	givenNames = []string{"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明"}
	counties   = []string{"230102", "230103", "230104", "230302", "110105", "430102", "220202", "230110", "330602", "150402"}
	eduLevels  = []string{"21", "31", "61", "14", "11", "41"}
)

func (g *generator) add(typ schemas.Type, subject citizenid.ID, at time.Time, data any) {
	g.n++
	id := fmt.Sprintf("%s-%d-%d", abbrev[schemas.SourceOf(typ)], g.seed, g.n)
	g.evs = append(g.evs, genEvent{typ: typ, subject: subject, id: id, at: at, data: data})
}

var abbrev = map[schemas.Source]string{
	schemas.PublicSecurity: "ps", schemas.Health: "hl", schemas.Employment: "emp", schemas.SocialInsurance: "si",
	schemas.Education: "edu", schemas.Housing: "hs", schemas.Tax: "tax", schemas.Marriage: "mar",
}

func date(t time.Time) string { return t.Format(time.DateOnly) }

// address draws a real village or residents' committee of one of the
// counties, so that half are urban and half rural.
func address(r *rand.Rand) string {
	byClass := countyAddresses()[counties[r.IntN(len(counties))]]
	list := byClass[r.IntN(2)]
	return list[r.IntN(len(list))]
}

// countyAddresses lists, per county, its urban and its rural 12-digit
// codes in the region table.
var countyAddresses = sync.OnceValue(func() map[string][2][]string {
	out := map[string][2][]string{}
	for _, c := range counties {
		var both [2][]string
		for _, t := range region.Children(c) {
			for _, v := range region.Children(t.Code) {
				if v.UrbanRural == "urban" {
					both[0] = append(both[0], v.Code)
				} else {
					both[1] = append(both[1], v.Code)
				}
			}
		}
		if len(both[0]) == 0 || len(both[1]) == 0 {
			panic("storetest: county " + c + " lacks urban or rural addresses in the region table")
		}
		out[c] = both
	}
	return out
})

// uscc returns a unified social credit code with a valid check character.
func uscc(county string, n int) string {
	first17 := "91" + county + fmt.Sprintf("%09d", n%1_000_000_000)
	c, _ := codes.USCCCheckChar(first17)
	return first17 + string(c)
}

// person generates the life of person i; ids lists the whole population
// (for spouses).
func (g *generator) person(i int, ids []citizenid.ID) {
	r := rand.New(rand.NewPCG(uint64(g.seed), uint64(i)))
	id := ids[i]
	all := i%10 == 0 // this person gets every type
	day := func(lo, hi int) time.Time {
		d := lo + r.IntN(max(hi-lo, 1))
		return genStart.AddDate(0, 0, d).Add(time.Duration(8*3600+r.IntN(9*3600)) * time.Second)
	}
	name := surnames[r.IntN(len(surnames))] + givenNames[r.IntN(len(givenNames))]
	home := address(r)

	// Public security: registration (or none), corrections, migration,
	// permits.
	registered := all || i%13 != 5
	if registered {
		birth := id.BirthDate().Format(time.DateOnly)
		mismatch := all || i%17 == 4
		if mismatch {
			birth = id.BirthDate().AddDate(0, 0, 3).Format(time.DateOnly)
		}
		at := time.Date(2014, 1, 1, 9, 0, 0, 0, cst).Add(time.Duration(r.IntN(700*24)) * time.Hour)
		g.add(schemas.HukouRegistered, id, at, schemas.HukouRegisteredData{
			Name: name, Gender: id.Gender(), BirthDate: birth, Ethnicity: []string{"01", "01", "01", "03", "10", "11"}[r.IntN(6)],
			AddressCode: home, HouseholdID: "HH" + strconv.Itoa(i*7+3), Relation: "01",
			Reason: []string{"birth", "settlement", "restored"}[r.IntN(3)],
		})
		if mismatch {
			g.add(schemas.IdentityCorrected, id, day(100, 2000), schemas.IdentityCorrectedData{BirthDate: id.BirthDate().Format(time.DateOnly)})
		}
		if all || r.IntN(8) == 0 {
			g.add(schemas.IdentityCorrected, id, day(0, genDays), schemas.IdentityCorrectedData{Name: surnames[r.IntN(len(surnames))] + "小" + givenNames[r.IntN(len(givenNames))]})
		}
		if all || r.IntN(3) == 0 {
			to := address(r)
			g.add(schemas.HukouMigrated, id, day(0, genDays), schemas.HukouMigratedData{
				FromAddressCode: home, ToAddressCode: to, Reason: schemas.MigrationReasons[r.IntN(len(schemas.MigrationReasons))],
				HouseholdID: "HH" + strconv.Itoa(i*7+5),
			})
		}
	}
	if all || r.IntN(5) == 0 {
		county := counties[r.IntN(len(counties))]
		city := county[:4] + "00"
		at := day(0, genDays-400)
		g.add(schemas.ResidencePermitIssued, id, at, schemas.ResidencePermitIssuedData{
			CityCode: city, AddressCode: countyAddresses()[county][0][0], Basis: schemas.PermitBases[r.IntN(3)],
			ValidUntil: date(at.AddDate(3, 0, 0)),
		})
		if all || r.IntN(2) == 0 {
			g.add(schemas.ResidencePermitRevoked, id, at.AddDate(0, 0, 30+r.IntN(300)), schemas.ResidencePermitRevokedData{CityCode: city})
		}
	}

	// Employment and social insurance.
	contracts := r.IntN(3)
	if all {
		contracts = 2
	}
	for c := 0; c < contracts; c++ {
		county := counties[r.IntN(len(counties))]
		start := day(c*1500, (c+1)*1500-200)
		d := schemas.ContractStartedData{ContractID: fmt.Sprintf("C%d-%d", i, c), EmployerID: uscc(county, i*3+c),
			EmployerName: []string{"龙江机械厂", "冰城软件有限公司", "松花江物流", "北方医药"}[r.IntN(4)],
			WorkRegion:   county, Start: date(start)}
		g.add(schemas.ContractStarted, id, start, d)
		if all || r.IntN(2) == 0 {
			end := start.AddDate(0, 0, 100+r.IntN(400))
			g.add(schemas.ContractEnded, id, end, schemas.ContractEndedData{ContractID: d.ContractID, End: date(end)})
		}
	}
	if all || contracts > 0 || r.IntN(3) == 0 {
		region := counties[r.IntN(len(counties))]
		start := day(0, 900)
		ins := []string{"pension", "medical"}
		if all || r.IntN(2) == 0 {
			ins = append(ins, "unemployment", "injury")
		}
		g.add(schemas.InsuranceEnrolled, id, start, schemas.InsuranceEnrolledData{
			Scheme: schemas.Schemes[r.IntN(2)], Insurances: ins, Region: region, Start: date(start)})
		months := 3 + r.IntN(10)
		for m := 0; m < months; m++ {
			month := start.AddDate(0, m+r.IntN(2), 0) // sometimes the same month twice
			g.add(schemas.ContributionRecorded, id, month.AddDate(0, 1, 0), schemas.ContributionRecordedData{
				Month: month.Format("2006-01"), Region: region, Insurances: ins[:1+r.IntN(len(ins))]})
		}
		if all || r.IntN(4) == 0 {
			to := counties[r.IntN(len(counties))]
			g.add(schemas.InsuranceTransferred, id, start.AddDate(1, 0, 0), schemas.InsuranceTransferredData{FromRegion: region, ToRegion: to})
		}
		if all || r.IntN(4) == 0 {
			end := start.AddDate(2, r.IntN(12), 0)
			g.add(schemas.InsuranceTerminated, id, end, schemas.InsuranceTerminatedData{Insurances: ins[len(ins)-1:], Region: region, End: date(end)})
		}
	}

	// Education.
	if all || r.IntN(2) == 0 {
		lvl := eduLevels[r.IntN(len(eduLevels))]
		inst := []string{"哈尔滨工业大学", "黑龙江大学", "哈尔滨第三中学", "东北林业大学"}[r.IntN(4)]
		start := day(0, 1500)
		g.add(schemas.EducationEnrolled, id, start, schemas.EducationEnrolledData{Institution: inst, Level: lvl, Region: "230102", Start: date(start)})
		if all || r.IntN(3) != 0 {
			grad := start.AddDate(3, 6, 0)
			g.add(schemas.EducationGraduated, id, grad, schemas.EducationGraduatedData{Institution: inst, Level: lvl, Date: date(grad), CertificateNo: fmt.Sprintf("G%d", i)})
		}
	}

	// Housing.
	if all || r.IntN(5) < 2 {
		at := day(0, genDays-800)
		area := float64(40 + r.IntN(120))
		pid := fmt.Sprintf("P%d", i)
		g.add(schemas.PropertyRegistered, id, at, schemas.PropertyRegisteredData{PropertyID: pid, AddressCode: address(r),
			Acquired: schemas.AcquiredKinds[r.IntN(len(schemas.AcquiredKinds))], AreaM2: &area})
		if all || r.IntN(3) == 0 {
			g.add(schemas.PropertyTransferred, id, at.AddDate(1, r.IntN(12), 0), schemas.PropertyTransferredData{PropertyID: pid})
		}
	}
	if all || r.IntN(5) < 2 {
		start := day(0, genDays-800)
		lid := fmt.Sprintf("L%d", i)
		g.add(schemas.RentalRegistered, id, start, schemas.RentalRegisteredData{LeaseID: lid, AddressCode: address(r), Start: date(start), End: date(start.AddDate(1, 0, 0))})
		if all || r.IntN(2) == 0 {
			end := start.AddDate(0, 6+r.IntN(6), 0)
			g.add(schemas.RentalEnded, id, end, schemas.RentalEndedData{LeaseID: lid, End: date(end)})
		}
	}

	// Tax.
	if all || r.IntN(7) == 0 {
		county := counties[r.IntN(len(counties))]
		bid := uscc(county, 500_000_000+i)
		at := day(0, genDays-500)
		g.add(schemas.BusinessRegistered, id, at, schemas.BusinessRegisteredData{BusinessID: bid, Region: county, Name: name + "商店"})
		if all || r.IntN(2) == 0 {
			g.add(schemas.BusinessDeregistered, id, at.AddDate(1, 0, r.IntN(200)), schemas.BusinessDeregisteredData{BusinessID: bid})
		}
	}

	// Marriage: even persons marry the next one, one event each.
	if i%2 == 0 && i+1 < len(ids) && (all || r.IntN(5) < 2) {
		spouse := ids[i+1]
		at := day(0, genDays-700)
		g.add(schemas.MarriageRegistered, id, at, schemas.MarriageRegisteredData{SpouseID: spouse})
		g.add(schemas.MarriageRegistered, spouse, at, schemas.MarriageRegisteredData{SpouseID: id})
		if all || r.IntN(4) == 0 {
			later := at.AddDate(1, r.IntN(12), 0)
			g.add(schemas.MarriageDivorced, id, later, schemas.MarriageDivorcedData{SpouseID: spouse})
			g.add(schemas.MarriageDivorced, spouse, later, schemas.MarriageDivorcedData{SpouseID: id})
		}
	}

	// Death, cancellation.
	switch {
	case all || i%9 == 2:
		at := day(genDays-300, genDays)
		// A certificate is often issued days after the death, and the
		// counts end on the certified date of death: half the deaths
		// are certified 1–6 days late (no random draw, so the rest of
		// the population stays as it was).
		died := at
		if i%2 == 0 {
			died = at.AddDate(0, 0, -(1 + i%6))
		}
		g.add(schemas.DeathCertified, id, at, schemas.DeathCertifiedData{DateOfDeath: date(died), CertificateNo: fmt.Sprintf("D%d", i), PlaceCode: home[:6]})
		if all || r.IntN(3) != 0 { // the rest stay "death not cancelled"
			g.add(schemas.HukouCancelled, id, at.AddDate(0, 0, 10+r.IntN(40)), schemas.HukouCancelledData{Reason: "death"})
		}
	case i%19 == 7:
		g.add(schemas.HukouCancelled, id, day(genDays-300, genDays), schemas.HukouCancelledData{Reason: []string{"emigration", "military", "other"}[r.IntN(3)]})
	}
}
