package ingest

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"

	"github.com/pophub/pophub/schemas"
)

// reasonTooLarge (schemas.ReasonTooLarge) is the reject reason of a
// record the hub will not hold whole: one with more than maxRecordHeaders
// headers, or one that a compressed batch holds above maxRecordBytes once
// decompressed (see boundedCodec). Such records pass every limit Kafka has
// (the broker's max.message.bytes counts a batch compressed, and a header
// of a few bytes on the topic costs the hub many times that), and held as
// they come they would break the consumer's memory bound (see the package
// comment).
const reasonTooLarge = schemas.ReasonTooLarge

// maxRecordHeaders is the most headers a record may have. A department's
// records carry a handful (trace context, a CloudEvents SDK's ce_*
// attributes); a record with more is refused as too_large, and its DLQ
// copy keeps only the first maxRecordHeaders of them, so that the copy is
// no burden either.
const maxRecordHeaders = 1000

// headerOverhead is what a header costs in memory besides its name and
// value bytes: its kafka.Header, and the allocations kafka-go makes for
// its name and value (rounded up to the allocator's size classes).
const headerOverhead = int(unsafe.Sizeof(kafka.Header{})) + 16

// maxRecordBytes is the most a record in a compressed batch may weigh once
// decompressed, and maxBatchDecompressed the most the records of one
// compressed batch may weigh together: Kafka's default max.message.bytes
// (1 MiB), which the package comment's memory bound assumes, and the
// reader's fetch size. A record over either is handed on as a stand-in
// (see boundedCodec) and refused as too_large.
const (
	maxRecordBytes       = 1 << 20
	maxBatchDecompressed = 16 << 20
)

// keepKeyBytes is the longest key a stand-in for an oversized record keeps
// (an event's key is a citizen ID, 18 bytes).
const keepKeyBytes = 256

// oversizedHeader names the one header of a stand-in for a record over
// maxRecordBytes. Its value says how large the record was. The name ends in
// a random suffix drawn once per process, so that a department's record
// cannot pass for a stand-in.
var oversizedHeader = "pophub-oversized-" + randomSuffix()

func randomSuffix() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// recordTooLarge returns why m is refused as too large, or nil: a stand-in
// for a record over maxRecordBytes (see boundedCodec), or a record with
// more than maxRecordHeaders headers.
func recordTooLarge(m kafka.Message) *schemas.RejectError {
	if isStandIn(m) {
		field, detail, _ := strings.Cut(string(m.Headers[0].Value), ":")
		return &schemas.RejectError{Reason: reasonTooLarge, Field: field, Detail: detail}
	}
	n := len(m.Headers)
	if trimmed(m) {
		n, _ = strconv.Atoi(string(m.Headers[maxRecordHeaders].Value))
	}
	if n > maxRecordHeaders {
		return &schemas.RejectError{Reason: reasonTooLarge, Field: "headers", Detail: fmt.Sprintf(
			"%d headers, more than %d: the DLQ copy keeps the first %d", n, maxRecordHeaders, maxRecordHeaders)}
	}
	return nil
}

// trimmedHeader is the last header of a record whose headers trimHeaders
// cut, saying how many it had. Like oversizedHeader's, its name ends in
// the process's random suffix, so that a department's record cannot pass
// for a trimmed one.
var trimmedHeader = "pophub-headers-" + randomSuffix()

// trimHeaders keeps the first maxRecordHeaders headers of a fetched record
// that has more, and trimmedHeader, so that a batch holding it does not
// hold the rest while it waits (recordTooLarge refuses it).
func trimHeaders(m *kafka.Message) {
	n := len(m.Headers)
	if n <= maxRecordHeaders {
		return
	}
	hs := make([]kafka.Header, maxRecordHeaders+1)
	copy(hs, m.Headers[:maxRecordHeaders])
	hs[maxRecordHeaders] = kafka.Header{Key: trimmedHeader, Value: []byte(strconv.Itoa(n))}
	m.Headers = hs
}

// trimmed reports whether trimHeaders cut m's headers.
func trimmed(m kafka.Message) bool {
	return len(m.Headers) == maxRecordHeaders+1 && m.Headers[maxRecordHeaders].Key == trimmedHeader
}

// isStandIn reports whether m is the stand-in of a record over the limits
// of boundedCodec.
func isStandIn(m kafka.Message) bool {
	return len(m.Headers) == 1 && m.Headers[0].Key == oversizedHeader
}

