package eligibility_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas"
)

// predictPlace is where random people of one policy live and work.
type predictPlace struct {
	policy string
	addrs  []string // two home addresses in the place
	region string   // where they work and contribute
	// points policies foresee every day a score can change, so their
	// prediction must also be the earliest eligible day there is.
	points bool
}

var predictPlaces = []predictPlace{
	{policy: "heilongjiang/nine-cities", addrs: []string{mudanjiangA, mudanjiangB}, region: "231002"},
	{policy: "heilongjiang/daqing", addrs: []string{daqingAddr, "230603001001"}, region: "230602"},
	{policy: "heilongjiang/harbin", addrs: []string{harbinAddr, "230102001001"}, region: "230103", points: true},
	{policy: "jilin/city", addrs: []string{jilinCity, "220203001001"}, region: "220202"},
	{policy: "jilin/counties", addrs: []string{yongjiTown, "220281100001"}, region: "220221"},
	{policy: "chifeng/central", addrs: []string{chifengAddr, "150403001001"}, region: "150402"},
	{policy: "hunan/500k-1m", addrs: []string{yueyang, "430603001001"}, region: "430602"},
	{policy: "hunan/1m-3m", addrs: []string{hengyang, "430406001001"}, region: "430405"},
	{policy: "hunan/over-3m", addrs: []string{changsha, "430103001001"}, region: "430102", points: true},
	{policy: "shaoxing/city", addrs: []string{shaoxingAddr, "330603001001"}, region: "330602"},
	{policy: "residence-permit/heilongjiang", addrs: []string{harbinAddr, "230102001001"}, region: "230103"},
	{policy: "residence-permit/jilin", addrs: []string{jilinCity, "220203001001"}, region: "220202"},
}

// Where a person may also work or rent: outside every place above.
const (
	elsewhereRegion = "110101"
	elsewhereAddr   = "110101001001"
)

// contributionMonths is how long contributions that keep coming are
// recorded after the evaluation day: past the ten years a points
// prediction looks ahead.
const contributionMonths = 121

func isoDay(d time.Time) string { return d.Format(time.DateOnly) }

// randomPerson makes up a person's history as known on asOf: contracts
// and leases, some following each other with or without a break, some
// registered ahead of their start, some ended early; perhaps a home and a
// diploma; contributions to one or more insurances that either stopped
// before last month or keep coming, recorded on the first of their month.
// Nothing but contributions is sent after asOf, so a prediction made on
// asOf must hold.
func randomPerson(r *rand.Rand, pl predictPlace) ([]eligibility.CaseEvent, time.Time) {
	asOf := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, r.IntN(1800))
	around := func() time.Time { return asOf.AddDate(0, 0, -r.IntN(3*365)+r.IntN(120)) }
	// sent is when a span starting on start was registered: on its start,
	// or ahead of it, never after asOf.
	sent := func(start time.Time) string {
		at := start
		if r.IntN(4) == 0 {
			at = at.AddDate(0, 0, -r.IntN(60))
		}
		if at.After(asOf) {
			at = asOf.AddDate(0, 0, -r.IntN(30))
		}
		return isoDay(at)
	}
	// spans makes up to three spans, each next one either following the
	// one before (a renewal, or a move after a break of a few days) or
	// starting anywhere.
	type made struct {
		id, where  string
		start, end time.Time
		open       bool
	}
	spans := func(prefix string, where func() string) []made {
		var out []made
		for i := range []int{0, 1, 1, 2, 2, 3}[r.IntN(6)] {
			m := made{id: fmt.Sprintf("%s%d", prefix, i), where: where(), start: around()}
			if n := len(out); n > 0 && !out[n-1].open && r.IntN(2) == 0 {
				m.start = out[n-1].end.AddDate(0, 0, 1+[]int{0, 0, 1, 10, 30, 45}[r.IntN(6)])
				if r.IntN(2) == 0 {
					m.where = out[n-1].where
				}
			}
			if m.open = r.IntN(2) == 0; !m.open {
				m.end = m.start.AddDate(0, 3+r.IntN(30), r.IntN(30))
			}
			out = append(out, m)
		}
		return out
	}
	var events []eligibility.CaseEvent
	for _, c := range spans("C", func() string {
		if r.IntN(6) == 0 {
			return elsewhereRegion
		}
		return pl.region
	}) {
		end := ""
		if !c.open {
			end = isoDay(c.end)
		}
		events = append(events, registeredOn(sent(c.start), contract(c.id, c.where, isoDay(c.start), end)))
		if ended := c.start.AddDate(0, 1+r.IntN(24), 0); c.open && r.IntN(4) == 0 && !ended.After(asOf) {
			events = append(events, eligibility.CaseEvent{Type: schemas.ContractEnded, Time: isoDay(ended),
				Data: map[string]any{"contract_id": c.id, "end": isoDay(ended)}})
		}
	}
	for _, l := range spans("L", func() string {
		if r.IntN(6) == 0 {
			return elsewhereAddr
		}
		return pl.addrs[r.IntN(len(pl.addrs))]
	}) {
		end := ""
		if !l.open {
			end = isoDay(l.end)
		}
		events = append(events, registeredOn(sent(l.start), lease(l.id, l.where, isoDay(l.start), end)))
		if ended := l.start.AddDate(0, 1+r.IntN(24), 0); l.open && r.IntN(4) == 0 && !ended.After(asOf) {
			events = append(events, leaseEnded(l.id, isoDay(ended)))
		}
	}
	if bought := around(); r.IntN(8) == 0 && !bought.After(asOf) {
		events = append(events, home("P1", pl.addrs[0], isoDay(bought)))
	}
	if r.IntN(4) == 0 {
		events = append(events, graduated([]string{"21", "31", "41", "61"}[r.IntN(4)], isoDay(asOf.AddDate(0, 0, -r.IntN(8*365)))))
	}
	events = append(events, randomContributions(r, pl, asOf)...)
	return events, asOf
}

