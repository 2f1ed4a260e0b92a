// Package eligibility decides, from the golden record and its history,
// whether a person may settle (落户) or hold a residence permit (居住证)
// under one local policy, and explains the decision clause by clause with
// the facts and source events behind each clause.
//
// Policies are data: YAML files (ops/policies) that quote the seed
// documents and express each clause with a small set of typed condition
// kinds. The package is pure: it reads policy and case files from an
// fs.FS the caller hands in, and otherwise only computes. Facts that take
// time (months of local insurance, renting at one address, years of
// residence) come from the history as of the evaluation instant, never from
// the current record alone, so that a decision "as of" a past date is the
// decision a clerk would have made then.
package eligibility

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/codes"
)

// Policy is one city's (or one tier's) settlement or residence-permit rule.
// It is immutable once loaded and safe for concurrent use.
type Policy struct {
	// ID is the file's path without ".yaml", e.g. "heilongjiang/daqing".
	ID    string `yaml:"id" json:"id"`
	Title string `yaml:"title" json:"title"`
	// Seed names the document the policy comes from.
	Seed Seed `yaml:"seed" json:"seed"`
	// Places are the cities, districts or counties where the policy applies.
	// A person is evaluated in each place and every place-bound fact
	// (contract, rental, insurance…) must lie in that one place: a contract
	// in one city and a rental in another do not add up.
	Places []Place `yaml:"places" json:"places"`
	// CapMonths, when set, is the seed's cap on any required duration of
	// employment or insurance (Hunan: "不得超过3年"); Load rejects clauses
	// and points items that ask for more.
	CapMonths int `yaml:"cap_months,omitempty" json:"cap_months,omitempty"`
	// Family lists who may come along, in the seed's words: spouse,
	// children, minor_children, unmarried_children, grandchildren, parents,
	// spouse_parents.
	Family  []string `yaml:"family" json:"family"`
	Note    string   `yaml:"note,omitempty" json:"note,omitempty"`
	Clauses []Clause `yaml:"clauses" json:"clauses"`
	// Routes are alternative sets of clauses; the person is eligible when
	// every clause of one route is met. Without routes all clauses are
	// required (one route).
	Routes []Route `yaml:"routes,omitempty" json:"routes,omitempty"`

	file string
	// digest is Digest's value, computed by Load for the policy at
	// digestOf: a copy (a policy edited in memory) computes its own.
	digest   string
	digestOf *Policy
}

// Digest names the version of the policy: "sha256:" and the hex SHA-256 of
// what the policy says once loaded (its JSON encoding), so that an answer
// given under one text of a policy can be told from one given under
// another, while an edit of the file's comments or layout changes
// nothing. Load computes it once; of a Policy made or copied otherwise it
// is computed on each call.
func (p *Policy) Digest() string {
	if p.digestOf == p {
		return p.digest
	}
	return policyDigest(p)
}

