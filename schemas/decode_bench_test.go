package schemas

import (
	"testing"
)

func BenchmarkDecode(b *testing.B) {
	v := []byte(`{"specversion":"1.0","id":"social_insurance-7-123-9","source":"social_insurance","type":"social_insurance.contribution_recorded","subject":"230102199001011230","time":"2024-05-25T12:00:00+08:00","datacontenttype":"application/json","data":{"month":"2024-05","region":"230102","insurances":["pension","medical","unemployment"]}}`)
	in := Input{Topic: "pop.events.social_insurance", Key: []byte("230102199001011230"), Value: v}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
