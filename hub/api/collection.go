package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/stats"
	"github.com/pophub/pophub/schemas/region"
)

// Lister walks golden records by region. hub.Store satisfies it.
type Lister interface {
	Persons(ctx context.Context, q hub.PersonQuery) ([]hub.Record, string, error)
}

// Counter answers counts as of a day. hub.Store satisfies it.
type Counter interface {
	Counts(ctx context.Context, q hub.CountQuery) (map[string]hub.Tally, error)
}

// Regions is the division table the statistics routes name regions and
// find children with.
type Regions interface {
	// Name returns a division's name, and whether the table has the code.
	Name(code string) (string, bool)
	// Children lists a division's direct children's codes in code order.
	Children(code string) []string
}

// queryHandler answers a route that names no person. It may add to o the
// people whose records it disclosed.
type queryHandler func(r *http.Request, g Grant, o *Outcome) (any, error)

// queryRoute wraps a queryHandler: Authorize, handle, write JSON or a
// problem, report the Outcome to the Grant.
func (s *Server) queryRoute(route string, h queryHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, ok := s.authorize(w, r, route)
		if !ok {
			return
		}
		defer doneOnPanic(r.Context(), g, func() Outcome { return Outcome{Route: route} })
		var o Outcome
		body, err := h(r, g, &o)
		status := http.StatusOK
		if err != nil {
			status = kindOf(err).status
			s.fail(w, r, err)
			o = Outcome{} // nothing was disclosed
		} else {
			s.writeJSON(w, r, status, body)
		}
		o.Route, o.Status, o.Err = route, status, err
		g.Done(r.Context(), o)
	})
}

// PersonsPage is the body of GET /v1/persons.
type PersonsPage struct {
	Persons []hub.Record `json:"persons"`
	// Next is the after= token of the next page; empty on the last.
	Next string `json:"next"`
	// StreamSequence is the last sequence of the notification stream when
	// the walk began, the same on every page of one walk: a subscriber
	// that then consumes from StreamSequence+1, skipping notifications of
	// versions it already holds, misses nothing and sees nothing twice.
	StreamSequence uint64 `json:"stream_sequence"`
}

// listPersons answers GET /v1/persons?region=&limit=&after=. Every
// person on the page is a disclosure of its own: a walk reads records as
// surely as GET /v1/persons/{citizen_id} does.
func (s *Server) listPersons(r *http.Request, g Grant, o *Outcome) (any, error) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("limit %q is not a number: %w", v, hub.ErrInvalid)
		}
		limit = n
	}
	reg := q.Get("region")
	if reg != "" && !region.IsLevelCode(reg) {
		return nil, fmt.Errorf("region %q is not a 2-, 4-, 6-, 9- or 12-digit division code: %w", reg, hub.ErrInvalid)
	}
	var seq uint64
	cursor := ""
	if tok := q.Get("after"); tok != "" {
		var err error
		if seq, cursor, err = decodePageToken(tok); err != nil {
			return nil, err
		}
	} else if s.cfg.StreamSequence != nil {
		var err error
		if seq, err = s.cfg.StreamSequence(r.Context()); err != nil {
			return nil, fmt.Errorf("reading the notification stream's sequence: %w: %w", hub.ErrUnavailable, err)
		}
	}
	recs, next, err := s.cfg.Lister.Persons(r.Context(), hub.PersonQuery{Region: reg, After: cursor, Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("listing persons: %w", err)
	}
	page := PersonsPage{Persons: make([]hub.Record, 0, len(recs)), StreamSequence: seq}
	o.Others = make([]Disclosure, 0, len(recs))
	for _, rec := range recs {
		page.Persons = append(page.Persons, g.Record(r.Context(), rec))
		o.Others = append(o.Others, Disclosure{CitizenID: rec.CitizenID})
	}
	if next != "" {
		page.Next = encodePageToken(seq, next)
	}
	return page, nil
}

// A page token carries the walk's stream sequence and the store's cursor.
func encodePageToken(seq uint64, cursor string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(seq, 10) + ":" + cursor))
}

func decodePageToken(tok string) (uint64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	bad := fmt.Errorf("after: not a page token of this API: %w", hub.ErrInvalid)
	if err != nil {
		return 0, "", bad
	}
	seqText, cursor, ok := strings.Cut(string(b), ":")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if !ok || err != nil || cursor == "" {
		return 0, "", bad
	}
	return seq, cursor, nil
}

