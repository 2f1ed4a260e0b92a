package synth

import (
	"slices"
	"strconv"
	"time"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/codes"
)

// spell is one labour contract.
type spell struct {
	start, end time.Time // end zero: still running at the stop
	county     *county
	contract   string
	insurances []string
	fixed      bool      // a three-year fixed-term contract
	renewal    bool      // renews the previous contract
	insured    time.Time // since when the employee scheme covers it
}

// retirement is the statutory age: 60 for men, 55 for women (the 2025
// reform's gradual rise is ignored).
func (lc *lifeCourse) retirement() time.Time {
	if lc.p.male {
		return lc.p.birth.AddDate(60, 0, 0)
	}
	return lc.p.birth.AddDate(55, 0, 0)
}

// backMonths is how far before the window the contributions of the
// contract running when it opens go back.
const backMonths = 36

var insuranceSets = [][]string{
	{"pension", "medical", "unemployment", "injury", "maternity"},
	{"pension", "medical", "unemployment", "injury"},
	{"pension", "medical"},
}

// work: labour contracts (employment), social insurance following them
// (social_insurance), and the resident scheme for everyone else.
func (lc *lifeCourse) work() {
	p, g := lc.p, lc.g
	a := p.ageAt(g.start)
	retire := lc.retirement()
	employer := func(c *county) (string, string) {
		k := lc.r.IntN(400)
		return uscc("91", c.code, int64(k)), employerName(c, k)
	}
	contractNo := 0
	contract := func() string {
		contractNo++
		return "HT" + strconv.FormatInt(p.n, 10) + "-" + strconv.Itoa(contractNo)
	}
	workCounty := func() *county {
		switch u := lc.r.Float64(); {
		case u < 0.72:
			return p.home
		case u < 0.87:
			return g.rg.pickInCity(lc.r.Float64(), p.home.city)
		default:
			return g.rg.pickOtherCity(lc.r.Float64(), p.home.city)
		}
	}
	insRegion := ""
	var insSet []string

	var eid, ename string
	startJob := func(t time.Time, c *county, pre, renewal bool) {
		if !renewal {
			eid, ename = employer(c)
		}
		sp := spell{start: t, county: c, contract: contract(), insurances: insuranceSets[min(lc.r.IntN(10)/7, 2)], renewal: renewal}
		data := &schemas.ContractStartedData{ContractID: sp.contract, EmployerID: eid, EmployerName: ename, WorkRegion: c.code, Start: day(t)}
		sp.fixed = renewal || lc.chance(0.6)
		if sp.fixed {
			data.End = day(t.AddDate(3, 0, -1))
		}
		if !lc.alive(t, schemas.ContractStarted, data) {
			return // no contract, so nothing ends or is paid
		}
		switch {
		case !lc.insured:
			enrol := t.Add(time.Hour)
			if pre && lc.chance(0.6) { // insured since an earlier job
				enrol = lc.on(lc.between(maxTime(lc.workFrom, t.AddDate(-15, 0, 0)), t), 9)
			}
			if lc.alive(enrol, schemas.InsuranceEnrolled, &schemas.InsuranceEnrolledData{Scheme: "employee", Insurances: sp.insurances,
				Region: c.code, Start: day(enrol)}) {
				lc.insured, insRegion, insSet = true, c.code, sp.insurances
				sp.insured = enrol
			}
		case g.rg.byCode[insRegion] == nil || g.rg.byCode[insRegion].city != c.city:
			if lc.chance(0.6) {
				lc.alive(lc.on(t.AddDate(0, 1, lc.r.IntN(60)), 11), schemas.InsuranceTransferred,
					&schemas.InsuranceTransferredData{FromRegion: insRegion, ToRegion: c.code})
			}
			insRegion = c.code
			sp.insured = t
		default:
			sp.insured = t
		}
		sp.insurances = insSet
		lc.spells = append(lc.spells, sp)
	}
	endJob := func(t time.Time) {
		sp := &lc.spells[len(lc.spells)-1]
		sp.end = t
		lc.add(t, schemas.ContractEnded, &schemas.ContractEndedData{ContractID: sp.contract, End: day(t)})
	}

	// The state at the window's start.
	working := a >= 16 && !lc.inSchool(g.start) && g.start.Before(retire) && !lc.workFrom.After(g.start) && lc.military[0].IsZero()
	if working {
		var rate float64
		switch {
		case a < 20:
			rate = 0.2
		case a < 25:
			rate = 0.55
		case a < 45:
			rate = 0.7
		default:
			rate = 0.55
		}
		if lc.chance(rate) {
			// The current contract: at most three years old (fixed-term
			// contracts are renewed), within the working life.
			from := maxTime(lc.workFrom, g.start.AddDate(-3, 0, 0))
			t := lc.between(from, g.start)
			t = time.Date(t.Year(), t.Month(), 1, 9, lc.r.IntN(60), 0, 0, china)
			if t.Before(lc.workFrom) || t.Before(p.birth.AddDate(16, 0, 0)) {
				t = lc.on(lc.workFrom.AddDate(0, 0, 1), 9)
			}
			if t.Before(g.start) {
				startJob(t, workCounty(), true, false)
			}
		}
	}
	var resident []string
	if len(lc.spells) == 0 && a >= 2 && lc.chance(0.9) {
		// The resident scheme (城乡居民): medical for all, pension from 16.
		resident = []string{"medical"}
		from := p.birth.AddDate(1, 0, 0)
		if a >= 16 && !lc.inSchool(g.start) {
			resident = []string{"pension", "medical"}
			from = p.birth.AddDate(16, 0, 0)
		}
		enrol := lc.on(lc.between(maxTime(from, g.start.AddDate(-10, 0, 0)), g.start), 9)
		lc.add(enrol, schemas.InsuranceEnrolled, &schemas.InsuranceEnrolledData{Scheme: "resident", Insurances: resident,
			Region: p.home.code, Start: day(enrol)})
	}

	// The window: quits, renewals, job searches, retirement.
	t := g.start
	for t.Before(lc.stop) {
		if n := len(lc.spells); n > 0 && lc.spells[n-1].end.IsZero() {
			sp := lc.spells[n-1]
			renew := sp.start.AddDate(3, 0, -1)
			if !sp.fixed {
				renew = lc.g.end.AddDate(100, 0, 0)
			}
			quit := lc.after(t, 0.12)
			switch {
			case !retire.After(quit) && !retire.After(renew):
				if retire.Before(lc.stop) {
					endJob(lc.on(retire, 17))
					if ins := without(insSet, "pension", "medical"); len(ins) > 0 && lc.insured {
						lc.add(lc.on(retire.AddDate(0, 0, 5), 10), schemas.InsuranceTerminated, &schemas.InsuranceTerminatedData{
							Insurances: ins, Region: insRegion, End: day(retire)})
					}
				}
				t = lc.stop
				continue
			case renew.Before(quit) && lc.chance(0.75):
				if !renew.Before(lc.stop) {
					t = lc.stop
					continue
				}
				endJob(lc.on(renew, 17))
				startJob(lc.on(renew.AddDate(0, 0, 1), 9), sp.county, false, true)
				t = renew.AddDate(0, 0, 1)
				continue
			}
			if renew.Before(quit) {
				quit = renew
			}
			if !quit.Before(lc.stop) {
				t = lc.stop
				continue
			}
			quit = lc.on(quit, 17)
			endJob(quit)
			t = quit
			gap := lc.after(t, 4) // about three months between jobs
			if gap.Sub(t) > 31*24*time.Hour && lc.chance(0.6) && lc.insured {
				if lc.alive(lc.on(t.AddDate(0, 0, 31), 10), schemas.InsuranceTerminated, &schemas.InsuranceTerminatedData{
					Insurances: insSet, Region: insRegion, End: day(t.AddDate(0, 0, 31))}) {
					lc.insured = false
				}
			}
			if lc.chance(0.85) && gap.Before(retire) && gap.Before(lc.stop) && !lc.inService(gap) {
				startJob(lc.on(gap, 9), workCounty(), false, false)
				t = gap
				continue
			}
			t = gap
		}
		// Not working: look for a job (students from their last graduation,
		// soldiers from their discharge).
		from := maxTime(t, lc.workFrom)
		if !lc.military[0].IsZero() {
			from = maxTime(from, lc.military[1])
		}
		if !from.Before(retire.AddDate(-1, 0, 0)) || !from.Before(lc.stop) {
			break
		}
		rate := 0.1
		if p.ageAt(from) >= 50 {
			rate = 0.03
		}
		next := lc.after(from, rate)
		if !lc.workFrom.Before(g.start) && from.Equal(lc.workFrom) && lc.chance(0.85) {
			next = from.AddDate(0, 1+lc.r.IntN(4), 0) // a graduate's first job
		}
		if !next.Before(lc.stop) || !next.Before(retire) {
			break
		}
		startJob(lc.on(next, 9), workCounty(), false, false)
		t = next
	}

	// Resident contributions are yearly, recorded for January, while not
	// employed nor serving in the army.
	for y := g.start.Year(); resident != nil && y <= g.end.Year(); y++ {
		t := time.Date(y, time.January, 20, 10, lc.r.IntN(60), 0, 0, china)
		if !t.Before(g.start) && !lc.employedAt(t) && !lc.inService(t) {
			lc.alive(t, schemas.ContributionRecorded, &schemas.ContributionRecordedData{Month: t.Format("2006-01"),
				Region: p.home.code, Insurances: resident})
		}
	}

	// Monthly contributions while employed and insured, recorded on the
	// 25th. The contract running when the window opens brings its history,
	// as the insurer's first load would: up to backMonths months before
	// the window, from the later of the contract's start and the
	// enrolment.
	for _, sp := range lc.spells {
		if sp.insured.IsZero() {
			continue
		}
		end := sp.end
		if end.IsZero() {
			end = lc.stop
		}
		from := maxTime(sp.start, maxTime(sp.insured, g.start.AddDate(0, -backMonths, 0)))
		for m := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, china); m.Before(end); m = m.AddDate(0, 1, 0) {
			if mid := m.AddDate(0, 0, 14); mid.Before(from) || !mid.Before(end) {
				continue
			}
			rec := time.Date(m.Year(), m.Month(), 25, 10, lc.r.IntN(60), 0, 0, china)
			lc.alive(rec, schemas.ContributionRecorded, &schemas.ContributionRecordedData{Month: rec.Format("2006-01"),
				Region: sp.county.code, Insurances: sp.insurances})
		}
	}
}