// randomContributions makes each insurance kind's contributions: none, a
// stretch that stopped before last month, or one that keeps coming; the
// kinds start and stop together or each on its own.
func randomContributions(r *rand.Rand, pl predictPlace, asOf time.Time) []eligibility.CaseEvent {
	thisMonth := time.Date(asOf.Year(), asOf.Month(), 1, 0, 0, 0, 0, time.UTC)
	stretch := func() (first, last time.Time, ok bool) {
		if r.IntN(6) == 0 {
			return first, last, false
		}
		first = thisMonth.AddDate(0, -r.IntN(48), 0)
		if r.IntN(3) != 0 {
			return first, thisMonth.AddDate(0, contributionMonths, 0), true
		}
		last = first.AddDate(0, r.IntN(40), 0)
		if stopped := thisMonth.AddDate(0, -2, 0); last.After(stopped) {
			last = stopped
		}
		return first, last, !last.Before(first)
	}
	paid := map[time.Time][]any{} // month → kinds
	kinds := []string{"pension", "medical", "unemployment"}
	first, last, ok := stretch()
	for _, k := range kinds {
		if r.IntN(3) == 0 {
			first, last, ok = stretch()
		}
		for m := first; ok && !m.After(last); m = m.AddDate(0, 1, 0) {
			paid[m] = append(paid[m], k)
		}
	}
	months := make([]time.Time, 0, len(paid))
	for m := range paid {
		months = append(months, m)
	}
	slices.SortFunc(months, func(a, b time.Time) int { return a.Compare(b) })
	region := pl.region
	if r.IntN(8) == 0 {
		region = elsewhereRegion
	}
	out := make([]eligibility.CaseEvent, 0, len(months))
	for _, m := range months {
		out = append(out, paidOnFirst(region, m, paid[m]))
	}
	return out
}

// paidOnFirst is the contribution for month m, recorded on its first day.
func paidOnFirst(region string, m time.Time, kinds []any) eligibility.CaseEvent {
	return eligibility.CaseEvent{Type: schemas.ContributionRecorded, Time: m.Format(time.DateOnly) + "T00:00:00+08:00",
		Data: map[string]any{"region": region, "insurances": kinds, "month": m.Format("2006-01")}}
}