// tooLargeCopy is the DLQ copy of m, refused as too large (re): with at
// most maxRecordHeaders of its headers, or for a stand-in, with the key it
// kept and marked with HeaderDropped, which the DLQ tools refuse to
// replay.
func tooLargeCopy(m kafka.Message, re *schemas.RejectError) kafka.Message {
	if !isStandIn(m) {
		if len(m.Headers) > maxRecordHeaders {
			m.Headers = m.Headers[:maxRecordHeaders:maxRecordHeaders]
		}
		return dlqRecord(m, re)
	}
	m.Headers = nil
	dropped := dropValueHeaders
	if m.Key == nil {
		dropped = dropAll
	}
	cp := dlqRecord(m, re)
	cp.Headers = append(cp.Headers, kafka.Header{Key: HeaderDropped, Value: []byte(dropped)})
	return cp
}

// dropValueHeaders is the HeaderDropped of a stand-in's copy that kept
// the record's key.
const dropValueHeaders = "value,headers"

// installBoundedCodecs wraps kafka-go's compression codecs, once per
// process, so that no record of a compressed batch is held above
// maxRecordBytes decompressed, nor the records of one batch above
// maxBatchDecompressed. kafka-go decompresses a whole batch into memory
// before it parses a record, and its reader has no limit of its own.
//
// kafka-go's codec table is global: the wrapping applies to every kafka-go
// reader and client of the process (reconcile's scan and the DLQ tools
// see the stand-in of such a record too). Writers are unaffected: the
// wrapped codecs compress as kafka-go's own.
var installBoundedCodecs = sync.OnceFunc(func() {
	for i, c := range compress.Codecs {
		if c != nil {
			compress.Codecs[i] = boundedCodec{c}
		}
	}
})

// boundedCodec is a kafka-go codec whose reader passes on the records of a
// batch (record format v2, Kafka 0.11 and later, the only format since
// Kafka 3.0) as they are, except a record over maxRecordBytes, or beyond
// maxBatchDecompressed of the batch's records, or with more than
// maxRecordHeaders headers: that one is read through without being kept
// and handed on as a stand-in record with the same offset and timestamp,
// its key (up to keepKeyBytes), no value, and the header oversizedHeader,
// which the consumer refuses as too_large. The number of records, which
// kafka-go reads from the batch's header, stays the same.
type boundedCodec struct{ compress.Codec }

func (c boundedCodec) NewReader(r io.Reader) io.ReadCloser {
	dec := c.Codec.NewReader(r)
	return &boundedReader{dec: dec, src: bufio.NewReader(dec)}
}

// errMalformedRecords is the error of a decompressed batch whose records
// cannot be parsed, which kafka-go could not have parsed either: its
// reader logs it (counted in pophub_ingest_reader_errors_total) and
// fetches the batch again, so the partition does not move past it and its
// lag grows, as for any batch kafka-go cannot read. A compressed batch in
// the older message formats (magic 0 and 1, Kafka before 0.11, gone since
// Kafka 3.0) is not made of such records and would be misread: the hub
// needs topics in format v2.
var errMalformedRecords = errors.New("a compressed batch's records are malformed")

type boundedReader struct {
	dec   io.ReadCloser
	src   *bufio.Reader
	out   []byte // what Read hands on next
	total int    // the bytes of the records handed on whole
	err   error
}

