package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/storetest"
)

// countingCounter counts the reads of the counters behind it.
type countingCounter struct {
	api.Counter
	reads atomic.Int64
}

func (c *countingCounter) Counts(ctx context.Context, q hub.CountQuery) (map[string]hub.Tally, error) {
	c.reads.Add(1)
	return c.Counter.Counts(ctx, q)
}

// TestUrbanRuralDepth: depth asks for a region and the regions below it,
// levels deep, in one answer from one read of the counters, so that every
// region's row in it is the sum of its children's where they cover it,
// even while the hub ingests. Each region reads there, cell for cell, as
// it reads asked for alone with its children, whatever the caller's
// minimum cell, so the new shape hides the same cells in the same
// groups; without depth, the answer is what it was.
func TestUrbanRuralDepth(t *testing.T) {
	store := newMemStore(t)
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, cst)
	var in []hub.Input
	n := 100
	add := func(k int, addr string) {
		for range k {
			in = append(in, registration(t, n, addr, at))
			n++
		}
	}
	add(12, "230102001001")
	add(2, "230102019200")
	add(3, "230103001001")
	add(9, "230103020200")
	storetest.ApplyAll(t, store, in, 10)

	for _, tc := range []struct {
		name    string
		minCell int
		region  string
		depth   int
		rows    int // regions in the answer
	}{
		{"province to townships", 0, "23", 3, 8},
		{"province to townships, small cells hidden", 5, "23", 3, 8},
		{"city to villages", 5, "2301", 3, 9},
		{"city in six digits to counties", 5, "230100", 1, 3},
		{"county to villages", 10, "230103", 2, 4},
		{"deeper than the table", 5, "230102001", 3, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			counter := &countingCounter{Counter: store}
			srv := httptest.NewServer(api.New(api.Config{Store: store, Counter: counter, Regions: testRegions{}, Authorizer: cellGrant{tc.minCell}}).Handler())
			defer srv.Close()
			base := srv.URL + "/v1/stats/urban-rural?as_of=2020-06-30&region="
			var tree api.UrbanRuralTree
			if code := getInto(t, base+tc.region+"&depth="+string(rune('0'+tc.depth)), &tree); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if r := counter.reads.Load(); r != 1 {
				t.Errorf("the answer read the counters %d times, want once", r)
			}
			if tree.Region != tc.region || tree.Depth != tc.depth || tree.AsOf != "2020-06-30" {
				t.Errorf("answer for %s, depth %d, as of %s; want %s, %d, 2020-06-30", tree.Region, tree.Depth, tree.AsOf, tc.region, tc.depth)
			}
			// Each region as asked alone with its children.
			alone := func(code string) api.UrbanRural {
				var a api.UrbanRural
				if status := getInto(t, base+code+"&children=true", &a); status != http.StatusOK {
					t.Fatalf("%s with children: status %d", code, status)
				}
				return a
			}
			rows := 0
			var walk func(node api.RegionTree, level int)
			walk = func(node api.RegionTree, level int) {
				rows++
				if level == tc.depth {
					if node.Children != nil {
						t.Errorf("%s at the depth asked has children %+v", node.Region, node.Children)
					}
					return
				}
				a := alone(node.Region)
				// Below the top, a region's row is compared where it is
				// decided: among its parent's children.
				if level == 0 && a.RegionCount != node.RegionCount {
					t.Errorf("%s reads %+v in the subtree, %+v asked alone", node.Region, node.RegionCount, a.RegionCount)
				}
				if len(a.Children) != len(node.Children) {
					t.Fatalf("%s: %d children in the subtree, %d asked alone", node.Region, len(node.Children), len(a.Children))
				}
				for i, c := range node.Children {
					if c.RegionCount != a.Children[i] {
						t.Errorf("%s reads %+v in the subtree, %+v among its parent's children", c.Region, c.RegionCount, a.Children[i])
					}
					walk(c, level+1)
				}
			}
			walk(api.RegionTree{RegionCount: tree.RegionCount, Children: tree.Children}, 0)
			if rows != tc.rows {
				t.Errorf("%d regions in the answer, want %d", rows, tc.rows)
			}
		})
	}
}

// TestUrbanRuralDepthRefusals: a depth beyond the bound, or one that is no
// number of levels, or one at odds with children, answers 400 saying why;
// residence permits, counted per city, take no depth.
func TestUrbanRuralDepthRefusals(t *testing.T) {
	store := newMemStore(t)
	srv := httptest.NewServer(api.New(api.Config{Store: store, Counter: store, Regions: testRegions{}}).Handler())
	defer srv.Close()
	for _, tc := range []struct {
		query string
		why   string
	}{
		{"urban-rural?region=23&depth=4", "at most 3 levels"},
		{"urban-rural?region=23&depth=0", "want 1 to 3"},
		{"urban-rural?region=23&depth=-1", "want 1 to 3"},
		{"urban-rural?region=23&depth=two", "want 1 to 3"},
		{"urban-rural?region=23&depth=2&children=false", "children=false"},
		{"residence-permits?region=23&depth=1", `unknown query parameter "depth"`},
	} {
		t.Run(tc.query, func(t *testing.T) {
			var p api.Problem
			if code := getInto(t, srv.URL+"/v1/stats/"+tc.query, &p); code != http.StatusBadRequest || !strings.Contains(p.Detail, tc.why) {
				t.Errorf("status %d, detail %q; want 400 saying %q", code, p.Detail, tc.why)
			}
		})
	}
}

// TestProblemDetailClipsWholeCharacters: a long Chinese text a caller gave,
// repeated shortened in a problem detail, is cut between characters, not
// inside one (which showed as "\xe5…" in the quoted text).
func TestProblemDetailClipsWholeCharacters(t *testing.T) {
	store := newMemStore(t)
	srv := httptest.NewServer(api.New(api.Config{Store: store, Counter: store, Regions: testRegions{}}).Handler())
	defer srv.Close()
	long := "黑龙江省哈尔滨市道里区新阳路街道办事处社区居委会"
	for _, query := range []string{
		"urban-rural?region=" + url.QueryEscape(long),
		"urban-rural?region=23&" + url.QueryEscape(long) + "=1",
	} {
		var p api.Problem
		code := getInto(t, srv.URL+"/v1/stats/"+query, &p)
		if code != http.StatusBadRequest || !strings.Contains(p.Detail, "黑龙江省哈尔滨市道里区新阳路街道办事处社区…") || strings.Contains(p.Detail, `\x`) {
			t.Errorf("%s: status %d, detail %q; want 400 quoting the text cut after 社区", query, code, p.Detail)
		}
	}
}
