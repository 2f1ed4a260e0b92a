package memdb

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/hub/stats"
	"github.com/pophub/pophub/internal/durable"
	"github.com/pophub/pophub/schemas"
)

// The log is a sequence of frames: length (uint32), CRC-32C of the payload
// (uint32), payload. A torn or corrupt final frame (a crash mid-write) ends
// the log; recovery truncates it.
//
// The log is split into generations, wal-<gen>.log. A snapshot records the
// first generation it does not contain; recovery loads it and replays the
// generations from there on, which must follow one another: generations
// are numbered one after another and only a snapshot that holds them
// removes any, so a missing one held acknowledged batches.
//
// Only the newest generation may end in a torn frame: a generation
// closes, synced, before a newer one takes batches, and a log whose write
// failed is never followed by a newer generation (see wal.failed and
// wal.err).
const (
	snapshotName = "snapshot.jsonl"

	frameBatch = 'B'
	// framePublished is MarkPublished before published entries were
	// kept: replayed, it drops them.
	framePublished = 'P'
	// framePublishedAt is MarkPublished: when, and which entries.
	framePublishedAt = 'A'
	// frameDeletedPublished is DeletePublished: the cut.
	frameDeletedPublished = 'D'
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// logFile is what the log needs of its file: an *os.File, opened for
// appending.
type logFile interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Close() error
}

type wal struct {
	f   logFile
	gen uint64
	buf []byte
	// frame is reused for every frame: a batch's frame is about a
	// megabyte, and a fresh one per batch cost page faults and GC work.
	frame []byte
	keys  *sealing.Keyring // seals frames when not nil
	n     uint64           // frames written to this generation
	// size is the length of the file's whole frames, where a failed
	// write is cut back to.
	size int64
	// failed is why the last write failed (a full disk). A failed write
	// may leave part of a frame behind, and recovery stops at the first
	// bad frame: a frame written after it would be acknowledged and then
	// lost. So the failed write is cut off at once, and the next write
	// first cuts the file back to size again and fsyncs it (a torn frame
	// cut off only in the page cache could come back after a power loss,
	// now with frames after it); then it goes on, and succeeding clears
	// failed. The frame that failed was not acknowledged, and what it
	// logged was not applied. The descriptor is kept, not reopened: its
	// fsync reports every writeback error since its last one, which a new
	// descriptor need not.
	//
	// While it is set, as when err is, the log stays the newest
	// generation, the one whose torn tail recovery cuts: no snapshot
	// switches away from it (startSnapshotLocked), and Close's snapshot
	// covers it without starting another (finalSnapshotLocked).
	failed error
	// err makes the log refuse every write until the hub restarts: a
	// failed fsync, or a failed write whose frame could not be cut off
	// even when retried. After a failed fsync Linux marks the pages it
	// could not write clean, and a later fsync succeeds without them: a
	// batch acknowledged after it could follow a hole in the file.
	// PostgreSQL likewise stops rather than retry a failed fsync
	// (data_sync_retry = off). After a restart Close's snapshot holds the
	// state, or the next start replays the log: every acknowledged batch.
	err error
}

func walPath(dir string, gen uint64) string {
	return filepath.Join(dir, fmt.Sprintf("wal-%020d.log", gen))
}

// walGens lists the log generations present in dir, oldest first.
func walGens(dir string) ([]uint64, error) {
	names, err := filepath.Glob(filepath.Join(dir, "wal-*.log"))
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, n := range names {
		var g uint64
		if _, err := fmt.Sscanf(filepath.Base(n), "wal-%020d.log", &g); err == nil {
			gens = append(gens, g)
		}
	}
	sort.Slice(gens, func(i, j int) bool { return gens[i] < gens[j] })
	return gens, nil
}

// openWAL starts generation gen, a new file (recovery and snapshots always
// move on to a generation not written yet, so frame numbers start at 0).
func openWAL(dir string, gen uint64, keys *sealing.Keyring) (*wal, error) {
	f, err := os.OpenFile(walPath(dir, gen), os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening log: %w", err)
	}
	if err := durable.SyncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return &wal{f: f, gen: gen, keys: keys}, nil
}

