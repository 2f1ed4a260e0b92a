package dashboards_test

import (
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestComposeDataOnVolumes checks that every stateful service of
// docker-compose.yml writes its data where a named volume is mounted:
// data written anywhere else lives in the container's own layer and is
// gone when the container is recreated (docker compose down/up, a new
// image, a changed service definition), although the compose file
// declares a volume for it.
func TestComposeDataOnVolumes(t *testing.T) {
	var compose struct {
		Services map[string]struct {
			Command     any               `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	b, err := os.ReadFile(repo(t, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	natsConf, err := os.ReadFile(repo(t, "ops/docker/nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	env := func(service, key, imageDefault string) string {
		if v, ok := compose.Services[service].Environment[key]; ok {
			return v
		}
		return imageDefault
	}
	flag := func(service, name, imageDefault string) string {
		if args, ok := compose.Services[service].Command.([]any); ok {
			for _, a := range args {
				if v, ok := strings.CutPrefix(a.(string), name+"="); ok {
					return v
				}
			}
		}
		return imageDefault
	}
	storeDir := regexp.MustCompile(`(?m)^\s*store_dir:\s*(\S+)`).FindSubmatch(natsConf)
	if storeDir == nil {
		t.Fatal("ops/docker/nats.conf has no store_dir")
	}
	for _, tc := range []struct {
		service string
		dataDir string // where the service writes its data, as its image and configuration make it
	}{
		// apache/kafka's image sets log.dirs to /tmp/kraft-combined-logs
		// unless KAFKA_LOG_DIRS says otherwise (docker/resources/common-scripts/configureDefaults).
		{"kafka", env("kafka", "KAFKA_LOG_DIRS", "/tmp/kraft-combined-logs")},
		{"postgres", env("postgres", "PGDATA", "/var/lib/postgresql/data")},
		{"nats", string(storeDir[1])},
		{"prometheus", flag("prometheus", "--storage.tsdb.path", "/prometheus")},
		{"grafana", env("grafana", "GF_PATHS_DATA", "/var/lib/grafana")},
	} {
		t.Run(tc.service, func(t *testing.T) {
			var mounts []string
			for _, v := range compose.Services[tc.service].Volumes {
				parts := strings.Split(v, ":")
				if _, named := compose.Volumes[parts[0]]; named {
					mounts = append(mounts, parts[1])
					if dir := path.Clean(tc.dataDir); dir == parts[1] || strings.HasPrefix(dir, parts[1]+"/") {
						return
					}
				}
			}
			t.Errorf("%s writes its data to %s, but its named volumes are mounted at %v: the data is lost when the container is recreated",
				tc.service, tc.dataDir, mounts)
		})
	}
}
