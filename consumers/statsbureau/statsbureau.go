// Package statsbureau is the statistics bureau's side of the hub: it pulls
// the registered-population counts by urban/rural class for a region and
// every region below it down to a chosen level, as of a reference date,
// and writes them as the CSV or JSON a bureau loads into its own tools.
//
// It talks to the hub's HTTP API only (GET /v1/stats/urban-rural with
// depth, or children=true), so it runs anywhere the bureau can reach the
// hub. The hub answers a region and up to three levels below it from one
// read of its counters, so a report that fits in one answer is one
// snapshot, every region the sum of its children where they cover it,
// even while the hub ingests; a deeper report is checked where its
// answers meet, and pulled again when the hub changed between them (see
// Client.Pull). A hub under an access policy limits each identity's
// request rate; a pull keeps within it by waiting out refusals and sending
// fewer requests at once (see throttle).
package statsbureau

import (
	"context"
	"crypto/tls"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pophub/pophub/internal/tlshttp"
	divisions "github.com/pophub/pophub/schemas/region"
)

// Levels of the division codes, by code length.
var levelNames = map[int]string{2: "province", 4: "city", 6: "county", 9: "township", 12: "village"}

// LevelLength returns the code length of a level name or length ("county"
// or "6").
func LevelLength(s string) (int, error) {
	for n, name := range levelNames {
		if s == name || s == strconv.Itoa(n) {
			return n, nil
		}
	}
	return 0, fmt.Errorf("level %q: want province, city, county, township or village (or 2, 4, 6, 9, 12)", s)
}

// Row is one region's counts.
type Row struct {
	Code  string `json:"code"`
	Name  string `json:"name"`
	Level string `json:"level"`
	Urban Count  `json:"urban"`
	Rural Count  `json:"rural"`
	Total Count  `json:"total"`
	// UrbanShare is urban / total; nil when either is hidden, and when
	// total is 0: a region where nobody lives has no urban share, and 0
	// would read as wholly rural.
	UrbanShare *float64 `json:"urban_share"`
}

// Count is one count of a row: a number, or hidden by the hub's
// small-cell suppression, which shows callers other than the statistics
// bureau a count below their minimum cell k as the string "<k", and a
// count of any size hidden so that another cannot be worked out by
// subtraction as "suppressed" (a small count too, in a table where "<k"
// beside "suppressed" would give it away).
type Count struct {
	N      int64
	Hidden string // the hub's marker ("<5" or "suppressed") when hidden, else ""
}

// complementMarker is the hub's marker of a cell hidden to protect another.
const complementMarker = "suppressed"

// String is the number, or the marker when hidden.
func (c Count) String() string {
	if c.Hidden != "" {
		return c.Hidden
	}
	return strconv.FormatInt(c.N, 10)
}

// MarshalJSON writes the count as the hub does: a number or the marker.
func (c Count) MarshalJSON() ([]byte, error) {
	if c.Hidden != "" {
		return strconv.AppendQuote(nil, c.Hidden), nil
	}
	return strconv.AppendInt(nil, c.N, 10), nil
}

// UnmarshalJSON reads a number, a "<k" marker or "suppressed".
func (c *Count) UnmarshalJSON(b []byte) error {
	bad := fmt.Errorf("count %s: neither a number nor a hidden cell (\"<k\" or %q)", b, complementMarker)
	if len(b) > 0 && b[0] == '"' {
		var m string
		if err := json.Unmarshal(b, &m); err != nil {
			return bad
		}
		if m != complementMarker {
			if len(m) < 2 || m[0] != '<' {
				return bad
			}
			if _, err := strconv.Atoi(m[1:]); err != nil {
				return bad
			}
		}
		*c = Count{Hidden: m}
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return bad
	}
	*c = Count{N: n}
	return nil
}

// Report is what a pull returns.
type Report struct {
	Region string `json:"region"`
	AsOf   string `json:"as_of"`
	Rows   []Row  `json:"rows"` // in code order, parents before children
}

