package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/internal/testenv"
)

// TestServeGroupOverTwoStores: two `pophub serve` instances in one
// consumer group, the second with another --postgres-schema by mistake.
// Both used to start without a word and split the events between their
// stores; now the instance leading the group assigns no partitions and
// its /readyz names the two stores and the remedy.
func TestServeGroupOverTwoStores(t *testing.T) {
	k := startBroker(t, embedded.KafkaConfig{})
	t.Cleanup(func() { k.Close() })
	ns := startNATS(t)
	group := fmt.Sprintf("two-stores-%d", time.Now().UnixNano())
	var hubs []*servedHub
	for range 2 {
		hubs = append(hubs, startServe(t, Config{KafkaBrokers: []string{k.Addr()}, NATSURL: ns.ClientURL(),
			PostgresURL: testenv.Postgres(t), PostgresSchema: testenv.Schema(t), GroupID: group}))
	}
	var health struct {
		Checks map[string]string `json:"checks"`
	}
	waitFor(t, time.Minute, "an instance's /readyz to report the two stores", func() bool {
		for _, h := range hubs {
			if readyz(t, h.HTTPURL(), &health) == http.StatusServiceUnavailable && strings.Contains(health.Checks["kafka"], "spans 2 stores") {
				return true
			}
		}
		return false
	})
	if !strings.Contains(health.Checks["kafka"], "--postgres") {
		t.Errorf("/readyz kafka check %q does not name the remedy", health.Checks["kafka"])
	}
}
