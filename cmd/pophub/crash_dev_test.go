package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestCrashDev kills `pophub dev --data D`, whose embedded broker, NATS
// server and memdb store all keep their files under D, with SIGKILL at
// random moments, start-up included, while it ingests, and restarts it on
// D each time, while a department keeps producing to it. What a user of
// dev mode relies on after the kills: it starts again (no stale lock, no
// torn file it cannot read); no record the broker acknowledged is lost;
// the records, history and notifications are those of an undisturbed run;
// no committed offset is ahead of the store.
func TestCrashDev(t *testing.T) {
	bin := buildBinary(t)
	ctx := context.Background()
	l := newFaultLoad(t, 600, 41)
	total := int64(len(l.msgs))
	data := t.TempDir()
	kafkaAddr, natsAddr := freeAddr(t), freeAddr(t)
	const group = "pophub" // dev's consumer group
	start := func() (*child, string) {
		addr := freeAddr(t)
		return startChild(t, bin, "dev", "--data", data, "--kafka", kafkaAddr, "--nats", natsAddr, "--http", addr,
			"--partitions", fmt.Sprint(faultPartitions), "--log-level", "warn"), addr
	}
	// progress waits for the broker, which starts with dev, to answer.
	progress := func() int64 {
		var n int64
		waitFor(t, time.Minute, "the embedded broker answering", func() bool {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			var err error
			n, err = committed(ctx, kafkaAddr, group)
			return err == nil
		})
		return n
	}

	// The records arrive while dev runs and is killed: the producer sends
	// again what the broker, down with dev, refused.
	c, addr := start()
	waitServing(t, c, addr)
	producer := stream(t, kafkaAddr, l.msgs, 8*time.Second)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 17))
	const kills = 4
	for kill := 0; kill < kills; kill++ {
		if kill > 0 {
			c, _ = start()
		}
		when, killed := killAtRandom(t, r, c, kill, total, progress)
		if !killed {
			_, err := c.exited()
			t.Fatalf("kill %d: pophub dev ended by itself (%v); its log:\n%s", kill, err, c.output())
		}
		t.Logf("kill %d %s; %d of %d produced", kill, when, producer.sent.Load(), total)
	}
	c, addr = start()
	waitServing(t, c, addr)
	producer.wait(t)
	// A record sent again after a kill may be in the log twice: the hub
	// applies it once.
	var onBroker int64
	for _, topic := range schemas.Topics() {
		onBroker += testenv.RecordCount(t, kafkaAddr, topic)
	}
	if onBroker < total {
		t.Errorf("the embedded broker holds %d records after %d kills; %d were produced", onBroker, kills, total)
	}
	waitForChild(t, c, 5*time.Minute, fmt.Sprintf("all %d records committed", onBroker), func() bool { return progress() >= onBroker })
	if err := c.stop(); err != nil {
		t.Fatalf("pophub dev did not stop cleanly: %v; its log:\n%s", err, c.output())
	}

	// D's store, NATS store and broker log, opened again offline.
	keys, err := sealing.Load(ctx, sealing.File(filepath.Join(data, "keys")))
	if err != nil {
		t.Fatal(err)
	}
	st, err := memdb.Open(ctx, memdb.Config{Dir: filepath.Join(data, "store"), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ns := testenv.NATS(t, embedded.NATSConfig{StoreDir: filepath.Join(data, "nats")})
	k := startBroker(t, embedded.KafkaConfig{DataDir: filepath.Join(data, "kafka")})
	t.Cleanup(func() { k.Close() })
	checkCrashOutcome(t, st, ns.ClientURL(), k.Addr(), group, l)
}
