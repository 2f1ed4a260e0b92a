package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/stats"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
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
			s.failQuery(w, r, err)
			o = Outcome{} // nothing was disclosed
		} else {
			s.writeJSON(w, r, status, body)
		}
		o.Route, o.Status, o.Err = route, status, err
		g.Done(r.Context(), o)
	})
}

// failQuery answers err as fail does, except that a region nobody knows
// (regionNotFound) keeps its reason as the 404's detail.
func (s *Server) failQuery(w http.ResponseWriter, r *http.Request, err error) {
	var nf *regionNotFound
	if errors.As(err, &nf) {
		k := kindOf(err)
		s.writeProblem(w, r, k.status, k.slug, nf.reason)
		return
	}
	s.fail(w, r, err)
}

// regionNotFound is a well-formed region code nobody knows, a
// hub.ErrNotFound. Unlike the not-found of a citizen ID, whose generic
// detail gives nothing away, its reason is the 404's detail: it speaks of
// the code the caller wrote and of the region table, never of a person,
// and a code padded with zeros (230000 for 23, as NBS tables often write a
// province) is a mistake the caller can only correct when told.
type regionNotFound struct{ reason string }

func (e *regionNotFound) Error() string { return e.reason + ": " + hub.ErrNotFound.Error() }
func (e *regionNotFound) Unwrap() error { return hub.ErrNotFound }

// unknownRegion is the regionNotFound of a well-formed code whose province
// is a real one but which the table lacks. When the code is a known
// division padded with zeros (230000, 2300 or 230100000000), the reason
// says how that division and the level below it are written.
func (s *Server) unknownRegion(asked string) error {
	reason := fmt.Sprintf("region %s is not in the region table: no division has this code", asked)
	for _, n := range []int{2, 4, 6, 9} {
		if n >= len(asked) || strings.Trim(asked[n:], "0") != "" {
			continue
		}
		code := asked[:n]
		if _, known := s.cfg.Regions.Name(code); !known {
			break
		}
		reason += fmt.Sprintf("; a %s is written %s", region.Level(n), code)
		if kids := s.cfg.Regions.Children(code); len(kids) > 0 {
			reason += fmt.Sprintf(", a %s %s", region.Level(len(kids[0])), kids[0])
		}
		reason += " (codes are cut at their level, not padded with zeros)"
		break
	}
	return &regionNotFound{reason: reason}
}

