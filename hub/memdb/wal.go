package memdb

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas"
)

// The log is a sequence of frames: length (uint32), CRC-32C of the payload
// (uint32), payload. A torn or corrupt final frame (a crash mid-write) ends
// the log; recovery truncates it.
const (
	walName      = "wal.log"
	snapshotName = "snapshot.jsonl"

	frameBatch     = 'B'
	framePublished = 'P'
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type wal struct {
	f   *os.File
	buf []byte
}

func openWAL(path string) (*wal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening log: %w", err)
	}
	return &wal{f: f}, nil
}

func (w *wal) write(payload []byte, sync bool) error {
	frame := make([]byte, 8, 8+len(payload))
	binary.LittleEndian.PutUint32(frame[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(frame[4:8], crc32.Checksum(payload, crcTable))
	frame = append(frame, payload...)
	if _, err := w.f.Write(frame); err != nil {
		return err
	}
	if sync {
		return w.f.Sync()
	}
	return nil
}

func putString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendBatch logs a batch and fsyncs before returning.
func (w *wal) appendBatch(now time.Time, batch []hub.Input) error {
	b := w.buf[:0]
	b = append(b, frameBatch)
	b = binary.LittleEndian.AppendUint64(b, uint64(now.UnixNano()))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(batch)))
	for _, in := range batch {
		value := in.Raw
		if value == nil {
			var err error
			if value, err = schemas.Encode(in.Event); err != nil {
				return fmt.Errorf("encoding event: %w", err)
			}
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(value)))
		b = append(b, value...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(in.Trace)))
		for k, v := range in.Trace {
			b = putString(b, k)
			b = putString(b, v)
		}
	}
	w.buf = b
	return w.write(b, true)
}

// appendPublished logs published outbox entries without waiting for fsync.
func (w *wal) appendPublished(seqs []int64) error {
	b := []byte{framePublished}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(seqs)))
	for _, s := range seqs {
		b = binary.LittleEndian.AppendUint64(b, uint64(s))
	}
	return w.write(b, false)
}

func (w *wal) reset() error {
	if err := w.f.Truncate(0); err != nil {
		return fmt.Errorf("truncating log: %w", err)
	}
	return w.f.Sync()
}

func (w *wal) close() error {
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		return fmt.Errorf("syncing log: %w", err)
	}
	return w.f.Close()
}

// reader decodes payloads.
type reader struct {
	b   []byte
	err error
}

