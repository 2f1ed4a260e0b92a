package ingest

import (
	"encoding/binary"
	"time"

	"github.com/segmentio/kafka-go"
)

// partitionWatchInterval is how often the group reader asks for the source
// topics' partition counts (kafka-go's default): a partition added to a
// source topic is read from at most about this long after it appears,
// plus a rebalance.
const partitionWatchInterval = 5 * time.Second

// Reasons of pophub_events_skipped_total for transaction markers: a
// commit marker, and an abort marker, whose transaction's records the hub
// has applied (see the package comment) and which is therefore counted,
// logged and alerted on apart.
const (
	skipControl = "control"
	skipAborted = "aborted_transaction"
)

// IsControl reports whether a record with this key and value is taken
// for a transaction marker: the control record that a transaction
// coordinator writes to each partition a transaction touched when it
// commits or aborts. kafka-go does not filter control batches and gives no
// access to a batch's control attribute, so the record is recognised by
// its shape, as Kafka defines it: a 4-byte key (int16 version 0, int16
// type 0 abort or 1 commit) and a 6-byte value (int16 version 0, int32
// coordinator epoch). A department's record carries an 18-character
// citizen ID as its key, so none is taken for a marker; a record of this
// shape could only be key_mismatch otherwise.
//
// The hub skips such records, in control batches or not; hub/reconcile
// asks the same function, so that it accounts for a department's record
// of this shape as skipped, as the hub did, rather than as a gap.
func IsControl(key, value []byte) bool {
	_, ok := controlType(key, value)
	return ok
}

// Control record types (the marker key's second int16).
const (
	markerAbort  = 0
	markerCommit = 1
)

// controlType is the type of a record that IsControl takes for a marker.
func controlType(key, value []byte) (typ uint16, ok bool) {
	if len(key) != 4 || len(value) != 6 {
		return 0, false
	}
	version, typ := binary.BigEndian.Uint16(key), binary.BigEndian.Uint16(key[2:])
	return typ, version == 0 && (typ == markerAbort || typ == markerCommit) && binary.BigEndian.Uint16(value) == 0
}

// markerOf is controlType of a fetched record.
func markerOf(m kafka.Message) (typ uint16, ok bool) { return controlType(m.Key, m.Value) }
