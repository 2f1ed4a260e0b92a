package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
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

// TestBatchClaimsCheckedBeforeAllocating: snappy and zstd allocate what a
// batch says it holds before decoding any of it, so a batch of a few
// dozen bytes claiming gigabytes cost the consumer that much memory at
// every try, though the bytes passed on were bounded. Such claims are now
// refused before anything is allocated for them.
func TestBatchClaimsCheckedBeforeAllocating(t *testing.T) {
	xerial := func(chunks ...[]byte) []byte {
		b := append([]byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}, 0, 0, 0, 1, 0, 0, 0, 1)
		for _, c := range chunks {
			b = binary.BigEndian.AppendUint32(b, uint32(len(c)))
			b = append(b, c...)
		}
		return b
	}
	gibBlock := append(binary.AppendUvarint(nil, 1<<30), 0x00, 'x') // says 1 GiB, holds one literal byte
	const mib = 1 << 20
	tests := []struct {
		name     string
		codec    compress.Compression
		batch    []byte
		want     error  // nil: any error but errBatchTooLarge
		maxAlloc uint64 // over three tries; 0: what the bound lets through, not checked
	}{
		{"snappy block declaring 1 GiB", compress.Snappy, gibBlock, errBatchTooLarge, 16 * mib},
		{"xerial chunk declaring 1 GiB", compress.Snappy, xerial(gibBlock), errBatchTooLarge, 16 * mib},
		{"xerial chunks adding up past the bound", compress.Snappy, xerial(snappyOf(t, 40*mib), snappyOf(t, 40*mib)), errBatchTooLarge, 0},
		{"xerial chunk length of 4 GiB", compress.Snappy, binary.BigEndian.AppendUint32(xerial()[:16], 0xFFFFFFFF), nil, 16 * mib},
		// A frame declaring a 512 MiB window, one raw block of a byte.
		{"zstd frame declaring a 512 MiB window", compress.Zstd, []byte{0x28, 0xB5, 0x2F, 0xFD, 0x00, 19 << 3, 0x09, 0x00, 0x00, 'x'}, errBatchTooLarge, 16 * mib},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range 3 { // the reader tries the batch again and again
				r := tc.codec.Codec().NewReader(bytes.NewReader(tc.batch))
				_, err := io.Copy(io.Discard, r)
				r.Close()
				switch {
				case tc.want != nil && !errors.Is(err, tc.want):
					t.Fatalf("read: %v, want %v", err, tc.want)
				case tc.want == nil && (err == nil || errors.Is(err, errBatchTooLarge)):
					t.Fatalf("read: %v, want the batch refused as corrupt", err)
				}
			}
			runtime.ReadMemStats(&after)
			if alloc := after.TotalAlloc - before.TotalAlloc; tc.maxAlloc > 0 && alloc > tc.maxAlloc {
				t.Errorf("three tries allocated %d MiB, want at most %d", alloc/mib, tc.maxAlloc/mib)
			}
		})
	}
}

// TestSnappyUnframed: librdkafka sends snappy batches as one bare block,
// Java clients and kafka-go in xerial framing; both read back whole.
func TestSnappyUnframed(t *testing.T) {
	want := bytes.Repeat([]byte(`{"specversion":"1.0","id":"e-1"}`), 40_000)
	r := compress.Snappy.Codec().NewReader(bytes.NewReader(snappy.Encode(nil, want)))
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("read %d bytes, %v; want the %d encoded", len(got), err, len(want))
	}
}

// snappyOf is a snappy block of n zero bytes.
func snappyOf(t testing.TB, n int) []byte {
	t.Helper()
	return snappy.Encode(nil, make([]byte, n))
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
	// A timestamp of its own: kafka-go stamps a message without one after
	// the broker's answer, while the connection of an attempt that timed
	// out (half a gigabyte under -race) may still be reading it.
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("bomb"), Value: make([]byte, 512<<20), Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(idA), Value: []byte(cloudEvent("m-after", "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`)), Time: time.Now()}); err != nil {
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
