package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
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
// only the codecs' readers are bounded. Counting the bytes a reader passes
// on is not enough where a codec allocates what the batch says it holds
// before decoding any of it: snappy (a chunk's declared length, and
// xerial framing's chunk size) and zstd (a frame's window) have readers of
// their own here, which refuse such a claim past the bound before
// allocating for it.
func init() {
	for i, c := range compress.Codecs {
		switch {
		case c == nil:
		case compress.Compression(i) == compress.Snappy:
			compress.Codecs[i] = snappyCodec{c}
		case compress.Compression(i) == compress.Zstd:
			compress.Codecs[i] = zstdCodec{c}
		default: // gzip and lz4 stream in small windows
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

// snappyCodec reads snappy batches, xerial-framed (as Java clients and
// kafka-go write them) or one bare block, checking each chunk's declared
// length against what is left of the bound before decoding it.
type snappyCodec struct{ compress.Codec }

// xerialMagic begins a xerial-framed snappy stream; a version and a
// compatible version (4 bytes each) follow, then chunks, each a 4-byte
// big-endian length and a snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

func (snappyCodec) NewReader(r io.Reader) io.ReadCloser {
	return &snappyReader{in: r}
}

type snappyReader struct {
	in      io.Reader
	decoded *bytes.Reader // nil until the batch is decoded
	err     error
}

func (s *snappyReader) Read(p []byte) (int, error) {
	if s.decoded == nil && s.err == nil {
		var out []byte
		out, s.err = decodeSnappy(s.in)
		s.decoded = bytes.NewReader(out)
	}
	if s.err != nil {
		return 0, s.err
	}
	return s.decoded.Read(p)
}

func (s *snappyReader) Close() error { return nil }

// decodeSnappy decodes a whole snappy batch. The input is what the batch
// holds compressed, which Kafka bounds; every length it declares is
// checked against the input and the bound before anything is allocated
// for it.
func decodeSnappy(r io.Reader) ([]byte, error) {
	in, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var out []byte
	block := func(b []byte) error {
		n, err := snappy.DecodedLen(b)
		if err != nil {
			return fmt.Errorf("snappy: %w", err)
		}
		if int64(len(out))+int64(n) > maxBatchDecompressed {
			return errBatchTooLarge
		}
		out = slices.Grow(out, n)
		d, err := snappy.Decode(out[len(out):len(out)+n], b)
		if err != nil {
			return fmt.Errorf("snappy: %w", err)
		}
		out = out[:len(out)+len(d)]
		return nil
	}
	if len(in) < 16 || !bytes.Equal(in[:8], xerialMagic) {
		return out, block(in)
	}
	for rest := in[16:]; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, errors.New("snappy: a xerial chunk's length is cut short")
		}
		n := binary.BigEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-4) {
			return nil, fmt.Errorf("snappy: a xerial chunk says it holds %d bytes, of %d left in the batch", n, len(rest)-4)
		}
		if err := block(rest[4 : 4+n]); err != nil {
			return nil, err
		}
		rest = rest[4+n:]
	}
	return out, nil
}

// zstdCodec reads zstd batches with decoders whose window and memory are
// bounded: a frame may declare a window (up to 512 MiB by default) that
// the decoder allocates before it decodes a byte.
type zstdCodec struct{ compress.Codec }

var zstdDecoders sync.Pool // *zstd.Decoder, bounded

func (zstdCodec) NewReader(r io.Reader) io.ReadCloser {
	d, _ := zstdDecoders.Get().(*zstd.Decoder)
	if d == nil {
		var err error
		d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(maxBatchDecompressed), zstd.WithDecoderMaxMemory(maxBatchDecompressed))
		if err != nil {
			return &zstdReader{err: fmt.Errorf("zstd: %w", err)}
		}
	}
	if err := d.Reset(r); err != nil {
		zstdDecoders.Put(d)
		return &zstdReader{err: zstdError(err)}
	}
	return &boundedReader{ReadCloser: &zstdReader{dec: d}, left: maxBatchDecompressed}
}

type zstdReader struct {
	dec *zstd.Decoder
	err error
}

func (z *zstdReader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	n, err := z.dec.Read(p)
	return n, zstdError(err)
}

func (z *zstdReader) Close() error {
	if z.dec != nil {
		_ = z.dec.Reset(bytes.NewReader(nil)) // keep no reference to the batch
		zstdDecoders.Put(z.dec)
		z.dec = nil
	}
	return nil
}

// zstdError is errBatchTooLarge for a frame over the decoder's bounds.
func zstdError(err error) error {
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return errBatchTooLarge
	}
	return err
}
