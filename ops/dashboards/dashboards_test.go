package dashboards_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pophub/pophub/ops/dashboards"
)

// metricName matches the series names a PromQL expression may use;
// upSeries Prometheus's own series of each target's scrape health.
var (
	metricName = regexp.MustCompile(`\b(?:pophub|go|process)_[a-zA-Z0-9_]+\b`)
	upSeries   = regexp.MustCompile(`\bup\s*\{`)
)

type panel struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // rows
}

// TestDashboards parses every dashboard, and fails when a PromQL
// expression names a series metrics.txt does not list (metrics.txt is
// checked against a real scrape by cmd/pophub's TestDashboardMetricsExported).
func TestDashboards(t *testing.T) {
	known, err := dashboards.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, names := range known {
		all = append(all, names...)
	}
	files, err := fs.Glob(dashboards.FS(), "*.json")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	if want := []string{"dlq.json", "ingest.json", "notifications.json", "subscribers.json"}; !slices.Equal(files, want) {
		t.Errorf("dashboards %v, want %v", files, want)
	}
	uids := map[string]string{}
	used := map[string]bool{}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			b, err := fs.ReadFile(dashboards.FS(), name)
			if err != nil {
				t.Fatal(err)
			}
			var d struct {
				UID    string  `json:"uid"`
				Title  string  `json:"title"`
				Panels []panel `json:"panels"`
			}
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatalf("parsing: %v", err)
			}
			if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
				t.Fatalf("uid %q, title %q, %d panels: want all three", d.UID, d.Title, len(d.Panels))
			}
			if other, dup := uids[d.UID]; dup {
				t.Errorf("uid %q also used by %s", d.UID, other)
			}
			uids[d.UID] = name
			var walk func([]panel)
			walk = func(ps []panel) {
				for _, p := range ps {
					walk(p.Panels)
					if p.Type == "text" || p.Type == "row" {
						continue
					}
					if len(p.Targets) == 0 {
						t.Errorf("panel %q has no queries", p.Title)
					}
					if p.Datasource == nil || p.Datasource.UID != "prometheus" {
						t.Errorf("panel %q: want datasource uid \"prometheus\" (ops/docker/grafana provisioning)", p.Title)
					}
					for _, tg := range p.Targets {
						for _, n := range checkExpr(t, fmt.Sprintf("panel %q", p.Title), tg.Expr, all) {
							used[n] = true
						}
					}
				}
			}
			walk(d.Panels)
		})
	}
	for _, n := range []string{"pophub_consumer_lag", "pophub_apply_duration_seconds_bucket", "pophub_ingest_batch_size_bucket",
		"pophub_events_applied_total", "pophub_events_duplicate_total", "pophub_outbox_backlog", "pophub_outbox_age_seconds",
		"pophub_notifications_published_total", "pophub_sdk_notifications_total", "pophub_events_rejected_total",
		// What the alerts of ops/docker/alerts.yml watch.
		"pophub_relay_leader", "pophub_consumer_lag_timestamp_seconds", "pophub_dlq_dropped_total", "pophub_sdk_gaps_total",
		"pophub_notifications_republished_total",
		// Records passed over, dropped spans and suppressed refusals: each
		// once exported with no panel to show it.
		"pophub_events_skipped_total", "pophub_trace_spans_dropped_total", "pophub_access_refusals_suppressed_total",
		"pophub_ingest_reader_errors_total"} {
		if !used[n] {
			t.Errorf("no dashboard shows %s", n)
		}
	}
}

// checkExpr reports, as the expression of where, a PromQL expression that
// names no metric (up{...} counts), is unbalanced, names a series that
// metrics.txt (known) does not list, or sums pophub_consumer_lag over
// instances; it returns the series names.
func checkExpr(t *testing.T, where, expr string, known []string) []string {
	t.Helper()
	names := metricName.FindAllString(expr, -1)
	if len(names) == 0 && !upSeries.MatchString(expr) {
		t.Errorf("%s: expression %q names no metric", where, expr)
	}
	if strings.Count(expr, "(") != strings.Count(expr, ")") || strings.Count(expr, "{") != strings.Count(expr, "}") {
		t.Errorf("%s: unbalanced expression %q", where, expr)
	}
	lag := 0
	for _, n := range names {
		if n == "pophub_consumer_lag" {
			lag++
		}
		if !slices.Contains(known, n) {
			t.Errorf("%s: %q is not a series the hub or SDK exports (metrics.txt)", where, n)
		}
	}
	// Every instance of a group reports the whole group's lag: an
	// expression summing the series would count it once per instance.
	if strings.Count(expr, "max by (topic, partition) (pophub_consumer_lag)") != lag {
		t.Errorf("%s: %q must take one value per partition (max by (topic, partition)) wherever it names pophub_consumer_lag: each hub instance reports the group's lag", where, expr)
	}
	return names
}

