// Package statsbureau is the statistics bureau's side of the hub: it pulls
// the registered-population counts by urban/rural class for a region and
// every region below it down to a chosen level, as of a reference date,
// and writes them as the CSV or JSON a bureau loads into its own tools.
//
// It talks to the hub's HTTP API only (GET /v1/stats/urban-rural with
// children=true, one request per region that has children), so it runs
// anywhere the bureau can reach the hub. A hub under an access policy
// limits each identity's request rate; a pull keeps within it by waiting
// out refusals and sending fewer requests at once (see throttle).
package statsbureau

import (
	"context"
	"crypto/tls"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
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
// subtraction as "suppressed".
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
	// Logger receives a line each time a pull slows down (default: none).
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

// answer is the hub's urban-rural body.
type answer struct {
	Region   string  `json:"region"`
	Name     string  `json:"name"`
	AsOf     string  `json:"as_of"`
	Urban    Count   `json:"urban"`
	Rural    Count   `json:"rural"`
	Total    Count   `json:"total"`
	Children []count `json:"children"`
}

type count struct {
	Region string `json:"region"`
	Name   string `json:"name"`
	Urban  Count  `json:"urban"`
	Rural  Count  `json:"rural"`
	Total  Count  `json:"total"`
}

// Pull counts region and every region below it down to codes of depth
// digits (2, 4, 6, 9 or 12), as of asOf (YYYY-MM-DD; empty: the hub's
// today). Regions whose children are at or beyond depth are not asked for
// their children.
//
// Requests go out a level at a time, up to Config.Concurrency at once,
// fewer once the hub has refused some for the identity's rate limit; see
// Config for how long a pull waits before it gives up.
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
	th := newThrottle(c.cfg.Concurrency)
	top, err := c.get(ctx, th, region, asOf, depth > n)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Region: region, AsOf: top.AsOf}
	rep.Rows = append(rep.Rows, row(count{top.Region, top.Name, top.Urban, top.Rural, top.Total}, n))

	// Walk level by level; each level's regions are asked concurrently.
	level := notItself(region, top.Children)
	for l := below(n); len(level) > 0; l = below(l) {
		for _, cn := range level {
			rep.Rows = append(rep.Rows, row(cn, l))
		}
		if l >= depth || below(l) == 0 {
			break
		}
		// The throttle bounds the requests in flight; the group only
		// bounds the goroutines, and stops the level at its first error.
		results := make([][]count, len(level))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(c.cfg.Concurrency)
		for i, cn := range level {
			g.Go(func() error {
				a, err := c.get(gctx, th, cn.Region, rep.AsOf, true)
				results[i] = notItself(cn.Region, a.Children)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return Report{}, err
		}
		var next []count
		for _, r := range results {
			next = append(next, r...)
		}
		level = next
	}
	sort.Slice(rep.Rows, func(i, j int) bool { return rep.Rows[i].Code < rep.Rows[j].Code })
	return rep, nil
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

// get asks the hub for one region's counts, through th: a request the hub
// refuses for the rate (429), or while unavailable for a time it names
// (503 with Retry-After), is sent again after the wait the hub asks for,
// within Config.MaxAttempts and Config.MaxWait.
func (c *Client) get(ctx context.Context, th *throttle, region, asOf string, children bool) (answer, error) {
	q := url.Values{"region": {region}}
	if asOf != "" {
		q.Set("as_of", asOf)
	}
	if children {
		q.Set("children", "true")
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
		refusal := fmt.Errorf("asking for %s: hub answered %d %s: %s", region, status, http.StatusText(status), p.Detail)
		if !retryable(status, h) {
			return answer{}, refusal
		}
		wait := retryDelay(h, attempt+1, time.Now())
		if attempt >= c.cfg.MaxAttempts || waited+wait > c.cfg.MaxWait {
			return answer{}, fmt.Errorf("%w (giving up at attempt %d, after waiting %s)", refusal, attempt, waited.Round(time.Millisecond))
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

// WriteCSV writes the report with a header line: code, name, level,
// urban, rural, total, urban_share (four decimals; a hidden count is its
// marker, "<5" or "suppressed"; the share of a row with one, or of a
// region where nobody lives, is empty).
func WriteCSV(w io.Writer, rep Report) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"code", "name", "level", "urban", "rural", "total", "urban_share"})
	for _, r := range rep.Rows {
		share := ""
		if r.UrbanShare != nil {
			share = strconv.FormatFloat(*r.UrbanShare, 'f', 4, 64)
		}
		_ = cw.Write([]string{r.Code, r.Name, r.Level, r.Urban.String(), r.Rural.String(), r.Total.String(), share})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing CSV: %w", err)
	}
	return nil
}

// WriteJSON writes the report as one JSON document.
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
