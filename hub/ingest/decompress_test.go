package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"

	"github.com/pophub/pophub/schemas"
)

// TestBatchDecompressionBounded: every codec's reader passes on a batch
// up to maxBatchDecompressed whole, and fails a larger one with
// errBatchTooLarge once it has passed on the bound, never more.
func TestBatchDecompressionBounded(t *testing.T) {
	for _, codec := range []kafka.Compression{kafka.Gzip, kafka.Snappy, kafka.Lz4, kafka.Zstd} {
		for _, tc := range []struct {
			size    int
			tooMuch bool
		}{{10 << 20, false}, {maxBatchDecompressed, false}, {maxBatchDecompressed + 1, true}, {4 * maxBatchDecompressed, true}} {
			c := compress.Compression(codec).Codec()
			var packed bytes.Buffer
			w := c.NewWriter(&packed)
			if _, err := w.Write(make([]byte, tc.size)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r := c.NewReader(&packed)
			n, err := io.Copy(io.Discard, r)
			r.Close()
			switch {
			case tc.tooMuch && (!errors.Is(err, errBatchTooLarge) || n > maxBatchDecompressed):
				t.Errorf("%s, %d bytes: read %d, %v; want at most %d, then errBatchTooLarge", c.Name(), tc.size, n, err, maxBatchDecompressed)
			case !tc.tooMuch && (err != nil || n != int64(tc.size)):
				t.Errorf("%s, %d bytes: read %d, %v; want all of it", c.Name(), tc.size, n, err)
			}
		}
	}
}

// TestInflatingRecordKeepsTheHubUp: a record of a few kilobytes of zstd
// that inflates to a gigabyte (here half of one) was decompressed whole,
// taking the consumer past any memory it had and, read again after each
// restart, keeping the hub down. Its batch is now refused past
// maxBatchDecompressed (TestBatchDecompressionBounded): its partition
// waits at it, the log naming partition, offset and why, while the hub
// applies the other partitions' events.
func TestInflatingRecordKeepsTheHubUp(t *testing.T) {
	k := broker(t)
	topic := schemas.Topic(schemas.Marriage)
	w := &kafka.Writer{Addr: kafka.TCP(k.Addr()), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
		Compression: kafka.Zstd, BatchBytes: 2 << 30,
		Balancer: kafka.BalancerFunc(func(m kafka.Message, _ ...int) int {
			if string(m.Key) == "bomb" {
				return 0
			}
			return 1
		})}
	defer w.Close()
	ctx := context.Background()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("bomb"), Value: make([]byte, 512<<20)}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(idA), Value: []byte(cloudEvent("m-after", "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))}); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	a := &recordingApplier{}
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "inflating", MaxWait: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, a)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	defer stop()
	waitUntil(t, "the other partition's event applied", func() bool { return c.Counts().Applied == 1 })
	waitUntil(t, "the batch refused in the log", func() bool { return strings.Contains(logs.String(), "decompresses to more than 64 MiB") })
	if l := logs.String(); !strings.Contains(l, "partition 0 of "+topic+" at offset 0") {
		t.Errorf("the log does not name the batch's partition and offset:\n%s", l)
	}
}
