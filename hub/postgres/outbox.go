package postgres

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/s2"

	"github.com/pophub/pophub/hub"
)

// The outbox keeps one row per applied batch (migration 0006): the
// batch's notifications as one list, in merge order. Notification i of
// batch row b has the sequence number b<<entryBits | i. A row whose
// notifications have all been published stays until DeletePublished
// removes it (migration 0007), so that the relay can publish it again
// after NATS lost what it had acknowledged.
const (
	entryBits  = 20
	maxEntries = 1 << entryBits // notifications per row
)

// Formats of outbox_batches.entries.
const (
	// outboxLegacy is a list moved from the old one-row-per-notification
	// table: uncompressed, each body as it was stored there (sealed on its
	// own, bound to its msg_id, when the schema is sealed).
	outboxLegacy = 0
	// outboxS2 is the list S2-compressed, sealed as a whole when the
	// schema is sealed.
	outboxS2 = 1
)

// appendList appends entries as a list: for each, its subject, msg_id,
// body and trace context (JSON, empty for none), each a 4-byte big-endian
// length and the bytes (what the migration builds with int4send).
func appendList(dst []byte, entries []hub.OutboxEntry) ([]byte, error) {
	// Grown once: a batch's list is a megabyte, and growing it as it
	// fills cost about a twentieth of the hub's CPU.
	size := 0
	for i := range entries {
		e := &entries[i]
		size += 16 + len(e.Subject) + len(e.MsgID) + len(e.Body)
		if len(e.Trace) > 0 {
			size += 128
		}
	}
	dst = slices.Grow(dst, size)
	for i := range entries {
		e := &entries[i]
		var trace []byte
		if len(e.Trace) > 0 {
			var err error
			if trace, err = json.Marshal(e.Trace); err != nil {
				return nil, fmt.Errorf("encoding trace context: %w", err)
			}
		}
		dst = appendField(dst, e.Subject)
		dst = appendField(dst, e.MsgID)
		dst = appendField(dst, e.Body)
		dst = appendField(dst, trace)
	}
	return dst, nil
}

func appendField[T string | []byte](dst []byte, f T) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(f)))
	return append(dst, f...)
}

