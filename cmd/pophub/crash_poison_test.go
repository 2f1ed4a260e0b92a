package main

import (
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestCrashPoison kills `pophub serve` with SIGKILL at random moments,
// start-up included, while it ingests events with 1 % poison records of
// every kind mixed in, and restarts it each time. What a user relies on
// after the kills: the records and history of an undisturbed run; every
// change announced once and none for a rejected record; every poison record
// in the DLQ with its reason (a copy again after a kill is allowed, as the
// README says) and nothing else there; no committed offset ahead of the
// store.
func TestCrashPoison(t *testing.T) {
	bin := buildBinary(t)
	l := newFaultLoad(t, 600, 77)
	mixed, byReason := poisoned(t, l.msgs, 0.01, 77)
	// The poison set by content, with the decoder's reason: what the DLQ
	// must hold.
	wantDLQ := map[[sha256.Size]byte]string{}
	for _, m := range mixed {
		_, err := schemas.Decode(schemas.Input{Topic: m.Topic, Key: m.Key, Value: m.Value})
		if re := (*schemas.RejectError)(nil); errors.As(err, &re) {
			wantDLQ[recordDigest(m.Key, m.Value)] = re.Reason
		}
	}
	total := int64(len(mixed))
	t.Logf("%d records, %d poison (%v)", total, len(wantDLQ), byReason)

	for si, store := range stores {
		t.Run(store, func(t *testing.T) {
			broker := testenv.KafkaProcess(t, faultPartitions)
			produceAll(t, []string{broker}, mixed)
			h := newCrashHub(t, bin, store, broker, "crashpoison")
			r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(si)))
			const kills = 4
			for kill := 0; kill < kills; kill++ {
				c, _ := h.start(t)
				when, killed := killAtRandom(t, r, c, kill, total, func() int64 { return h.committed(t) })
				if !killed {
					_, err := c.exited()
					t.Fatalf("kill %d: the hub ended by itself (%v); its log:\n%s", kill, err, c.output())
				}
				t.Logf("kill %d %s; %d of %d committed", kill, when, h.committed(t), total)
				h.forgetKilled(t)
			}
			st := h.finish(t, total)
			checkCrashOutcome(t, st, h.nats.ClientURL(), broker, h.group, l)

			// The DLQ: each poison record at least once with its reason,
			// nothing else.
			recs := testenv.Records(t, broker, schemas.DLQTopic)
			seen := map[[sha256.Size]byte]bool{}
			stray := 0
			for _, rec := range recs {
				reason := ""
				for _, hd := range rec.Headers {
					if hd.Key == "pophub-reason" {
						reason = string(hd.Value)
					}
				}
				d := recordDigest(rec.Key, rec.Value)
				if want, ok := wantDLQ[d]; !ok || want != reason {
					stray++
					continue
				}
				seen[d] = true
			}
			t.Logf("DLQ: %d records, %d distinct poison records of %d, %d others", len(recs), len(seen), len(wantDLQ), stray)
			if len(seen) < len(wantDLQ) || stray > 0 {
				t.Errorf("DLQ after %d kills: %d of %d poison records missing, %d records that are not poison or have another reason",
					kills, len(wantDLQ)-len(seen), len(wantDLQ), stray)
			}
		})
	}
}

// recordDigest identifies a record by its key and value.
func recordDigest(key, value []byte) [sha256.Size]byte {
	return sha256.Sum256(append(append(append([]byte(nil), key...), 0), value...))
}
