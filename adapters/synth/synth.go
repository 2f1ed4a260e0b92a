// Package synth generates a synthetic population and the department events
// of its life courses, for the demo, benchmarks and tests. It is
// deterministic for a seed, and person i is the same person whatever the
// population size, so a larger run extends a smaller one. Events stream out
// without the population being held in memory.
package synth

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/codes"
)

// Config configures a population.
type Config struct {
	Persons int
	// Months of life events, starting at Start (default 24).
	Months int
	Seed   int64
	// Start of the event window (default 2024-01-01 in China Standard Time).
	Start time.Time
	// LateRate is the fraction of events that arrive late, after other
	// persons' events and after their own later events (default 0.05).
	LateRate float64
	// DuplicateRate is the fraction of events sent a second time with the
	// same id (default 0).
	DuplicateRate float64

	windowEnd time.Time
}

var china = time.FixedZone("CST", 8*3600)

func (c *Config) setDefaults() {
	if c.Months <= 0 {
		c.Months = 24
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2024, 1, 1, 0, 0, 0, 0, china)
	}
	if c.LateRate == 0 {
		c.LateRate = 0.05
	}
	if c.LateRate < 0 {
		c.LateRate = 0
	}
	// No event may take effect in the future: a window reaching past today
	// ends today.
	c.windowEnd = c.Start.AddDate(0, c.Months, 0)
	if today := time.Now().In(china).Truncate(24 * time.Hour); c.windowEnd.After(today) {
		c.windowEnd = today
	}
}

// counties are real county-level division codes of the seeds' provinces.
var counties = []string{
	"230102", "230103", "230104", "230108", "230109", "230110", "230111", "230112", "230113", // 哈尔滨
	"230202", "230203", // 齐齐哈尔
	"230602", "230603", "230604", // 大庆
	"231002", "230803", // 牡丹江, 佳木斯
	"220202", "220203", "220204", // 吉林市
	"430102", "430103", "430104", // 长沙
	"330602", // 绍兴
	"150402", // 赤峰
}

var surnames = []string{"王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林", "何", "郭", "马", "罗"}
var given = []string{"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "霞", "平", "刚", "桂英", "建华", "晓东", "海燕"}

// Stats counts what a run generated.
type Stats struct {
	Persons int
	Events  int
	ByType  map[schemas.Type]int
}

// Generate streams the population's events to emit, in arrival order.
func Generate(ctx context.Context, cfg Config, emit func(schemas.Event) error) error {
	_, err := GenerateStats(ctx, cfg, emit)
	return err
}

// GenerateStats is Generate, also returning counts.
func GenerateStats(ctx context.Context, cfg Config, emit func(schemas.Event) error) (Stats, error) {
	cfg.setDefaults()
	st := Stats{ByType: map[schemas.Type]int{}}
	out := func(ev schemas.Event) error {
		st.Events++
		st.ByType[ev.Type]++
		return emit(ev)
	}
	var late []pending
	arrival := 0
	for pair := 0; pair*2 < cfg.Persons; pair++ {
		if pair%256 == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
		}
		g := newGen(cfg, pair)
		evs := g.pair()
		st.Persons += len(g.people)
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
		for _, ev := range evs {
			if g.r.Float64() < cfg.LateRate {
				late = append(late, pending{due: arrival + 50 + g.r.IntN(400), ev: ev})
			} else if err := out(ev); err != nil {
				return st, err
			}
			if cfg.DuplicateRate > 0 && g.r.Float64() < cfg.DuplicateRate {
				late = append(late, pending{due: arrival + 1 + g.r.IntN(200), ev: ev})
			}
			arrival++
		}
		// Release late events that are due, in due order.
		sort.SliceStable(late, func(i, j int) bool { return late[i].due < late[j].due })
		n := 0
		for n < len(late) && late[n].due <= arrival {
			if err := out(late[n].ev); err != nil {
				return st, err
			}
			n++
		}
		late = late[n:]
	}
	for _, p := range late {
		if err := out(p.ev); err != nil {
			return st, err
		}
	}
	return st, nil
}

type pending struct {
	due int
	ev  schemas.Event
}

// person is one generated person.
type person struct {
	n      int
	id     citizenid.ID
	birth  time.Time
	gender string
	county string
	addr   string
	name   string
}

type gen struct {
	cfg    Config
	r      *rand.Rand
	people []*person
	seq    int
	evs    []schemas.Event
	end    time.Time
}

func newGen(cfg Config, pair int) *gen {
	r := rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(pair)))
	g := &gen{cfg: cfg, r: r, end: cfg.windowEnd}
	for i := 0; i < 2 && pair*2+i < cfg.Persons; i++ {
		g.people = append(g.people, g.newPerson(pair*2+i))
	}
	return g
}

