package ingest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"unsafe"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/schemas"
)

// reasonTooLarge (schemas.ReasonTooLarge) is the reject reason of a
// record the hub will not hold whole: one with more than maxRecordHeaders
// headers. Such records pass every limit Kafka has (a header of a few
// bytes on the topic costs the hub many times that), and held as they
// come they would break the consumer's memory bound (see the package
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

func randomSuffix() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// recordTooLarge returns why m is refused as too large, or nil: a record
// with more than maxRecordHeaders headers.
func recordTooLarge(m kafka.Message) *schemas.RejectError {
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
// cut, saying how many it had. The name ends in a random suffix drawn once
// per process, so that a department's record cannot pass for a trimmed one.
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

// tooLargeCopy is the DLQ copy of m, refused as too large (re): with at
// most maxRecordHeaders of its headers.
func tooLargeCopy(m kafka.Message, re *schemas.RejectError) kafka.Message {
	if len(m.Headers) > maxRecordHeaders {
		m.Headers = m.Headers[:maxRecordHeaders:maxRecordHeaders]
	}
	return dlqRecord(m, re)
}