// notProvince is the regionNotFound of a code whose first two digits are
// no province's.
func notProvince(asked string) error {
	return &regionNotFound{reason: fmt.Sprintf("region %s is not in the region table: %s is not a province code", asked, asked[:2])}
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

// walkAdvice says what to send instead of an empty parameter of a walk:
// an unset variable taken for "everyone" or "from the start" would hand a
// client the whole country, or the walk again.
var walkAdvice = map[string]string{
	"region": "give a 2-, 4-, 6-, 9- or 12-digit division code, or leave region out to walk every person you may read",
	"limit":  "give a number from 1 to 1000, or leave limit out for 100",
	"after":  "an empty next means the walk is complete: stop there; leave after out only to begin a walk",
}

// listPersons answers GET /v1/persons?region=&limit=&after=. Every
// person on the page is a disclosure of its own: a walk reads records as
// surely as GET /v1/persons/{citizen_id} does.
//
// A region filter selects persons by their hukou address, so the answer
// says who is registered there even when the records shown omit the hukou
// section: it needs the hukou read grant (see SectionGrant), except within
// a county the caller's notifications are fixed to (CountyGrant), whose
// subjects say as much. region is read by walkRegion: a city may be
// written in six digits (230100 walks 2301), as on the statistics routes.
//
// The records shown to a caller without the hukou grant omit the address,
// and so must its page tokens: its region walk goes in person-key order
// (hub.PersonQuery.KeyOrder), whose store cursor is a person key alone.
func (s *Server) listPersons(r *http.Request, g Grant, o *Outcome) (any, error) {
	q, err := queryHinted(r, walkAdvice, "region", "limit", "after")
	if err != nil {
		return nil, err
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("limit %q is not a number: %w", v, hub.ErrInvalid)
		}
		limit = n
	}
	reg := q.Get("region")
	if reg != "" {
		if err := regionShape(reg, 2, 4, 6, 9, 12); err != nil {
			return nil, err
		}
		if reg, err = s.walkRegion(reg); err != nil {
			return nil, err
		}
		if err := mayWalk(g, reg); err != nil {
			return nil, err
		}
	}
	w := walk{region: reg, keyOrder: reg != "" && !readsHukou(g)}
	pq := hub.PersonQuery{Region: reg, KeyOrder: w.keyOrder, Limit: limit}
	if err := pq.Validate(); err != nil {
		return nil, err
	}
	var seq uint64
	if tok := q.Get("after"); tok != "" {
		pt, err := decodePageToken(tok)
		if err != nil {
			return nil, err
		}
		if pt.bound && pt.walk != w {
			return nil, fmt.Errorf("after: the token continues %s, not %s: pass the next of the previous page of this walk, "+
				"with the same region, or leave after out to begin a walk: %w", pt.walk, w, hub.ErrInvalid)
		}
		seq, pq.After = pt.seq, pt.cursor
	} else if s.cfg.StreamSequence != nil {
		var err error
		if seq, err = s.cfg.StreamSequence(r.Context()); err != nil {
			return nil, fmt.Errorf("reading the notification stream's sequence: %w: %w", hub.ErrUnavailable, err)
		}
	}
	recs, next, err := s.cfg.Lister.Persons(r.Context(), pq)
	if errors.Is(err, hub.ErrInvalid) && pq.After != "" {
		// The query is valid (checked above): the store refused the
		// cursor, which it did not make for this walk.
		return nil, fmt.Errorf("after: not a page token of this walk (pass the next of the previous page as it came): %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("listing persons: %w", err)
	}
	page := PersonsPage{Persons: make([]hub.Record, 0, len(recs)), StreamSequence: seq}
	o.Others = make([]Disclosure, 0, len(recs))
	onPage := make(map[citizenid.ID]bool, len(recs))
	for _, rec := range recs {
		page.Persons = append(page.Persons, g.Record(r.Context(), rec))
		o.Others = append(o.Others, Disclosure{CitizenID: rec.CitizenID})
		onPage[rec.CitizenID] = true
	}
	// A spouse the page names but does not list is disclosed too, once.
	for _, rec := range page.Persons {
		if m := rec.Marital; m != nil && m.SpouseID != "" && !onPage[m.SpouseID] {
			onPage[m.SpouseID] = true
			o.Others = append(o.Others, Disclosure{CitizenID: m.SpouseID, Sections: []schemas.Section{schemas.SecMarital}, Detail: detailSpouseInRecord})
		}
	}
	if next != "" {
		page.Next = encodePageToken(seq, w, next)
	}
	return page, nil
}

// walk is what a page token is bound to: the region walked ("" for
// everyone), as walkRegion reads it, and the order of the walk.
type walk struct {
	region string
	// keyOrder is set for a region walk in person-key order, that of a
	// caller without the hukou read grant (see listPersons); a walk of
	// everyone is in key order, but names none.
	keyOrder bool
}

// String names the walk in a refusal.
func (w walk) String() string {
	switch {
	case w.region == "":
		return "a walk without region"
	case w.keyOrder:
		return "a walk of region " + w.region + " in person-key order (that of an identity without the hukou read grant)"
	}
	return "a walk of region " + w.region + " in address order (that of an identity with the hukou read grant)"
}

// readsHukou reports whether the caller may read the hukou section: a
// Grant that is no SectionGrant reads every section.
func readsHukou(g Grant) bool {
	sg, ok := g.(SectionGrant)
	return !ok || sg.CanRead(schemas.SecHukou)
}

// walkRegion is the code a walk of a well-formed region selects by. A
// city written in six digits (230100) is the city, and a county whose
// code looks like one (东莞市 441900) the county (tableCode), as on the
// statistics routes; every other code of a real province is taken as it
// is, whether or not the region table has an entry of it: the official
// table adds villages only, so a township or a county may be known to the
// hub through its villages alone, and a code nobody is registered under
// is an empty walk. A code of no province, or a province written in six
// digits (230000, which names no city), is a region nobody knows
// (hub.ErrNotFound), as on the statistics routes.
func (s *Server) walkRegion(asked string) (string, error) {
	if !region.IsProvince(asked[:2]) {
		return "", notProvince(asked)
	}
	if len(asked) == 6 && asked[2:] == "0000" {
		return "", &regionNotFound{reason: fmt.Sprintf("region %s is not in the region table: a province is written in two digits, %s", asked, asked[:2])}
	}
	return s.tableCode(asked), nil
}

// mayWalk refuses (ErrForbidden) a walk of region code to a caller who
// may not read the hukou section, unless code is a county its
// notifications are fixed to (CountyGrant): their subjects name the
// county, no finer place, so a walk of one of its townships or villages
// would tell the caller the hukou address it may not read. The refusal
// names the grant and the counties the caller may walk; it does not send
// the caller to a walk without region, which would read the whole
// country to find the persons of one place.
func mayWalk(g Grant, code string) error {
	if readsHukou(g) {
		return nil
	}
	var counties []string
	if cg, ok := g.(CountyGrant); ok {
		counties = cg.SubscribedCounties()
	}
	if slices.Contains(counties, code) {
		return nil
	}
	if len(counties) == 0 {
		return fmt.Errorf("region selects persons by their hukou address, which needs the %q read grant this identity lacks: "+
			"ask for the grant: %w", schemas.SecHukou, ErrForbidden)
	}
	return fmt.Errorf("region selects persons by their hukou address, which needs the %q read grant this identity lacks; "+
		"without it, it may walk only the counties its subscriptions are fixed to, as a whole (%s), or ask for the grant: %w",
		schemas.SecHukou, strings.Join(counties, ", "), ErrForbidden)
}

// A page token carries the walk's stream sequence, the walk and the
// store's cursor in base64url, in the clear: "seq/region:cursor" for a
// walk of everyone (region empty) or a region walk in address order,
// "seq/region/key:cursor" for a region walk in person-key order. A store's
// cursor holds only what the caller of that walk may read: a person key in
// a walk of everyone (which the store conformance suite checks) or in key
// order (the PostgreSQL store's tests and this package's check it), an
// address too only in an address-order walk, which is that of a caller
// who may read hukou (listPersons); and the region is the caller's own. So the token need not be sealed, and
// carries no address for a caller without the hukou read grant.
//
// The walk binds the token: a store's cursor of one walk may be well
// formed in another (a memdb cursor is a person key in every walk; a
// PostgreSQL cursor of a county is one of its city too, and a key-order
// cursor one of a walk of everyone), where it would skip persons or fail
// on one store only, so listPersons refuses a token whose walk is not
// the one asked for. The region is the region as walked (walkRegion), so
// 230100 continues a walk of 2301.
func encodePageToken(seq uint64, w walk, cursor string) string {
	head := strconv.FormatUint(seq, 10) + "/" + w.region
	if w.keyOrder {
		head += "/key"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(head + ":" + cursor))
}

// pageToken is a decoded page token.
type pageToken struct {
	seq    uint64
	cursor string
	// walk is the walk the token continues. bound is false for a token of
	// the format before the walk was bound ("seq:cursor"), still taken so
	// that walks under way across an upgrade go on: it names no walk, and
	// only the store's check of the cursor's shape applies to it. (A
	// token of the format before key-order walks, "seq/region:cursor", is
	// one of an address-order walk, as that format still is.)
	walk  walk
	bound bool
}

// maxCursor bounds a store's cursor in a page token; the stores' are
// shorter (an address, a separator and a 64-character key at most).
const maxCursor = 128

// decodePageToken reads a token encodePageToken made (or one of the
// previous format). A store's cursor is printable ASCII without spaces;
// anything else (a byte no store writes, invalid UTF-8 that PostgreSQL
// would refuse) is not a token of this API, a bad request on every store
// alike, as is a region that is no division code.
func decodePageToken(tok string) (pageToken, error) {
	bad := fmt.Errorf("after: not a page token of this API (pass the next of the previous page as it came): %w", hub.ErrInvalid)
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return pageToken{}, bad
	}
	head, cursor, ok := strings.Cut(string(b), ":")
	seqText, region, bound := strings.Cut(head, "/")
	region, order, keyOrder := strings.Cut(region, "/")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if !ok || err != nil || cursor == "" || len(cursor) > maxCursor {
		return pageToken{}, bad
	}
	if bound && (!slices.Contains([]int{0, 2, 4, 6, 9, 12}, len(region)) || !allDigits(region)) {
		return pageToken{}, bad
	}
	if keyOrder && (order != "key" || region == "") {
		return pageToken{}, bad
	}
	for i := 0; i < len(cursor); i++ {
		if cursor[i] <= ' ' || cursor[i] > '~' {
			return pageToken{}, bad
		}
	}
	return pageToken{seq: seq, cursor: cursor, walk: walk{region: region, keyOrder: keyOrder}, bound: bound}, nil
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

// UrbanRuralTree is the body of GET /v1/stats/urban-rural with depth: the
// region and the regions below it, Depth levels deep, from one read of
// the counters.
type UrbanRuralTree struct {
	RegionCount
	AsOf  string `json:"as_of"`
	Depth int    `json:"depth"`
	// Children are the region's children, each with theirs down to
	// Depth; a region at Depth, or with no children in the region table,
	// has none.
	Children []RegionTree `json:"children"`
}

// RegionTree is a region's counts with the regions below it, in an
// UrbanRuralTree.
type RegionTree struct {
	RegionCount
	Children []RegionTree `json:"children,omitempty"`
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
// otherwise be worked out from shown ones within the table of a region and
// its children (see stats.SuppressLineage for what combining answers can
// still reveal). Zero shows every cell.
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

// statsAsk is a statistics request as statsQuery reads it.
type statsAsk struct {
	// asked is the region as the request wrote it, which the answer
	// repeats; code is the region as the table names it (tableCode).
	asked, code, asOf string
	// levels is how many levels of regions below code to count: 0 for
	// the region alone, 1 with children=true, depth's value when given.
	levels int
	// deep is set when depth was given: the answer nests the levels
	// (UrbanRuralTree).
	deep bool
}

// MaxStatsDepth bounds depth on GET /v1/stats/urban-rural: three levels
// take a province to its townships, or a city to its villages, a few
// thousand regions at most, in one read of the counters; a province to
// its villages (tens of thousands) takes an answer per city.
const MaxStatsDepth = 3

// statsQuery reads region, as_of, children and, when maxDepth > 0, depth.
// levels are the code lengths the route takes; with citiesOnly a 6-digit
// code must be a city: one written in six digits (230100), or a
// county-level city its province administers directly (仙桃市 429004, see
// directlyAdministered), not a county.
//
// A code of the wrong length or with a character other than a digit is a
// bad request (400); a well-formed code the table does not have, its
// province included, is a region nobody knows (404), as a 2301-shaped city
// that does not exist is.
func (s *Server) statsQuery(r *http.Request, citiesOnly bool, maxDepth int, levels ...int) (statsAsk, error) {
	known := []string{"region", "as_of", "children"}
	// What to send instead of an empty parameter, for the parameters
	// this route takes.
	advice := map[string]string{
		"region":   "region is required: give a " + codeLengths(levels) + " division code",
		"as_of":    "give a date (YYYY-MM-DD), or leave as_of out to count as of today",
		"children": "give true or false, or leave children out",
	}
	if maxDepth > 0 {
		known = append(known, "depth")
		advice["depth"] = fmt.Sprintf("give a number of levels from 1 to %d, or leave depth out", maxDepth)
	}
	q, err := queryHinted(r, advice, known...)
	if err != nil {
		return statsAsk{}, err
	}
	ask := statsAsk{asked: q.Get("region")}
	if err := regionShape(ask.asked, levels...); err != nil {
		return statsAsk{}, err
	}
	if citiesOnly && len(ask.asked) == 6 && ask.asked[4:] != "00" && !s.directlyAdministered(ask.asked) {
		return statsAsk{}, fmt.Errorf("region %s is a county, and residence permits are counted per city: ask for its city, %s (or %s00): %w",
			ask.asked, ask.asked[:4], ask.asked[:4], hub.ErrInvalid)
	}
	if ask.code, err = s.knownRegion(ask.asked); err != nil {
		return statsAsk{}, err
	}
	today := time.Now().In(chinaTime).Format(time.DateOnly)
	ask.asOf = q.Get("as_of")
	if ask.asOf == "" {
		ask.asOf = today
	}
	if _, err := stats.AsOf(ask.asOf); err != nil {
		return statsAsk{}, err
	}
	if ask.asOf > today {
		return statsAsk{}, fmt.Errorf("as_of %s is in the future: counts are known up to today (%s): %w", ask.asOf, today, hub.ErrInvalid)
	}
	children := q.Get("children")
	switch children {
	case "", "false":
	case "true":
		ask.levels = 1
	default:
		return statsAsk{}, fmt.Errorf("children=%q: want true or false: %w", children, hub.ErrInvalid)
	}
	if q.Has("depth") {
		if ask.levels, err = depthOf(q.Get("depth"), maxDepth); err != nil {
			return statsAsk{}, err
		}
		if children == "false" {
			return statsAsk{}, fmt.Errorf("depth=%d with children=false: depth counts the levels of regions below the region, "+
				"children=true being depth=1; leave children out: %w", ask.levels, hub.ErrInvalid)
		}
		ask.deep = true
	}
	return ask, nil
}

// codeLengths names the lengths of the division codes a route takes, as
// "2-, 4- or 6-digit".
func codeLengths(levels []int) string {
	names := make([]string, len(levels))
	for i, n := range levels {
		names[i] = strconv.Itoa(n) + "-"
	}
	if len(names) < 2 {
		return strings.Join(names, "") + "digit"
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1] + "digit"
}

// depthOf reads depth: a number of levels from 1 to maxDepth.
func depthOf(v string, maxDepth int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("depth=%q: want 1 to %d, the levels of regions below the region to count (1: its children): %w",
			clip(v), maxDepth, hub.ErrInvalid)
	}
	if n > maxDepth {
		return 0, fmt.Errorf("depth=%d: one answer counts at most %d levels below the region (a province to its townships, "+
			"a city to its villages); to go deeper, ask for each region of the last level with the levels left: %w", n, maxDepth, hub.ErrInvalid)
	}
	return n, nil
}

// regionShape refuses (hub.ErrInvalid) a region code whose length is not
// one of levels or that has a character other than a digit.
func regionShape(asked string, levels ...int) error {
	if !slices.Contains(levels, len(asked)) || !allDigits(asked) {
		return fmt.Errorf("region %q is not a division code of %v digits: %w", clip(asked), levels, hub.ErrInvalid)
	}
	return nil
}

// knownRegion is the code the region table knows a well-formed
// statistics region by (tableCode), or a regionNotFound when its province
// is no province or the table does not have it: a region nobody knows,
// not a malformed one, and the 404 says which (and, for a code padded
// with zeros, how the region is written). The statistics routes name a region and list its
// children from the table, so they answer only for regions it has (a
// walk, which selects by address prefix, reads its region with
// walkRegion instead).
func (s *Server) knownRegion(asked string) (string, error) {
	if !region.IsProvince(asked[:2]) {
		return "", notProvince(asked)
	}
	code := s.tableCode(asked)
	if _, known := s.cfg.Regions.Name(code); !known {
		return "", s.unknownRegion(asked)
	}
	return code, nil
}

// directlyAdministered reports whether a 6-digit code is under a
// province's placeholder for the county-level cities it administers
// directly (4290 省直辖县级行政区划, 6590 自治区直辖县级行政区划, in
// Henan, Hubei, Hainan and Xinjiang). Such a city (仙桃市 429004, 济源市
// 419001) has no city above it: residence permits are issued and counted
// under its own 6-digit code (stats.Acc.Permits), and the placeholder
// sums several cities. The division table marks the placeholders by name
// only, so that is what is read here.
func (s *Server) directlyAdministered(code string) bool {
	name, ok := s.cfg.Regions.Name(code[:4])
	return ok && strings.HasSuffix(name, "直辖县级行政区划")
}

// tableCode is the code the region table knows a statistics region by. A
// city written in six digits (230100), as departments write a city-wide
// region and residence permits carry it in city_code, is its 4-digit city
// (2301), as region.Table.KnownRegion reads it, and counts as the city.
// But a city without districts (东莞市 4419, 中山市 4420, 儋州市 4604)
// has one county-level entry whose code ends in 00 (441900), the level
// its townships hang from: a 6-digit code the table has is that county,
// or its children would be the county again and its townships could
// never be listed. Both readings count the same people there. A province
// in six digits (230000) is not a city: its 4-digit code is in no table.
// Every other code is its own.
//
// The table is the server's (Config.Regions), or, for a server that only
// walks persons and has none, the process's (region.Default: the
// built-in one, which has those three counties, or the official one
// installed).
func (s *Server) tableCode(code string) string {
	return region.NamedBy(code, func(c string) bool {
		if s.cfg.Regions != nil {
			_, county := s.cfg.Regions.Name(c)
			return county
		}
		_, county := region.Lookup(c)
		return county
	})
}

// allDigits reports whether s is all ASCII digits.
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

var chinaTime = time.FixedZone("CST", 8*3600)

// urbanRural answers GET /v1/stats/urban-rural.
func (s *Server) urbanRural(r *http.Request, g Grant, _ *Outcome) (any, error) {
	ask, err := s.statsQuery(r, false, MaxStatsDepth, 2, 4, 6, 9, 12)
	if err != nil {
		return nil, err
	}
	tree := s.regionTree(ask.code, ask.levels)
	row := func(t hub.Tally) []int64 { return []int64{t.Urban, t.Rural, t.Urban + t.Rural} }
	shown, err := s.suppressedTree(r.Context(), tree, ask.asOf, minCell(g), row, true)
	if err != nil {
		return nil, err
	}
	count := func(c string, cells []stats.Cell) RegionCount {
		return RegionCount{Region: c, Name: s.regionName(c), Urban: cells[0], Rural: cells[1], Total: cells[2]}
	}
	own := count(ask.code, shown.Own)
	own.Region = ask.asked
	if ask.deep {
		return UrbanRuralTree{RegionCount: own, AsOf: ask.asOf, Depth: ask.levels, Children: regionTrees(tree.kids, shown.Children, count)}, nil
	}
	out := UrbanRural{RegionCount: own, AsOf: ask.asOf}
	if ask.levels == 1 {
		out.Children = make([]RegionCount, 0, len(tree.kids))
		for i, c := range tree.kids {
			out.Children = append(out.Children, count(c.code, shown.Children[i].Own))
		}
	}
	return out, nil
}

// regionTrees shows the regions of kids, and theirs, with their cells.
func regionTrees(kids []regionTree, shown []stats.ShownTree, count func(string, []stats.Cell) RegionCount) []RegionTree {
	out := make([]RegionTree, 0, len(kids))
	for i, c := range kids {
		t := RegionTree{RegionCount: count(c.code, shown[i].Own)}
		if len(c.kids) > 0 {
			t.Children = regionTrees(c.kids, shown[i].Children, count)
		}
		out = append(out, t)
	}
	return out
}

// residencePermits answers GET /v1/stats/residence-permits.
func (s *Server) residencePermits(r *http.Request, g Grant, _ *Outcome) (any, error) {
	ask, err := s.statsQuery(r, true, 0, 2, 4, 6)
	if err != nil {
		return nil, err
	}
	// Permits are counted per city, not below; a province's placeholder
	// for the county-level cities it administers directly (4290) is no
	// city but a sum of them, so its children are cities.
	if len(ask.code) >= 4 && !(len(ask.code) == 4 && s.directlyAdministered(ask.code+"00")) {
		ask.levels = 0
	}
	tree := s.regionTree(ask.code, ask.levels)
	row := func(t hub.Tally) []int64 { return []int64{t.Permits} }
	shown, err := s.suppressedTree(r.Context(), tree, ask.asOf, minCell(g), row, false)
	if err != nil {
		return nil, err
	}
	out := ResidencePermits{PermitCount: PermitCount{Region: ask.asked, Name: s.regionName(ask.code), Holders: shown.Own[0]}, AsOf: ask.asOf}
	for i, c := range tree.kids {
		out.Children = append(out.Children, PermitCount{Region: c.code, Name: s.regionName(c.code), Holders: shown.Children[i].Own[0]})
	}
	return out, nil
}

// regionTree is a region's code with its children's, each with theirs,
// down to some levels below it.
type regionTree struct {
	code string
	kids []regionTree
}

// regionTree is code with the regions the table lists below it, levels
// deep (none for 0).
func (s *Server) regionTree(code string, levels int) regionTree {
	t := regionTree{code: code}
	if levels == 0 {
		return t
	}
	for _, c := range s.cfg.Regions.Children(code) {
		t.kids = append(t.kids, s.regionTree(c, levels-1))
	}
	return t
}

// codes appends the codes of the regions below t to out.
func (t regionTree) codes(out []string) []string {
	for _, k := range t.kids {
		out = k.codes(append(out, k.code))
	}
	return out
}

// suppressedTree reads the rows of tree's regions as of a day, in one
// counter query, so that they are one snapshot of the counters (every
// region's row the sum of its children's where they cover it, whatever
// the hub ingests meanwhile), and shows them as a caller with minimum
// cell k may see them (stats.SuppressTree). A region's cells must read the
// same in every answer, so its row is decided in its parent's family
// table, which rests on the grandparent's, up to the top-level region:
// under a minimum cell the query also reads every ancestor's children (a
// few dozen regions at most per level; none more for a province). Each
// region below is decided in its own parent's table, as when it is asked
// for with its parent's children, so a subtree answer shows the cells
// the answers of its regions one at a time show.
func (s *Server) suppressedTree(ctx context.Context, tree regionTree, asOf string, k int,
	row func(hub.Tally) []int64, totalled bool) (stats.ShownTree, error) {
	lineage := []string{tree.code}
	var siblings [][]string // siblings[i]: the children of lineage[i], lineage[i+1] among them
	if k >= 2 {
		lineage, siblings = s.lineage(tree.code)
	}
	regions := []string{lineage[0]}
	for _, family := range siblings {
		regions = append(regions, family...)
	}
	regions = tree.codes(regions)
	tallies, err := s.cfg.Counter.Counts(ctx, hub.CountQuery{Regions: regions, AsOf: asOf})
	if err != nil {
		return stats.ShownTree{}, fmt.Errorf("counting: %w", err)
	}
	ancestors := make([]stats.Family, len(siblings))
	for i, family := range siblings {
		ancestors[i] = stats.Family{Own: row(tallies[lineage[i]]), Children: make([][]int64, len(family)),
			Next: slices.Index(family, lineage[i+1])}
		for j, c := range family {
			ancestors[i].Children[j] = row(tallies[c])
		}
	}
	var counted func(t regionTree) stats.Tree
	counted = func(t regionTree) stats.Tree {
		out := stats.Tree{Own: row(tallies[t.code])}
		for _, k := range t.kids {
			out.Children = append(out.Children, counted(k))
		}
		return out
	}
	return stats.SuppressTree(ancestors, counted(tree), totalled, k), nil
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