// newPerson derives a unique, valid citizen ID from the person's index n:
// the birth date is 1950-01-01 plus (n × 7919 mod 27000) days, a bijection
// for n < 27000, and the sequence number's first two digits count the
// rounds of 27,000 and its last digit carries the gender (odd for an odd
// index, male), so IDs never collide below 27 million persons.
func (g *gen) newPerson(n int) *person {
	const span = 27000
	base := time.Date(1950, 1, 1, 0, 0, 0, 0, china)
	birth := base.AddDate(0, 0, n*7919%span)
	round := n / span
	county := counties[g.r.IntN(len(counties))]
	first17 := fmt.Sprintf("%s%s%02d%d", county, birth.Format("20060102"), round%100, 2*((round/100)%5)+n%2)
	id := citizenid.ID(first17 + string(citizenid.CheckChar(first17)))
	return &person{n: n, id: id, birth: birth, gender: id.Gender(), county: county, addr: g.address(county),
		name: surnames[g.r.IntN(len(surnames))] + given[g.r.IntN(len(given))]}
}

func (g *gen) address(county string) string {
	return fmt.Sprintf("%s%03d%03d", county, 1+g.r.IntN(12), 1+g.r.IntN(20))
}

func (g *gen) uscc(county string, k int) string {
	first := fmt.Sprintf("91%s%09d", county, k)
	c, _ := codes.USCCCheckChar(first)
	return first + string(c)
}

// at is a time within the window, at least from.
func (g *gen) at(from time.Time) time.Time {
	if from.Before(g.cfg.Start) {
		from = g.cfg.Start
	}
	span := g.end.Sub(from)
	if span <= 0 {
		return from
	}
	return from.Add(time.Duration(g.r.Int64N(int64(span)))).Truncate(time.Hour)
}

func day(t time.Time) string { return t.In(china).Format(time.DateOnly) }

func (g *gen) add(p *person, typ schemas.Type, t time.Time, data any) {
	g.seq++
	b, _ := json.Marshal(data) // plain structs of strings: cannot fail
	src := schemas.SourceOf(typ)
	ev := schemas.Event{SpecVersion: schemas.SpecVersion, ID: fmt.Sprintf("%s-%d-%d-%d", src, g.cfg.Seed, p.n, g.seq),
		Source: src, Type: typ, Subject: p.id, Time: t.In(china), DataContentType: "application/json", Data: b}
	ev.Payload = schemas.NewData(typ)
	_ = json.Unmarshal(b, ev.Payload)
	g.evs = append(g.evs, ev)
}

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func (g *gen) age(p *person, t time.Time) int { return int(t.Sub(p.birth).Hours() / 24 / 365.25) }

// pair generates the life courses of two persons, who may marry.
func (g *gen) pair() []schemas.Event {
	for _, p := range g.people {
		g.life(p)
	}
	if len(g.people) == 2 {
		a, b := g.people[0], g.people[1]
		if g.age(a, g.cfg.Start) >= 22 && g.age(b, g.cfg.Start) >= 22 && g.chance(0.45) {
			var wed time.Time
			if g.chance(0.5) {
				wed = g.cfg.Start.AddDate(0, 0, -1-g.r.IntN(3000))
			} else {
				wed = g.at(g.cfg.Start)
			}
			g.add(a, schemas.MarriageRegistered, wed, schemas.MarriageRegisteredData{SpouseID: b.id})
			g.add(b, schemas.MarriageRegistered, wed, schemas.MarriageRegisteredData{SpouseID: a.id})
			if g.chance(0.12) {
				div := g.at(wed.AddDate(0, 1, 0))
				g.add(a, schemas.MarriageDivorced, div, schemas.MarriageDivorcedData{SpouseID: b.id})
				g.add(b, schemas.MarriageDivorced, div, schemas.MarriageDivorcedData{SpouseID: a.id})
			}
		}
	}
	return g.evs
}

