// Package kafkaheaders carries W3C trace context in Kafka record headers
// for OpenTelemetry propagators: the adapters inject it into the records
// they send, and the hub extracts it from the records it consumes, so
// that one trace spans a department's system, Kafka and the hub.
package kafkaheaders

import "github.com/segmentio/kafka-go"

// Carrier is a propagation.TextMapCarrier over a record's headers. Get
// returns the first header of a key; Set replaces it, so that injecting
// twice leaves one header per key.
type Carrier struct{ Headers *[]kafka.Header }

// Get returns the value of the first header named key, or "".
func (c Carrier) Get(key string) string { return Get(*c.Headers, key) }

// Get returns the value of the first of headers named key, or "". It
// reads a record's headers without a Carrier, which would make them
// escape to the heap.
func Get(headers []kafka.Header, key string) string {
	for _, h := range headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set sets the header named key to value, adding it if there is none.
func (c Carrier) Set(key, value string) {
	for i, h := range *c.Headers {
		if h.Key == key {
			(*c.Headers)[i].Value = []byte(value)
			return
		}
	}
	*c.Headers = append(*c.Headers, kafka.Header{Key: key, Value: []byte(value)})
}

// Keys returns the header names, in order.
func (c Carrier) Keys() []string {
	keys := make([]string, len(*c.Headers))
	for i, h := range *c.Headers {
		keys[i] = h.Key
	}
	return keys
}
