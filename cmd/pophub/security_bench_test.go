package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// BenchmarkSecurity measures, in one run, the hub's ingest rate and its
// person-read rate with the example access policy on (SASL/SCRAM and ACLs
// on the broker, bearer token, X-Purpose, rate limit, section filtering and
// an audit entry per read) next to the same hub with none, and reports the
// ratios (target: at most 15 % slower).
//
//	go test -run '^$' -bench Security -benchtime 1x ./cmd/pophub/
func BenchmarkSecurity(b *testing.B) {
	ctx := context.Background()
	var msgs []kafka.Message
	var ids []citizenid.ID
	seen := map[citizenid.ID]bool{}
	err := synth.Generate(ctx, synth.Config{Persons: 3000, Months: 24, Seed: 21}, func(ev schemas.Event) error {
		v, err := schemas.Encode(ev)
		if err != nil {
			return err
		}
		msgs = append(msgs, kafka.Message{Topic: schemas.Topic(ev.Source), Key: []byte(ev.Subject), Value: v})
		if !seen[ev.Subject] {
			seen[ev.Subject] = true
			ids = append(ids, ev.Subject)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	type result struct{ ingest, reads float64 }
	run := func(policy string) result {
		cfg := Config{Embedded: true, DataDir: b.TempDir(), KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			Partitions: 4, NATSSync: time.Second}
		if policy != "" {
			cfg.PolicyFile, cfg.Secrets, cfg.NATSPassword = policy, access.DemoResolver, access.DemoSecret("nats:hub")
		}
		m := &Main{Config: cfg, Logger: testLogger(b)}
		if err := m.Start(ctx); err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		creds := demoCreds{m.Access}
		// Ingest: from the first record produced (each department as
		// itself, authenticated when the policy is on) to the last one
		// applied; the hub consumes while the departments produce.
		start := time.Now()
		if err := writeRaw(ctx, m.Brokers(), creds, msgs); err != nil {
			b.Fatal(err)
		}
		if err := waitConsumed(ctx, m, int64(len(msgs)), 5*time.Minute); err != nil {
			b.Fatal(err)
		}
		var r result
		r.ingest = float64(len(msgs)) / time.Since(start).Seconds()
		// Reads are timed alone: once the relay has sent every
		// notification of the ingest.
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			st, err := m.Store.Stats(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if st.OutboxPending == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("the outbox still holds %d notifications a minute after the ingest", st.OutboxPending)
			}
		}

		// Person reads: 4 clients as the administrator, every read
		// authenticated, limited (the limit set out of reach), filtered and
		// audited.
		const clients, perClient = 4, 10000
		var ok atomic.Int64
		var wg sync.WaitGroup
		t0 := time.Now()
		for c := range clients {
			wg.Go(func() {
				hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
				for i := range perClient {
					id := ids[(c*perClient+i)%len(ids)]
					req, _ := http.NewRequest(http.MethodGet, "http://"+m.HTTPAddr()+"/v1/persons/"+string(id), nil)
					req.Header.Set("X-Purpose", creds.purpose("admin", "benchmark"))
					if tok := creds.token("admin"); tok != "" {
						req.Header.Set("Authorization", "Bearer "+tok)
					}
					resp, err := hc.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						ok.Add(1)
					}
				}
			})
		}
		wg.Wait()
		r.reads = float64(clients*perClient) / time.Since(t0).Seconds()
		b.Logf("policy %q: %d events at %.0f/s; %d of %d reads answered 200 at %.0f requests/s",
			policy, len(msgs), r.ingest, ok.Load(), clients*perClient, r.reads)
		if ok.Load() != clients*perClient {
			b.Fatalf("only %d of %d reads answered 200", ok.Load(), clients*perClient)
		}
		return r
	}
	// The example policy with its default rate limit out of reach, so that
	// reads are served rather than refused.
	policy := filepath.Join(b.TempDir(), "policy.yaml")
	ex, err := os.ReadFile(examplePolicy)
	if err != nil {
		b.Fatal(err)
	}
	unlimited := strings.Replace(string(ex), "rate_limit: {rps: 20, burst: 40}", "rate_limit: {rps: 1000000, burst: 1000000}", 1)
	if unlimited == string(ex) {
		b.Fatal("the example policy's default rate limit has changed; update the benchmark")
	}
	if err := os.WriteFile(policy, []byte(unlimited), 0o600); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		// Alternate, so that neither side always runs on a warmer or
		// busier machine; each figure is the best of its three runs.
		var off, on result
		for range 3 {
			o, p := run(""), run(policy)
			off.ingest, off.reads = max(off.ingest, o.ingest), max(off.reads, o.reads)
			on.ingest, on.reads = max(on.ingest, p.ingest), max(on.reads, p.reads)
		}
		b.ReportMetric(off.ingest, "ingest-off/s")
		b.ReportMetric(on.ingest, "ingest-on/s")
		b.ReportMetric(on.ingest/off.ingest, "ingest-ratio")
		b.ReportMetric(off.reads, "reads-off/s")
		b.ReportMetric(on.reads, "reads-on/s")
		b.ReportMetric(on.reads/off.reads, "reads-ratio")
	}
}