// paidMonthly is a contribution for each month of months (YYYY-MM..YYYY-MM),
// recorded on the first of the month, as one that keeps coming is.
func paidMonthly(region, months string, kinds ...string) []eligibility.CaseEvent {
	from, to, _ := strings.Cut(months, "..")
	first, _ := time.Parse("2006-01", from)
	last, _ := time.Parse("2006-01", to)
	ks := make([]any, len(kinds))
	for i, k := range kinds {
		ks[i] = k
	}
	var out []eligibility.CaseEvent
	for m := first; !m.After(last); m = m.AddDate(0, 1, 0) {
		out = append(out, paidOnFirst(region, m, ks))
	}
	return out
}

// predictionProblems evaluates the person as of asOf and, when the
// decision gives a qualifies_on, again on that day and on the day before:
// it says what contradicts the prediction. With earliest, it also looks
// month by month over five years for an eligible day before the predicted
// one, or at all when none was predicted. The history may hold changes
// after asOf (contributions that keep coming); asOf ignores them.
func predictionProblems(t testing.TB, p *eligibility.Policy, c eligibility.Case, earliest bool) (eligibility.Decision, []string) {
	t.Helper()
	subj, fam, err := c.Build()
	if err != nil {
		t.Fatalf("%s: building: %v", c.Name, err)
	}
	on := func(day string) eligibility.Decision {
		at, err := eligibility.AsOfDay(day)
		if err != nil {
			t.Fatal(err)
		}
		return eligibility.Evaluate(p, subj, fam, at)
	}
	d := on(c.AsOf)
	if d.Eligible {
		return d, nil
	}
	var problems []string
	if d.QualifiesOn != "" {
		if got := on(d.QualifiesOn); !got.Eligible {
			problems = append(problems, fmt.Sprintf("not eligible on qualifies_on %s: %s", d.QualifiesOn, unmet(got)))
		}
		day, _ := time.Parse(time.DateOnly, d.QualifiesOn)
		if before := isoDay(day.AddDate(0, 0, -1)); before > c.AsOf && on(before).Eligible {
			problems = append(problems, fmt.Sprintf("already eligible on %s, the day before qualifies_on %s", before, d.QualifiesOn))
		}
	}
	if earliest {
		asOf, _ := time.Parse(time.DateOnly, c.AsOf)
		for k := 1; k <= 60; k++ {
			day := isoDay(asOf.AddDate(0, k, 0))
			if d.QualifiesOn != "" && day >= d.QualifiesOn {
				break
			}
			if on(day).Eligible {
				problems = append(problems, fmt.Sprintf("eligible on %s, before qualifies_on %q", day, d.QualifiesOn))
				break
			}
		}
	}
	return d, problems
}

// TestQualifiesOnHolds checks histories where a prediction is easily
// wrong: a clause that stops holding before another starts to, a newer
// lease taking over from an older one, a break between two jobs.
func TestQualifiesOnHolds(t *testing.T) {
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		policy   string
		earliest bool // a points policy: its prediction is the earliest eligible day
		c        eligibility.Case
	}{
		{"heilongjiang/nine-cities", false, eligibility.Case{Name: "the lease ends before the insurance year is complete", AsOf: "2024-04-20",
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2024-01-01", "2024-12-31"),
				paidMonthly("231002", "2024-03..2026-12", "pension"))}},
		{"heilongjiang/daqing", false, eligibility.Case{Name: "the lease ends before two years of insurance", AsOf: "2025-04-21",
			Events: evs(contract("C1", "230602", "2021-02-10", ""), lease("L1", daqingAddr, "2023-12-13", "2025-12-13"),
				paidMonthly("230602", "2024-12..2027-12", "pension"))}},
		{"heilongjiang/harbin", true, eligibility.Case{Name: "points after moving house, the leases overlapping", AsOf: "2025-03-15",
			Events: evs(contract("C1", "230103", "2021-01-01", ""), lease("LA", "230102001001", "2022-01-01", "2025-03-31"),
				lease("LB", harbinAddr, "2025-03-01", ""))}},
		{"heilongjiang/harbin", true, eligibility.Case{Name: "points from a newer lease at another address", AsOf: "2023-08-26",
			Events: evs(contract("C1", "230103", "2021-01-31", ""), lease("L0", harbinAddr, "2022-07-21", ""),
				lease("L1", "230102001001", "2022-04-04", "2024-04-21"))}},
		{"hunan/1m-3m", false, eligibility.Case{Name: "the insurance completes in a break between two jobs", AsOf: "2024-05-20",
			Events: evs(contract("C1", "430405", "2022-01-01", "2024-06-30"), registeredOn("2024-05-10", contract("C2", "430405", "2024-07-20", "")),
				lease("L1", hengyang, "2022-01-01", ""), paidMonthly("430405", "2022-08..2026-12", "pension"))}},
	}
	for _, tt := range tests {
		t.Run(tt.policy+"/"+tt.c.Name, func(t *testing.T) {
			p, ok := cat.Policy(tt.policy)
			if !ok {
				t.Fatalf("no policy %s", tt.policy)
			}
			tt.c.Person = outsider
			if _, problems := predictionProblems(t, p, tt.c, tt.earliest); len(problems) > 0 {
				t.Error(strings.Join(problems, "; "))
			}
		})
	}
}