// Config configures a Client. HubURL is required.
type Config struct {
	HubURL string
	// Token is sent as a bearer token when set.
	Token string
	// Purpose is sent as X-Purpose (default DefaultPurpose). Under an
	// access policy it must be one of the token's identity's purposes.
	Purpose string
	// Concurrency bounds requests in flight (default 8). Each time the
	// hub refuses requests for the identity's rate limit (429), a pull
	// halves it for the rest of the pull, down to 1, and logs one line.
	Concurrency int
	// MaxAttempts bounds the tries of one request the hub keeps refusing
	// with 429, or with 503 and a Retry-After (default 10); the pull then
	// fails with the hub's answer.
	MaxAttempts int
	// MaxWait bounds the time one request waits, over all its retries,
	// for the hub to take it again (default 2 minutes). A pull gives up at
	// once on a Retry-After that would take it past MaxWait.
	MaxWait time.Duration
	// MaxDepth bounds the levels below a region one request asks the
	// hub for (default and at most HubMaxDepth, the hub's bound). A pull
	// of more levels asks again at the regions where an answer ends, and
	// checks that each such region reads the same in both answers. 1 asks
	// for one region's children at a time, as a pull does by itself
	// against a hub older than the depth parameter.
	MaxDepth int
	// Logger receives a line each time a pull slows down, and each time
	// it pulls again because the hub's counts changed under it (default:
	// none).
	Logger *slog.Logger
	// HTTP is the client (default: one with a 30 s timeout that trusts
	// TLS's roots).
	HTTP *http.Client
	// TLS, when set and HTTP is nil, is the client configuration for an
	// https:// hub, its RootCAs holding the hub's CA when that is not in
	// the system's trust store.
	TLS *tls.Config
}

// DefaultPurpose is the statistics bureau's purpose in the example access
// policy (ops/policy.example.yaml); a hub without a policy takes any.
const DefaultPurpose = "official population statistics"

func (c *Config) setDefaults() {
	if c.Purpose == "" {
		c.Purpose = DefaultPurpose
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 2 * time.Minute
	}
	if c.MaxDepth <= 0 || c.MaxDepth > HubMaxDepth {
		c.MaxDepth = HubMaxDepth
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{Timeout: 30 * time.Second}
		if c.TLS != nil {
			c.HTTP.Transport = tlshttp.Transport(c.TLS)
		}
	}
}

// Validate reports what is wrong with the configuration.
func (c Config) Validate() error {
	u, err := url.Parse(c.HubURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("hub URL %q: want http(s)://host[:port]", c.HubURL)
	}
	return nil
}

// Client pulls counts from a hub.
type Client struct{ cfg Config }

// New returns a client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	cfg.HubURL = strings.TrimRight(cfg.HubURL, "/")
	return &Client{cfg: cfg}, nil
}

// HubMaxDepth is the hub's bound on depth: the most levels below a region
// one answer holds, all from one read of its counters.
const HubMaxDepth = 3

// pullAttempts bounds the pulls of one report whose answers the hub
// changed between (Client.Pull); pullBackoff is the wait before the
// second, doubled before each next one.
const (
	pullAttempts = 5
	pullBackoff  = 250 * time.Millisecond
)

// answer is the hub's urban-rural body.
type answer struct {
	Region string `json:"region"`
	Name   string `json:"name"`
	AsOf   string `json:"as_of"`
	Urban  Count  `json:"urban"`
	Rural  Count  `json:"rural"`
	Total  Count  `json:"total"`
	// Depth repeats the depth asked for; 0 from a hub asked with
	// children=true, whose Children have none of their own.
	Depth    int     `json:"depth"`
	Children []count `json:"children"`
}