// policyDigest hashes the policy's JSON encoding and, after it, each
// clause's condition, which that encoding leaves out (json:"-").
func policyDigest(p *Policy) string {
	conditions := make([]Condition, len(p.Clauses))
	for i, c := range p.Clauses {
		conditions[i] = c.Condition
	}
	b, err := json.Marshal(struct {
		Policy     *Policy
		Conditions []Condition
	}{p, conditions})
	if err != nil {
		// Every field of a Policy encodes; a policy that did not would
		// name no version.
		return ""
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Seed identifies a seed document.
type Seed struct {
	Doc  string `yaml:"doc" json:"doc"`   // document number or name, e.g. 黑政发〔2014〕25号
	File string `yaml:"file" json:"file"` // file under shared/seeds
}

// Place is a named set of division-code prefixes (4-digit city, 6-digit
// district or county).
type Place struct {
	Name  string   `yaml:"name" json:"name"`
	Codes []string `yaml:"codes" json:"codes"`
}

// contains reports whether a division or address code lies in the place:
// it starts with one of the place's codes, or it is a prefecture-level
// code (prefectureOf) of a city the place covers a division of.
// Prefecture-level agencies (a city's social insurance or human resources
// bureau, an employer registered with the city rather than a district)
// record the city's own code, 220200 for Jilin City, which names no
// district: such a record cannot say whether it lies in the place's
// districts or in a county of the same city, and it is read as lying in
// every place of that city, the city's districts (市区) included, as a
// place given as the whole city ("2202") reads it.
func (p Place) contains(code string) bool {
	for _, c := range p.Codes {
		if strings.HasPrefix(code, c) {
			return true
		}
	}
	return p.byPrefecture(code)
}

// byPrefecture reports whether code lies in the place only as a
// prefecture-level code of a city the place covers part of, not by its
// own prefix: the facts say so, for a clerk to confirm the district.
func (p Place) byPrefecture(code string) bool {
	city, ok := prefectureOf(code)
	if !ok {
		return false
	}
	for _, c := range p.Codes {
		if strings.HasPrefix(code, c) {
			return false
		}
	}
	for _, c := range p.Codes {
		if strings.HasPrefix(c, city) {
			return true
		}
	}
	return false
}

// prefectureOf is the 4-digit city of a prefecture-level 6-digit code
// (XXXX00, a 地级市, 地区, 自治州 or 盟 as a whole); ok is false for any other
// code, a province's (XX0000) included.
func prefectureOf(code string) (city string, ok bool) {
	if len(code) != 6 || !strings.HasSuffix(code, "00") || strings.HasSuffix(code, "0000") {
		return "", false
	}
	return code[:4], true
}

// where words a region or address code for a fact, saying when it lies
// in the place only as a prefecture-level code.
func (p Place) where(code string) string {
	if p.byPrefecture(code) {
		return code + " (prefecture-level, no district named: counted in " + p.Name + ")"
	}
	return code
}

// Clause is one requirement of a policy.
type Clause struct {
	ID string `yaml:"id" json:"id"`
	// Text quotes the seed (Chinese) followed by a short English gloss.
	Text string `yaml:"text" json:"text"`
	// Ref is the paragraph of the seed, e.g. "一（二）".
	Ref string `yaml:"ref" json:"ref"`
	// Seed overrides the policy's seed for a clause quoting another document.
	Seed *Seed `yaml:"seed,omitempty" json:"seed,omitempty"`
	// Note records how a vague sentence was read.
	Note      string    `yaml:"note,omitempty" json:"note,omitempty"`
	Condition Condition `yaml:"condition" json:"-"`
}

// Route is one way to qualify: a list of clause ids that must all be met.
type Route struct {
	ID      string   `yaml:"id" json:"id"`
	Clauses []string `yaml:"clauses" json:"clauses"`
}

// Condition kinds. Each takes the parameters listed; "in the place" means
// within the place the person is evaluated in.
const (
	// KindHukouElsewhere {rural_to_urban, to_spouse, home_waived}: the hukou (as of
	// the date) is known and not in the place; a person with no
	// registration on record does not meet it. With rural_to_urban, for
	// the settlement seeds, which are written for people moving from the
	// countryside into towns (农业转移人口落户城镇), a hukou at a rural address
	// of the place meets it too while the person lives (a lease or an
	// owned home) at an urban address there, by the region table's
	// urban/rural class of each 12-digit address; an urban hukou in the
	// place never does. With to_spouse as well, for a family-reunion route
	// (投靠), the urban address may be the spouse's: a spouse alive and
	// registered (as of the date) at an urban address of the place, the
	// couple's home there stated for a clerk to confirm. With home_waived
	// instead, for a graduate route whose seed settles graduates 不受稳定
	// 住所限制 (in a town's collective household), a rural hukou in the
	// place meets it without a home.
	KindHukouElsewhere = "hukou_elsewhere"
	// KindHukouIn {codes}: the hukou lies in one of the codes.
	KindHukouIn = "hukou_in"
	// KindContract {min_months}: a labour contract in the place is in
	// force and its agreed term is at least min_months (open-ended counts).
	KindContract = "contract"
	// KindEmployed {min_months}: employed in the place without a break of
	// more than a month for at least min_months (0: a contract in force).
	KindEmployed = "employed"
	// KindRental {min_months, town}: renting at one and the same address in
	// the place, continuously, for at least min_months (0: a lease in
	// force); with town, only at an address the region table classes urban.
	KindRental = "rental_same_address"
	// KindOwnsHome {town}: owns a home in the place; with town, at an
	// address the region table classes urban.
	KindOwnsHome = "owns_home"
	// KindLiving {min_months, work_and_study}: has lived in the place
	// (rented or owned homes, any addresses, without a break of more than
	// a month) for at least min_months. With work_and_study, for the
	// residence permit (居住证暂行条例 第二条: six months' residence and one
	// of a stable job, a stable home or continuous study), labour
	// contracts and school enrolments in the place evidence living there
	// too, as a worker in the employer's dormitory or a student in the
	// school's lives there without a lease of their own.
	KindLiving = "living"
	// KindInsurance {kinds, min_months, local (default true), continuous,
	// together}: contributed at least min_months to each insurance kind,
	// counting distinct months (in the place when local; months a transfer
	// of the account, 转移接续, carried into the place count there, and
	// those it carried out do not). A month paid in two regions (a job
	// changed mid-month) counts in the place when either lies there, and
	// once when counted anywhere. With together,
	// for seeds that ask for the insurances held at the same time (同时参加),
	// only months in which every listed kind was contributed count, so a
	// year of pension followed by a year of medical insurance is no year
	// of both; it needs at least two kinds. With schemes, for seeds that
	// ask for urban social insurance (城镇社会保险: schemes [employee]), a
	// month counts only when paid under one of them, by the enrolment of
	// its region (social_insurance.enrolled's scheme); a month of a region
	// with no enrolment on record counts.
	KindInsurance = "insurance_months"
	// KindDiploma {levels, within_years}: graduated at one of the GB/T 4658
	// levels, less than within_years ago when set.
	KindDiploma = "diploma"
	// KindBusiness {with_tax_registration}: a registered business in the place.
	KindBusiness = "business_licence"
	// KindFamilyReunion: the spouse is registered (hukou) at an urban
	// address in the place (the seed's 市辖区、旗县区政府驻地镇及其他建制镇区户籍,
	// by the region table's class), and is alive and registered.
	KindFamilyReunion = "family_reunion"
	// KindStudying: enrolled at a school in the place and not yet graduated.
	KindStudying = "studying"
	// KindPoints {threshold, items}: a points table; items that share a
	// group are alternatives, of which only the best-scoring counts
	// (PointsItem).
	KindPoints = "points"
	// KindAnyOf and KindAllOf combine conditions.
	KindAnyOf = "any_of"
	KindAllOf = "all_of"
)

// Point measures, for points items.
const (
	MeasureEmployedMonths  = "employed_months"
	MeasureRentalMonths    = "rental_months"
	MeasureOwnsHome        = "owns_home"
	MeasureInsuranceMonths = "insurance_months"
	MeasureLivingMonths    = "living_months"
)

// params lists the parameters each kind accepts.
var params = map[string][]string{
	KindHukouElsewhere: {"rural_to_urban", "to_spouse", "home_waived"},
	KindHukouIn:        {"codes"},
	KindContract:       {"min_months"},
	KindEmployed:       {"min_months"},
	KindRental:         {"min_months", "town"},
	KindOwnsHome:       {"town"},
	KindLiving:         {"min_months", "work_and_study"},
	KindInsurance:      {"kinds", "min_months", "local", "continuous", "together", "schemes"},
	KindDiploma:        {"levels", "within_years"},
	KindBusiness:       {"with_tax_registration"},
	KindFamilyReunion:  {},
	KindStudying:       {},
	KindPoints:         {"threshold", "items"},
	KindAnyOf:          nil, // a list
	KindAllOf:          nil,
}

// Kinds lists the condition kinds in a stable order.
func Kinds() []string {
	out := make([]string, 0, len(params))
	for k := range params {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Condition is a typed condition: Kind and the parameters that kind uses.
type Condition struct {
	Kind       string
	MinMonths  *int
	Kinds      []string
	Local      *bool
	Continuous bool
	Together   bool // only months in which every kind was contributed count
	Levels     []string
	// WithinYears is 0 when the diploma may be of any date.
	WithinYears int
	WithTax     bool
	Codes       []string
	// RuralToUrban lets a rural hukou in the place meet hukou_elsewhere
	// for a move to an urban address there.
	RuralToUrban bool
	// ToSpouse, with RuralToUrban, lets the spouse's registration at an
	// urban address of the place be the one a rural hukou moves to.
	ToSpouse bool
	// Schemes, for insurance_months, counts only months paid under these
	// social-insurance schemes (KindInsurance).
	Schemes []string `json:",omitempty"`
	// HomeWaived, with RuralToUrban, lets a rural hukou in the place meet
	// hukou_elsewhere without a home at an urban address. Left out of the
	// policy's digest when false, so that a policy not using it keeps the
	// digest an earlier release gave it (PolicyDigest): fields added later
	// are omitempty.
	HomeWaived bool `json:",omitempty"`
	// WorkAndStudy lets contracts and enrolments evidence living.
	WorkAndStudy bool
	// Town limits owns_home and rental_same_address to addresses the
	// region table classes urban (城镇: a city's urban area, a county seat
	// or another town), for seeds that open settlement only to a home in
	// a town (建制镇).
	Town   bool
	Of     []Condition
	Points *Points
}

// Points is a points table: the person qualifies with at least Threshold.
type Points struct {
	Threshold int          `yaml:"threshold"`
	Items     []PointsItem `yaml:"items"`
}

// PointsItem scores one measure: Points for every PerMonths months (or
// once, for owns_home), at most Max. Items that share a Group are
// alternatives: of them only the best-scoring one counts, on every day
// the total is taken (the first listed of those scoring the same).
type PointsItem struct {
	ID        string   `yaml:"id"`
	Text      string   `yaml:"text"`
	Measure   string   `yaml:"measure"`
	Kinds     []string `yaml:"kinds,omitempty"`
	Points    int      `yaml:"points"`
	PerMonths int      `yaml:"per_months,omitempty"`
	Max       int      `yaml:"max,omitempty"`
	// Local, for insurance_months only, counts months paid in the place
	// (the default, for seeds that say 当地) or, when false, anywhere, as
	// the insurance_months condition's local does: a seed that scores
	// insurance years without 当地 (黑政发〔2014〕25号 一（三）) counts them
	// wherever they were paid.
	Local *bool `yaml:"local,omitempty"`
	// Schemes, for insurance_months only, counts only months paid under
	// these social-insurance schemes, as the insurance_months condition's
	// schemes does.
	Schemes []string `yaml:"schemes,omitempty" json:",omitempty"`
	// Group, when set, names the alternatives the item is one of, for a
	// seed that scores one thing or another (合法稳定住所（含租赁）: an owned
	// home or a rental, not both). A group holds two items or more,
	// listed one after another; Load rejects a group of one (a misspelt
	// name would otherwise make an item score on its own) and a group
	// split by other items.
	Group string `yaml:"group,omitempty"`
}

// pointsItemFields are the keys a points item may have. Points tables are
// decoded from a node, where yaml.v3 does not reject unknown fields, so a
// misspelt option would otherwise be dropped without a word.
var pointsItemFields = []string{"id", "text", "measure", "kinds", "points", "per_months", "max", "local", "schemes", "group"}

// checkPointsItems rejects unknown keys in the items of a points table,
// and a group that is not text: decoding would turn an empty or blank
// group into no group at all, and the item would score on its own.
func checkPointsItems(v *yaml.Node) error {
	for i := 0; i+1 < len(v.Content); i += 2 {
		if v.Content[i].Value != "items" || v.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		for _, item := range v.Content[i+1].Content {
			if item.Kind != yaml.MappingNode {
				continue
			}
			for j := 0; j+1 < len(item.Content); j += 2 {
				k, val := item.Content[j], item.Content[j+1]
				if !slices.Contains(pointsItemFields, k.Value) {
					return fmt.Errorf("line %d: points item has no field %q (it takes: %s)", k.Line, k.Value, strings.Join(pointsItemFields, ", "))
				}
				if k.Value == "group" && (val.Kind != yaml.ScalarNode || val.Tag != "!!str" || strings.TrimSpace(val.Value) == "") {
					return fmt.Errorf("line %d: points item %s: group must be non-empty text", val.Line, itemID(item))
				}
			}
		}
	}
	return nil
}

// itemID is the id a points item's node gives, or "" when it has none.
func itemID(item *yaml.Node) string {
	for j := 0; j+1 < len(item.Content); j += 2 {
		if item.Content[j].Value == "id" {
			return item.Content[j+1].Value
		}
	}
	return ""
}

// UnmarshalYAML reads a condition written as a mapping with exactly one
// key, the kind: `{insurance_months: {kinds: [pension], min_months: 12}}`,
// `{any_of: [...]}`, `{owns_home: {}}`.
func (c *Condition) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		return fmt.Errorf("line %d: a condition is a mapping with exactly one key, its kind (one of %s)", n.Line, strings.Join(Kinds(), ", "))
	}
	c.Kind = n.Content[0].Value
	v := n.Content[1]
	allowed, ok := params[c.Kind]
	if !ok {
		return fmt.Errorf("line %d: unknown condition kind %q (known: %s)", n.Line, c.Kind, strings.Join(Kinds(), ", "))
	}
	if c.Kind == KindAnyOf || c.Kind == KindAllOf {
		if v.Kind != yaml.SequenceNode {
			return fmt.Errorf("line %d: %s takes a list of conditions", v.Line, c.Kind)
		}
		return v.Decode(&c.Of)
	}
	if v.Kind == yaml.ScalarNode && (v.Tag == "!!null" || v.Value == "") {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s takes a mapping of parameters", v.Line, c.Kind)
	}
	for i := 0; i < len(v.Content); i += 2 {
		if k := v.Content[i].Value; !slices.Contains(allowed, k) {
			return fmt.Errorf("line %d: %s has no parameter %q (it takes: %s)", v.Content[i].Line, c.Kind, k, strings.Join(allowed, ", "))
		}
	}
	if c.Kind == KindPoints {
		if err := checkPointsItems(v); err != nil {
			return err
		}
		c.Points = new(Points)
		return v.Decode(c.Points)
	}
	var p struct {
		MinMonths    *int     `yaml:"min_months"`
		Kinds        []string `yaml:"kinds"`
		Local        *bool    `yaml:"local"`
		Continuous   bool     `yaml:"continuous"`
		Together     bool     `yaml:"together"`
		Levels       []string `yaml:"levels"`
		WithinYears  int      `yaml:"within_years"`
		WithTax      bool     `yaml:"with_tax_registration"`
		Codes        []string `yaml:"codes"`
		RuralToUrban bool     `yaml:"rural_to_urban"`
		ToSpouse     bool     `yaml:"to_spouse"`
		HomeWaived   bool     `yaml:"home_waived"`
		Schemes      []string `yaml:"schemes"`
		WorkAndStudy bool     `yaml:"work_and_study"`
		Town         bool     `yaml:"town"`
	}
	if err := v.Decode(&p); err != nil {
		return err
	}
	c.MinMonths, c.Kinds, c.Local, c.Continuous, c.Together = p.MinMonths, p.Kinds, p.Local, p.Continuous, p.Together
	c.Levels, c.WithinYears, c.WithTax, c.Codes = p.Levels, p.WithinYears, p.WithTax, p.Codes
	c.RuralToUrban, c.ToSpouse, c.HomeWaived, c.WorkAndStudy, c.Town = p.RuralToUrban, p.ToSpouse, p.HomeWaived, p.WorkAndStudy, p.Town
	c.Schemes = p.Schemes
	return nil
}

// validate checks a condition's parameters against its kind and the
// policy's cap.
func (c *Condition) validate(capMonths int) error {
	needMonths := func() error {
		if c.MinMonths == nil {
			return fmt.Errorf("%s: min_months is required", c.Kind)
		}
		if *c.MinMonths < 0 {
			return fmt.Errorf("%s: min_months %d is negative", c.Kind, *c.MinMonths)
		}
		return nil
	}
	overCap := func(months int) error {
		if capMonths > 0 && months > capMonths {
			return fmt.Errorf("%s: %d months exceeds the seed's cap of %d months", c.Kind, months, capMonths)
		}
		return nil
	}
	switch c.Kind {
	case KindHukouElsewhere:
		if c.ToSpouse && !c.RuralToUrban {
			return errors.New("hukou_elsewhere: to_spouse needs rural_to_urban (the spouse's address is the one a rural hukou moves to)")
		}
		if c.HomeWaived && !c.RuralToUrban {
			return errors.New("hukou_elsewhere: home_waived needs rural_to_urban (it waives the town home a rural hukou moves to)")
		}
	case KindHukouIn:
		if len(c.Codes) == 0 {
			return errors.New("hukou_in: codes are required")
		}
		return checkCodes(c.Codes)
	case KindContract, KindEmployed:
		if err := needMonths(); err != nil {
			return err
		}
		return overCap(*c.MinMonths)
	case KindRental, KindLiving:
		return needMonths()
	case KindInsurance:
		if err := needMonths(); err != nil {
			return err
		}
		if err := checkInsurances(c.Kinds); err != nil {
			return err
		}
		if c.Together && len(c.Kinds) < 2 {
			return errors.New("insurance_months: together needs at least two kinds held at the same time")
		}
		if err := checkSchemes(c.Schemes); err != nil {
			return fmt.Errorf("insurance_months: %w", err)
		}
		return overCap(*c.MinMonths)
	case KindDiploma:
		if len(c.Levels) == 0 {
			return errors.New("diploma: levels are required")
		}
		for _, l := range c.Levels {
			if _, ok := codes.Education[l]; !ok {
				return fmt.Errorf("diploma: %q is not a GB/T 4658 education level", l)
			}
		}
		if c.WithinYears < 0 {
			return errors.New("diploma: within_years is negative")
		}
	case KindPoints:
		return c.Points.validate(capMonths)
	case KindAnyOf, KindAllOf:
		if len(c.Of) == 0 {
			return fmt.Errorf("%s: at least one condition is required", c.Kind)
		}
		for i := range c.Of {
			if err := c.Of[i].validate(capMonths); err != nil {
				return fmt.Errorf("%s[%d]: %w", c.Kind, i, err)
			}
		}
	case "":
		return errors.New("condition is missing")
	}
	return nil
}

// checkSchemes rejects a scheme the catalogue does not name, or one
// listed twice.
func checkSchemes(schemes []string) error {
	for i, s := range schemes {
		if !slices.Contains(schemas.Schemes, s) {
			return fmt.Errorf("schemes: %q is not a social-insurance scheme (%s)", s, strings.Join(schemas.Schemes, ", "))
		}
		if slices.Contains(schemes[:i], s) {
			return fmt.Errorf("schemes: %q is listed twice", s)
		}
	}
	return nil
}

func checkInsurances(kinds []string) error {
	if len(kinds) == 0 {
		return errors.New("insurance_months: kinds are required")
	}
	for _, k := range kinds {
		if !slices.Contains(schemas.Insurances, k) {
			return fmt.Errorf("insurance_months: %q is not an insurance (one of %s)", k, strings.Join(schemas.Insurances, ", "))
		}
	}
	return nil
}

func checkCodes(cs []string) error {
	for _, c := range cs {
		if len(c) < 2 || len(c) > 12 || strings.Trim(c, "0123456789") != "" {
			return fmt.Errorf("%q is not a division code", c)
		}
	}
	return nil
}

func (p *Points) validate(capMonths int) error {
	if p.Threshold <= 0 {
		return errors.New("points: threshold is required and must be positive")
	}
	if len(p.Items) == 0 {
		return errors.New("points: items are required")
	}
	if err := p.checkGroups(); err != nil {
		return err
	}
	// reachable adds what every item can give at most, and for a group
	// only the most one of its items can give.
	reachable := 0
	groupBest := map[string]int{}
	reach := func(it PointsItem, most int) {
		if it.Group == "" {
			reachable += most
		} else {
			groupBest[it.Group] = max(groupBest[it.Group], most)
		}
	}
	seen := map[string]bool{}
	for _, it := range p.Items {
		if it.ID == "" || seen[it.ID] {
			return fmt.Errorf("points: item id %q is missing or repeated", it.ID)
		}
		seen[it.ID] = true
		if it.Points <= 0 {
			return fmt.Errorf("points: item %s: points must be positive", it.ID)
		}
		if it.Local != nil && it.Measure != MeasureInsuranceMonths {
			return fmt.Errorf("points: item %s: local applies to insurance_months only (the other measures count in the place)", it.ID)
		}
		if len(it.Schemes) > 0 && it.Measure != MeasureInsuranceMonths {
			return fmt.Errorf("points: item %s: schemes applies to insurance_months only", it.ID)
		}
		if err := checkSchemes(it.Schemes); err != nil {
			return fmt.Errorf("points: item %s: %w", it.ID, err)
		}
		switch it.Measure {
		case MeasureOwnsHome:
			reach(it, it.Points)
			continue
		case MeasureInsuranceMonths:
			if err := checkInsurances(it.Kinds); err != nil {
				return fmt.Errorf("points: item %s: %w", it.ID, err)
			}
		case MeasureEmployedMonths, MeasureRentalMonths, MeasureLivingMonths:
		default:
			return fmt.Errorf("points: item %s: unknown measure %q", it.ID, it.Measure)
		}
		if it.PerMonths <= 0 || it.Max <= 0 {
			return fmt.Errorf("points: item %s: per_months and max are required", it.ID)
		}
		// Employment and insurance may not be required for longer than the
		// cap: no item may keep scoring after it.
		if months := it.PerMonths * ((it.Max + it.Points - 1) / it.Points); capMonths > 0 && months > capMonths &&
			(it.Measure == MeasureEmployedMonths || it.Measure == MeasureInsuranceMonths) {
			return fmt.Errorf("points: item %s keeps scoring up to %d months, above the seed's cap of %d months", it.ID, months, capMonths)
		}
		reach(it, it.Max)
	}
	for _, most := range groupBest {
		reachable += most
	}
	if reachable < p.Threshold {
		return fmt.Errorf("points: threshold %d is above the %d points the items can give", p.Threshold, reachable)
	}
	return nil
}

// checkGroups rejects a group of a single item, which a misspelt group
// name makes, and a group whose items are split by another item: a table
// lists the alternatives together, as the seed names them.
func (p *Points) checkGroups() error {
	count := map[string]int{}
	first := map[string]string{}
	for i, it := range p.Items {
		if it.Group == "" {
			continue
		}
		if count[it.Group] > 0 && p.Items[i-1].Group != it.Group {
			return fmt.Errorf("points: item %s of group %s is not listed right after the group's other items", it.ID, it.Group)
		}
		if count[it.Group] == 0 {
			first[it.Group] = it.ID
		}
		count[it.Group]++
	}
	for _, it := range p.Items {
		if it.Group != "" && count[it.Group] == 1 {
			return fmt.Errorf("points: group %s has only item %s; a group names two items or more, of which the best-scoring counts", it.Group, first[it.Group])
		}
	}
	return nil
}

// familyRelations are the words a policy may use in Family.
var familyRelations = []string{"spouse", "children", "minor_children", "unmarried_children", "grandchildren", "parents", "spouse_parents"}

// policyID is the form of a policy id that the published documents give
// (eligibility.schema.json, the OpenAPI document) and that the
// pop.eligibility subjects rely on: written with "_" for "/", it must be
// one subject token that maps back to the id.
var policyID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9-]*$`)

// validate checks the policy as a whole; errors name the clause.
func (p *Policy) validate(wantID string) error {
	switch {
	case p.ID == "":
		return errors.New("id is required")
	case p.ID != wantID:
		return fmt.Errorf("id %q does not match the file's path %q", p.ID, wantID)
	case !policyID.MatchString(p.ID):
		return fmt.Errorf("id %q is not <group>/<name> in lower-case letters, digits and hyphens, each beginning with a letter or digit: it is one token of the pop.eligibility subjects and the documented form of a policy id; rename the file", p.ID)
	case p.Title == "":
		return errors.New("title is required")
	case p.Seed.Doc == "" || p.Seed.File == "":
		return errors.New("seed needs doc and file")
	case len(p.Places) == 0:
		return errors.New("places are required")
	case len(p.Clauses) == 0:
		return errors.New("clauses are required")
	}
	for _, pl := range p.Places {
		if pl.Name == "" || len(pl.Codes) == 0 {
			return fmt.Errorf("place %q needs a name and codes", pl.Name)
		}
		if err := checkCodes(pl.Codes); err != nil {
			return fmt.Errorf("place %s: %w", pl.Name, err)
		}
	}
	for _, f := range p.Family {
		if !slices.Contains(familyRelations, f) {
			return fmt.Errorf("family: %q is not one of %s", f, strings.Join(familyRelations, ", "))
		}
	}
	ids := map[string]bool{}
	for i := range p.Clauses {
		cl := &p.Clauses[i]
		if cl.ID == "" {
			return fmt.Errorf("clause %d: id is required", i+1)
		}
		if ids[cl.ID] {
			return fmt.Errorf("clause %s: id is repeated", cl.ID)
		}
		ids[cl.ID] = true
		if cl.Text == "" || cl.Ref == "" {
			return fmt.Errorf("clause %s: text and ref (the seed paragraph) are required", cl.ID)
		}
		if err := cl.Condition.validate(p.CapMonths); err != nil {
			return fmt.Errorf("clause %s: %w", cl.ID, err)
		}
	}
	for _, r := range p.Routes {
		if r.ID == "" || len(r.Clauses) == 0 {
			return fmt.Errorf("route %q needs an id and clauses", r.ID)
		}
		for _, c := range r.Clauses {
			if !ids[c] {
				return fmt.Errorf("route %s: no clause %q", r.ID, c)
			}
		}
	}
	return nil
}

// routes returns the policy's routes, or one route of every clause.
func (p *Policy) routes() []Route {
	if len(p.Routes) > 0 {
		return p.Routes
	}
	r := Route{ID: "all"}
	for _, c := range p.Clauses {
		r.Clauses = append(r.Clauses, c.ID)
	}
	return []Route{r}
}

// PolicyError says which file, policy and clause a loading error is about.
type PolicyError struct {
	File   string
	Policy string
	Err    error
}

func (e *PolicyError) Error() string {
	if e.Policy != "" {
		return fmt.Sprintf("policy file %s: policy %s: %v", e.File, e.Policy, e.Err)
	}
	return fmt.Sprintf("policy file %s: %v", e.File, e.Err)
}

func (e *PolicyError) Unwrap() error { return e.Err }

// Catalog is the set of loaded policies. It is immutable and safe for
// concurrent use.
type Catalog struct {
	byID map[string]*Policy
	ids  []string
}

// Summary is a policy's id, title and digest (Policy.Digest, the version
// a decision's policy_digest names), as GET /v1/policies lists them.
type Summary struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Digest string `json:"digest"`
}

// CasesSuffix ends the names of example-case files, which Load skips.
const CasesSuffix = "_cases.yaml"

// Load reads every *.yaml file of fsys except the *_cases.yaml ones as one
// policy each, and validates them. The first invalid file stops the load
// with a *PolicyError naming the file, the policy and the clause.
func Load(fsys fs.FS) (*Catalog, error) {
	cat := &Catalog{byID: map[string]*Policy{}}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || path.Ext(name) != ".yaml" || strings.HasSuffix(name, CasesSuffix) {
			return nil
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return fmt.Errorf("reading policy file %s: %w", name, err)
		}
		p, err := parsePolicy(name, b)
		if err != nil {
			return err
		}
		cat.byID[p.ID] = p
		cat.ids = append(cat.ids, p.ID)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading policies: %w", err)
	}
	if len(cat.ids) == 0 {
		return nil, errors.New("loading policies: no policy files found")
	}
	sort.Strings(cat.ids)
	return cat, nil
}

// parsePolicy decodes and validates one policy file.
func parsePolicy(name string, b []byte) (*Policy, error) {
	p := &Policy{file: name}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(p); err != nil {
		return nil, &PolicyError{File: name, Policy: p.ID, Err: fmt.Errorf("decoding: %w", err)}
	}
	if err := p.validate(strings.TrimSuffix(name, ".yaml")); err != nil {
		return nil, &PolicyError{File: name, Policy: p.ID, Err: err}
	}
	p.digest, p.digestOf = policyDigest(p), p
	return p, nil
}

// Policies lists the loaded policies sorted by id.
func (c *Catalog) Policies() []Summary {
	out := make([]Summary, len(c.ids))
	for i, id := range c.ids {
		p := c.byID[id]
		out[i] = Summary{ID: id, Title: p.Title, Digest: p.Digest()}
	}
	return out
}

// Policy returns a policy by id.
func (c *Catalog) Policy(id string) (*Policy, bool) {
	p, ok := c.byID[id]
	return p, ok
}

// RelevantSections lists the golden-record sections the policy depends
// on, sorted, so that the hub re-evaluates a person only when one of them
// changed. Status is always included: a death or cancellation ends
// eligibility.
func RelevantSections(p *Policy) []schemas.Section {
	set := map[schemas.Section]bool{schemas.SecStatus: true}
	var walk func(c *Condition)
	walk = func(c *Condition) {
		switch c.Kind {
		case KindHukouElsewhere, KindHukouIn:
			set[schemas.SecHukou] = true
			if c.RuralToUrban { // where the person lives decides a rural hukou
				set[schemas.SecHousing] = true
			}
			if c.ToSpouse { // and where the spouse is registered
				set[schemas.SecMarital] = true
			}
		case KindContract, KindEmployed:
			set[schemas.SecEmployment] = true
		case KindRental, KindOwnsHome, KindLiving:
			set[schemas.SecHousing] = true
			if c.WorkAndStudy {
				set[schemas.SecEmployment], set[schemas.SecEducation] = true, true
			}
		case KindInsurance:
			set[schemas.SecSocialInsurance] = true
		case KindDiploma, KindStudying:
			set[schemas.SecEducation] = true
		case KindBusiness:
			set[schemas.SecTax] = true
		case KindFamilyReunion:
			set[schemas.SecMarital] = true
		case KindPoints:
			for _, it := range c.Points.Items {
				switch it.Measure {
				case MeasureEmployedMonths:
					set[schemas.SecEmployment] = true
				case MeasureInsuranceMonths:
					set[schemas.SecSocialInsurance] = true
				default:
					set[schemas.SecHousing] = true
				}
			}
		}
		for i := range c.Of {
			walk(&c.Of[i])
		}
	}
	for i := range p.Clauses {
		walk(&p.Clauses[i].Condition)
	}
	if slices.Contains(p.Family, "spouse") {
		set[schemas.SecMarital] = true
	}
	out := make([]schemas.Section, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}