// RegionCount is a region's counts in a statistics answer.
//
// A count is a JSON number, or a marker when small-cell suppression hides
// it from a caller who is not the statistics bureau (see MinCeller): "<k"
// for a count below k, "suppressed" for one hidden so that another cannot
// be worked out.
type RegionCount struct {
	Region string     `json:"region"`
	Name   string     `json:"name"`
	Urban  stats.Cell `json:"urban"`
	Rural  stats.Cell `json:"rural"`
	Total  stats.Cell `json:"total"`
}

// UrbanRural is the body of GET /v1/stats/urban-rural.
type UrbanRural struct {
	RegionCount
	AsOf     string        `json:"as_of"`
	Children []RegionCount `json:"children,omitempty"`
}

// PermitCount is a region's residence-permit holders.
type PermitCount struct {
	Region  string     `json:"region"`
	Name    string     `json:"name"`
	Holders stats.Cell `json:"holders"`
}

// MinCeller is implemented by a Grant whose caller sees statistics with
// small cells suppressed: counts from 1 to MinCell()-1 are shown as
// "<MinCell", and others as "suppressed" wherever a hidden cell could
// otherwise be worked out from shown ones, in this answer or another (see
// stats.SuppressLineage). Zero shows every cell.
type MinCeller interface {
	MinCell() int
}

// minCell is the grant's minimum cell, 0 when it has none.
func minCell(g Grant) int {
	if m, ok := g.(MinCeller); ok {
		return m.MinCell()
	}
	return 0
}

// ResidencePermits is the body of GET /v1/stats/residence-permits.
type ResidencePermits struct {
	PermitCount
	AsOf     string        `json:"as_of"`
	Children []PermitCount `json:"children,omitempty"`
}

// statsQuery reads region, as_of and children: asked is the region as the
// request wrote it, which the answer repeats; code is the region as the
// table names it (tableCode); regions are the regions to count, code and
// then its children when asked for.
func (s *Server) statsQuery(r *http.Request, levels ...int) (asked, code, asOf string, regions []string, err error) {
	q := r.URL.Query()
	asked = q.Get("region")
	okLevel := false
	for _, l := range levels {
		okLevel = okLevel || len(asked) == l
	}
	if !okLevel || !region.IsLevelCode(asked) {
		return "", "", "", nil, fmt.Errorf("region %q is not a division code of %v digits: %w", asked, levels, hub.ErrInvalid)
	}
	code = tableCode(asked)
	if _, known := s.cfg.Regions.Name(code); !known {
		return "", "", "", nil, fmt.Errorf("region %s is not in the region table: %w", asked, hub.ErrNotFound)
	}
	today := time.Now().In(chinaTime).Format(time.DateOnly)
	asOf = q.Get("as_of")
	if asOf == "" {
		asOf = today
	}
	if _, err := stats.AsOf(asOf); err != nil {
		return "", "", "", nil, err
	}
	if asOf > today {
		return "", "", "", nil, fmt.Errorf("as_of %s is in the future: counts are known up to today (%s): %w", asOf, today, hub.ErrInvalid)
	}
	regions = []string{code}
	switch v := q.Get("children"); v {
	case "", "false":
	case "true":
		regions = append(regions, s.cfg.Regions.Children(code)...)
	default:
		return "", "", "", nil, fmt.Errorf("children=%q: want true or false: %w", v, hub.ErrInvalid)
	}
	return asked, code, asOf, regions, nil
}

// tableCode is the code the region table knows a statistics region by. A
// city written in six digits (230100), as departments write a city-wide
// region and residence permits carry it in city_code, is its 4-digit city
// (2301), as region.Table.KnownRegion reads it, and counts as the city.
// A province in six digits (230000) is not a city: its 4-digit code is in
// no table. Every other code is its own.
func tableCode(code string) string {
	if len(code) == 6 && code[4:] == "00" {
		return code[:4]
	}
	return code
}

var chinaTime = time.FixedZone("CST", 8*3600)

// urbanRural answers GET /v1/stats/urban-rural.
func (s *Server) urbanRural(r *http.Request, g Grant, _ *Outcome) (any, error) {
	asked, code, asOf, regions, err := s.statsQuery(r, 2, 4, 6, 9, 12)
	if err != nil {
		return nil, err
	}
	row := func(t hub.Tally) []int64 { return []int64{t.Urban, t.Rural, t.Urban + t.Rural} }
	own, kids, err := s.suppressedCounts(r.Context(), code, regions[1:], asOf, minCell(g), row, true)
	if err != nil {
		return nil, err
	}
	count := func(c string, cells []stats.Cell) RegionCount {
		return RegionCount{Region: c, Name: s.regionName(c), Urban: cells[0], Rural: cells[1], Total: cells[2]}
	}
	out := UrbanRural{RegionCount: count(code, own), AsOf: asOf}
	out.Region = asked
	if r.URL.Query().Get("children") == "true" {
		out.Children = make([]RegionCount, 0, len(regions)-1)
		for i, c := range regions[1:] {
			out.Children = append(out.Children, count(c, kids[i]))
		}
	}
	return out, nil
}