// TestQualifiesOnIsTheFirstEligibleDay checks qualifies_on over a few
// thousand random but reproducible people: with nothing new but the
// contributions that were coming, Evaluate finds the person eligible on
// that day and not on the day before. For points policies it also checks,
// month by month over five years, that no earlier day is eligible and
// that a person given no day does not become eligible.
func TestQualifiesOnIsTheFirstEligibleDay(t *testing.T) {
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	people := 3000
	if testing.Short() {
		people = 600
	}
	r := rand.New(rand.NewPCG(20240701, 7))
	failures := map[string]int{}
	predicted := 0
	for i := range people {
		pl := predictPlaces[i%len(predictPlaces)]
		p, ok := cat.Policy(pl.policy)
		if !ok {
			t.Fatalf("no policy %s", pl.policy)
		}
		events, asOf := randomPerson(r, pl)
		c := eligibility.Case{Name: fmt.Sprintf("person %d", i), AsOf: isoDay(asOf), Person: outsider, Events: events}
		d, problems := predictionProblems(t, p, c, pl.points)
		if !d.Eligible && d.QualifiesOn != "" {
			predicted++
		}
		if len(problems) > 0 {
			if failures[pl.policy]++; failures[pl.policy] <= 2 {
				t.Errorf("%s, %s as of %s: %s\n  history:\n    %s", pl.policy, c.Name, c.AsOf, strings.Join(problems, "; "), describeHistory(events))
			}
		}
	}
	if predicted < people/20 {
		t.Errorf("only %d of %d people were given a qualifies_on: the scenarios no longer exercise predictions", predicted, people)
	}
	if len(failures) > 0 {
		t.Errorf("people with a wrong qualifies_on, per policy: %v", failures)
	}
}

// unmet lists the conditions a decision found unmet.
func unmet(d eligibility.Decision) string {
	var out []string
	for _, cr := range d.Conditions {
		if !cr.Met {
			out = append(out, cr.ID+" ("+cr.Missing+")")
		}
	}
	return strings.Join(out, ", ")
}

// describeHistory lists the events of a history for a failure message,
// contributions summed up per kind.
func describeHistory(events []eligibility.CaseEvent) string {
	var out []string
	months := map[string][]string{}
	for _, e := range events {
		if e.Type != schemas.ContributionRecorded {
			out = append(out, fmt.Sprintf("%s sent %s %v", e.Type, e.Time, e.Data))
			continue
		}
		for _, k := range e.Data["insurances"].([]any) {
			months[k.(string)] = append(months[k.(string)], e.Data["month"].(string)+"@"+e.Data["region"].(string))
		}
	}
	for _, k := range []string{"pension", "medical", "unemployment"} {
		if ms := months[k]; len(ms) > 0 {
			out = append(out, fmt.Sprintf("%s: %d months, %s … %s", k, len(ms), ms[0], ms[len(ms)-1]))
		}
	}
	return strings.Join(out, "\n    ")
}
