package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/jsonschema"
)

// TestKafkaRefusalsAnswered: events Kafka refuses for good used to be
// answered "503, send them again" with Retry-After: 1, the reason only in
// the hub's log, and a department's retry loop sent them every second,
// forever. A refusal that sending again will not mend is answered 502
// without Retry-After, listing each event not published with its reason;
// failures that may pass are still answered 503 with Retry-After.
func TestKafkaRefusalsAnswered(t *testing.T) {
	tests := []struct {
		name string
		// refuse maps a partition (-1: every one) to the error Kafka
		// answers its produce requests with.
		refuse     map[int32]int16
		noTopic    bool // the housing topic does not exist
		closed     bool // the gateway's publisher is closed (the hub is stopping)
		wantStatus int
		wantAll    bool              // every event listed
		wantReason map[string]string // each reason listed, with what its detail names
	}{
		{name: "message size too large on one partition", refuse: map[int32]int16{0: 10}, wantStatus: http.StatusBadGateway,
			wantReason: map[string]string{reasonKafkaRefused: "[10] Message Size Too Large"}},
		{name: "topic authorization failed", refuse: map[int32]int16{-1: 29}, wantStatus: http.StatusBadGateway, wantAll: true,
			wantReason: map[string]string{reasonKafkaRefused: "[29] Topic Authorization Failed"}},
		{name: "topic missing", noTopic: true, wantStatus: http.StatusBadGateway, wantAll: true,
			wantReason: map[string]string{publisher.ReasonTopicMissing: "no topic pop.events.housing"}},
		{name: "refused for good on one partition, for the moment on another", refuse: map[int32]int16{0: 10, 1: 19},
			wantStatus: http.StatusBadGateway,
			wantReason: map[string]string{reasonKafkaRefused: "[10] Message Size Too Large", reasonNotAcknowledged: "may be sent again"}},
		{name: "not enough replicas", refuse: map[int32]int16{0: 19}, wantStatus: http.StatusServiceUnavailable},
		// publisher.ErrClosed is not retriable with that publisher, but a
		// hub stopping is a passing trouble for the department.
		{name: "publisher closed as the hub stops", closed: true, wantStatus: http.StatusServiceUnavailable},
	}
	evs := housingEvents(t, 40)
	v, err := jsonschema.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topics := schemas.Topics()
			if tt.noTopic {
				topics = topics[:0]
				for _, topic := range schemas.Topics() {
					if topic != schemas.Topic(schemas.Housing) {
						topics = append(topics, topic)
					}
				}
			}
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topics...))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			if len(tt.refuse) > 0 {
				c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
					c.KeepControl()
					req := kr.(*kmsg.ProduceRequest)
					if len(req.Topics) != 1 || len(req.Topics[0].Partitions) != 1 {
						t.Errorf("a produce request of %d topics; the test refuses one partition's", len(req.Topics))
						return nil, nil, false
					}
					p := req.Topics[0].Partitions[0].Partition
					code, ok := tt.refuse[p]
					if !ok {
						if code, ok = tt.refuse[-1]; !ok {
							return nil, nil, false
						}
					}
					resp := req.ResponseKind().(*kmsg.ProduceResponse)
					rt := kmsg.NewProduceResponseTopic()
					rt.Topic = req.Topics[0].Topic
					rp := kmsg.NewProduceResponseTopicPartition()
					rp.Partition, rp.ErrorCode = p, code
					rt.Partitions = append(rt.Partitions, rp)
					resp.Topics = append(resp.Topics, rt)
					return resp, nil, true
				})
			}
			pub, err := publisher.New(publisher.Config{Brokers: c.ListenAddrs(), MaxAttempts: 2})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pub.Close() })
			if tt.closed {
				if err := pub.Close(); err != nil {
					t.Fatal(err)
				}
			}
			url := serve(t, pub)

			body, _ := json.Marshal(encodeAll(t, evs))
			req, _ := http.NewRequest(http.MethodPost, url+"/v1/events", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer housing-secret")
			req.Header.Set("Content-Type", ContentTypeBatch)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			var p Problem
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			if err := v.ValidateProblem(raw); err != nil {
				t.Errorf("%s does not follow problem.schema.json: %v", raw, err)
			}
			retryAfter := resp.Header.Get("Retry-After")
			if resp.StatusCode != tt.wantStatus || p.Status != tt.wantStatus {
				t.Fatalf("%d (Retry-After %q) %+v; want %d", resp.StatusCode, retryAfter, p, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusServiceUnavailable {
				if retryAfter == "" || p.Type != "urn:pophub:problem:unavailable" {
					t.Errorf("503 with Retry-After %q, type %s; want Retry-After and type unavailable", retryAfter, p.Type)
				}
				return
			}
			if retryAfter != "" {
				t.Errorf("a refusal for good says Retry-After: %s", retryAfter)
			}
			if p.Type != "urn:pophub:problem:internal" || !strings.Contains(p.Detail, "will not mend") {
				t.Errorf("type %s, detail %q; want internal, saying sending again will not mend it", p.Type, p.Detail)
			}
			if len(p.Errors) == 0 || len(p.Errors) != len(evs) && tt.wantAll || len(p.Errors) == len(evs) && !tt.wantAll {
				t.Fatalf("%d of %d events listed; want those of the refusing partitions", len(p.Errors), len(evs))
			}
			reasons := map[string]int{}
			for _, e := range p.Errors {
				if e.Index < 0 || e.Index >= len(evs) || e.ID != evs[e.Index].ID {
					t.Fatalf("listed %+v, which is not an event of the batch at its index", e)
				}
				reasons[e.Reason]++
				if want, ok := tt.wantReason[e.Reason]; !ok || !strings.Contains(e.Detail, want) {
					t.Errorf("event %d: reason %s, detail %q; want one of %v", e.Index, e.Reason, e.Detail, tt.wantReason)
				}
			}
			for reason := range tt.wantReason {
				if reasons[reason] == 0 {
					t.Errorf("no event listed as %s: %v", reason, reasons)
				}
			}
		})
	}
}
