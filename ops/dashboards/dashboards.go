// Package dashboards ships the Grafana dashboards of the docker-compose
// stack (ingest, notifications, subscribers, DLQ; provisioned by
// ops/docker/grafana) and metrics.txt, the Prometheus series they may use.
// Tests check the dashboards and the alerting rules of
// ops/docker/alerts.yml against that list, and the list against a scrape
// of a running hub, so a renamed instrument breaks a test rather than a
// dashboard or an alert.
package dashboards

import (
	"bufio"
	"embed"
	"fmt"
	"io/fs"
	"strings"
)

//go:embed *.json metrics.txt
var files embed.FS

// FS returns the dashboard JSON files and metrics.txt.
func FS() fs.FS { return files }

// Metrics returns the series names of metrics.txt by exporter ("hub",
// "sdk").
func Metrics() (map[string][]string, error) {
	f, err := files.Open("metrics.txt")
	if err != nil {
		return nil, fmt.Errorf("opening metrics.txt: %w", err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		exporter, name, ok := strings.Cut(line, " ")
		if !ok || strings.ContainsAny(strings.TrimSpace(name), " \t") {
			return nil, fmt.Errorf("metrics.txt:%d: want \"<exporter> <series>\"", n)
		}
		out[exporter] = append(out[exporter], strings.TrimSpace(name))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading metrics.txt: %w", err)
	}
	return out, nil
}
