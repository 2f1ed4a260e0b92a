package eligibility

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// AsOfDay turns a YYYY-MM-DD day into the instant Evaluate takes: the last
// nanosecond of that day in China Standard Time, so that every change of
// the day counts.
func AsOfDay(s string) (time.Time, error) {
	d, ok := parseDay(s)
	if !ok {
		return time.Time{}, fmt.Errorf("as_of %q is not a date YYYY-MM-DD", s)
	}
	return endOfDay(d), nil
}

// CaseFile is a policy's example cases, kept next to it as
// <name>_cases.yaml. A case describes a person through events, as the
// departments would send them, and the decision expected.
type CaseFile struct {
	Cases []Case `yaml:"cases"`
}

// Case is one example person.
//
//   - name: rents two years, contributes two years
//     as_of: "2025-03-01"
//     person: {birth_date: "1990-05-01", hukou: "230102001001"}
//     events:
//   - {type: housing.rental_registered, time: "2023-01-01",
//     data: {lease_id: L1, address_code: "230602013001", start: "2023-01-01"}}
//   - {type: social_insurance.contribution_recorded, months: "2023-01..2024-12",
//     data: {region: "230602", insurances: [pension]}}
//     expect: {eligible: true, conditions: {rental: true}}
//
// Times are YYYY-MM-DD (09:00 China Standard Time) or RFC 3339; months
// repeats a contribution for each month of the range, recorded on the
// 15th. Division codes must be quoted.
type Case struct {
	Name   string       `yaml:"name"`
	AsOf   string       `yaml:"as_of"`
	Person CasePerson   `yaml:"person"`
	Events []CaseEvent  `yaml:"events"`
	Family []CasePerson `yaml:"family"`
	Expect CaseExpect   `yaml:"expect"`
	Status string       `yaml:"status,omitempty"`
}

// CasePerson describes a person: the builder registers their hukou at
// birth (or on Since) at Hukou in household Household.
type CasePerson struct {
	Label     string `yaml:"label,omitempty"`
	Name      string `yaml:"name,omitempty"`
	BirthDate string `yaml:"birth_date"`
	Hukou     string `yaml:"hukou,omitempty"`
	Household string `yaml:"household,omitempty"`
	Since     string `yaml:"since,omitempty"`
	// MarriedOn marries a family member to the subject on that day.
	MarriedOn string `yaml:"married_on,omitempty"`
	// Married gives a family member a marriage of their own (not to the
	// subject), so that they are not unmarried.
	Married bool `yaml:"married,omitempty"`
}

// CaseEvent is one event of the subject.
type CaseEvent struct {
	Type   schemas.Type   `yaml:"type"`
	Time   string         `yaml:"time"`
	Months string         `yaml:"months,omitempty"`
	Data   map[string]any `yaml:"data"`
}

// CaseExpect is what the decision must say.
type CaseExpect struct {
	Eligible   bool            `yaml:"eligible"`
	Conditions map[string]bool `yaml:"conditions"`
	// QualifiesOn, when set, must equal the decision's ("none" for "").
	QualifiesOn string `yaml:"qualifies_on,omitempty"`
	// Family, when set, lists the expected relations in order.
	Family []string `yaml:"family,omitempty"`
}

// CaseResult is the outcome of one example case.
type CaseResult struct {
	File     string   `json:"file"`
	Policy   string   `json:"policy"`
	Case     string   `json:"case"`
	Passed   bool     `json:"passed"`
	Problems []string `json:"problems,omitempty"`
	Decision Decision `json:"decision"`
}

// RunCases runs every *_cases.yaml file of fsys against the policy beside
// it (x_cases.yaml belongs to policy x) and reports one result per case; a
// file that cannot be read or names no loaded policy gives one failed
// result. It is what `pophub policies test` runs.
func RunCases(cat *Catalog, fsys fs.FS) []CaseResult {
	var out []CaseResult
	_ = fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			out = append(out, CaseResult{File: name, Problems: []string{err.Error()}})
			return nil
		}
		if d.IsDir() || !strings.HasSuffix(name, CasesSuffix) {
			return nil
		}
		id := strings.TrimSuffix(name, CasesSuffix)
		fail := func(err error) {
			out = append(out, CaseResult{File: name, Policy: id, Problems: []string{err.Error()}})
		}
		p, ok := cat.Policy(id)
		if !ok {
			fail(fmt.Errorf("no policy %s beside the cases", id))
			return nil
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			fail(fmt.Errorf("reading cases: %w", err))
			return nil
		}
		var cf CaseFile
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cf); err != nil {
			fail(fmt.Errorf("decoding cases: %w", err))
			return nil
		}
		if len(cf.Cases) == 0 {
			fail(fmt.Errorf("no cases"))
		}
		for _, c := range cf.Cases {
			r := RunCase(p, c)
			r.File = name
			out = append(out, r)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out
}