// residencePermits answers GET /v1/stats/residence-permits.
func (s *Server) residencePermits(r *http.Request, g Grant, _ *Outcome) (any, error) {
	asked, code, asOf, regions, err := s.statsQuery(r, 2, 4, 6)
	if err != nil {
		return nil, err
	}
	if len(code) >= 4 {
		regions = regions[:1] // permits are counted per city, not below
	}
	row := func(t hub.Tally) []int64 { return []int64{t.Permits} }
	own, kids, err := s.suppressedCounts(r.Context(), code, regions[1:], asOf, minCell(g), row, false)
	if err != nil {
		return nil, err
	}
	out := ResidencePermits{PermitCount: PermitCount{Region: asked, Name: s.regionName(code), Holders: own[0]}, AsOf: asOf}
	if r.URL.Query().Get("children") == "true" && len(regions) > 1 {
		for i, c := range regions[1:] {
			out.Children = append(out.Children, PermitCount{Region: c, Name: s.regionName(c), Holders: kids[i][0]})
		}
	}
	return out, nil
}

// suppressedCounts reads the rows of code and of its children kids (none
// when not asked for) as of a day, in one counter query, and shows them as
// a caller with minimum cell k may see them (stats.SuppressLineage). A
// region's cells must read the same in every answer, so its row is decided
// in its parent's family table, which rests on the grandparent's, up to
// the top-level region: under a minimum cell the query also reads every
// ancestor's children (a few dozen regions at most per level; none more
// for a province).
func (s *Server) suppressedCounts(ctx context.Context, code string, kids []string, asOf string, k int,
	row func(hub.Tally) []int64, totalled bool) (own []stats.Cell, children [][]stats.Cell, err error) {
	lineage := []string{code}
	var siblings [][]string // siblings[i]: the children of lineage[i], lineage[i+1] among them
	if k >= 2 {
		lineage, siblings = s.lineage(code)
	}
	regions := []string{lineage[0]}
	for _, family := range siblings {
		regions = append(regions, family...)
	}
	regions = append(regions, kids...)
	tallies, err := s.cfg.Counter.Counts(ctx, hub.CountQuery{Regions: regions, AsOf: asOf})
	if err != nil {
		return nil, nil, fmt.Errorf("counting: %w", err)
	}
	rows := func(codes []string) [][]int64 {
		out := make([][]int64, len(codes))
		for i, c := range codes {
			out[i] = row(tallies[c])
		}
		return out
	}
	families := make([]stats.Family, len(lineage))
	for i, c := range lineage {
		families[i].Own = row(tallies[c])
		if i < len(siblings) {
			families[i].Children = rows(siblings[i])
			families[i].Next = slices.Index(siblings[i], lineage[i+1])
		}
	}
	families[len(families)-1].Children = rows(kids)
	own, children = stats.SuppressLineage(families, totalled, k)
	return own, children, nil
}

// lineage is code's ancestry, from its top-level region down to code, each
// region the parent of the next, with the children of every ancestor. A
// region's parent is its code cut to the level above, when the table has it
// and lists the region among its children.
func (s *Server) lineage(code string) (lineage []string, siblings [][]string) {
	lineage = []string{code}
	for {
		p := parentCode(lineage[0])
		if p == "" {
			break
		}
		if _, known := s.cfg.Regions.Name(p); !known {
			break
		}
		kids := s.cfg.Regions.Children(p)
		if !slices.Contains(kids, lineage[0]) {
			break
		}
		lineage = append([]string{p}, lineage...)
		siblings = append([][]string{kids}, siblings...)
	}
	return lineage, siblings
}

// parentCode cuts a division code to the level above: "" for a province.
func parentCode(code string) string {
	switch len(code) {
	case 4:
		return code[:2]
	case 6:
		return code[:4]
	case 9:
		return code[:6]
	case 12:
		return code[:9]
	}
	return ""
}

func (s *Server) regionName(code string) string {
	name, _ := s.cfg.Regions.Name(code)
	return name
}