// write appends a frame, fsynced before it returns when sync is set. After
// a failed write it first cuts the file back to its whole frames (see
// wal.failed); after a failed fsync, or a cut that failed twice, it
// refuses (wal.err).
func (w *wal) write(payload []byte, sync bool) error {
	if w.err != nil {
		return w.err
	}
	if w.failed != nil {
		if err := w.f.Truncate(w.size); err != nil {
			return w.stick(fmt.Errorf("cutting the log back to its last whole frame at offset %d after a failed write: %w (the write failed with: %w)", w.size, err, w.failed))
		}
		if err := w.f.Sync(); err != nil {
			return w.stick(fmt.Errorf("%w: %w", errSync, err))
		}
		w.failed = nil
	}
	if err := w.writeFrame(payload, sync); err != nil {
		// A disk that fills part way through a frame leaves its start
		// behind: cut it off, so that the file ends on a whole frame.
		// Should that fail too, the next write tries again.
		if terr := w.f.Truncate(w.size); terr != nil {
			err = errors.Join(err, fmt.Errorf("cutting off the failed frame at offset %d: %w", w.size, terr))
		}
		if errors.Is(err, errSync) {
			return w.stick(err)
		}
		w.failed = err
		return err
	}
	return nil
}

// errSync marks a failed fsync of the log.
var errSync = errors.New("syncing log")

// stick makes the log refuse every write from now on, for err.
func (w *wal) stick(err error) error {
	w.err = fmt.Errorf("write-ahead log failed and takes no more writes: restart the hub (pophub serve) once the disk has space again or is repaired; "+
		"nothing acknowledged is lost: %w", err)
	return w.err
}

// stuck reports why the log takes no writes, or is retrying one that
// failed; nil when it works.
func (w *wal) stuck() error {
	switch {
	case w.err != nil:
		return w.err
	case w.failed != nil:
		return fmt.Errorf("the write-ahead log's last write failed; the next one retries it, and the store takes batches again once the disk has space "+
			"(nothing acknowledged is lost): %w", w.failed)
	}
	return nil
}

func (w *wal) writeFrame(payload []byte, sync bool) error {
	if w.keys != nil {
		payload = w.keys.Seal(payload, frameAD(w.gen, w.n))
	}
	frame := binary.LittleEndian.AppendUint32(w.frame[:0], uint32(len(payload)))
	frame = binary.LittleEndian.AppendUint32(frame, crc32.Checksum(payload, crcTable))
	frame = append(frame, payload...)
	w.frame = frame
	if _, err := w.f.Write(frame); err != nil {
		return err
	}
	if sync {
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("%w: %w", errSync, err)
		}
	}
	w.n++
	w.size += int64(len(frame))
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

// appendPublished logs outbox entries published at at without waiting
// for fsync.
func (w *wal) appendPublished(at time.Time, seqs []int64) error {
	b := []byte{framePublishedAt}
	b = binary.LittleEndian.AppendUint64(b, uint64(at.UnixNano()))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(seqs)))
	for _, s := range seqs {
		b = binary.LittleEndian.AppendUint64(b, uint64(s))
	}
	return w.write(b, false)
}

