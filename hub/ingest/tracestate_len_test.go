package ingest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/pophub/pophub/schemas"
)

// TestEncodedLen: the bound on a record's tracestate is measured on the
// header it becomes, without writing it out.
func TestEncodedLen(t *testing.T) {
	for _, header := range []string{
		"",
		"congo=t61rcWkgMzE",
		"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
		"a=" + strings.Repeat("v", 250) + ",b=" + strings.Repeat("v", 250) + ",c=x",
		"tenant@vendor=1,x=2,y=3,z=4",
	} {
		ts, err := trace.ParseTraceState(header)
		if err != nil {
			t.Fatalf("%q: %v", header, err)
		}
		if got, want := encodedLen(ts), len(ts.String()); got != want {
			t.Errorf("encodedLen(%q) = %d, want %d", header, got, want)
		}
	}
}

// TestTraceStateCostsNoStringBuilding: checking a record's tracestate
// against its bound costs no allocation beyond parsing it (four a
// record, against a record with a traceparent only), so that departments
// that send one do not slow ingest.
func TestTraceStateCostsNoStringBuilding(t *testing.T) {
	const n = 1000
	batch := func(withState bool) []kafka.Message {
		msgs := make([]kafka.Message, n)
		for i := range msgs {
			h := []kafka.Header{{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")}}
			if withState {
				h = append(h, kafka.Header{Key: "tracestate", Value: []byte("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")})
			}
			msgs[i] = kafka.Message{Topic: schemas.Topic(schemas.Marriage), Key: []byte(idA), Headers: h,
				Value: []byte(cloudEvent(fmt.Sprint("m-", i), "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))}
		}
		return msgs
	}
	plain, state := batch(false), batch(true)
	a := testing.AllocsPerRun(10, func() { decodeChunk(plain) })
	b := testing.AllocsPerRun(10, func() { decodeChunk(state) })
	if per := (b - a) / n; per > 4.5 {
		t.Errorf("a tracestate costs %.1f allocations a record (%.0f against %.0f), want 4", per, b, a)
	}
}