func (r *reader) u32() uint32 {
	if len(r.b) < 4 {
		r.err = io.ErrUnexpectedEOF
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64() uint64 {
	if len(r.b) < 8 {
		r.err = io.ErrUnexpectedEOF
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) str() string {
	n := int(r.u32())
	if r.err != nil || len(r.b) < n {
		r.err = io.ErrUnexpectedEOF
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// recover loads the snapshot and replays the log, truncating a torn tail.
func (s *Store) recover(ctx context.Context) (int, error) {
	if err := os.MkdirAll(s.cfg.Dir, 0o700); err != nil {
		return 0, fmt.Errorf("creating store directory: %w", err)
	}
	if err := s.loadSnapshot(filepath.Join(s.cfg.Dir, snapshotName)); err != nil {
		return 0, err
	}
	path := filepath.Join(s.cfg.Dir, walName)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("reading log: %w", err)
	}
	good, replayed := 0, 0
	for off := 0; off+8 <= len(data); {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		sum := binary.LittleEndian.Uint32(data[off+4:])
		if off+8+n > len(data) || crc32.Checksum(data[off+8:off+8+n], crcTable) != sum {
			break
		}
		if err := ctx.Err(); err != nil {
			return replayed, err
		}
		if err := s.replay(data[off+8 : off+8+n]); err != nil {
			return replayed, fmt.Errorf("replaying log frame at offset %d: %w", off, err)
		}
		off += 8 + n
		good = off
		replayed++
	}
	if good < len(data) {
		s.cfg.Logger.Warn("truncating torn log tail", "offset", good, "bytes", len(data)-good)
		if err := os.Truncate(path, int64(good)); err != nil {
			return replayed, fmt.Errorf("truncating torn log tail: %w", err)
		}
	}
	if s.wal, err = openWAL(path); err != nil {
		return replayed, err
	}
	return replayed, nil
}

func (s *Store) replay(payload []byte) error {
	if len(payload) == 0 {
		return errors.New("empty frame")
	}
	r := &reader{b: payload[1:]}
	txn := s.db.Txn(true)
	defer txn.Abort()
	switch payload[0] {
	case frameBatch:
		now := time.Unix(0, int64(r.u64())).UTC()
		n := int(r.u32())
		batch := make([]hub.Input, 0, n)
		for i := 0; i < n && r.err == nil; i++ {
			value := r.str()
			var trace map[string]string
			if nt := int(r.u32()); nt > 0 {
				trace = make(map[string]string, nt)
				for j := 0; j < nt && r.err == nil; j++ {
					k := r.str()
					trace[k] = r.str()
				}
			}
			if r.err != nil {
				break
			}
			ev, err := decodeLogged([]byte(value), now)
			if err != nil {
				return fmt.Errorf("decoding logged event: %w", err)
			}
			batch = append(batch, hub.Input{Event: ev, Trace: trace})
		}
		if r.err != nil {
			return r.err
		}
		res, err := applyTxn(txn, batch, now)
		if err != nil {
			return err
		}
		s.sinceSnap += res.Applied
	case framePublished:
		n := int(r.u32())
		seqs := make([]int64, 0, n)
		for i := 0; i < n && r.err == nil; i++ {
			seqs = append(seqs, int64(r.u64()))
		}
		if r.err != nil {
			return r.err
		}
		if err := markTxn(txn, seqs); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown frame type %q", payload[0])
	}
	txn.Commit()
	return nil
}

// snapshotLine is one line of a snapshot file.
type snapshotLine struct {
	Kind    string            `json:"k"`
	Meta    *meta             `json:"m,omitempty"`
	Key     string            `json:"key,omitempty"`
	State   json.RawMessage   `json:"s,omitempty"`
	Source  string            `json:"src,omitempty"`
	EventID string            `json:"eid,omitempty"`
	Change  *hub.Change       `json:"c,omitempty"`
	Outbox  []hub.OutboxEntry `json:"o,omitempty"`
}

// snapshotLocked writes every table to a new snapshot file, then empties
// the log. Callers hold s.mu, so no batch is applied meanwhile. A crash
// between the rename and the truncation only makes the next recovery
// replay batches the snapshot already holds, which are then duplicates.
func (s *Store) snapshotLocked() error {
	tmp := filepath.Join(s.cfg.Dir, snapshotName+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("creating snapshot: %w", err)
	}
	defer os.Remove(tmp)
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	txn := s.db.Txn(false)
	m, err := getMeta(txn)
	if err != nil {
		f.Close()
		return err
	}
	err = enc.Encode(snapshotLine{Kind: "meta", Meta: &m})
	for _, table := range []string{"persons", "history", "outbox"} {
		it, ierr := txn.Get(table, "id")
		if ierr != nil {
			err = errors.Join(err, ierr)
			break
		}
		for raw := it.Next(); raw != nil && err == nil; raw = it.Next() {
			switch o := raw.(type) {
			case *person:
				var st []byte
				if st, err = merge.Marshal(o.State); err == nil {
					err = enc.Encode(snapshotLine{Kind: "p", Key: o.Key, State: st})
				}
			case *historyRow:
				err = enc.Encode(snapshotLine{Kind: "h", Key: o.Key, Source: o.Source, EventID: o.EventID, Change: &o.Change})
			case *outboxRow:
				err = enc.Encode(snapshotLine{Kind: "o", Outbox: o.Entries})
			}
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.cfg.Dir, snapshotName)); err != nil {
		return fmt.Errorf("installing snapshot: %w", err)
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		return err
	}
	s.sinceSnap = 0
	return s.wal.reset()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening store directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing store directory: %w", err)
	}
	return nil
}

func (s *Store) loadSnapshot(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening snapshot: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(f, 1<<20))
	txn := s.db.Txn(true)
	defer txn.Abort()
	for {
		var line snapshotLine
		if err := dec.Decode(&line); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("reading snapshot: %w", err)
		}
		var obj any
		table := ""
		switch line.Kind {
		case "meta":
			table, obj = "meta", line.Meta
		case "p":
			st, err := merge.Unmarshal(line.State)
			if err != nil {
				return fmt.Errorf("reading snapshot: %w", err)
			}
			table, obj = "persons", &person{Key: line.Key, State: st}
		case "h":
			table, obj = "history", &historyRow{Key: line.Key, Source: line.Source, EventID: line.EventID, Change: *line.Change}
		case "o":
			if len(line.Outbox) == 0 {
				continue
			}
			table, obj = "outbox", &outboxRow{Seq: uint64(line.Outbox[0].Seq), Entries: line.Outbox}
		default:
			return fmt.Errorf("reading snapshot: unknown line kind %q", line.Kind)
		}
		if err := txn.Insert(table, obj); err != nil {
			return fmt.Errorf("loading snapshot into %s: %w", table, err)
		}
	}
	txn.Commit()
	return nil
}
