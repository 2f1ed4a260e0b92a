package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestAlertStatesTheRepublishWindow: the PophubNotificationsLost alert
// tells the operator it pages how much of a deleted stream the relay
// publishes again, on which rests how many subscribers must bootstrap.
// It said 10 minutes, while `pophub serve` republishes 150 s by default
// and the docker-compose stack, which loads the alert, none.
func TestAlertStatesTheRepublishWindow(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "../../ops/docker/alerts.yml", &rules)
	var desc string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "PophubNotificationsLost" {
				desc = r.Annotations["description"]
			}
		}
	}
	serveDefault, err := time.ParseDuration(serveCommand(func() *slog.Logger { return testLogger(t) }).
		Flags().Lookup("nats-republish-window").DefValue)
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Command []string `yaml:"command"`
		} `yaml:"services"`
	}
	readYAML(t, "../../docker-compose.yml", &compose)
	composeWindow := serveDefault
	for _, a := range compose.Services["pophub"].Command {
		if v, ok := strings.CutPrefix(strings.Fields(a)[0], "--nats-republish-window="); ok {
			if composeWindow, err = time.ParseDuration(v); err != nil {
				t.Fatal(err)
			}
		}
	}
	inCompose := fmt.Sprintf("%.0f s in the docker-compose stack", composeWindow.Seconds())
	if composeWindow == 0 {
		inCompose = "none in the docker-compose stack"
	}
	for _, want := range []string{fmt.Sprintf("%.0f s by default", serveDefault.Seconds()), inCompose} {
		if !strings.Contains(desc, want) {
			t.Errorf("PophubNotificationsLost's description does not say %q: %s", want, desc)
		}
	}
}

// readYAML decodes the YAML file at path into v.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