// appendDeletedPublished logs a DeletePublished cut without waiting for
// fsync.
func (w *wal) appendDeletedPublished(cut time.Time) error {
	b := []byte{frameDeletedPublished}
	b = binary.LittleEndian.AppendUint64(b, uint64(cut.UnixNano()))
	return w.write(b, false)
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

// recover loads the snapshot and replays the log generations after it,
// truncating a torn tail.
func (s *Store) recover(ctx context.Context) (int, error) {
	if err := os.MkdirAll(s.cfg.Dir, 0o700); err != nil {
		return 0, fmt.Errorf("creating store directory: %w", err)
	}
	var err error
	if s.lock, err = lockDir(s.cfg.Dir); err != nil {
		return 0, err
	}
	if err := s.checkSealing(); err != nil {
		return 0, err
	}
	// A large store takes minutes to load: say so before, not only after.
	if size := recoverySize(s.cfg.Dir); size > 0 {
		s.cfg.Logger.Info("memdb store recovering: loading snapshot and replaying log", "dir", s.cfg.Dir, "bytes", size)
	}
	from, err := s.loadSnapshot(filepath.Join(s.cfg.Dir, snapshotName))
	if err != nil {
		return 0, err
	}
	gens, err := walGens(s.cfg.Dir)
	if err != nil {
		return 0, fmt.Errorf("listing log files: %w", err)
	}
	if err := contiguous(gens, from); err != nil {
		return 0, err
	}
	replayed := 0
	next := from
	for _, gen := range gens {
		path := walPath(s.cfg.Dir, gen)
		if gen < from { // already in the snapshot
			if err := os.Remove(path); err != nil {
				return replayed, fmt.Errorf("removing old log: %w", err)
			}
			continue
		}
		n, err := s.replayFile(ctx, path, gen, gen == gens[len(gens)-1])
		replayed += n
		if err != nil {
			return replayed, err
		}
		next = gen + 1
	}
	if s.wal, err = openWAL(s.cfg.Dir, next, s.cfg.Keys); err != nil {
		return replayed, err
	}
	return replayed, nil
}

// contiguous checks that the log generations from from on, the first one
// the snapshot does not hold, are from, from+1, … with none missing (there
// may be none at all: Close's snapshot holds every generation). Older
// ones are what a crash between installing a snapshot and removing them
// leaves. Replaying past a gap would open the store without the batches
// the missing generation held, acknowledged and committed in Kafka.
func contiguous(gens []uint64, from uint64) error {
	want := from
	for _, gen := range gens {
		if gen < from {
			continue
		}
		if gen != want {
			return fmt.Errorf("log file %s is missing: replay starts at generation %d (the first one the snapshot, if any, does not hold) "+
				"and %s follows, so the acknowledged batches it held would be lost; refusing to open the store; restore the data directory from a backup",
				walPath("", want), from, walPath("", gen))
		}
		want++
	}
	return nil
}

// wholeFrame reports whether b starts with a whole frame whose payload
// matches its CRC, and returns the payload length its header declares.
// No frame is empty (each starts with its kind), and an empty payload's
// CRC-32C is 0: zeros past the last write (blocks a crash left allocated
// but unwritten) would otherwise read as a frame.
func wholeFrame(b []byte) (n int, ok bool) {
	if len(b) < 8 {
		return 0, false
	}
	n = int(binary.LittleEndian.Uint32(b))
	if n == 0 || 8+n > len(b) {
		return n, false
	}
	return n, crc32.Checksum(b[8:8+n], crcTable) == binary.LittleEndian.Uint32(b[4:])
}

// tornTail reports whether rest, the log from a frame that does not read
// back (whose header declares n payload bytes), is what an interrupted
// last write leaves: zeros to the end, or one frame reaching the end.
//
// A frame reaching the end may also be one whose length field is
// damaged, with whole frames after it holding acknowledged batches: it
// is torn only when no whole frame starts anywhere after its header.
func tornTail(rest []byte, n int) bool {
	if n > 0 && 8+n >= len(rest) {
		return !frameFollows(rest[min(8, len(rest)):])
	}
	for _, b := range rest {
		if b != 0 {
			return false
		}
	}
	return true
}

// frameFollows reports whether a whole frame starts at any offset of b.
// Most offsets declare a length past the end and cost no CRC.
func frameFollows(b []byte) bool {
	for i := range b {
		if _, ok := wholeFrame(b[i:]); ok {
			return true
		}
	}
	return false
}

// recoveryReportEvery is how often a long replay logs its progress.
var recoveryReportEvery = 10 * time.Second

// recoverySize is the bytes of snapshot and log in dir that opening the
// store reads (0 when there are none or they cannot be listed).
func recoverySize(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var size int64
	for _, e := range entries {
		if ok, _ := filepath.Match("wal-*.log", e.Name()); !ok && e.Name() != snapshotName {
			continue
		}
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			size += info.Size()
		}
	}
	return size
}

