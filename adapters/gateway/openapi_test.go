package gateway

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestStatusesInOpenAPI: every HTTP status the gateway answers is a
// documented response of POST /v1/events in the OpenAPI document, so that
// a department's client generated from it knows each answer.
func TestStatusesInOpenAPI(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "schemas", "jsonschema", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]any `yaml:"responses"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	documented := doc.Paths["/v1/events"]["post"].Responses
	if len(documented) == 0 {
		t.Fatal("POST /v1/events documents no responses")
	}
	src, err := os.ReadFile("gateway.go")
	if err != nil {
		t.Fatal(err)
	}
	// The status constants by name: StatusRequestTimeout is "Request
	// Timeout".
	byName := map[string]int{}
	for code := 100; code < 600; code++ {
		if text := http.StatusText(code); text != "" {
			byName["Status"+strings.NewReplacer(" ", "", "-", "", "'", "").Replace(text)] = code
		}
	}
	used := regexp.MustCompile(`http\.(Status[A-Z]\w*)`).FindAllStringSubmatch(string(src), -1)
	if len(used) == 0 {
		t.Fatal("gateway.go answers no status")
	}
	for _, m := range used {
		if m[1] == "StatusText" {
			continue
		}
		code, ok := byName[m[1]]
		if !ok {
			t.Errorf("http.%s: not a status this test knows", m[1])
			continue
		}
		if _, ok := documented[strconv.Itoa(code)]; !ok {
			t.Errorf("the gateway answers %d (http.%s), which POST /v1/events does not document in openapi.yaml", code, m[1])
		}
	}
}