// employedAt reports whether a contract runs at t.
func (lc *lifeCourse) employedAt(t time.Time) bool {
	for _, sp := range lc.spells {
		if !t.Before(sp.start) && (sp.end.IsZero() || t.Before(sp.end)) {
			return true
		}
	}
	return false
}

func without(list []string, drop ...string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if !slices.Contains(drop, s) {
			out = append(out, s)
		}
	}
	return out
}

// uscc builds an 18-character unified social credit code: registration
// authority and kind (91 enterprise, 92 individual business), county, a
// 9-character organisation code and the GB 32100 check character.
func uscc(kind, countyCode string, k int64) string {
	b := make([]byte, 0, 18)
	b = append(b, kind...)
	b = append(b, countyCode...)
	b = append(b, pad(strconv.FormatInt(k, 10), 9)...)
	c, _ := codes.USCCCheckChar(string(b))
	return string(append(b, c))
}

var (
	firmPrefixes   = []string{"龙江", "北方", "华信", "松花江", "冰城", "鑫达", "恒通", "宏远", "东方", "兴隆", "金鼎", "瑞丰"}
	firmIndustries = []string{"科技", "建设工程", "食品", "物流", "医药", "商贸", "机械制造", "信息技术", "餐饮管理", "物业服务", "农业发展", "电力设备"}
	shopKinds      = []string{"餐馆", "便利店", "五金店", "理发店", "服装店", "水果店", "修车铺", "小吃店", "超市", "药店"}
)

// employerName is the name of employer k of a county: the same id always
// has the same name.
func employerName(c *county, k int) string {
	h := mix(uint64(k), 77)
	city := c.name
	if len(city) > 3 {
		city = city[:len(city)-3] // drop 区
	}
	return city + firmPrefixes[h%uint64(len(firmPrefixes))] + firmIndustries[(h>>8)%uint64(len(firmIndustries))] + "有限公司"
}