// replayFile replays one log file. In the newest file (newest), a torn
// last frame, or zeros up to the end, is what a crash mid-write leaves:
// it is cut off (tornTail). Any other bad frame, a damaged length field
// that runs past the end with whole frames after it too, is damage with
// acknowledged batches after it, whose Kafka offsets are committed and
// which would never come back: the store refuses to open and leaves the
// file as it is.
func (s *Store) replayFile(ctx context.Context, path string, gen uint64, newest bool) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading log: %w", err)
	}
	good, replayed := 0, 0
	lastReport := time.Now()
	for off := 0; off+8 <= len(data); {
		if time.Since(lastReport) >= recoveryReportEvery {
			lastReport = time.Now()
			s.cfg.Logger.Info("memdb store recovering: replaying log", "file", filepath.Base(path), "offset", off, "bytes", len(data))
		}
		// Zeros past the last write end the log like a torn frame.
		n, ok := wholeFrame(data[off:])
		if !ok {
			if !newest || !tornTail(data[off:], n) {
				return replayed, fmt.Errorf("log file %s is damaged at offset %d, with %d bytes after it that may hold acknowledged batches: "+
					"refusing to open the store; restore the data directory from a backup (or, to give up every batch from that offset on, truncate the file there)",
					filepath.Base(path), off, len(data)-off)
			}
			break
		}
		if err := ctx.Err(); err != nil {
			return replayed, err
		}
		payload := data[off+8 : off+8+n]
		if s.cfg.Keys != nil {
			if payload, err = s.cfg.Keys.Open(payload, frameAD(gen, uint64(replayed))); err != nil {
				return replayed, fmt.Errorf("opening log frame at offset %d of %s: %w", off, filepath.Base(path), err)
			}
		}
		if err := s.replay(payload); err != nil {
			return replayed, fmt.Errorf("replaying log frame at offset %d of %s: %w", off, filepath.Base(path), err)
		}
		off += 8 + n
		good = off
		replayed++
	}
	if good < len(data) {
		s.cfg.Logger.Warn("truncating torn log tail", "file", filepath.Base(path), "offset", good, "bytes", len(data)-good)
		if err := truncateSynced(path, int64(good)); err != nil {
			return replayed, fmt.Errorf("truncating torn log tail: %w", err)
		}
	}
	return replayed, nil
}

// truncateSynced cuts the file at path to size and fsyncs it: recovery
// moves on to a newer generation next, after which a torn tail that came
// back after a power loss would be refused as damage.
func truncateSynced(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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
		now := time.Unix(0, int64(r.u64())).UTC().Truncate(time.Microsecond)
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
		res, err := s.applyTxn(txn, batch, now)
		if err != nil {
			return err
		}
		s.commit(txn, res)
		return nil
	case framePublished, framePublishedAt:
		var at time.Time
		if payload[0] == framePublishedAt {
			at = time.Unix(0, int64(r.u64()))
		}
		n := int(r.u32())
		seqs := make([]int64, 0, n)
		for i := 0; i < n && r.err == nil; i++ {
			seqs = append(seqs, int64(r.u64()))
		}
		if r.err != nil {
			return r.err
		}
		if err := markTxn(txn, seqs, at); err != nil {
			return err
		}
	case frameDeletedPublished:
		cut := time.Unix(0, int64(r.u64()))
		if r.err != nil {
			return r.err
		}
		if _, err := deletePublishedTxn(txn, cut); err != nil {
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
	Kind string `json:"k"`
	// Version is the snapshot's format, on its meta line (snapshotFormat).
	Version int               `json:"v,omitempty"`
	Meta    *meta             `json:"m,omitempty"`
	WALGen  uint64            `json:"wal,omitempty"`
	Key     string            `json:"key,omitempty"`
	State   json.RawMessage   `json:"s,omitempty"`
	Source  string            `json:"src,omitempty"`
	EventID string            `json:"eid,omitempty"`
	Change  *hub.Change       `json:"c,omitempty"`
	Outbox  []hub.OutboxEntry `json:"o,omitempty"`
	// At is when a published row ("a") was acknowledged, Unix nanoseconds.
	At int64 `json:"at,omitempty"`
	// Lines and CRC32C are on the end line: how many lines come before
	// it and the CRC-32C of their bytes.
	Lines  *int64  `json:"lines,omitempty"`
	CRC32C *uint32 `json:"crc32c,omitempty"`
}

// snapshotFormat is the format a snapshot's meta line says it has.
//
// Format 2 ends in an end line, {"k":"end","lines":N,"crc32c":C}, that
// counts the lines before it and holds the CRC-32C of their bytes: the
// snapshot is the only copy of what it holds (the log generations it
// covers were removed when it was written), so one cut short or altered
// is refused rather than loaded as a smaller store. Format 1, with no
// version on its meta line, had no end line; one is read as before, and
// the next snapshot is written in format 2. A sealed snapshot ends in an
// end line too, inside its last chunk.
const snapshotFormat = 2

// startSnapshotLocked switches the log to a new generation and writes a
// snapshot of the state as of the switch in the background, then removes
// the older generations. Callers hold s.mu; batches go on meanwhile.
//
// After a failed log write it does nothing: the failed generation may end
// in part of a frame, which recovery cuts only in the newest generation.
func (s *Store) startSnapshotLocked() error {
	if s.wal.stuck() != nil {
		return nil
	}
	if !s.snapshotting.CompareAndSwap(false, true) {
		return nil // one at a time; the next trigger takes the rest
	}
	// The old generation's MarkPublished and DeletePublished frames are
	// not synced when written. Synced before the new generation takes
	// acknowledged batches, a power loss cannot leave a torn one behind
	// them; old.close() syncs too, but only after the switch.
	if err := s.wal.f.Sync(); err != nil {
		s.snapshotting.Store(false)
		return s.wal.stick(fmt.Errorf("%w: %w", errSync, err))
	}
	next, err := openWAL(s.cfg.Dir, s.wal.gen+1, s.cfg.Keys)
	if err != nil {
		s.snapshotting.Store(false)
		return err
	}
	old := s.wal
	s.wal = next
	s.sinceSnap = 0
	txn := s.db.Txn(false) // the state exactly as of the switch
	s.snapshotDone = make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		defer s.snapshotting.Store(false)
		if err := old.close(); err != nil {
			s.cfg.Logger.Error("closing log", "err", err)
		}
		if err := s.writeSnapshot(txn, next.gen); err != nil {
			s.cfg.Logger.Error("writing snapshot", "err", err)
			return
		}
		s.removeLogsBefore(next.gen)
	}(s.snapshotDone)
	return nil
}