// RunCase evaluates one example case against p and compares the decision
// with what the case expects.
func RunCase(p *Policy, c Case) CaseResult {
	r := CaseResult{Policy: p.ID, Case: c.Name}
	asOf, err := AsOfDay(c.AsOf)
	if err != nil {
		r.Problems = append(r.Problems, err.Error())
		return r
	}
	subj, family, err := c.Build()
	if err != nil {
		r.Problems = append(r.Problems, err.Error())
		return r
	}
	d := Evaluate(p, subj, family, asOf)
	r.Decision = d
	if d.Eligible != c.Expect.Eligible {
		r.Problems = append(r.Problems, fmt.Sprintf("eligible is %t, want %t", d.Eligible, c.Expect.Eligible))
	}
	got := map[string]ConditionResult{}
	for _, cr := range d.Conditions {
		got[cr.ID] = cr
	}
	ids := make([]string, 0, len(c.Expect.Conditions))
	for id := range c.Expect.Conditions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		want := c.Expect.Conditions[id]
		cr, ok := got[id]
		switch {
		case !ok:
			r.Problems = append(r.Problems, fmt.Sprintf("no condition %q in the policy", id))
		case cr.Met != want:
			r.Problems = append(r.Problems, fmt.Sprintf("condition %s met is %t, want %t (missing: %s)", id, cr.Met, want, cr.Missing))
		}
	}
	if q := c.Expect.QualifiesOn; q != "" {
		if q == "none" {
			q = ""
		}
		if d.QualifiesOn != q {
			r.Problems = append(r.Problems, fmt.Sprintf("qualifies_on is %q, want %q", d.QualifiesOn, q))
		}
	}
	if c.Expect.Family != nil {
		var rels []string
		for _, m := range d.Family {
			rels = append(rels, m.Relation)
		}
		if strings.Join(rels, ",") != strings.Join(c.Expect.Family, ",") {
			r.Problems = append(r.Problems, fmt.Sprintf("family is [%s], want [%s]", strings.Join(rels, ","), strings.Join(c.Expect.Family, ",")))
		}
	}
	r.Passed = len(r.Problems) == 0
	return r
}

// caseTime reads a case time: a day (09:00 CST) or RFC 3339.
func caseTime(s string) (time.Time, error) {
	if d, ok := parseDay(s); ok {
		return time.Date(d.Year(), d.Month(), d.Day(), 9, 0, 0, 0, china), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q is neither YYYY-MM-DD nor RFC 3339", s)
	}
	return t, nil
}

// caseID makes a valid synthetic citizen ID for the n-th person of a case.
func caseID(birth string, n int) (citizenid.ID, error) {
	d, ok := parseDay(birth)
	if !ok {
		return "", fmt.Errorf("birth_date %q is not a date", birth)
	}
	first := fmt.Sprintf("230102%s%03d", d.Format("20060102"), n*2+1)
	return citizenid.ID(first + string(citizenid.CheckChar(first))), nil
}