func (r *boundedReader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

func (r *boundedReader) Close() error { return r.dec.Close() }

// next reads the next record into r.out, or its stand-in.
func (r *boundedReader) next() error {
	length, err := binary.ReadVarint(r.src)
	switch {
	case errors.Is(err, io.EOF):
		return io.EOF
	case err != nil:
		return fmt.Errorf("%w: %w", errMalformedRecords, err)
	case length < 0:
		return fmt.Errorf("%w: record length %d", errMalformedRecords, length)
	}
	if length <= maxRecordBytes && r.total+int(length) <= maxBatchDecompressed {
		rec := binary.AppendVarint(make([]byte, 0, binary.MaxVarintLen64+int(length)), length)
		n := len(rec)
		rec = rec[:n+int(length)]
		if _, err := io.ReadFull(r.src, rec[n:]); err != nil {
			return fmt.Errorf("%w: %w", errMalformedRecords, io.ErrUnexpectedEOF)
		}
		if headers, ok := headerCount(rec[n:]); ok && headers > maxRecordHeaders {
			r.out = standIn(rec[n:], "headers", fmt.Sprintf("%d headers, more than %d", headers, maxRecordHeaders))
			return nil
		}
		r.total += int(length)
		r.out = rec
		return nil
	}
	// Read the record's start, to keep its offset, timestamp and key, and
	// pass over the rest without holding it.
	cr := &countingReader{r: r.src}
	attrs, err := cr.ReadByte()
	if err != nil {
		return fmt.Errorf("%w: %w", errMalformedRecords, io.ErrUnexpectedEOF)
	}
	var v [3]int64 // timestamp delta, offset delta, key length
	for i := range v {
		if v[i], err = binary.ReadVarint(cr); err != nil {
			return fmt.Errorf("%w: %w", errMalformedRecords, io.ErrUnexpectedEOF)
		}
	}
	var key []byte
	if kl := v[2]; kl >= 0 && kl <= keepKeyBytes && cr.n+kl <= length {
		key = make([]byte, kl)
		if _, err := io.ReadFull(r.src, key); err != nil {
			return fmt.Errorf("%w: %w", errMalformedRecords, io.ErrUnexpectedEOF)
		}
		cr.n += kl
	}
	if rest := length - cr.n; rest < 0 {
		return fmt.Errorf("%w: record length %d", errMalformedRecords, length)
	} else if _, err := io.CopyN(io.Discard, r.src, rest); err != nil {
		return fmt.Errorf("%w: %w", errMalformedRecords, io.ErrUnexpectedEOF)
	}
	detail := fmt.Sprintf("%d bytes once decompressed, more than %d", length, maxRecordBytes)
	if length <= maxRecordBytes {
		detail = fmt.Sprintf("%d bytes once decompressed, beyond the %d that the records of its compressed batch may weigh together",
			length, maxBatchDecompressed)
	}
	r.out = encodeStandIn(attrs, v[0], v[1], key, "value", detail)
	return nil
}

// countingReader is an io.ByteReader counting the bytes read.
type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// recordFields parses the start of a record (without its length): its
// attributes, timestamp and offset deltas, key, and what follows.
func recordFields(b []byte) (attrs byte, tsDelta, offDelta int64, key, rest []byte, ok bool) {
	if len(b) == 0 {
		return 0, 0, 0, nil, nil, false
	}
	attrs, b = b[0], b[1:]
	var v [3]int64
	for i := range v {
		n := 0
		if v[i], n = binary.Varint(b); n <= 0 {
			return 0, 0, 0, nil, nil, false
		}
		b = b[n:]
	}
	if kl := v[2]; kl >= 0 {
		if kl > int64(len(b)) {
			return 0, 0, 0, nil, nil, false
		}
		key, b = b[:kl], b[kl:]
	}
	return attrs, v[0], v[1], key, b, true
}

// headerCount returns the number of headers of the record rec (without its
// length).
func headerCount(rec []byte) (int64, bool) {
	_, _, _, _, b, ok := recordFields(rec)
	if !ok {
		return 0, false
	}
	vl, n := binary.Varint(b)
	if n <= 0 || vl > int64(len(b)-n) {
		return 0, false
	}
	b = b[n:]
	if vl > 0 {
		b = b[vl:]
	}
	hc, n := binary.Varint(b)
	return hc, n > 0
}

// standIn is the stand-in of the record rec (without its length), refused
// for detail.
func standIn(rec []byte, field, detail string) []byte {
	attrs, ts, off, key, _, _ := recordFields(rec)
	if len(key) > keepKeyBytes {
		key = nil
	}
	return encodeStandIn(attrs, ts, off, slices.Clone(key), field, detail)
}

// encodeStandIn encodes a record, with its length, of the given attributes,
// offset and timestamp deltas and key, no value, and the one header
// oversizedHeader saying "field:detail".
func encodeStandIn(attrs byte, tsDelta, offDelta int64, key []byte, field, detail string) []byte {
	b := []byte{attrs}
	b = binary.AppendVarint(b, tsDelta)
	b = binary.AppendVarint(b, offDelta)
	if key == nil {
		b = binary.AppendVarint(b, -1)
	} else {
		b = binary.AppendVarint(b, int64(len(key)))
		b = append(b, key...)
	}
	b = binary.AppendVarint(b, -1) // no value
	b = binary.AppendVarint(b, 1)  // one header
	b = binary.AppendVarint(b, int64(len(oversizedHeader)))
	b = append(b, oversizedHeader...)
	val := field + ":" + detail
	b = binary.AppendVarint(b, int64(len(val)))
	b = append(b, val...)
	return append(binary.AppendVarint(make([]byte, 0, len(b)+binary.MaxVarintLen64), int64(len(b))), b...)
}