// finalSnapshotLocked closes the log and writes a snapshot of the whole
// state, covering the current generation too, so that the next start
// replays nothing. It starts no new generation: if the snapshot fails (a
// full disk), the current one stays the newest, whose torn tail, left by
// a failed write, recovery cuts. Callers hold s.mu, and no background
// snapshot runs.
func (s *Store) finalSnapshotLocked() error {
	cerr := s.wal.close()
	covered := s.wal.gen + 1
	if err := s.writeSnapshot(s.db.Txn(false), covered); err != nil {
		return errors.Join(cerr, fmt.Errorf("writing final snapshot (nothing is lost: the log still holds every acknowledged batch and the next start replays it): %w", err))
	}
	s.removeLogsBefore(covered)
	return cerr
}

// removeLogsBefore removes the log generations before gen, which a
// snapshot now holds. One left behind is removed by the next recovery.
func (s *Store) removeLogsBefore(gen uint64) {
	gens, _ := walGens(s.cfg.Dir)
	for _, g := range gens {
		if g < gen {
			os.Remove(walPath(s.cfg.Dir, g))
		}
	}
}

// writeSnapshot writes every table of txn to a new snapshot file that
// covers the log generations before walGen. A crash while writing leaves
// the previous snapshot and its logs in place.
func (s *Store) writeSnapshot(txn *memdb.Txn, walGen uint64) error {
	tmp := filepath.Join(s.cfg.Dir, snapshotName+".tmp")
	// Owner only, like the log: the snapshot holds every golden record.
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating snapshot: %w", err)
	}
	defer os.Remove(tmp)
	w := bufio.NewWriterSize(f, 1<<20)
	var out io.Writer = w
	var sealed *chunkWriter
	if s.cfg.Keys != nil {
		sealed = &chunkWriter{w: w, k: s.cfg.Keys}
		out = sealed
	}
	m, err := getMeta(txn)
	if err != nil {
		f.Close()
		return err
	}
	sw := &snapshotWriter{w: out}
	// line is reused for every line.
	line, err := encodeLineStd(nil, snapshotLine{Kind: "meta", Version: snapshotFormat, Meta: &m, WALGen: walGen})
	if err == nil {
		err = sw.line(line)
	}
	for _, table := range []string{"persons", "outbox", "published"} {
		it, ierr := txn.Get(table, "id")
		if ierr != nil {
			err = errors.Join(err, ierr)
			break
		}
		for raw := it.Next(); raw != nil && err == nil; raw = it.Next() {
			line = line[:0]
			switch o := raw.(type) {
			case *person:
				// A person's line, then their history, oldest first.
				if line, err = personLine(line, o); err == nil {
					err = sw.line(line)
				}
				for _, c := range o.History.oldestFirst() {
					if err != nil {
						break
					}
					if line, err = historyLine(line[:0], &historyRow{Key: o.Key, Source: string(c.Source), EventID: c.EventID, Change: c}); err == nil {
						err = sw.line(line)
					}
				}
			case *outboxRow:
				if line, err = outboxLine(line, o.Entries); err == nil {
					err = sw.line(line)
				}
			case *publishedRow:
				if line, err = publishedLine(line, o); err == nil {
					err = sw.line(line)
				}
			}
		}
	}
	if err == nil {
		err = sw.end(line[:0])
	}
	if err == nil && sealed != nil {
		err = sealed.Close()
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
	return durable.SyncDir(s.cfg.Dir)
}