// parseList reads a list that appendList wrote. Bodies share b's memory.
func parseList(b []byte) ([]hub.OutboxEntry, error) {
	out := make([]hub.OutboxEntry, 0, len(b)/256) // a notification is about 400 bytes
	next := func() ([]byte, error) {
		if len(b) < 4 {
			return nil, errors.New("truncated length")
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return nil, errors.New("truncated field")
		}
		f := b[4 : 4+n : 4+n]
		b = b[4+n:]
		return f, nil
	}
	for len(b) > 0 {
		var fields [4][]byte
		for i := range fields {
			f, err := next()
			if err != nil {
				return nil, fmt.Errorf("notification %d: %w", len(out), err)
			}
			fields[i] = f
		}
		e := hub.OutboxEntry{Subject: string(fields[0]), MsgID: string(fields[1]), Body: fields[2]}
		if len(fields[3]) > 0 {
			if err := json.Unmarshal(fields[3], &e.Trace); err != nil {
				return nil, fmt.Errorf("notification %s: trace context: %w", e.MsgID, err)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// encodeOutbox is the outboxS2 value of entries.
func (z sealer) encodeOutbox(entries []hub.OutboxEntry) ([]byte, error) {
	list, err := appendList(nil, entries)
	if err != nil {
		return nil, err
	}
	return z.sealOutbox(s2.Encode(nil, list)), nil
}

// decodeOutbox reads an entries value of either format; the entries
// come without Seq and CreatedAt.
func (z sealer) decodeOutbox(format int16, b []byte) ([]hub.OutboxEntry, error) {
	switch format {
	case outboxS2:
		sealed, err := z.openOutbox(b)
		if err != nil {
			return nil, err
		}
		list, err := s2.Decode(nil, sealed)
		if err != nil {
			return nil, fmt.Errorf("decompressing notifications: %w", err)
		}
		return parseList(list)
	case outboxLegacy:
		entries, err := parseList(b)
		if err != nil {
			return nil, err
		}
		for i := range entries {
			if entries[i].Body, err = z.openBody(entries[i].MsgID, entries[i].Body); err != nil {
				return nil, err
			}
		}
		return entries, nil
	}
	return nil, fmt.Errorf("unknown format %d", format)
}

// writeOutbox adds the batch's notifications as one row (more only past
// maxEntries), numbered from the outbox_batch_seq sequence.
func (s *Store) writeOutbox(ctx context.Context, tx pgx.Tx, entries []hub.OutboxEntry, writeID int64) error {
	for len(entries) > 0 {
		part := entries[:min(len(entries), maxEntries)]
		entries = entries[len(part):]
		value, err := s.seal.encodeOutbox(part)
		if err != nil {
			return fmt.Errorf("writing outbox: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO outbox_batches (batch, size, format, entries, created_at, write_id)
			VALUES (nextval('outbox_batch_seq'), $1, $2, $3, $4, $5)`, len(part), outboxS2, value, part[0].CreatedAt, writeID); err != nil {
			return fmt.Errorf("writing outbox: %w", err)
		}
	}
	return nil
}

// PendingOutbox implements hub.Store. Batch rows are numbered when they
// are written, not when they commit, so a batch committing late may add
// entries below ones already returned; the relay therefore always reads
// from after = 0. It reads the rows' sizes first, then the lists of only
// the rows that hold the next limit entries.
func (s *Store) PendingOutbox(ctx context.Context, after int64, limit int) ([]hub.OutboxEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	after = max(after, 0)
	rows, err := s.pool.Query(ctx, `SELECT batch, size, published FROM outbox_batches
		WHERE batch >= $1 AND cardinality(published) < size ORDER BY batch LIMIT $2`, after>>entryBits, limit+1)
	if err != nil {
		return nil, fmt.Errorf("reading outbox: %w", err)
	}
	var need []int64
	pending := 0
	for rows.Next() && pending < limit {
		var batch int64
		var size int
		var published []int32
		if err := rows.Scan(&batch, &size, &published); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading outbox: %w", err)
		}
		n := size - len(published)
		if first := batch << entryBits; first <= after {
			// The row after points into: only its entries past after.
			done := publishedSet(published, size)
			n = 0
			for i := int(after-first) + 1; i < size; i++ {
				if !done[i] {
					n++
				}
			}
		}
		if n > 0 {
			need = append(need, batch)
			pending += n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading outbox: %w", err)
	}
	if len(need) == 0 {
		return nil, nil
	}

	return s.outboxEntries(ctx, need, after, min(pending, limit), false)
}

// outboxEntries reads the rows need, in batch order, and returns up to
// limit of their entries past after that are published, or pending when
// published is false.
func (s *Store) outboxEntries(ctx context.Context, need []int64, after int64, limit int, published bool) ([]hub.OutboxEntry, error) {
	// A row's entries never change once written (only its published
	// list does), so the row read in part last time is not read again:
	// the same row, by its number and the write that stored it, since
	// after a failover to a standby lacking the last transactions the
	// numbers are given again.
	part := s.partRow.Load()
	partBatch, partWrite := int64(-1), int64(0)
	if part != nil {
		partBatch, partWrite = part.batch, part.writeID
	}
	rows, err := s.pool.Query(ctx, `SELECT batch, format, CASE WHEN batch = $2 AND write_id = $3 THEN NULL ELSE entries END, created_at, published, write_id
		FROM outbox_batches WHERE batch = ANY($1) ORDER BY batch`, need, partBatch, partWrite)
	if err != nil {
		return nil, fmt.Errorf("reading outbox: %w", err)
	}
	defer rows.Close()
	out := make([]hub.OutboxEntry, 0, limit)
	read := map[int64]int64{} // the rows returned entries of, by write
	for rows.Next() && len(out) < limit {
		var (
			batch     int64
			format    int16
			value     []byte
			createdAt time.Time
			marks     []int32
			writeID   int64
		)
		if err := rows.Scan(&batch, &format, &value, &createdAt, &marks, &writeID); err != nil {
			return nil, fmt.Errorf("reading outbox: %w", err)
		}
		var entries []hub.OutboxEntry
		fromPart := value == nil && batch == partBatch
		if fromPart {
			entries = part.entries
		} else if entries, err = s.seal.decodeOutbox(format, value); err != nil {
			return nil, fmt.Errorf("reading outbox batch row %d: %w", batch, err)
		}
		done := publishedSet(marks, len(entries))
		for i := range entries {
			seq := batch<<entryBits | int64(i)
			if seq <= after || done[i] != published {
				continue
			}
			e := entries[i]
			e.Seq, e.CreatedAt = seq, createdAt.UTC()
			out = append(out, e)
			read[batch] = writeID
			if len(out) == limit {
				if i+1 < len(entries) && !fromPart {
					s.partRow.Store(&decodedRow{batch: batch, writeID: writeID, entries: entries})
				}
				break
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading outbox: %w", err)
	}
	if !published {
		s.pendingRead.Store(&read)
	}
	return out, nil
}

// decodedRow is an outbox row's entries, decoded.
type decodedRow struct {
	batch   int64
	writeID int64
	entries []hub.OutboxEntry
}

// pendingCountSQL counts the notifications left to publish. Its WHERE is
// the outbox_batches_pending index's predicate, so that it reads only the
// rows of that index, however many published rows wait for deletion.
const pendingCountSQL = `SELECT coalesce(sum(size - cardinality(published)), 0) FROM outbox_batches
	WHERE cardinality(published) < size`

// CountPendingOutbox implements hub.Store: the sum over the rows with
// notifications left to publish, read on the outbox_batches_pending index.
func (s *Store) CountPendingOutbox(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, pendingCountSQL).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting pending notifications: %w", err)
	}
	return n, nil
}

// OldestPendingOutbox reports when the oldest batch row with
// notifications left to publish was written, the zero time when there is
// none: the first row of the outbox_batches_pending index, one index
// lookup however long the backlog. The relay reads it at every metrics
// scrape (notify.OutboxAge).
func (s *Store) OldestPendingOutbox(ctx context.Context) (time.Time, error) {
	var at time.Time
	err := s.pool.QueryRow(ctx, `SELECT created_at FROM outbox_batches
		WHERE cardinality(published) < size ORDER BY batch LIMIT 1`).Scan(&at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("reading the oldest pending notification: %w", err)
	}
	return at.UTC(), nil
}

// MarkPublished implements hub.Store. It adds the entries to their batch
// rows' published lists and sets the rows' published_at, under row locks
// so that two relays marking one row do not lose each other's marks. A
// row whose entries have all been published stays for DeletePublished.
//
// A row PendingOutbox last returned entries of is marked only if it is
// still the row that read found, by the write that stored it: after a
// failover to a standby that lacks the last transactions, the numbers of
// the rows read on the old primary are given to other rows, whose
// entries were never published.
func (s *Store) MarkPublished(ctx context.Context, seqs []int64) error {
	var read map[int64]int64
	if p := s.pendingRead.Load(); p != nil {
		read = *p
	}
	marks := map[int64][]int32{}
	for _, seq := range seqs {
		if seq > 0 {
			b := seq >> entryBits
			marks[b] = append(marks[b], int32(seq&(maxEntries-1)))
		}
	}
	if len(marks) == 0 {
		return nil
	}
	batches := make([]int64, 0, len(marks))
	for b := range marks {
		batches = append(batches, b)
	}
	slices.Sort(batches)
	stale := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		stale = 0
		rows, err := tx.Query(ctx, `SELECT batch, size, published, write_id FROM outbox_batches
			WHERE batch = ANY($1) ORDER BY batch FOR UPDATE`, batches)
		if err != nil {
			return err
		}
		var updates pgx.Batch
		for rows.Next() {
			var batch, writeID int64
			var size int32
			var published []int32
			if err := rows.Scan(&batch, &size, &published, &writeID); err != nil {
				rows.Close()
				return err
			}
			if w, ok := read[batch]; ok && w != writeID {
				stale++
				continue // another row under the number read
			}
			done := publishedSet(published, int(size))
			grew := false
			for _, i := range marks[batch] {
				if i >= 0 && i < size && !done[i] {
					done[i] = true
					published = append(published, i)
					grew = true
				}
			}
			if !grew {
				continue // marked before: its published_at stays
			}
			slices.Sort(published)
			updates.Queue(`UPDATE outbox_batches SET published = $2, published_at = now() WHERE batch = $1`, batch, published)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if updates.Len() == 0 {
			return nil
		}
		return tx.SendBatch(ctx, &updates).Close()
	})
	if err != nil {
		return writeFailed(ctx, "marking outbox entries published", err)
	}
	if stale > 0 {
		s.cfg.Logger.Warn("outbox rows read for publishing were replaced by others under their numbers (a failover to a standby that lacked them?): "+
			"their entries were published, the new rows' are left pending", "rows", stale)
	}
	return nil
}

// PublishedOutbox implements hub.Store: the published entries of every
// row still held, those of rows with entries left to publish included.
// Like PendingOutbox it reads the rows' published lists first, then the
// entries of only the rows that hold the next limit.
func (s *Store) PublishedOutbox(ctx context.Context, after int64, limit int) ([]hub.OutboxEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	after = max(after, 0)
	rows, err := s.pool.Query(ctx, `SELECT batch, published FROM outbox_batches
		WHERE batch >= $1 AND cardinality(published) > 0 ORDER BY batch LIMIT $2`, after>>entryBits, limit+1)
	if err != nil {
		return nil, fmt.Errorf("reading published outbox: %w", err)
	}
	var need []int64
	found := 0
	for rows.Next() && found < limit {
		var batch int64
		var published []int32
		if err := rows.Scan(&batch, &published); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading published outbox: %w", err)
		}
		n := 0
		for _, i := range published {
			if batch<<entryBits|int64(i) > after {
				n++
			}
		}
		if n > 0 {
			need = append(need, batch)
			found += n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading published outbox: %w", err)
	}
	if len(need) == 0 {
		return nil, nil
	}
	return s.outboxEntries(ctx, need, after, min(found, limit), true)
}

// DeletePublished implements hub.Store: it deletes the rows whose entries
// have all been published, the last of them at least olderThan ago by the
// database's clock.
func (s *Store) DeletePublished(ctx context.Context, olderThan time.Duration) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM outbox_batches
		WHERE cardinality(published) >= size AND published_at <= now() - $1::bigint * interval '1 microsecond'`,
		max(olderThan, 0).Microseconds())
	if err != nil {
		return writeFailed(ctx, "deleting published notifications", err)
	}
	return nil
}

// publishedSet marks the published indexes below size.
func publishedSet(published []int32, size int) []bool {
	done := make([]bool, size)
	for _, i := range published {
		if i >= 0 && int(i) < size {
			done[i] = true
		}
	}
	return done
}
