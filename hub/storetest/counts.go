package storetest

import (
	"context"
	"strings"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/stats"
	"github.com/pophub/pophub/schemas/citizenid"
)

// CounterVerifier recomputes a store's counters from its records by a full
// scan; both stores implement it (pophub stats verify).
type CounterVerifier interface {
	VerifyCounters(ctx context.Context) ([]stats.Delta, error)
	RebuildCounters(ctx context.Context) (persons int64, err error)
}

// ExpectedSpans derives every person's registration and permit spans from
// the pure merge rules, all events applied at once.
func ExpectedSpans(in []hub.Input) (registrations, permits map[citizenid.ID][]hub.Interval) {
	out := merge.Batch(nil, in, time.Now())
	registrations = map[citizenid.ID][]hub.Interval{}
	permits = map[citizenid.ID][]hub.Interval{}
	for id, st := range out.States {
		registrations[id] = st.Registrations()
		permits[id] = st.PermitSpans()
	}
	return registrations, permits
}

// Recount counts, by brute force over the spans, each region's registered
// population (classified as the stores classify by default) and permit
// holders at the end of day.
func Recount(registrations, permits map[citizenid.ID][]hub.Interval, regions []string, day string) map[string]hub.Tally {
	holds := func(iv hub.Interval) bool { return iv.From <= day && (iv.To == "" || day < iv.To) }
	out := make(map[string]hub.Tally, len(regions))
	for _, reg := range regions {
		var t hub.Tally
		for _, ivs := range registrations {
			for _, iv := range ivs {
				if holds(iv) && strings.HasPrefix(iv.Code, reg) {
					if stats.UrbanByRegionTable(iv.Code) {
						t.Urban++
					} else {
						t.Rural++
					}
				}
			}
		}
		if len(reg) <= 6 {
			for _, ivs := range permits {
				for _, iv := range ivs {
					if holds(iv) && strings.HasPrefix(iv.Code, reg) {
						t.Permits++
					}
				}
			}
		}
		out[reg] = t
	}
	return out
}