// snapshotWriter writes a snapshot's lines and then its end line.
type snapshotWriter struct {
	w     io.Writer
	lines int64
	crc   uint32
}

// line writes one line, ending in '\n'.
func (sw *snapshotWriter) line(b []byte) error {
	sw.lines++
	sw.crc = crc32.Update(sw.crc, crcTable, b)
	_, err := sw.w.Write(b)
	return err
}

// end writes the end line, using b's space.
func (sw *snapshotWriter) end(b []byte) error {
	b, err := encodeLineStd(b, snapshotLine{Kind: "end", Lines: &sw.lines, CRC32C: &sw.crc})
	if err != nil {
		return err
	}
	_, err = sw.w.Write(b)
	return err
}

// snapshotReader reads a snapshot's lines and checks them against its
// end line.
type snapshotReader struct {
	r       *bufio.Reader
	long    []byte // a line longer than r's buffer
	version int    // the meta line's format
	lines   int64  // read before the end line
	crc     uint32 // of those lines
	ended   bool   // the end line was read
}

// next returns the next line other than the end line, or io.EOF after
// the last one once the snapshot checked out.
func (sr *snapshotReader) next() (snapshotLine, error) {
	var line snapshotLine
	b, err := sr.read()
	if errors.Is(err, io.EOF) {
		return line, sr.atEOF()
	}
	if err != nil {
		return line, err
	}
	if sr.ended {
		return line, fmt.Errorf("it goes on after its end line (line %d)", sr.lines+2)
	}
	if err := json.Unmarshal(b, &line); err != nil {
		if b[len(b)-1] != '\n' {
			return line, fmt.Errorf("it ends inside line %d: it was cut short: %w", sr.lines+1, err)
		}
		return line, fmt.Errorf("line %d: %w", sr.lines+1, err)
	}
	switch {
	case sr.lines == 0 && line.Kind != "meta":
		return line, errors.New("it does not start with its meta line")
	case sr.lines == 0 && line.Version > snapshotFormat:
		return line, fmt.Errorf("its format %d is newer than this release reads (%d)", line.Version, snapshotFormat)
	case sr.lines == 0:
		sr.version = line.Version
	case line.Kind == "end":
		sr.ended = true
		if err := sr.checkEnd(line); err != nil {
			return line, err
		}
		return sr.next()
	}
	sr.lines++
	sr.crc = crc32.Update(sr.crc, crcTable, b)
	return line, nil
}

// atEOF says whether the snapshot may end here: after its meta line, and
// after its end line when its format has one. A snapshot of format 1 may
// end anywhere after its meta line, as it always could.
func (sr *snapshotReader) atEOF() error {
	switch {
	case sr.lines == 0:
		return errors.New("it does not start with its meta line (it is empty or was cut short)")
	case sr.version >= 2 && !sr.ended:
		return fmt.Errorf("it ends without its end line after %d lines: it was cut short", sr.lines)
	}
	return io.EOF
}

// checkEnd compares the end line with the lines before it.
func (sr *snapshotReader) checkEnd(end snapshotLine) error {
	switch {
	case end.Lines == nil || end.CRC32C == nil:
		return fmt.Errorf("its end line (line %d) has no line count or checksum", sr.lines+1)
	case *end.Lines != sr.lines:
		return fmt.Errorf("its end line counts %d lines before it, and there are %d: lines are missing or were added", *end.Lines, sr.lines)
	case *end.CRC32C != sr.crc:
		return fmt.Errorf("the checksum of its %d lines does not match its end line: a line was altered", sr.lines)
	}
	return nil
}

