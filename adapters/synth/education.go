package synth

import (
	"strconv"
	"time"

	"github.com/pophub/pophub/schemas"
)

type stage struct {
	enrol, grad time.Time
	enrolLevel  string
	gradLevel   string
	institution string
	county      string
	college     bool
}

// education: primary, junior and senior secondary or vocational school,
// college, postgraduate study, with attainment rising by birth cohort.
// Events in the window are emitted, plus as initial state the current
// enrolment and (usually) the last graduation before the window.
func (lc *lifeCourse) education() {
	p, g := lc.p, lc.g
	by := p.birth.Year()
	// Probabilities of continuing: senior high, vocational, college after
	// senior high, college after vocational, bachelor (vs 专科), master,
	// doctorate.
	var pSenior, pVoc, pCollege, pVocCollege, pBachelor, pMaster, pDoctor float64
	switch {
	case by >= 1995:
		pSenior, pVoc, pCollege, pVocCollege, pBachelor, pMaster, pDoctor = 0.6, 0.35, 0.85, 0.35, 0.55, 0.15, 0.1
	case by >= 1980:
		pSenior, pVoc, pCollege, pVocCollege, pBachelor, pMaster, pDoctor = 0.45, 0.2, 0.5, 0.15, 0.5, 0.1, 0.08
	case by >= 1965:
		pSenior, pVoc, pCollege, pVocCollege, pBachelor, pMaster, pDoctor = 0.3, 0.1, 0.25, 0.05, 0.45, 0.05, 0.05
	default:
		pSenior, pVoc, pCollege, pVocCollege, pBachelor, pMaster, pDoctor = 0.15, 0.05, 0.15, 0.02, 0.4, 0.03, 0.03
	}
	sy := by + 6
	if p.birth.Month() >= time.September {
		sy++
	}
	local := p.home
	cityName := g.rg.cities[local.city].name
	school := func(kind string, num int) string { return cityName + local.name + "第" + numeral(num) + kind }
	plan := func(enrolY, yrs int, enrolLevel, gradLevel, inst, county string, college bool) {
		lc.school = append(lc.school, stage{enrol: time.Date(enrolY, time.September, 1, 0, 0, 0, 0, china),
			grad: time.Date(enrolY+yrs, time.July, 1, 0, 0, 0, 0, china), enrolLevel: enrolLevel, gradLevel: gradLevel,
			institution: inst, county: county, college: college})
	}
	if by < 1960 && lc.chance(0.25) {
		lc.finishSchool() // no school records
		return
	}
	plan(sy, 6, "80", "81", school("小学", 1+lc.r.IntN(40)), local.code, false)
	if by < 1965 && lc.chance(0.3) {
		lc.finishSchool()
		return
	}
	plan(sy+6, 3, "70", "71", school("中学", 1+lc.r.IntN(30)), local.code, false)
	y := sy + 9
	u := lc.r.Float64()
	college := false
	switch {
	case u < pSenior:
		plan(y, 3, "60", "61", school("高级中学", 1+lc.r.IntN(15)), local.code, false)
		college = lc.chance(pCollege)
	case u < pSenior+pVoc:
		plan(y, 3, "40", "44", cityName+"第"+numeral(1+lc.r.IntN(8))+"职业高级中学", local.code, false)
		college = lc.chance(pVocCollege)
	default:
		lc.finishSchool()
		return
	}
	y += 3
	if !college {
		lc.finishSchool()
		return
	}
	if lc.chance(pBachelor) {
		c := lc.pickCollege(true)
		plan(y, 4, "20", "21", c.name, c.county, true)
		y += 4
		lc.degree = true
		if lc.chance(pMaster) {
			c := lc.pickCollege(true)
			plan(y, 3, "10", "14", c.name, c.county, true)
			y += 3
			if lc.chance(pDoctor) {
				plan(y, 4, "10", "11", c.name, c.county, true)
			}
		}
	} else {
		c := lc.pickCollege(false)
		plan(y, 3, "30", "31", c.name, c.county, true)
	}
	lc.finishSchool()
}

