package schemas

import (
	"testing"
)

// benchMix is a day of ingest in miniature: every catalogue type (the
// examples of its JSON Schema, Chinese names and all), with monthly
// contributions and labour contracts, the bulk of real traffic, weighted
// up. Every input is valid and comes from Kafka (topic and key set).
func benchMix(tb testing.TB) []Input {
	tb.Helper()
	weight := map[Type]int{ContributionRecorded: 6, ContractStarted: 2, ContractEnded: 2, InsuranceEnrolled: 2}
	var out []Input
	for _, f := range append(schemaFixtures(tb), handFixtures()...) {
		if f.topic == "" {
			continue
		}
		v := []byte(f.value(plainQuote, ""))
		in := Input{Topic: f.topic, Key: []byte(validID), Value: v, Now: fixedNow}
		if _, err := decodeStd(in); err != nil {
			tb.Fatalf("%s: %v", f.name, err)
		}
		typ := Type(f.env[3].val.(string))
		for range max(1, weight[typ]) {
			out = append(out, in)
		}
	}
	return out
}

// BenchmarkDecode compares Decode with the encoding/json reference on the
// same mix; events/s is per core.
func BenchmarkDecode(b *testing.B) {
	mix := benchMix(b)
	for _, bc := range []struct {
		name   string
		decode func(Input) (Event, error)
	}{
		{"fast", Decode},
		{"encoding-json", decodeStd},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if _, err := bc.decode(mix[n%len(mix)]); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