// Build turns the case into the subject (record and history, as the hub's
// merge would make them) and the family, each with their history.
func (c *Case) Build() (Subject, []Subject, error) {
	ids, in, err := c.Inputs()
	if err != nil {
		return Subject{}, nil, err
	}
	out := merge.Batch(nil, in, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	record := func(id citizenid.ID) hub.Record {
		if st := out.States[id]; st != nil {
			return st.Record()
		}
		return hub.Record{CitizenID: id, Status: hub.StatusActive}
	}
	history := func(id citizenid.ID) []hub.Change {
		var h []hub.Change
		for _, e := range out.History {
			if e.CitizenID == id {
				h = append(h, e.Change)
			}
		}
		return h
	}
	subj := Subject{Record: record(ids[0]), History: history(ids[0])}
	if c.Status != "" {
		subj.Record.Status = c.Status
	}
	family := make([]Subject, 0, len(c.Family))
	for _, id := range ids[1:] {
		family = append(family, Subject{Record: record(id), History: history(id)})
	}
	return subj, family, nil
}

// Inputs turns the case into the events the departments would send: ids[0]
// is the subject's citizen ID, the rest the family's in order. The events
// can be applied to a real store (Status is not an event: a case that sets
// it is only meaningful through Build).
func (c *Case) Inputs() (ids []citizenid.ID, in []hub.Input, err error) {
	people := append([]CasePerson{c.Person}, c.Family...)
	ids = make([]citizenid.ID, len(people))
	seq := 0
	add := func(who citizenid.ID, t schemas.Type, at time.Time, data any) error {
		raw, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("encoding %s data: %w", t, err)
		}
		payload := schemas.NewData(t)
		if payload == nil {
			return fmt.Errorf("event type %q is not in the catalogue", t)
		}
		if err := json.Unmarshal(raw, payload); err != nil {
			return fmt.Errorf("decoding %s data: %w", t, err)
		}
		seq++
		in = append(in, hub.Input{Event: schemas.Event{SpecVersion: schemas.SpecVersion, ID: fmt.Sprintf("case-%04d", seq),
			Source: schemas.SourceOf(t), Type: t, Subject: who, Time: at, DataContentType: "application/json",
			Data: raw, Payload: payload}})
		return nil
	}
	for i, pp := range people {
		id, err := caseID(pp.BirthDate, i)
		if err != nil {
			return nil, nil, fmt.Errorf("person %d: %w", i, err)
		}
		ids[i] = id
		if pp.Hukou == "" {
			continue
		}
		since := pp.Since
		if since == "" {
			since = pp.BirthDate
		}
		at, err := caseTime(since)
		if err != nil {
			return nil, nil, err
		}
		hh := pp.Household
		if hh == "" {
			hh = fmt.Sprintf("household-%d", i)
		}
		name := pp.Name
		if name == "" {
			name = "person " + strconv.Itoa(i)
		}
		err = add(id, schemas.HukouRegistered, at, schemas.HukouRegisteredData{Name: name, Gender: "1", BirthDate: pp.BirthDate,
			Ethnicity: "01", AddressCode: pp.Hukou, HouseholdID: hh, Reason: "birth"})
		if err != nil {
			return nil, nil, err
		}
	}
	for i, pp := range c.Family {
		member := ids[i+1]
		switch {
		case pp.MarriedOn != "":
			at, err := caseTime(pp.MarriedOn)
			if err != nil {
				return nil, nil, err
			}
			if err := add(ids[0], schemas.MarriageRegistered, at, map[string]any{"spouse_id": string(member)}); err != nil {
				return nil, nil, err
			}
			if err := add(member, schemas.MarriageRegistered, at, map[string]any{"spouse_id": string(ids[0])}); err != nil {
				return nil, nil, err
			}
		case pp.Married:
			other, _ := caseID("1950-01-01", 90+i)
			at, _ := caseTime(pp.BirthDate)
			if err := add(member, schemas.MarriageRegistered, at.AddDate(20, 0, 0), map[string]any{"spouse_id": string(other)}); err != nil {
				return nil, nil, err
			}
		}
	}
	for _, ev := range c.Events {
		data := stringify(ev.Data).(map[string]any)
		if ev.Months == "" {
			at, err := caseTime(ev.Time)
			if err != nil {
				return nil, nil, err
			}
			if err := add(ids[0], ev.Type, at, data); err != nil {
				return nil, nil, err
			}
			continue
		}
		from, to, ok := strings.Cut(ev.Months, "..")
		first, err1 := time.Parse("2006-01", from)
		last, err2 := time.Parse("2006-01", to)
		if !ok || err1 != nil || err2 != nil || last.Before(first) {
			return nil, nil, fmt.Errorf("months %q is not YYYY-MM..YYYY-MM", ev.Months)
		}
		for m := first; !m.After(last); m = m.AddDate(0, 1, 0) {
			d := map[string]any{}
			for k, v := range data {
				d[k] = v
			}
			d["month"] = m.Format("2006-01")
			at := time.Date(m.Year(), m.Month(), 15, 9, 0, 0, 0, china)
			if err := add(ids[0], ev.Type, at, d); err != nil {
				return nil, nil, err
			}
		}
	}
	return ids, in, nil
}

// stringify turns YAML numbers into strings, so that an unquoted division
// code still decodes into the string fields of event data.
func stringify(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = stringify(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = stringify(e)
		}
		return out
	case int:
		return strconv.Itoa(x)
	case nil:
		return map[string]any{}
	}
	return v
}
