package statsbureau

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
)

// regions is a small division table for the hub under test.
type regions map[string]string

func (r regions) Name(code string) (string, bool) { n, ok := r[code]; return n, ok }

func (r regions) Children(code string) []string {
	var out []string
	for c := range r {
		if len(c) > len(code) && strings.HasPrefix(c, code) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	var direct []string
	for _, c := range out {
		if len(direct) == 0 || !strings.HasPrefix(c, direct[len(direct)-1]) {
			direct = append(direct, c)
		}
	}
	return direct
}

var table = regions{
	"23": "黑龙江省", "2301": "哈尔滨市", "2306": "大庆市", "230102": "道里区", "230602": "萨尔图区",
	"230102001": "兆麟街道", "230102001001": "兆麟社区居委会", "230102019": "新农镇", "230102019200": "新农村委会",
	"230602013": "萨尔图街道", "230602013001": "会战社区居委会",
}

// startHub runs the hub's real API over a real memdb store holding
// registrations at the given addresses (all on 2020-01-01).
func startHub(t *testing.T, addrs ...string) string {
	t.Helper()
	store, err := memdb.Open(context.Background(), memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var in []hub.Input
	for i, a := range addrs {
		in = append(in, storetest.Event(t, schemas.HukouRegistered, storetest.ValidID(i), fmt.Sprintf("ps-%d", i),
			time.Date(2020, 1, 1, 9, 0, 0, 0, time.FixedZone("CST", 8*3600)),
			schemas.HukouRegisteredData{Name: "王伟", Gender: "1", BirthDate: "1980-05-05", Ethnicity: "01", AddressCode: a, HouseholdID: "H1", Reason: "birth"}))
	}
	storetest.ApplyAll(t, store, in, 10)
	srv := httptest.NewServer(api.New(api.Config{Store: store, Counter: store, Regions: table}).Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestPullDownToVillages(t *testing.T) {
	url := startHub(t, "230102001001", "230102001001", "230102019200", "230602013001")
	c, err := New(Config{HubURL: url})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := c.Pull(context.Background(), "23", "2020-06-30", 12)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"23 黑龙江省 province 3 1 4 0.7500",
		"2301 哈尔滨市 city 2 1 3 0.6667",
		"230102 道里区 county 2 1 3 0.6667",
		"230102001 兆麟街道 township 2 0 2 1.0000",
		"230102001001 兆麟社区居委会 village 2 0 2 1.0000",
		"230102019 新农镇 township 0 1 1 0.0000",
		"230102019200 新农村委会 village 0 1 1 0.0000",
		"2306 大庆市 city 1 0 1 1.0000",
		"230602 萨尔图区 county 1 0 1 1.0000",
		"230602013 萨尔图街道 township 1 0 1 1.0000",
		"230602013001 会战社区居委会 village 1 0 1 1.0000",
	}
	if got := rowTexts(rep.Rows); rep.AsOf != "2020-06-30" || !slices.Equal(got, want) {
		t.Fatalf("report as of %s:\n%s\nwant\n%s", rep.AsOf, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Depth limits the walk; the date is the hub's business.
	first := rep
	rep, err = c.Pull(context.Background(), "23", "2019-12-31", 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 3 || rep.Rows[0].Total.N != 0 {
		t.Fatalf("depth 4 before any registration: %+v", rep.Rows)
	}
	// Nobody lives there yet: no share, rather than a wholly rural 0.
	if rep.Rows[0].UrbanShare != nil {
		t.Fatalf("empty region %s has urban share %v, want none", rep.Rows[0].Code, *rep.Rows[0].UrbanShare)
	}
	var empty bytes.Buffer
	if err := WriteCSV(&empty, Report{Rows: rep.Rows[:1]}); err != nil || !strings.HasSuffix(strings.TrimSpace(empty.String()), ",0,0,0,") {
		t.Fatalf("CSV of an empty region: %q (%v)", empty.String(), err)
	}

	var buf bytes.Buffer
	if err := WriteCSV(&buf, Report{Rows: first.Rows[:2]}); err != nil {
		t.Fatal(err)
	}
	// The report begins with the UTF-8 byte order mark (for Excel); a
	// program reading it skips the mark.
	lines, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(buf.Bytes(), []byte(BOM)))).ReadAll()
	if err != nil || len(lines) != 3 || strings.Join(lines[0], ",") != "code,name,level,urban,rural,total,urban_share" ||
		strings.Join(lines[2], ",") != "2301,哈尔滨市,city,2,1,3,0.6667" {
		t.Fatalf("CSV %q (%v)", lines, err)
	}
}

// TestPullCityInSixDigits: the hub takes a city written in six digits
// (230100) as the city 2301 and repeats the code as asked; the report
// keeps that code but gives the city's level and walks down from the city.
func TestPullCityInSixDigits(t *testing.T) {
	url := startHub(t, "230102001001", "230102001001", "230102019200")
	c, err := New(Config{HubURL: url})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		region string
		depth  int
		want   []string
	}{
		{"230100", 6, []string{
			"230100 哈尔滨市 city 2 1 3 0.6667",
			"230102 道里区 county 2 1 3 0.6667",
		}},
		{"230100", 9, []string{
			"230100 哈尔滨市 city 2 1 3 0.6667",
			"230102 道里区 county 2 1 3 0.6667",
			"230102001 兆麟街道 township 2 0 2 1.0000",
			"230102019 新农镇 township 0 1 1 0.0000",
		}},
		// The city alone: depth city is the region's own level.
		{"230100", 4, []string{"230100 哈尔滨市 city 2 1 3 0.6667"}},
		// A county is still a county.
		{"230102", 6, []string{"230102 道里区 county 2 1 3 0.6667"}},
	} {
		rep, err := c.Pull(context.Background(), tc.region, "2020-06-30", tc.depth)
		if err != nil {
			t.Errorf("Pull(%s, depth %d): %v", tc.region, tc.depth, err)
			continue
		}
		if got := rowTexts(rep.Rows); rep.Region != tc.region || !slices.Equal(got, tc.want) {
			t.Errorf("Pull(%s, depth %d): report of %s\n%s\nwant\n%s", tc.region, tc.depth, rep.Region,
				strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}

// rowTexts shows rows as "code name level urban rural total share".
func rowTexts(rows []Row) []string {
	var out []string
	for _, r := range rows {
		share := "-"
		if r.UrbanShare != nil {
			share = fmt.Sprintf("%.4f", *r.UrbanShare)
		}
		out = append(out, fmt.Sprintf("%s %s %s %s %s %s %s", r.Code, r.Name, r.Level, r.Urban, r.Rural, r.Total, share))
	}
	return out
}

// minCellGrant is the grant of a caller whose small cells the hub hides
// (an identity other than the statistics bureau, under a policy).
type minCellGrant struct{ k int }

func (g minCellGrant) Authorize(*http.Request, string) (api.Grant, error) { return g, nil }
func (minCellGrant) Record(_ context.Context, rec hub.Record) hub.Record  { return rec }
func (minCellGrant) History(_ context.Context, ch []hub.Change) []hub.Change {
	return ch
}
func (minCellGrant) Done(context.Context, api.Outcome) {}
func (g minCellGrant) MinCell() int                    { return g.k }

// A caller whose small cells are hidden gets the hub's markers through,
// in the report and the CSV, and no share where a count is hidden.
func TestPullHiddenCells(t *testing.T) {
	store, err := memdb.Open(context.Background(), memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var in []hub.Input
	for i, a := range []string{"230102001001", "230102001001", "230102001001", "230102001001", "230102001001", "230102019200", "230102019200"} {
		in = append(in, storetest.Event(t, schemas.HukouRegistered, storetest.ValidID(i), fmt.Sprintf("ps-%d", i),
			time.Date(2020, 1, 1, 9, 0, 0, 0, time.FixedZone("CST", 8*3600)),
			schemas.HukouRegisteredData{Name: "王伟", Gender: "1", BirthDate: "1980-05-05", Ethnicity: "01", AddressCode: a, HouseholdID: "H1", Reason: "birth"}))
	}
	storetest.ApplyAll(t, store, in, 10)
	srv := httptest.NewServer(api.New(api.Config{Store: store, Counter: store, Regions: table, Authorizer: minCellGrant{k: 3}}).Handler())
	t.Cleanup(srv.Close)

	c, err := New(Config{HubURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := c.Pull(context.Background(), "230102", "2020-06-30", 6)
	if err != nil {
		t.Fatalf("pulling with small cells hidden: %v", err)
	}
	// Rural 2 is below 3, and urban with it, since one alone would give
	// the other away from the total; urban 5 is not small, so its marker
	// is "suppressed". With the total 7 shown, rural is 1 or 2 and urban
	// 5 or 6: neither is given away.
	if got, want := rowTexts(rep.Rows), []string{"230102 道里区 county suppressed <3 7 -"}; !slices.Equal(got, want) {
		t.Fatalf("rows %q, want %q", got, want)
	}
	var buf bytes.Buffer
	if err := WriteCSV(&buf, rep); err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSpace(buf.String()), "\n")[1]; got != "230102,道里区,county,suppressed,<3,7," {
		t.Errorf("CSV row %q", got)
	}
	// The JSON report carries the markers as the hub wrote them.
	var buf2 bytes.Buffer
	enc := json.NewEncoder(&buf2)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rep.Rows[0]); err != nil || !strings.Contains(buf2.String(), `"urban":"suppressed","rural":"<3","total":7,"urban_share":null`) {
		t.Errorf("JSON %s (%v)", buf2.String(), err)
	}
}

func TestPullErrors(t *testing.T) {
	url := startHub(t, "230102001001")
	c, _ := New(Config{HubURL: url})
	for _, tc := range []struct {
		region, asOf string
		depth        int
		want         string
	}{
		{"230", "", 6, "division code"},
		{"2301", "", 2, "depth"},
		{"2302", "", 6, "404"},
		{"23", "2099-01-01", 4, "future"},
	} {
		if _, err := c.Pull(context.Background(), tc.region, tc.asOf, tc.depth); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Pull(%s, %q, %d) = %v, want an error mentioning %q", tc.region, tc.asOf, tc.depth, err, tc.want)
		}
	}
	if _, err := New(Config{HubURL: "ftp://x"}); err == nil {
		t.Error("New accepted an ftp URL")
	}
}

// TestCountJSON: a count reads a number or either of the hub's markers,
// and writes back what it read.
func TestCountJSON(t *testing.T) {
	tests := []struct {
		name, in string
		want     Count
		wantErr  bool
	}{
		{"number", `42`, Count{N: 42}, false},
		{"small cell", `"<5"`, Count{Hidden: "<5"}, false},
		{"complementary cell", `"suppressed"`, Count{Hidden: "suppressed"}, false},
		{"other text", `"hidden"`, Count{}, true},
		{"bare marker", `"<"`, Count{}, true},
		{"not a number", `4.5`, Count{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got Count
			err := json.Unmarshal([]byte(tc.in), &got)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("reading %s: %+v, %v; want %+v (error %v)", tc.in, got, err, tc.want, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			var back Count
			if b, _ := json.Marshal(got); json.Unmarshal(b, &back) != nil || back != got {
				t.Errorf("%s written back as %s", tc.in, b)
			}
		})
	}
}

// TestWriteCSVByteOrderMark: the bureau's clerk double-clicks the report in
// Excel on Chinese Windows, which reads a CSV without a byte order mark in
// the ANSI code page (GBK there), so UTF-8 哈尔滨市 would show as
// 鍝堝皵婊ㄥ競. WriteCSV begins with the UTF-8 BOM; WritePlainCSV, for
// programs that do not expect one, does not. Both read back the same.
func TestWriteCSVByteOrderMark(t *testing.T) {
	rep := Report{Region: "2301", AsOf: "2025-12-31", Rows: []Row{{Code: "2301", Name: "哈尔滨市", Level: "city",
		Urban: Count{N: 2}, Rural: Count{N: 1}, Total: Count{N: 3}}}}
	tests := []struct {
		name    string
		write   func(io.Writer, Report) error
		wantBOM bool
	}{
		{"for Excel", WriteCSV, true},
		{"plain", WritePlainCSV, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tc.write(&buf, rep); err != nil {
				t.Fatal(err)
			}
			if got := bytes.HasPrefix(buf.Bytes(), []byte(BOM)); got != tc.wantBOM {
				t.Fatalf("CSV starts %q: byte order mark %v, want %v", buf.Bytes()[:min(12, buf.Len())], got, tc.wantBOM)
			}
			lines, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(buf.Bytes(), []byte(BOM)))).ReadAll()
			if err != nil || len(lines) != 2 || lines[0][0] != "code" || strings.Join(lines[1], ",") != "2301,哈尔滨市,city,2,1,3," {
				t.Errorf("CSV %q (%v)", lines, err)
			}
		})
	}
}

// TestWriteCSVFormulaCells: the bureau opens the report in Excel, which
// runs a cell beginning with = + - @, a tab or a carriage return as a
// formula. A region's name comes from the hub's region table, which an
// imported table may have filled with one, so such a text cell is written
// with a single quote in front and shows as text; counts and shares stay
// numbers, a negative one too.
func TestWriteCSVFormulaCells(t *testing.T) {
	share := 0.5
	tests := []struct {
		name string
		row  Row
		want []string // the row's cells as a CSV reader reads them back
	}{
		{"hyperlink", Row{Code: "230102001004", Name: `=HYPERLINK("http://evil.example/","森林社区")`, Level: "village", Urban: Count{N: 1}, Rural: Count{N: 1}, Total: Count{N: 2}, UrbanShare: &share},
			[]string{"230102001004", `'=HYPERLINK("http://evil.example/","森林社区")`, "village", "1", "1", "2", "0.5000"}},
		{"plus", Row{Code: "2301", Name: "+1+1", Level: "city"}, []string{"2301", "'+1+1", "city", "0", "0", "0", ""}},
		{"minus", Row{Code: "2301", Name: "-1+1", Level: "city"}, []string{"2301", "'-1+1", "city", "0", "0", "0", ""}},
		{"at", Row{Code: "2301", Name: "@SUM(1+1)", Level: "city"}, []string{"2301", "'@SUM(1+1)", "city", "0", "0", "0", ""}},
		{"tab", Row{Code: "2301", Name: "\t=1+1", Level: "city"}, []string{"2301", "'\t=1+1", "city", "0", "0", "0", ""}},
		{"carriage return", Row{Code: "2301", Name: "\r=1+1", Level: "city"}, []string{"2301", "'\r=1+1", "city", "0", "0", "0", ""}},
		{"code and level", Row{Code: "=1", Level: "@x"}, []string{"'=1", "", "'@x", "0", "0", "0", ""}},
		{"formula characters inside", Row{Code: "2301", Name: "哈尔滨市=+-@", Level: "city"}, []string{"2301", "哈尔滨市=+-@", "city", "0", "0", "0", ""}},
		{"negative counts stay numbers", Row{Code: "2301", Name: "哈尔滨市", Level: "city", Urban: Count{N: -1}, Rural: Count{N: -2}, Total: Count{N: -3}},
			[]string{"2301", "哈尔滨市", "city", "-1", "-2", "-3", ""}},
		{"markers", Row{Code: "2301", Name: "哈尔滨市", Level: "city", Urban: Count{Hidden: "suppressed"}, Rural: Count{Hidden: "<5"}, Total: Count{N: 7}},
			[]string{"2301", "哈尔滨市", "city", "suppressed", "<5", "7", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WritePlainCSV(&buf, Report{Rows: []Row{tc.row}}); err != nil {
				t.Fatal(err)
			}
			lines, err := csv.NewReader(&buf).ReadAll()
			if err != nil || len(lines) != 2 {
				t.Fatalf("CSV %q (%v)", lines, err)
			}
			if got := lines[1]; !slices.Equal(got, tc.want) {
				t.Errorf("row %q, want %q", got, tc.want)
			}
		})
	}
}