type count struct {
	Region string `json:"region"`
	Name   string `json:"name"`
	Urban  Count  `json:"urban"`
	Rural  Count  `json:"rural"`
	Total  Count  `json:"total"`
	// Children are the region's own, in an answer of depth 2 or 3.
	Children []count `json:"children"`
}

// Pull counts region and every region below it down to codes of depth
// digits (2, 4, 6, 9 or 12), as of asOf (YYYY-MM-DD; empty: the hub's
// today). Regions whose children are at or beyond depth are not asked for
// their children.
//
// The hub answers a region and up to Config.MaxDepth levels below it (3:
// a province to its townships, a city to its villages) from one read of
// its counters, so such a report is one snapshot: a region's row is the
// sum of its children's wherever they cover it, even while the hub
// ingests events, late ones correcting a past asOf included. A deeper
// report (a province to its villages) takes an answer for the levels at
// the top and one for each region where that answer ends, and each such
// region must read the same in both; when one does not, the hub changed
// between the answers, and the whole report is pulled again, as of the
// same day, up to 5 times with a growing wait, before the pull fails
// saying so: it never returns rows from answers that disagree.
//
// Requests go out a level at a time, up to Config.Concurrency at once,
// fewer once the hub has refused some for the identity's rate limit; see
// Config for how long a pull waits before it gives up. A hub older than
// the depth parameter is asked for one region's children at a time, and
// checked the same way.
//
// A city may be written in six digits (230100 for 2301), as the hub takes
// it: it is the city, at the city's level, and its children are the
// city's counties. The report keeps the code as written, as the hub's
// answer repeats it. A county whose code ends in 00 (东莞市 441900, the one
// county of a city without districts) is a county, as the hub takes it
// too (see regionLevel).
//
// A region's children are at the level under it (a city's at the county
// level), whatever their codes look like. A child the hub answers with
// its parent's code (as hubs that read 441900 as the city 4419 did) is the
// parent again: it is neither listed twice nor asked for, so the pull
// still ends.
func (c *Client) Pull(ctx context.Context, region, asOf string, depth int) (Report, error) {
	if _, ok := levelNames[len(region)]; !ok {
		return Report{}, fmt.Errorf("region %q: want a 2-, 4-, 6-, 9- or 12-digit division code", region)
	}
	n := regionLevel(region)
	if _, ok := levelNames[depth]; !ok || depth < n {
		return Report{}, fmt.Errorf("depth %d: want a code length of 2, 4, 6, 9 or 12, at least the region's (%d)", depth, n)
	}
	p := &pull{c: c, th: newThrottle(c.cfg.Concurrency), region: region, level: n, depth: depth, asOf: asOf}
	for attempt := 1; ; attempt++ {
		rep, err := p.once(ctx)
		var moved *movedError
		if !errors.As(err, &moved) {
			return rep, err
		}
		if attempt == pullAttempts {
			return Report{}, fmt.Errorf("pulling %s as of %s: %w; pulled %d times, and the hub changed every time: "+
				"pull again when it ingests less, or pull fewer levels (%d below a region come from one answer)",
				region, p.asOf, err, attempt, c.cfg.MaxDepth)
		}
		wait := pullBackoff << (attempt - 1)
		c.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "the hub's counts changed during the pull; pulling again",
			slog.String("region", moved.region), slog.Int("attempt", attempt+1), slog.Duration("wait", wait))
		if err := sleep(ctx, wait); err != nil {
			return Report{}, fmt.Errorf("pulling %s: %w", region, err)
		}
	}
}

// pull is one Pull: its throttle and what its attempts share.
type pull struct {
	c            *Client
	th           *throttle
	region       string
	level, depth int // the region's level and the deepest, as code lengths
	// asOf is the day asked for, or once the first answer came, the day
	// it counted, so that every attempt counts the same day.
	asOf string
	// noDepth is set once the hub refused depth: it is asked for one
	// region's children at a time for the rest of the pull.
	noDepth atomic.Bool
}

