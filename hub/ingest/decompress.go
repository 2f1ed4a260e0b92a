package ingest

import (
	"fmt"
	"io"

	"github.com/segmentio/kafka-go/compress"
)

// maxBatchDecompressed bounds what one compressed record batch may
// decompress to. Kafka's max.message.bytes counts a batch compressed, and
// kafka-go's reader decompresses a batch whole, so a record of a few
// kilobytes of zstd or gzip that inflates to gigabytes (a hostile
// producer, or a runaway one that raised its client's own limits) would
// take the hub past its memory and, read again after each restart, keep
// it down. Clients refuse records over about 1 MiB before compression by
// default, so a department's batches decompress to a few MiB; 64 MiB
// leaves them room and keeps the consumer's memory bounded.
const maxBatchDecompressed = 64 << 20

// errBatchTooLarge is the error a batch over maxBatchDecompressed gets.
// kafka-go logs it with the partition and offset ("the kafka reader got
// an unknown error reading partition P of T at offset N: …") and reads
// the batch again later: the partition waits there until an operator
// moves the group past it (README, "Records that decompress to too much").
var errBatchTooLarge = fmt.Errorf("a record batch decompresses to more than %d MiB, more than the hub holds: "+
	"it is not read, and its partition waits until the consumer group is moved past it", maxBatchDecompressed>>20)

// kafka-go reads its codecs from the global compress.Codecs table and
// takes no codec per reader, so the bound is installed there, once,
// before any reader or writer of the process runs. Writers are unchanged:
// only the codecs' readers are bounded.
func init() {
	for i, c := range compress.Codecs {
		if c != nil {
			compress.Codecs[i] = boundedCodec{c}
		}
	}
}

// boundedCodec is a codec whose readers stop at maxBatchDecompressed.
type boundedCodec struct{ compress.Codec }

func (c boundedCodec) NewReader(r io.Reader) io.ReadCloser {
	return &boundedReader{ReadCloser: c.Codec.NewReader(r), left: maxBatchDecompressed}
}

// boundedReader passes on at most left bytes, and fails with
// errBatchTooLarge when the stream holds more.
type boundedReader struct {
	io.ReadCloser
	left int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := io.ReadFull(b.ReadCloser, one[:])
		if n > 0 {
			return 0, errBatchTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
