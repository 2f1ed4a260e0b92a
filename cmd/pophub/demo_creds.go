package main

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/schemas"
)

// demoCreds gives each system of the demo its own credentials when the
// demo runs with an access policy: the example policy's secrets are public
// demo secrets (access.DemoSecret). Without a policy every method gives
// nothing and every door is open.
type demoCreds struct{ p *access.Policy }

// kafka is identity's SASL mechanism, nil without a policy.
func (c demoCreds) kafka(identity string) sasl.Mechanism {
	if c.p == nil {
		return nil
	}
	id, ok := c.p.Identity(identity)
	if !ok || id.Credentials.Kafka == nil {
		return nil
	}
	return access.SCRAMClient{User: identity, Password: access.DemoSecret(id.Credentials.Kafka.Password)}
}

// nats is identity's NATS user, password and inbox prefix, all "" without
// a policy.
func (c demoCreds) nats(identity string) (user, password, inbox string) {
	if c.p == nil {
		return "", "", ""
	}
	id, ok := c.p.Identity(identity)
	if !ok || id.Credentials.NATS == nil {
		return "", "", ""
	}
	return identity, access.DemoSecret("nats:" + identity), inboxPrefix(id)
}

// token is identity's bearer token, "" without a policy.
func (c demoCreds) token(identity string) string {
	if c.p == nil {
		return ""
	}
	return access.DemoSecret("token:" + identity)
}

// purpose is the first purpose identity may act for, or def.
func (c demoCreds) purpose(identity, def string) string {
	if c.p != nil {
		if id, ok := c.p.Identity(identity); ok && len(id.Purposes) > 0 {
			return id.Purposes[0]
		}
	}
	return def
}

// demoDepartments publishes each event as its own department: one
// publisher per source, each with that department's credentials.
type demoDepartments struct {
	pubs map[schemas.Source]*publisher.Publisher
}

func newDemoDepartments(brokers []string, creds demoCreds, log *slog.Logger) (*demoDepartments, error) {
	d := &demoDepartments{pubs: map[schemas.Source]*publisher.Publisher{}}
	for _, src := range schemas.Sources {
		p, err := publisher.New(publisher.Config{Brokers: brokers, Source: src, SASL: creds.kafka(string(src)), Logger: log})
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("creating the %s publisher: %w", src, err)
		}
		d.pubs[src] = p
	}
	return d, nil
}

// Publish sends events through their departments' publishers and returns
// the results in the events' order.
func (d *demoDepartments) Publish(ctx context.Context, events ...schemas.Event) ([]publisher.Result, error) {
	idx := map[schemas.Source][]int{}
	for i, ev := range events {
		idx[ev.Source] = append(idx[ev.Source], i)
	}
	out := make([]publisher.Result, len(events))
	for src, is := range idx {
		p := d.pubs[src]
		if p == nil {
			return nil, fmt.Errorf("no department publishes %q", src)
		}
		batch := make([]schemas.Event, len(is))
		for j, i := range is {
			batch[j] = events[i]
		}
		res, err := p.Publish(ctx, batch...)
		if err != nil {
			return nil, err
		}
		for j, i := range is {
			out[i] = res[j]
		}
	}
	return out, nil
}

// Close closes every publisher.
func (d *demoDepartments) Close() {
	for _, p := range d.pubs {
		p.Close()
	}
}

// writeRaw writes records as they are, each topic's by the department that
// owns the topic (a careless department sending malformed records).
func writeRaw(ctx context.Context, brokers []string, creds demoCreds, msgs []kafka.Message) error {
	byTopic := map[string][]kafka.Message{}
	now := time.Now()
	for _, m := range msgs {
		byTopic[m.Topic] = append(byTopic[m.Topic], kafka.Message{Key: m.Key, Value: m.Value, Time: now})
	}
	topics := make([]string, 0, len(byTopic))
	for t := range byTopic {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: t, Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll}
		if m := creds.kafka(string(schemas.SourceOfTopic(t))); m != nil {
			w.Transport = &kafka.Transport{SASL: m}
		}
		err := w.WriteMessages(ctx, byTopic[t]...)
		w.Close()
		if err != nil {
			return fmt.Errorf("writing to %s: %w", t, err)
		}
	}
	return nil
}
