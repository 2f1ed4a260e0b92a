// Package statsbureau is the statistics bureau's side of the hub: it pulls
// the registered-population counts by urban/rural class for a region and
// every region below it down to a chosen level, as of a reference date,
// and writes them as the CSV or JSON a bureau loads into its own tools.
//
// It talks to the hub's HTTP API only (GET /v1/stats/urban-rural with
// children=true, one request per region that has children), so it runs
// anywhere the bureau can reach the hub.
package statsbureau

import (
	"context"
	"crypto/tls"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pophub/pophub/internal/tlshttp"
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
	// Concurrency bounds requests in flight (default 8).
	Concurrency int
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
func (c *Client) Pull(ctx context.Context, region, asOf string, depth int) (Report, error) {
	if _, ok := levelNames[len(region)]; !ok {
		return Report{}, fmt.Errorf("region %q: want a 2-, 4-, 6-, 9- or 12-digit division code", region)
	}
	if _, ok := levelNames[depth]; !ok || depth < len(region) {
		return Report{}, fmt.Errorf("depth %d: want a code length of 2, 4, 6, 9 or 12, at least the region's (%d)", depth, len(region))
	}
	top, err := c.get(ctx, region, asOf, depth > len(region))
	if err != nil {
		return Report{}, err
	}
	rep := Report{Region: region, AsOf: top.AsOf}
	var mu sync.Mutex
	add := func(cn count) {
		mu.Lock()
		rep.Rows = append(rep.Rows, row(cn))
		mu.Unlock()
	}
	add(count{top.Region, top.Name, top.Urban, top.Rural, top.Total})

	// Walk level by level; each level's regions are asked concurrently.
	level := top.Children
	for len(level) > 0 {
		for _, cn := range level {
			add(cn)
		}
		var next []count
		var expand []string
		for _, cn := range level {
			if len(cn.Region) < depth && len(cn.Region) < 12 {
				expand = append(expand, cn.Region)
			}
		}
		if len(expand) == 0 {
			break
		}
		results := make([][]count, len(expand))
		errs := make([]error, len(expand))
		sem := make(chan struct{}, c.cfg.Concurrency)
		var wg sync.WaitGroup
		for i, code := range expand {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				a, err := c.get(ctx, code, rep.AsOf, true)
				results[i], errs[i] = a.Children, err
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return Report{}, err
		}
		for _, r := range results {
			next = append(next, r...)
		}
		level = next
	}
	sort.Slice(rep.Rows, func(i, j int) bool { return rep.Rows[i].Code < rep.Rows[j].Code })
	return rep, nil
}

func row(c count) Row {
	r := Row{Code: c.Region, Name: c.Name, Level: levelNames[len(c.Region)], Urban: c.Urban, Rural: c.Rural, Total: c.Total}
	if c.Urban.Hidden == "" && c.Total.Hidden == "" && c.Total.N > 0 {
		share := float64(c.Urban.N) / float64(c.Total.N)
		r.UrbanShare = &share
	}
	return r
}

// get asks the hub for one region's counts.
func (c *Client) get(ctx context.Context, region, asOf string, children bool) (answer, error) {
	q := url.Values{"region": {region}}
	if asOf != "" {
		q.Set("as_of", asOf)
	}
	if children {
		q.Set("children", "true")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.HubURL+"/v1/stats/urban-rural?"+q.Encode(), nil)
	if err != nil {
		return answer{}, fmt.Errorf("asking for %s: %w", region, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Purpose", c.cfg.Purpose)
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("asking for %s: %w", region, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return answer{}, fmt.Errorf("reading the counts of %s: %w", region, err)
	}
	if resp.StatusCode != http.StatusOK {
		var p struct {
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(body, &p)
		return answer{}, fmt.Errorf("asking for %s: hub answered %s: %s", region, resp.Status, p.Detail)
	}
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