// read returns the next line with its '\n' (none on a last line without
// one), valid until the next call, or io.EOF after the last.
func (sr *snapshotReader) read() ([]byte, error) {
	b, err := sr.r.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		if errors.Is(err, io.EOF) && len(b) > 0 {
			err = nil
		}
		return b, err
	}
	sr.long = append(sr.long[:0], b...)
	for errors.Is(err, bufio.ErrBufferFull) {
		b, err = sr.r.ReadSlice('\n')
		sr.long = append(sr.long, b...)
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return sr.long, err
}

// loadSnapshot loads a snapshot and returns the first log generation it
// does not contain. One that does not read back is refused, naming it:
// it is the only copy of what it holds.
func (s *Store) loadSnapshot(path string) (uint64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("opening snapshot: %w", err)
	}
	defer f.Close()
	var in io.Reader = f
	if s.cfg.Keys != nil {
		in = &chunkReader{r: bufio.NewReaderSize(f, 1<<20), k: s.cfg.Keys}
	}
	walGen, err := s.readSnapshot(&snapshotReader{r: bufio.NewReaderSize(in, 1<<20)})
	if err != nil {
		return 0, fmt.Errorf("snapshot %s cannot be loaded: %w; refusing to open the store: restore it from a backup "+
			"(it is the only copy of what it holds: the log files it covers were removed when it was written)", path, err)
	}
	return walGen, nil
}

// readSnapshot loads the snapshot sr reads and returns the first log
// generation it does not contain.
func (s *Store) readSnapshot(sr *snapshotReader) (uint64, error) {
	var walGen uint64
	txn := s.db.Txn(true)
	defer txn.Abort()
	acc := stats.Acc{}
	// History lines name their person by key; snapshots written before
	// history moved into the person list them after all persons, in event
	// key order, so they are gathered and linked at the end.
	persons := map[string]*person{}
	history := map[string][]hub.Change{}
	for {
		line, err := sr.next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return 0, err
		}
		var obj any
		table := ""
		switch line.Kind {
		case "meta":
			table, obj, walGen = "meta", line.Meta, line.WALGen
		case "p":
			st, err := merge.Unmarshal(line.State)
			if err != nil {
				return 0, fmt.Errorf("line %d: %w", sr.lines, err)
			}
			st.UpdatedAt = st.UpdatedAt.UTC().Truncate(time.Microsecond) // as written before it was truncated
			p := newPerson(line.Key, st, nil)
			table, obj, persons[line.Key] = "persons", p, p
			acc.Person(nil, st, s.cfg.Classify) // counters are derived, not stored
		case "h":
			if line.Change == nil {
				return 0, fmt.Errorf("line %d: history line without a change", sr.lines)
			}
			// A snapshot written before event times were kept in China
			// Standard Time holds the offset the department wrote, and
			// applied_at to the nanosecond: read them as Apply now writes.
			c := *line.Change
			c.Time, c.AppliedAt = c.Time.In(schemas.CST()), c.AppliedAt.UTC().Truncate(time.Microsecond)
			history[line.Key] = append(history[line.Key], c)
			continue
		case "o":
			if len(line.Outbox) == 0 {
				continue
			}
			table, obj = "outbox", &outboxRow{Seq: uint64(line.Outbox[0].Seq), Entries: line.Outbox}
		case "a":
			if len(line.Outbox) == 0 {
				continue
			}
			table, obj = "published", &publishedRow{Seq: uint64(line.Outbox[0].Seq), At: line.At, Entries: line.Outbox}
		default:
			return 0, fmt.Errorf("line %d: unknown line kind %q", sr.lines, line.Kind)
		}
		if err := txn.Insert(table, obj); err != nil {
			return 0, fmt.Errorf("loading snapshot into %s: %w", table, err)
		}
	}
	for key, changes := range history {
		p := persons[key]
		if p == nil {
			return 0, fmt.Errorf("history of a person the snapshot does not hold (%d changes)", len(changes))
		}
		slices.SortFunc(changes, func(a, b hub.Change) int { return cmp.Compare(a.Version, b.Version) })
		for _, c := range changes {
			p.History = &changeList{Change: c, Next: p.History}
			s.events.addLocked(schemas.EventKey{Source: c.Source, ID: c.EventID})
		}
	}
	txn.Commit()
	s.counters.add(acc.Deltas())
	return walGen, nil
}
