package access

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/schemas"
)

// Explain describes in plain text what the named identity may do, on
// every channel, as the generators enforce it.
func (p *Policy) Explain(name string) (string, error) {
	id, ok := p.Identity(name)
	if !ok {
		return "", fmt.Errorf("no identity %q in the policy", name)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s)", id.Name, id.Kind)
	if id.Description != "" {
		fmt.Fprintf(&b, ": %s", id.Description)
	}
	b.WriteString("\n")
	line := func(k, v string) { fmt.Fprintf(&b, "  %-12s %s\n", k+":", v) }

	c := id.Credentials
	var creds []string
	if len(c.TokenSHA256) > 0 {
		creds = append(creds, c.TokenSHA256.describe("bearer token", "bearer tokens"))
	}
	if len(c.CertSHA256) > 0 {
		creds = append(creds, c.CertSHA256.describe("client certificate", "client certificates"))
	}
	if c.Kafka != nil {
		creds = append(creds, "Kafka SCRAM-SHA-512 user "+id.Name)
	}
	if c.NATS != nil {
		if c.NATS.Nkey != "" {
			creds = append(creds, "NATS nkey "+c.NATS.Nkey[:12]+"…")
		} else {
			creds = append(creds, "NATS user "+id.Name)
		}
	}
	line("credentials", orNone(strings.Join(creds, "; ")))

	// Kafka.
	var kafka []string
	if c.Kafka != nil {
		if id.Kind == KindAdmin {
			kafka = append(kafka, "superuser (every operation)")
		}
		for _, a := range p.KafkaACLs() {
			if a.Principal == id.Name {
				kafka = append(kafka, strings.ToLower(aclOpName(a.Operation))+" "+aclResourceName(a))
			}
		}
	}
	line("kafka", orNone(strings.Join(kafka, ", ")))

	// HTTP.
	var http []string
	if secs := id.Sections(); len(secs) > 0 {
		names := make([]string, len(secs))
		for i, s := range secs {
			names[i] = string(s)
		}
		what := strings.Join(names, ", ")
		if len(secs) == len(schemas.Sections) {
			what = "every section"
		}
		http = append(http, "GET /v1/persons/{id}, /history and /v1/persons: "+what)
	}
	if id.Stats {
		if m := p.MinCell(id); m > 0 {
			http = append(http, fmt.Sprintf("GET /v1/stats/*: cells below %d suppressed", m))
		} else {
			http = append(http, "GET /v1/stats/*: every cell")
		}
	}
	if id.Eligibility {
		// A decision shows its facts whatever the read list: that is
		// what a clerk deciding from shared records is for.
		http = append(http, "GET /v1/eligibility/{id}: settlement and residence-permit decisions with their facts, "+
			"from every section the policy decides from and the family's records, whatever the read list above")
	}
	if len(id.Publish) > 0 && (len(c.TokenSHA256) > 0 || len(c.CertSHA256) > 0) {
		http = append(http, "POST /v1/events (gateway): "+string(id.Publish[0])+" events")
	}
	if id.Kind == KindAdmin {
		http = append(http, "GET /v1/admin/status, POST /v1/admin/known-events")
	}
	if len(http) > 0 || len(c.TokenSHA256) > 0 || len(c.CertSHA256) > 0 {
		http = append(http, "GET /v1/policies: the eligibility policies, public rules")
	}
	line("http", orNone(strings.Join(http, "; ")))
	if len(http) > 0 {
		rl := id.RateLimit
		line("rate limit", fmt.Sprintf("%g requests/s, burst %d", rl.RPS, rl.Burst))
		if len(id.Purposes) > 0 {
			line("purposes", strings.Join(id.Purposes, "; "))
		} else {
			line("purposes", "any (X-Purpose is still required)")
		}
	}

	// NATS.
	if c.NATS != nil {
		if len(id.Subscribe) > 0 {
			line("subscribe", strings.Join(id.Subscribe, " "))
			line("consumer", fmt.Sprintf("durable pull consumer %s on stream %s on one of those subjects, inbox prefix %s", id.Name, schemas.StreamName, c.NATS.InboxPrefix))
			for _, subj := range id.Subscribe {
				line("consumer", fmt.Sprintf("durable pull consumer %s on %s (one per subject: sdk.Config.ConsumerPerFilter)", schemas.FilterConsumerName(id.Name, subj), subj))
			}
		}
		for _, l := range natsSummary(id) {
			line("nats", l)
		}
	} else {
		line("nats", "none")
	}
	return b.String(), nil
}

// aclResourceName names an ACL's resource for Explain: "topic
// pop.events.health", "transactional ids health.*".
func aclResourceName(a KafkaACL) string {
	kind := strings.ToLower(a.Resource.String())
	if a.Resource == kmsg.ACLResourceTypeTransactionalId {
		kind = "transactional id"
	}
	if a.Pattern == kmsg.ACLResourcePatternTypePrefixed {
		return kind + "s " + a.Name + "*"
	}
	return kind + " " + a.Name
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