// edge is a region where an answer ended above the depth of the pull:
// its row as that answer showed it, which its own answer must repeat.
type edge struct {
	count
	parent string
	level  int
}

// movedError is a region whose row two answers of one pull show
// differently: the hub's counts changed between them.
type movedError struct {
	region, parent string
	before, after  count
}

func (e *movedError) Error() string {
	return fmt.Sprintf("%s reads %s among the rows of %s and %s in its own answer: the hub's counts changed between its answers",
		e.region, cells(e.before), e.parent, cells(e.after))
}

// cells is a row's counts as "urban/rural/total".
func cells(c count) string { return c.Urban.String() + "/" + c.Rural.String() + "/" + c.Total.String() }

// once pulls the report once: the region with as many levels as the
// last requests leave over, then, level by level, each region where an
// answer ended with up to Config.MaxDepth levels, so that the regions
// asked again are as few and as high as can be. It returns a *movedError
// when a region asked again reads otherwise than in the answer above it.
func (p *pull) once(ctx context.Context) (Report, error) {
	levels := levelsBetween(p.level, p.depth)
	first := levels
	if per := p.c.cfg.MaxDepth; levels > per {
		first = (levels-1)%per + 1
	}
	top, got, err := p.get(ctx, p.region, first)
	if err != nil {
		return Report{}, err
	}
	if p.asOf == "" {
		p.asOf = top.AsOf
	}
	rep := Report{Region: p.region, AsOf: top.AsOf}
	root := count{Region: top.Region, Name: top.Name, Urban: top.Urban, Rural: top.Rural, Total: top.Total, Children: top.Children}
	edges := p.collect(&rep.Rows, root, "", p.level, got, true)
	for len(edges) > 0 {
		// The throttle bounds the requests in flight; the group only
		// bounds the goroutines, and stops the level at its first error.
		answers := make([]answer, len(edges))
		gots := make([]int, len(edges))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(p.c.cfg.Concurrency)
		for i, e := range edges {
			g.Go(func() error {
				var err error
				answers[i], gots[i], err = p.get(gctx, e.Region, min(p.c.cfg.MaxDepth, levelsBetween(e.level, p.depth)))
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return Report{}, err
		}
		var next []edge
		for i, e := range edges {
			a := answers[i]
			own := count{Region: e.Region, Name: e.Name, Urban: a.Urban, Rural: a.Rural, Total: a.Total, Children: a.Children}
			if !sameCells(e.count, own) {
				return Report{}, &movedError{region: e.Region, parent: e.parent, before: e.count, after: own}
			}
			next = append(next, p.collect(&rep.Rows, own, e.parent, e.level, gots[i], false)...)
		}
		edges = next
	}
	sort.Slice(rep.Rows, func(i, j int) bool { return rep.Rows[i].Code < rep.Rows[j].Code })
	return rep, nil
}

// collect appends to rows the rows of an answer's region c at level (its
// own too, unless it was listed already) and of the regions below it the
// answer holds, got levels deep, and returns the regions where the answer
// ends above the pull's depth, to be asked again.
func (p *pull) collect(rows *[]Row, c count, parent string, level, got int, own bool) []edge {
	if own {
		*rows = append(*rows, row(c, level))
	}
	if level >= p.depth || below(level) == 0 {
		return nil
	}
	if got == 0 {
		return []edge{{count: c, parent: parent, level: level}}
	}
	var edges []edge
	for _, k := range notItself(c.Region, c.Children) {
		edges = append(edges, p.collect(rows, k, c.Region, below(level), got-1, true)...)
	}
	return edges
}

// sameCells reports whether two answers show a region's row alike, each
// count or its marker.
func sameCells(a, b count) bool {
	return a.Urban == b.Urban && a.Rural == b.Rural && a.Total == b.Total
}

// get asks the hub for region with levels of regions below it, and
// returns how many levels the answer holds: depth for more than one, or,
// from a hub that refuses depth (as hubs before it did) and then for the
// rest of the pull, children=true, one level.
func (p *pull) get(ctx context.Context, region string, levels int) (answer, int, error) {
	if levels > 1 && !p.noDepth.Load() {
		a, err := p.c.get(ctx, p.th, region, p.asOf, levels)
		if err == nil {
			// A hub that ignored depth repeats none, and answered one level.
			return a, min(max(a.Depth, 1), levels), nil
		}
		if !depthRefused(err) {
			return answer{}, 0, err
		}
		if !p.noDepth.Swap(true) {
			p.c.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "the hub takes no depth; asking for one region's children at a time",
				slog.String("refusal", err.Error()))
		}
	}
	levels = min(levels, 1)
	a, err := p.c.get(ctx, p.th, region, p.asOf, levels)
	return a, levels, err
}

// depthRefused reports whether err is a hub's refusal of the depth
// parameter, which hubs before it answer 400 as a parameter they do not
// know.
func depthRefused(err error) bool {
	var r *refusal
	return errors.As(err, &r) && r.status == http.StatusBadRequest && strings.Contains(r.detail, `unknown query parameter "depth"`)
}

// levelsBetween counts the levels from code length from down to to.
func levelsBetween(from, to int) int {
	n := 0
	for l := from; l < to && l != 0; l = below(l) {
		n++
	}
	return n
}

// notItself drops from a region's children any the hub answered with the
// region's own code: a region is not its own child, and asking for it
// again would answer it again, for ever.
func notItself(code string, children []count) []count {
	return slices.DeleteFunc(children, func(c count) bool { return c.Region == code })
}

// regionLevel is the level (code length) of a region as the hub reads its
// code (region.Named, as hub/api's tableCode does: 230100 is the city 2301,
// 441900 the county). Only the region a pull starts from needs this; the
// levels below follow from it (below).
func regionLevel(code string) int {
	return len(divisions.Named(code))
}

// row is a region's counts at a level (a code length).
func row(c count, level int) Row {
	r := Row{Code: c.Region, Name: c.Name, Level: levelNames[level], Urban: c.Urban, Rural: c.Rural, Total: c.Total}
	if c.Urban.Hidden == "" && c.Total.Hidden == "" && c.Total.N > 0 {
		share := float64(c.Urban.N) / float64(c.Total.N)
		r.UrbanShare = &share
	}
	return r
}

// refusal is a hub's answer to a request it did not take.
type refusal struct {
	region string
	status int
	detail string
}

func (r *refusal) Error() string {
	return fmt.Sprintf("asking for %s: hub answered %d %s: %s", r.region, r.status, http.StatusText(r.status), r.detail)
}

// get asks the hub for one region's counts with levels of regions below
// it (none, children=true for one, depth for more), through th: a request
// the hub refuses for the rate (429), or while unavailable for a time it
// names (503 with Retry-After), is sent again after the wait the hub asks
// for, within Config.MaxAttempts and Config.MaxWait.
func (c *Client) get(ctx context.Context, th *throttle, region, asOf string, levels int) (answer, error) {
	q := url.Values{"region": {region}}
	if asOf != "" {
		q.Set("as_of", asOf)
	}
	switch {
	case levels == 1:
		q.Set("children", "true")
	case levels > 1:
		q.Set("depth", strconv.Itoa(levels))
	}
	u := c.cfg.HubURL + "/v1/stats/urban-rural?" + q.Encode()
	var waited time.Duration
	for attempt := 1; ; attempt++ {
		epoch, err := th.acquire(ctx)
		if err != nil {
			return answer{}, fmt.Errorf("asking for %s: %w", region, err)
		}
		status, h, body, err := c.send(ctx, u)
		th.release()
		if err != nil {
			return answer{}, fmt.Errorf("asking for %s: %w", region, err)
		}
		if status == http.StatusOK {
			return decode(region, body)
		}
		var p struct {
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(body, &p)
		refused := &refusal{region: region, status: status, detail: p.Detail}
		if !retryable(status, h) {
			return answer{}, refused
		}
		wait := retryDelay(h, attempt+1, time.Now())
		if attempt >= c.cfg.MaxAttempts || waited+wait > c.cfg.MaxWait {
			return answer{}, fmt.Errorf("%w (giving up at attempt %d, after waiting %s)", refused, attempt, waited.Round(time.Millisecond))
		}
		waited += wait
		if limit, lowered := th.refused(epoch, wait, status == http.StatusTooManyRequests); lowered {
			c.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "hub is limiting this identity's requests; slowing down",
				slog.Int("in_flight", limit),
				slog.Duration("wait", wait.Round(time.Millisecond)))
		}
		if err := sleep(ctx, wait); err != nil {
			return answer{}, fmt.Errorf("asking for %s: %w", region, err)
		}
	}
}

// send makes one request and reads its answer.
func (c *Client) send(ctx context.Context, u string) (status int, h http.Header, body []byte, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Purpose", c.cfg.Purpose)
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// sleep waits for d or until ctx ends, whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// decode reads the hub's answer for region.
func decode(region string, body []byte) (answer, error) {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return answer{}, fmt.Errorf("decoding the counts of %s: %w", region, err)
	}
	return a, nil
}

// BOM is the UTF-8 byte order mark WriteCSV begins a report with.
const BOM = "\uFEFF"

// WriteCSV writes the report as UTF-8 CSV beginning with the byte order
// mark: Excel reads a CSV without one in the Windows ANSI code page (GBK
// on Chinese Windows), which garbles every name. See WritePlainCSV for the
// columns, and for programs that do not expect the mark.
func WriteCSV(w io.Writer, rep Report) error {
	if _, err := io.WriteString(w, BOM); err != nil {
		return fmt.Errorf("writing CSV: %w", err)
	}
	return WritePlainCSV(w, rep)
}

// WritePlainCSV writes the report as UTF-8 CSV without a byte order mark,
// with a header line: code, name, level, urban, rural, total, urban_share
// (four decimals; a hidden count is its marker, "<5" or "suppressed"; the
// share of a row with one, or of a region where nobody lives, is empty).
//
// A text cell (code, name, level) that begins with = + - @, a tab or a
// carriage return is written with a single quote in front, so that a
// spreadsheet shows it as text instead of running it as a formula: a
// region's name comes from the hub's region table, which an imported
// table or an older overlay may have filled with =HYPERLINK(…). Counts and
// shares are written as numbers, as they are.
func WritePlainCSV(w io.Writer, rep Report) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"code", "name", "level", "urban", "rural", "total", "urban_share"})
	for _, r := range rep.Rows {
		share := ""
		if r.UrbanShare != nil {
			share = strconv.FormatFloat(*r.UrbanShare, 'f', 4, 64)
		}
		_ = cw.Write([]string{text(r.Code), text(r.Name), text(r.Level), r.Urban.String(), r.Rural.String(), r.Total.String(), share})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing CSV: %w", err)
	}
	return nil
}

// formulaStarts are the first characters that make a spreadsheet take a
// cell for a formula (OWASP's list for CSV injection).
const formulaStarts = "=+-@\t\r"

// text is a text cell of the CSV report, with a single quote in front when
// it begins with one of formulaStarts, which a spreadsheet shows as text.
func text(s string) string {
	if s != "" && strings.IndexByte(formulaStarts, s[0]) >= 0 {
		return "'" + s
	}
	return s
}

// WriteJSON writes the report as one JSON document, names as the hub
// wrote them.
func WriteJSON(w io.Writer, rep Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // a hidden count reads "<5", not "\u003c5"
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// below is the level (code length) under codes of length n, 0 under a
// village.
func below(n int) int { return int(divisions.Level(n).Below()) }