// pickCollege picks a college of the home city half the time, otherwise
// of any city.
func (lc *lifeCourse) pickCollege(bachelor bool) college {
	var pool []college
	home := lc.p.home.city
	all := lc.chance(0.5)
	for _, code := range lc.g.rg.cityList {
		if !all && code != home {
			continue
		}
		for _, c := range lc.g.rg.cities[code].colleges {
			if c.bachelor == bachelor && lc.g.rg.byCode[c.county] != nil {
				pool = append(pool, c)
			}
		}
	}
	if len(pool) == 0 {
		for _, code := range lc.g.rg.cityList {
			for _, c := range lc.g.rg.cities[code].colleges {
				if lc.g.rg.byCode[c.county] != nil {
					pool = append(pool, c)
				}
			}
		}
	}
	if len(pool) == 0 { // a filter with no college county: study at home
		return college{name: lc.g.rg.cities[home].name + "职业技术学院", county: lc.p.home.code, bachelor: bachelor}
	}
	return pool[lc.r.IntN(len(pool))]
}

// finishSchool emits the education events and sets when working life can
// begin.
func (lc *lifeCourse) finishSchool() {
	g := lc.g
	var lastGrad *stage
	for i := range lc.school {
		s := &lc.school[i]
		if s.grad.Before(g.start) {
			lastGrad = s
		}
		inWindow := !s.enrol.Before(g.start)
		current := s.enrol.Before(g.start) && !s.grad.Before(g.start)
		if inWindow || current {
			lc.alive(lc.on(s.enrol, 9), schemas.EducationEnrolled, &schemas.EducationEnrolledData{Institution: s.institution,
				Level: s.enrolLevel, Region: s.county, Start: day(s.enrol)})
			// Students going to college in another city often move their
			// hukou there (学生集体户).
			if inWindow && s.college && lc.g.rg.byCode[s.county] != nil && lc.g.rg.byCode[s.county].city != lc.p.home.city && lc.chance(0.35) {
				c := lc.g.rg.byCode[s.county]
				lc.studyMoves = append(lc.studyMoves, move{at: lc.on(s.enrol.AddDate(0, 0, 5+lc.r.IntN(20)), 10), to: c,
					reason: "study", household: "JT" + c.code + pad(strconv.Itoa(lc.r.IntN(1000)), 4)})
			}
		}
		if !s.grad.Before(g.start) && lc.chance(0.97) {
			lc.alive(lc.on(s.grad, 10), schemas.EducationGraduated, lc.graduation(s))
		}
		lc.workFrom = s.grad
	}
	if lastGrad != nil && lc.chance(0.7) {
		lc.add(lc.on(lastGrad.grad, 10), schemas.EducationGraduated, lc.graduation(lastGrad))
	}
	if lc.workFrom.IsZero() {
		lc.workFrom = lc.p.birth.AddDate(16, 0, 0)
	}
	if min16 := lc.p.birth.AddDate(16, 0, 0); lc.workFrom.Before(min16) {
		lc.workFrom = min16
	}
}

func (lc *lifeCourse) graduation(s *stage) *schemas.EducationGraduatedData {
	cert := make([]byte, 0, 24)
	cert = append(cert, s.county...)
	cert = strconv.AppendInt(cert, int64(s.grad.Year()), 10)
	cert = append(cert, s.gradLevel...)
	cert = append(cert, pad(strconv.FormatInt(lc.p.n, 10), 9)...)
	return &schemas.EducationGraduatedData{Institution: s.institution, Level: s.gradLevel, Date: day(s.grad), CertificateNo: string(cert)}
}

// inSchool reports whether the person is enrolled at t.
func (lc *lifeCourse) inSchool(t time.Time) bool {
	for _, s := range lc.school {
		if !t.Before(s.enrol) && t.Before(s.grad) {
			return true
		}
	}
	return false
}
