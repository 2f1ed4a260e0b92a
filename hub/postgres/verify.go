package postgres

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub/stats"
)

// verifyCounters bounds the recounted counters VerifyCounters holds in
// memory: with the sorted copy a piece is written from, about 250 bytes
// each, so some 250 MB however many counters the store keeps (38.8
// million held whole took 6.6 GB).
const verifyCounters = 1_000_000

// maxPieces bounds the pieces read at once, each through a buffer of
// pieceBuffer bytes; more are first merged into one.
const (
	maxPieces   = 64
	pieceBuffer = 64 << 10
)

// VerifyCounters recomputes every counter from the persons' states, by a
// full scan in one snapshot with the stored counters, and returns the
// counters that differ, in key order: N is the stored value (the counter
// plus its changes not yet folded into it) minus the recomputed one.
//
// The recount is not held whole. A person counts in every region they
// ever lived in, not only where they live now, so no split of the persons
// by address splits the counters; instead the recount is summed in
// memory up to verifyCounters counters at a time, each such piece written
// sorted to a temporary file (about 25 bytes a counter), and the pieces
// are merged in key order against the stored counters, read in the same
// order. A store whose recount fits in one piece writes no file.
func (s *Store) VerifyCounters(ctx context.Context) ([]stats.Delta, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("verifying counters: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var pieces pieceSet
	defer pieces.close()
	recount, err := s.recount(ctx, tx, &pieces)
	if err != nil {
		return nil, fmt.Errorf("verifying counters: %w", err)
	}
	diffs, err := compareStored(ctx, tx, recount)
	if err != nil {
		return nil, fmt.Errorf("verifying counters: %w", err)
	}
	return diffs, nil
}

// recount sums every person's counters in pieces of at most the store's
// verify budget and returns them merged, in key order.
func (s *Store) recount(ctx context.Context, tx pgx.Tx, pieces *pieceSet) (deltaReader, error) {
	budget := s.verifyBudget
	if budget <= 0 {
		budget = verifyCounters
	}
	acc := stats.Acc{}
	rows, err := tx.Query(ctx, "SELECT person_key, state FROM persons WHERE version > 0")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var raw []byte
		if err := rows.Scan(&key, &raw); err != nil {
			return nil, err
		}
		st, err := s.seal.openState(key, raw)
		if err != nil {
			return nil, err
		}
		acc.Person(nil, st, s.cfg.Classify)
		if len(acc) >= budget {
			if err := pieces.add(acc.Deltas()); err != nil {
				return nil, err
			}
			clear(acc)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// What is stored is the counters plus the changes not yet folded into
	// them: the recount less those changes is what the counters must hold.
	if err := subtractPending(ctx, tx, acc); err != nil {
		return nil, err
	}
	return pieces.merged(acc.Deltas())
}

// subtractPending subtracts from acc the counter changes not yet folded
// into the counters, as tx sees them.
func subtractPending(ctx context.Context, tx pgx.Tx, acc stats.Acc) error {
	rows, err := tx.Query(ctx, "SELECT region, class::text, bucket, n FROM stats_counter_deltas")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k stats.Key
		var class string
		var n int64
		if err := rows.Scan(&k.Region, &class, &k.Bucket, &n); err != nil {
			return err
		}
		k.Class = stats.Class(class[0])
		acc[k] -= n
	}
	return rows.Err()
}

// compareStored reads the stored counters in key order beside the
// recount and returns those that differ, stored minus recounted.
func compareStored(ctx context.Context, tx pgx.Tx, recount deltaReader) ([]stats.Delta, error) {
	rows, err := tx.Query(ctx, `SELECT region, class::text, bucket, n FROM stats_counters
		ORDER BY region COLLATE "C", class, bucket COLLATE "C"`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var diffs []stats.Delta
	r, more, err := recount.next()
	if err != nil {
		return nil, err
	}
	// advance reports the recounted counters before k as stored at zero.
	advance := func(k stats.Key, all bool) error {
		for more && (all || compareKeys(r.Key, k) < 0) {
			if r.N != 0 { // pieces summing to zero, with the pending changes
				diffs = append(diffs, stats.Delta{Key: r.Key, N: -r.N})
			}
			if r, more, err = recount.next(); err != nil {
				return err
			}
		}
		return nil
	}
	var prev stats.Key
	first := true
	for rows.Next() {
		var k stats.Key
		var class string
		var n int64
		if err := rows.Scan(&k.Region, &class, &k.Bucket, &n); err != nil {
			return nil, err
		}
		k.Class = stats.Class(class[0])
		// The merge is only right if PostgreSQL orders as Go does.
		if !first && compareKeys(prev, k) >= 0 {
			return nil, fmt.Errorf("stored counters out of key order: %v after %v", k, prev)
		}
		prev, first = k, false
		if err := advance(k, false); err != nil {
			return nil, err
		}
		if more && r.Key == k {
			n -= r.N
			if r, more, err = recount.next(); err != nil {
				return nil, err
			}
		}
		if n != 0 {
			diffs = append(diffs, stats.Delta{Key: k, N: n})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := advance(stats.Key{}, true); err != nil {
		return nil, err
	}
	return diffs, nil
}

// compareKeys orders counter keys as stats.Acc.Deltas does, and as
// stats_counters' primary key does (byte order, COLLATE "C").
func compareKeys(a, b stats.Key) int {
	if c := compareStrings(a.Region, b.Region); c != 0 {
		return c
	}
	if a.Class != b.Class {
		return int(a.Class) - int(b.Class)
	}
	return compareStrings(a.Bucket, b.Bucket)
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// deltaReader yields counter deltas in key order; more is false once
// there are none left.
type deltaReader interface {
	next() (d stats.Delta, more bool, err error)
}

// sliceReader reads deltas from memory.
type sliceReader []stats.Delta

func (s *sliceReader) next() (stats.Delta, bool, error) {
	if len(*s) == 0 {
		return stats.Delta{}, false, nil
	}
	d := (*s)[0]
	*s = (*s)[1:]
	return d, true, nil
}

// pieceSet holds the pieces of a recount written to temporary files, each
// sorted by key.
type pieceSet struct {
	files []*os.File
}

// add writes a sorted piece to a file of its own. At maxPieces files it
// first merges them into one, so that the pieces are read at once
// through at most maxPieces buffers.
func (p *pieceSet) add(deltas []stats.Delta) error {
	if len(p.files) == maxPieces {
		all, err := p.merged(nil)
		if err != nil {
			return err
		}
		f, err := writePiece(all)
		if err != nil {
			return err
		}
		p.close()
		p.files = []*os.File{f}
	}
	r := sliceReader(deltas)
	f, err := writePiece(&r)
	if err != nil {
		return err
	}
	p.files = append(p.files, f)
	return nil
}

// merged reads the pieces written and last, a piece still in memory,
// merged into one sum per key.
func (p *pieceSet) merged(last []stats.Delta) (deltaReader, error) {
	r := sliceReader(last)
	if len(p.files) == 0 {
		return &r, nil
	}
	m := &mergeReader{}
	for _, f := range p.files {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rereading a piece of the recount: %w", err)
		}
		if err := m.push(&fileReader{r: bufio.NewReaderSize(f, pieceBuffer)}); err != nil {
			return nil, err
		}
	}
	if err := m.push(&r); err != nil {
		return nil, err
	}
	return m, nil
}

// close closes and removes the pieces' files.
func (p *pieceSet) close() {
	for _, f := range p.files {
		f.Close()
		os.Remove(f.Name())
	}
	p.files = nil
}

// writePiece writes sorted deltas to a new temporary file, each as the
// lengths and bytes of its region and bucket, its class and its N, and
// returns the file. The file is unlinked as soon as it is created, so
// that a verification killed halfway (kill -9, the OOM killer) leaves no
// piece behind in $TMPDIR; where the system cannot unlink an open file,
// close removes it.
func writePiece(r deltaReader) (*os.File, error) {
	f, err := os.CreateTemp("", "pophub-verify-*")
	if err != nil {
		return nil, fmt.Errorf("writing a piece of the recount: %w", err)
	}
	os.Remove(f.Name())
	w := bufio.NewWriterSize(f, pieceBuffer)
	var buf []byte
	for {
		d, more, err := r.next()
		if err == nil && !more {
			err = w.Flush()
		}
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("writing a piece of the recount: %w", err)
		}
		if !more {
			return f, nil
		}
		buf = binary.AppendUvarint(buf[:0], uint64(len(d.Region)))
		buf = append(buf, d.Region...)
		buf = append(buf, byte(d.Class))
		buf = binary.AppendUvarint(buf, uint64(len(d.Bucket)))
		buf = append(buf, d.Bucket...)
		buf = binary.AppendVarint(buf, d.N)
		if _, err := w.Write(buf); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("writing a piece of the recount: %w", err)
		}
	}
}

// fileReader reads a piece writePiece wrote.
type fileReader struct {
	r *bufio.Reader
}

func (fr *fileReader) next() (stats.Delta, bool, error) {
	var d stats.Delta
	region, err := fr.text()
	if errors.Is(err, io.EOF) {
		return d, false, nil
	}
	if err != nil {
		return d, false, err
	}
	class, err := fr.r.ReadByte()
	if err != nil {
		return d, false, pieceError(err)
	}
	bucket, err := fr.text()
	if err != nil {
		return d, false, pieceError(err)
	}
	n, err := binary.ReadVarint(fr.r)
	if err != nil {
		return d, false, pieceError(err)
	}
	return stats.Delta{Key: stats.Key{Region: region, Class: stats.Class(class), Bucket: bucket}, N: n}, true, nil
}

// text reads a length and that many bytes; io.EOF only before the length.
func (fr *fileReader) text() (string, error) {
	n, err := binary.ReadUvarint(fr.r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return "", io.EOF
		}
		return "", pieceError(err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(fr.r, b); err != nil {
		return "", pieceError(err)
	}
	return string(b), nil
}

// pieceError words a failure to read back a piece: an end of file within
// a delta means the file was cut.
func pieceError(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("rereading a piece of the recount: %w", err)
}

// mergeReader merges sorted readers into one sum per key, in key order,
// leaving out keys whose sum is zero (as stats.Acc.Deltas does).
type mergeReader struct {
	h cursorHeap
}

// cursor is a reader and the delta it returned last.
type cursor struct {
	d stats.Delta
	r deltaReader
}

// push adds a reader, positioned at its first delta.
func (m *mergeReader) push(r deltaReader) error {
	d, more, err := r.next()
	if err != nil || !more {
		return err
	}
	heap.Push(&m.h, cursor{d, r})
	return nil
}

func (m *mergeReader) next() (stats.Delta, bool, error) {
	for len(m.h) > 0 {
		sum := stats.Delta{Key: m.h[0].d.Key}
		for len(m.h) > 0 && m.h[0].d.Key == sum.Key {
			sum.N += m.h[0].d.N
			d, more, err := m.h[0].r.next()
			if err != nil {
				return stats.Delta{}, false, err
			}
			if more {
				m.h[0].d = d
				heap.Fix(&m.h, 0)
			} else {
				heap.Pop(&m.h)
			}
		}
		if sum.N != 0 {
			return sum, true, nil
		}
	}
	return stats.Delta{}, false, nil
}

// cursorHeap orders cursors by their deltas' keys.
type cursorHeap []cursor

func (h cursorHeap) Len() int           { return len(h) }
func (h cursorHeap) Less(i, j int) bool { return compareKeys(h[i].d.Key, h[j].d.Key) < 0 }
func (h cursorHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)        { *h = append(*h, x.(cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
