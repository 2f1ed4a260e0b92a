package dashboards_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/ops/dashboards"
)

// ruleFile is the shape of a Prometheus rule file.
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var (
	alertName = regexp.MustCompile(`^Pophub[A-Z][A-Za-z0-9]*$`)
	jobLabel  = regexp.MustCompile(`\bjob\s*=\s*"([^"]*)"`)
)

// TestAlertRules checks ops/docker/alerts.yml: it has the shape of a
// Prometheus rule file (no other keys), every alert waits (for), has a
// severity and says what happened and which pophub command to run, every
// series it names is in metrics.txt (which cmd/pophub checks against a
// scrape), every job it names is scraped by ops/docker/prometheus.yml, and
// the signals operators need are all watched. TestComposeStack checks that
// Prometheus loads the file; TestAlertRulesPromtool evaluates it.
func TestAlertRules(t *testing.T) {
	known, err := dashboards.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, names := range known {
		all = append(all, names...)
	}
	var prom promConfig
	readYAML(t, "ops/docker/prometheus.yml", &prom)
	jobs := map[string]bool{}
	for _, sc := range prom.ScrapeConfigs {
		jobs[sc.JobName] = true
	}

	b, err := os.ReadFile(repo(t, "ops/docker/alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("parsing ops/docker/alerts.yml as a Prometheus rule file: %v", err)
	}
	if len(rf.Groups) == 0 {
		t.Fatal("ops/docker/alerts.yml has no rule groups")
	}

	groups := map[string]bool{}
	alerts := map[string]bool{}
	severities := map[string]string{} // alert expression → severity
	watched := map[string]bool{}      // series and job selectors the alerts use
	for gi, g := range rf.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("group %d: name %q: want a unique, non-empty name", gi, g.Name)
		}
		groups[g.Name] = true
		if g.Interval != "" {
			if _, err := promDuration(g.Interval); err != nil {
				t.Errorf("group %s: interval: %v", g.Name, err)
			}
		}
		if len(g.Rules) == 0 {
			t.Errorf("group %s has no rules", g.Name)
		}
		for ri, r := range g.Rules {
			where := fmt.Sprintf("group %s rule %d (%s%s)", g.Name, ri, r.Alert, r.Record)
			if (r.Alert == "") == (r.Record == "") {
				t.Errorf("%s: want exactly one of alert and record", where)
				continue
			}
			if r.Expr == "" {
				t.Errorf("%s: no expr", where)
				continue
			}
			for _, n := range checkExpr(t, where, r.Expr, all) {
				watched[n] = true
			}
			for _, m := range jobLabel.FindAllStringSubmatch(r.Expr, -1) {
				if !jobs[m[1]] {
					t.Errorf("%s: job %q is not a scrape job of ops/docker/prometheus.yml", where, m[1])
				}
				watched[m[0]] = true
			}
			if r.Record != "" {
				continue
			}

			if !alertName.MatchString(r.Alert) || alerts[r.Alert] {
				t.Errorf("%s: want a unique name matching %s", where, alertName)
			}
			alerts[r.Alert] = true
			severities[r.Expr] = r.Labels["severity"]
			// An alert without for fires at the first evaluation that
			// matches: one late scrape or a restart would page.
			if d, err := promDuration(r.For); err != nil || d <= 0 {
				t.Errorf("%s: for %q: want a positive Prometheus duration (%v)", where, r.For, err)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q: want critical or warning", where, s)
			}
			summary, description := r.Annotations["summary"], r.Annotations["description"]
			if summary == "" || description == "" {
				t.Errorf("%s: want annotations summary and description", where)
			}
			// What to do starts with a pophub command the operator runs.
			if !strings.Contains(description, "`pophub ") {
				t.Errorf("%s: the description names no `pophub ...` command to run: %q", where, description)
			}
			for k, v := range r.Annotations {
				if strings.Count(v, "{{") != strings.Count(v, "}}") {
					t.Errorf("%s: annotation %s: unbalanced template %q", where, k, v)
				}
			}
		}
	}

	for _, n := range []string{`job="pophub"`, "pophub_relay_leader", "pophub_nats_connected", "pophub_outbox_age_seconds",
		"pophub_consumer_lag_timestamp_seconds", "pophub_consumer_lag", "pophub_events_rejected_total",
		"pophub_dlq_dropped_total", "pophub_sdk_gaps_total", "pophub_store_apply_duration_seconds_count",
		"pophub_notifications_lost_total"} {
		if !watched[n] {
			t.Errorf("no alert in ops/docker/alerts.yml watches %s", n)
		}
	}

	// Selectors a metric name alone does not pin down, and the severity
	// their alert needs. Records a source topic's retention deleted
	// before the hub read them are events lost for good, unless the
	// department sends them again: the hub counted them, and no alert
	// read the count.
	for _, w := range []struct{ selector, severity string }{
		{`pophub_events_skipped_total{reason="retention"}`, "critical"},
		{"pophub_notifications_lost_total", "critical"},
	} {
		found := false
		for expr, sev := range severities {
			if strings.Contains(expr, w.selector) && sev == w.severity {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s alert in ops/docker/alerts.yml watches %s", w.severity, w.selector)
		}
	}
}

// promUnits are the units of a Prometheus duration, largest first.
var promUnits = []struct {
	suffix string
	d      time.Duration
}{{"y", 365 * 24 * time.Hour}, {"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour},
	{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}}

var durationPart = regexp.MustCompile(`^([0-9]+)(ms|[ywdhms])`)

// promDuration parses a Prometheus duration such as "1h30m" or "90s":
// integers with units from years to milliseconds, largest first, each at
// most once (time.ParseDuration accepts "1.5m", which Prometheus refuses).
func promDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var total time.Duration
	next := 0 // promUnits[:next] are used up
	for rest := s; rest != ""; {
		m := durationPart.FindStringSubmatch(rest)
		if m == nil {
			return 0, fmt.Errorf("%q is not a Prometheus duration", s)
		}
		i := next
		for i < len(promUnits) && promUnits[i].suffix != m[2] {
			i++
		}
		if i == len(promUnits) {
			return 0, fmt.Errorf("%q: units repeated or out of order", s)
		}
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q: %w", s, err)
		}
		total += time.Duration(n) * promUnits[i].d
		next = i + 1
		rest = rest[len(m[0]):]
	}
	return total, nil
}

func TestPromDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2m", 2 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"0s", 0, true},
		{"1d", 24 * time.Hour, true},
		{"500ms", 500 * time.Millisecond, true},
		{"", 0, false},
		{"1.5m", 0, false},
		{"30m1h", 0, false},
		{"5", 0, false},
		{"1m1m", 0, false},
	} {
		got, err := promDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("promDuration(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestAlertRulesPromtool runs Prometheus's own checks on the rules:
// `promtool check rules` parses every expression and template, and
// `promtool test rules` evaluates the cases of ops/docker/alerts_test.yml,
// which include healthy hubs on which nothing may fire. Without promtool
// on PATH (Debian: the prometheus package; .ci/run unpacks it) the test
// is skipped, or fails under CI=true.
func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		testenv.Unavailable(t, "promtool is not on PATH (Debian's prometheus package has it): %v", err)
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.CommandContext(t.Context(), promtool, args...)
		cmd.Dir = repo(t, "ops/docker")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