func (g *gen) life(p *person) {
	regAt := p.birth.Add(10 * time.Hour)
	reason := "birth"
	if g.chance(0.15) {
		regAt, reason = p.birth.AddDate(18+g.r.IntN(20), 0, 0), "settlement"
		if regAt.After(g.cfg.Start) {
			regAt = g.at(g.cfg.Start)
		}
	}
	if !g.chance(0.01) { // a few people were never registered (people without hukou)
		g.add(p, schemas.HukouRegistered, regAt, schemas.HukouRegisteredData{Name: p.name, Gender: p.gender,
			BirthDate: day(p.birth), Ethnicity: []string{"01", "01", "01", "01", "02", "03", "10", "11"}[g.r.IntN(8)],
			AddressCode: p.addr, HouseholdID: fmt.Sprintf("H%s%06d", p.county, p.n/3), Reason: reason})
	}
	age := g.age(p, g.cfg.Start)
	if g.chance(0.01) {
		g.add(p, schemas.IdentityCorrected, g.at(regAt), schemas.IdentityCorrectedData{Name: surnames[g.r.IntN(len(surnames))] + given[g.r.IntN(len(given))]})
	}

	// Education.
	if age < 24 {
		start := p.birth.AddDate(18, 8, 0)
		level := []string{"21", "31", "41", "61"}[g.r.IntN(4)]
		if start.Before(g.end) {
			g.add(p, schemas.EducationEnrolled, start.Add(9*time.Hour), schemas.EducationEnrolledData{Institution: "第" + fmt.Sprint(1+g.r.IntN(30)) + "中学",
				Level: level, Region: p.county, Start: day(start)})
			if grad := start.AddDate(3, 10, 0); grad.Before(g.end) && g.chance(0.8) {
				g.add(p, schemas.EducationGraduated, grad, schemas.EducationGraduatedData{Institution: "第" + fmt.Sprint(1+g.r.IntN(30)) + "中学",
					Level: level, Date: day(grad), CertificateNo: fmt.Sprintf("G%d%06d", p.n%97, p.n)})
			}
		}
	} else if age < 40 && g.chance(0.3) {
		grad := p.birth.AddDate(22+g.r.IntN(4), 6, 0)
		g.add(p, schemas.EducationGraduated, grad, schemas.EducationGraduatedData{Institution: "黑龙江大学",
			Level: []string{"21", "31", "14"}[g.r.IntN(3)], Date: day(grad), CertificateNo: fmt.Sprintf("U%08d", p.n)})
	}

	// Work and social insurance.
	region := p.county
	if age >= 18 && age < 60 && g.chance(0.65) {
		start := g.cfg.Start.AddDate(0, -g.r.IntN(36), 0)
		if g.chance(0.3) {
			start = g.at(g.cfg.Start)
		}
		start = time.Date(start.Year(), start.Month(), 1, 9, 0, 0, 0, china)
		employer := g.r.IntN(200)
		cid := fmt.Sprintf("C%d-%d", p.n, 1)
		g.add(p, schemas.ContractStarted, start, schemas.ContractStartedData{ContractID: cid, EmployerID: g.uscc(region, employer),
			EmployerName: fmt.Sprintf("龙江%d号公司", employer), WorkRegion: region, Start: day(start)})
		ins := []string{"pension", "medical", "unemployment", "injury", "maternity"}[:2+g.r.IntN(4)]
		g.add(p, schemas.InsuranceEnrolled, start.Add(time.Hour), schemas.InsuranceEnrolledData{Scheme: "employee",
			Insurances: ins, Region: region, Start: day(start)})
		stop := g.end
		if g.chance(0.15) {
			stop = g.at(start.AddDate(0, 2, 0))
			stop = time.Date(stop.Year(), stop.Month(), 1, 17, 0, 0, 0, china)
			g.add(p, schemas.ContractEnded, stop, schemas.ContractEndedData{ContractID: cid, End: day(stop)})
			g.add(p, schemas.InsuranceTerminated, stop.Add(time.Hour), schemas.InsuranceTerminatedData{Insurances: ins[1:],
				Region: region, End: day(stop)})
		}
		for m := later(start, g.cfg.Start); m.Before(stop); m = m.AddDate(0, 1, 0) {
			paid := time.Date(m.Year(), m.Month(), 25, 12, 0, 0, 0, china)
			if paid.After(g.end) {
				break
			}
			g.add(p, schemas.ContributionRecorded, paid, schemas.ContributionRecordedData{Month: paid.Format("2006-01"),
				Region: region, Insurances: ins})
		}
	}

	// Housing.
	if age >= 20 && g.chance(0.25) {
		start := g.at(g.cfg.Start)
		start = time.Date(start.Year(), start.Month(), start.Day(), 10, 0, 0, 0, china)
		lease := fmt.Sprintf("L%d", p.n)
		g.add(p, schemas.RentalRegistered, start, schemas.RentalRegisteredData{LeaseID: lease, AddressCode: g.address(region), Start: day(start)})
		if g.chance(0.3) {
			end := g.at(start.AddDate(0, 1, 0))
			g.add(p, schemas.RentalEnded, end, schemas.RentalEndedData{LeaseID: lease, End: day(end)})
		}
	}
	if age >= 25 && g.chance(0.15) {
		bought := g.at(g.cfg.Start.AddDate(-5, 0, 0))
		prop := fmt.Sprintf("P%d", p.n)
		area := float64(50 + g.r.IntN(100))
		g.add(p, schemas.PropertyRegistered, bought, schemas.PropertyRegisteredData{PropertyID: prop, AddressCode: g.address(region),
			Acquired: []string{"purchase", "purchase", "purchase", "gift", "inheritance", "self_built"}[g.r.IntN(6)], AreaM2: &area})
		if g.chance(0.15) {
			g.add(p, schemas.PropertyTransferred, g.at(bought.AddDate(0, 1, 0)), schemas.PropertyTransferredData{PropertyID: prop})
		}
	}
	if age >= 25 && age < 65 && g.chance(0.05) {
		reg := g.at(g.cfg.Start.AddDate(-3, 0, 0))
		biz := g.uscc(region, 100000+p.n)
		g.add(p, schemas.BusinessRegistered, reg, schemas.BusinessRegisteredData{BusinessID: biz, Region: region, Name: p.name + "商行"})
		if g.chance(0.3) {
			g.add(p, schemas.BusinessDeregistered, g.at(reg.AddDate(0, 1, 0)), schemas.BusinessDeregisteredData{BusinessID: biz})
		}
	}

	// Moving: a residence permit in another city, sometimes a hukou migration.
	if age >= 18 && age < 60 && g.chance(0.08) {
		city := counties[g.r.IntN(len(counties))]
		if city != p.county {
			issued := g.at(g.cfg.Start)
			g.add(p, schemas.ResidencePermitIssued, issued, schemas.ResidencePermitIssuedData{CityCode: city, AddressCode: g.address(city),
				Basis: []string{"employment", "housing", "study"}[g.r.IntN(3)], ValidUntil: day(issued.AddDate(5, 0, 0))})
			if g.chance(0.2) {
				g.add(p, schemas.ResidencePermitRevoked, g.at(issued.AddDate(0, 1, 0)), schemas.ResidencePermitRevokedData{CityCode: city})
			} else if g.chance(0.5) {
				moved := g.at(issued.AddDate(0, 1, 0))
				to := g.address(city)
				g.add(p, schemas.HukouMigrated, moved, schemas.HukouMigratedData{FromAddressCode: p.addr, ToAddressCode: to,
					Reason: []string{"employment", "housing", "talent", "family", "study", "business", "other"}[g.r.IntN(7)]})
				if region != city && g.chance(0.5) {
					g.add(p, schemas.InsuranceTransferred, moved.AddDate(0, 0, 10), schemas.InsuranceTransferredData{FromRegion: region, ToRegion: city})
				}
				p.addr = to
			}
		}
	}

	// Death and cancellation.
	switch {
	case age >= 55 && g.chance(0.06):
		died := g.at(g.cfg.Start)
		if died.After(g.end.Add(-72 * time.Hour)) {
			died = g.end.Add(-72 * time.Hour)
		}
		g.add(p, schemas.DeathCertified, died.Add(6*time.Hour), schemas.DeathCertifiedData{DateOfDeath: day(died),
			CertificateNo: fmt.Sprintf("D%010d", p.n), PlaceCode: p.county})
		if g.chance(0.8) { // the rest stay 应销未销
			g.add(p, schemas.HukouCancelled, died.Add(48*time.Hour), schemas.HukouCancelledData{Reason: "death"})
		}
	case g.chance(0.005):
		g.add(p, schemas.HukouCancelled, g.at(g.cfg.Start), schemas.HukouCancelledData{Reason: "emigration"})
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// WriteJSONL writes the population's events to DIR/<source>.jsonl, one
// CloudEvent per line, importable with `pophub publish`.
func WriteJSONL(ctx context.Context, cfg Config, dir string) (Stats, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Stats{}, fmt.Errorf("creating output directory: %w", err)
	}
	files := map[schemas.Source]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	st, err := GenerateStats(ctx, cfg, func(ev schemas.Event) error {
		f := files[ev.Source]
		if f == nil {
			var err error
			if f, err = os.Create(filepath.Join(dir, string(ev.Source)+".jsonl")); err != nil {
				return fmt.Errorf("creating output file: %w", err)
			}
			files[ev.Source] = f
		}
		b, err := schemas.Encode(ev)
		if err != nil {
			return err
		}
		_, err = f.Write(append(b, '\n'))
		return err
	})
	if err != nil {
		return st, err
	}
	for _, f := range files {
		if err := f.Close(); err != nil {
			return st, fmt.Errorf("writing output file: %w", err)
		}
	}
	return st, nil
}
