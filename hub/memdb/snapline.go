package memdb

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas"
)

// Persons and history rows are nearly all of a snapshot, and writing them
// through encoding/json (reflection, and compacting every raw state and
// event body once more) cost about a sixth of the hub's CPU while a
// snapshot ran; after that, the notifications still waiting for the
// relay (reflection, base64 and a buffer copied twice) cost most of a
// snapshot's CPU. The appenders below write the same bytes encoding/json
// writes for their snapshotLine (TestSnapshotLinesMatchEncodingJSON,
// TestOutboxLinesMatchEncodingJSON) and hand anything they do not handle
// to it.

// appendPersonLine appends the snapshot line of a person with the given
// encoded merge state; ok is false when state is not compact JSON.
func appendPersonLine(b []byte, key string, state []byte) (_ []byte, ok bool) {
	if !schemas.IsCompactJSON(state) {
		return b, false
	}
	b = append(b, `{"k":"p"`...)
	b = appendOptString(b, "key", key)
	if len(state) > 0 {
		b = append(b, `,"s":`...)
		b = append(b, state...)
	}
	return append(b, '}', '\n'), true
}

// appendHistoryLine appends the snapshot line of a history row; ok is
// false when its data is not compact JSON or a time has no RFC 3339 form.
func appendHistoryLine(b []byte, h *historyRow) (_ []byte, ok bool) {
	c := &h.Change
	if len(c.Data) > 0 && !schemas.IsCompactJSON(c.Data) {
		return b, false
	}
	start := len(b)
	b = append(b, `{"k":"h"`...)
	b = appendOptString(b, "key", h.Key)
	b = appendOptString(b, "src", h.Source)
	b = appendOptString(b, "eid", h.EventID)
	b = append(b, `,"c":{"version":`...)
	b = strconv.AppendInt(b, c.Version, 10)
	b = append(b, `,"event_id":`...)
	b = schemas.AppendJSONString(b, c.EventID)
	b = append(b, `,"source":`...)
	b = schemas.AppendJSONString(b, string(c.Source))
	b = append(b, `,"type":`...)
	b = schemas.AppendJSONString(b, string(c.Type))
	b = append(b, `,"time":`...)
	if b, ok = schemas.AppendJSONTime(b, c.Time); !ok {
		return b[:start], false
	}
	b = append(b, `,"applied_at":`...)
	if b, ok = schemas.AppendJSONTime(b, c.AppliedAt); !ok {
		return b[:start], false
	}
	b = append(b, `,"sections":`...)
	if c.Sections == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, s := range c.Sections {
			if i > 0 {
				b = append(b, ',')
			}
			b = schemas.AppendJSONString(b, s)
		}
		b = append(b, ']')
	}
	if len(c.Data) > 0 {
		b = append(b, `,"data":`...)
		b = append(b, c.Data...)
	}
	return append(b, '}', '}', '\n'), true
}

// appendOptString appends `,"key":"s"` unless s is empty (omitempty).
func appendOptString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return schemas.AppendJSONString(b, s)
}

// personLine appends the snapshot line of a person.
func personLine(b []byte, p *person) ([]byte, error) {
	st, err := merge.Marshal(p.State)
	if err != nil {
		return b, err
	}
	if out, ok := appendPersonLine(b, p.Key, st); ok {
		return out, nil
	}
	return encodeLineStd(b, snapshotLine{Kind: "p", Key: p.Key, State: st})
}

// historyLine appends the snapshot line of a history row.
func historyLine(b []byte, h *historyRow) ([]byte, error) {
	if out, ok := appendHistoryLine(b, h); ok {
		return out, nil
	}
	return encodeLineStd(b, snapshotLine{Kind: "h", Key: h.Key, Source: h.Source, EventID: h.EventID, Change: &h.Change})
}

// appendOutboxLine appends the snapshot line of an outbox row; ok is false
// when a creation time has no RFC 3339 form.
func appendOutboxLine(b []byte, entries []hub.OutboxEntry) (_ []byte, ok bool) {
	return appendEntriesLine(b, "o", entries, 0)
}

// appendEntriesLine appends a snapshot line of kind with entries and,
// when not zero, at; ok is false when a creation time has no RFC 3339
// form.
func appendEntriesLine(b []byte, kind string, entries []hub.OutboxEntry, at int64) (_ []byte, ok bool) {
	start := len(b)
	b = append(b, `{"k":`...)
	b = schemas.AppendJSONString(b, kind)
	if len(entries) == 0 {
		return appendAt(b, at), true
	}
	b = append(b, `,"o":[`...)
	var keys []string
	for i := range entries {
		e := &entries[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"Seq":`...)
		b = strconv.AppendInt(b, e.Seq, 10)
		b = append(b, `,"Subject":`...)
		b = schemas.AppendJSONString(b, e.Subject)
		b = append(b, `,"MsgID":`...)
		b = schemas.AppendJSONString(b, e.MsgID)
		b = append(b, `,"Body":`...)
		if e.Body == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, e.Body)
			b = append(b, '"')
		}
		b = append(b, `,"Trace":`...)
		if e.Trace == nil {
			b = append(b, "null"...)
		} else {
			keys = keys[:0]
			for k := range e.Trace {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			b = append(b, '{')
			for j, k := range keys {
				if j > 0 {
					b = append(b, ',')
				}
				b = schemas.AppendJSONString(b, k)
				b = append(b, ':')
				b = schemas.AppendJSONString(b, e.Trace[k])
			}
			b = append(b, '}')
		}
		b = append(b, `,"CreatedAt":`...)
		if b, ok = schemas.AppendJSONTime(b, e.CreatedAt); !ok {
			return b[:start], false
		}
		b = append(b, '}')
	}
	return appendAt(append(b, ']'), at), true
}

// appendAt ends a line with its "at" field when at is not zero.
func appendAt(b []byte, at int64) []byte {
	if at != 0 {
		b = append(b, `,"at":`...)
		b = strconv.AppendInt(b, at, 10)
	}
	return append(b, '}', '\n')
}

// outboxLine appends the snapshot line of an outbox row.
func outboxLine(b []byte, entries []hub.OutboxEntry) ([]byte, error) {
	if out, ok := appendOutboxLine(b, entries); ok {
		return out, nil
	}
	return encodeLineStd(b, snapshotLine{Kind: "o", Outbox: entries})
}

// publishedLine appends the snapshot line of a published row.
func publishedLine(b []byte, row *publishedRow) ([]byte, error) {
	if out, ok := appendEntriesLine(b, "a", row.Entries, row.At); ok {
		return out, nil
	}
	return encodeLineStd(b, snapshotLine{Kind: "a", Outbox: row.Entries, At: row.At})
}

// encodeLineStd is the encoding/json form of a snapshot line, the
// reference of the appenders and their fallback.
func encodeLineStd(b []byte, line snapshotLine) ([]byte, error) {
	v, err := json.Marshal(line)
	if err != nil {
		return b, err
	}
	return append(append(b, v...), '\n'), nil
}