// repo is the repository root, two directories up.
func repo(t *testing.T, path string) string {
	t.Helper()
	return filepath.Join("..", "..", filepath.FromSlash(path))
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(repo(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
}

// promConfig is what the tests read of ops/docker/prometheus.yml.
type promConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// TestComposeStack checks the YAML of the observability stack and that its
// parts point at each other: no container engine runs here, so this is
// what keeps docker-compose.yml, the collector, Prometheus and Grafana
// consistent.
func TestComposeStack(t *testing.T) {
	var compose struct {
		Services map[string]struct {
			Image       string         `yaml:"image"`
			Command     []string       `yaml:"command"`
			Ports       []string       `yaml:"ports"`
			Volumes     []string       `yaml:"volumes"`
			Healthcheck map[string]any `yaml:"healthcheck"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	readYAML(t, "docker-compose.yml", &compose)
	for _, s := range []string{"otel-collector", "jaeger", "prometheus", "grafana", "pophub"} {
		if _, ok := compose.Services[s]; !ok {
			t.Errorf("docker-compose.yml lacks service %s", s)
		}
	}
	mounts := map[string]string{} // container path → host path
	for name, s := range compose.Services {
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %q: bind it to 127.0.0.1", name, p)
			}
		}
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if strings.HasPrefix(parts[0], "./") {
				if _, err := os.Stat(repo(t, parts[0])); err != nil {
					t.Errorf("service %s mounts %s: %v", name, parts[0], err)
				}
				mounts[parts[1]] = parts[0]
			} else if _, ok := compose.Volumes[parts[0]]; !ok {
				t.Errorf("service %s uses volume %s, not declared", name, parts[0])
			}
		}
	}
	if !slices.Contains(compose.Services["pophub"].Command, "--http=0.0.0.0:8780") ||
		!slices.Contains(compose.Services["pophub"].Command, "--otlp=http://otel-collector:4318") {
		t.Errorf("pophub command %v: want --http=0.0.0.0:8780 (scraped by Prometheus) and --otlp to the collector", compose.Services["pophub"].Command)
	}

	var collector struct {
		Receivers map[string]any `yaml:"receivers"`
		Exporters map[string]struct {
			Endpoint string `yaml:"endpoint"`
		} `yaml:"exporters"`
		Processors map[string]any `yaml:"processors"`
		Service    struct {
			Pipelines map[string]struct {
				Receivers  []string `yaml:"receivers"`
				Processors []string `yaml:"processors"`
				Exporters  []string `yaml:"exporters"`
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	readYAML(t, "ops/otel/collector.yaml", &collector)
	if mounts["/etc/otelcol/config.yaml"] != "./ops/otel/collector.yaml" {
		t.Errorf("the collector does not mount ops/otel/collector.yaml")
	}
	for name, p := range collector.Service.Pipelines {
		for _, r := range p.Receivers {
			if _, ok := collector.Receivers[r]; !ok {
				t.Errorf("pipeline %s: receiver %s not defined", name, r)
			}
		}
		for _, pr := range p.Processors {
			if _, ok := collector.Processors[pr]; !ok {
				t.Errorf("pipeline %s: processor %s not defined", name, pr)
			}
		}
		for _, e := range p.Exporters {
			if _, ok := collector.Exporters[e]; !ok {
				t.Errorf("pipeline %s: exporter %s not defined", name, e)
			}
		}
	}
	if !slices.Contains(collector.Service.Pipelines["traces"].Exporters, "otlp/jaeger") || collector.Exporters["otlp/jaeger"].Endpoint != "jaeger:4317" {
		t.Errorf("traces do not go to Jaeger: %+v", collector.Service.Pipelines["traces"])
	}
	if !slices.Contains(collector.Service.Pipelines["metrics"].Exporters, "prometheus") {
		t.Errorf("the collector offers no metrics to Prometheus")
	}

	var prom promConfig
	readYAML(t, "ops/docker/prometheus.yml", &prom)
	if mounts["/etc/prometheus/prometheus.yml"] != "./ops/docker/prometheus.yml" {
		t.Errorf("Prometheus does not mount ops/docker/prometheus.yml")
	}
	// The rule files are container paths: each must be mounted, and the
	// alerts of ops/docker/alerts.yml must be among them.
	for _, rf := range prom.RuleFiles {
		if _, ok := mounts[rf]; !ok {
			t.Errorf("prometheus.yml loads rule file %s, which docker-compose.yml does not mount", rf)
		}
	}
	if !slices.ContainsFunc(prom.RuleFiles, func(rf string) bool { return mounts[rf] == "./ops/docker/alerts.yml" }) {
		t.Errorf("prometheus.yml's rule_files %v: none is where docker-compose.yml mounts ./ops/docker/alerts.yml", prom.RuleFiles)
	}
	targets := map[string][]string{}
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets[sc.JobName] = append(targets[sc.JobName], st.Targets...)
		}
	}
	if !slices.Contains(targets["pophub"], "pophub:8780") || !slices.Contains(targets["otel-collector"], "otel-collector:8889") ||
		collector.Exporters["prometheus"].Endpoint != "0.0.0.0:8889" {
		t.Errorf("scrape targets %v: want pophub:8780 and the collector's prometheus exporter at :8889", targets)
	}

	var datasources struct {
		Datasources []struct {
			UID, Type, URL string
		} `yaml:"datasources"`
	}
	readYAML(t, "ops/docker/grafana/provisioning/datasources/datasources.yaml", &datasources)
	if !slices.ContainsFunc(datasources.Datasources, func(d struct{ UID, Type, URL string }) bool {
		return d.UID == "prometheus" && d.Type == "prometheus" && d.URL == "http://prometheus:9090"
	}) {
		t.Errorf("no Prometheus data source with uid prometheus: %+v", datasources)
	}
	var providers struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "ops/docker/grafana/provisioning/dashboards/dashboards.yaml", &providers)
	if len(providers.Providers) != 1 || mounts[providers.Providers[0].Options.Path] != "./ops/dashboards" {
		t.Errorf("the dashboards provider reads %+v, but ops/dashboards is mounted at another path (%v)", providers, mounts)
	}
	if mounts["/etc/grafana/provisioning"] != "./ops/docker/grafana/provisioning" {
		t.Errorf("Grafana does not mount its provisioning directory")
	}
}
