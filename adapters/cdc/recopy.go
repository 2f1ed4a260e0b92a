package cdc

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// An initial copy that fails part-way has sent some rows, which the hub
// applied. The slot it was taken with holds every change since; the next
// start keeps it, copies again from a temporary slot's snapshot, and
// first replays the kept slot up to that snapshot (see resend), sending
// what the new copy cannot say: the end of a row the failed copy may have
// sent that was deleted meanwhile, or moved to another citizen or key.
// Which rows a failed copy may have sent is recorded as it goes, in the
// publication's comment (see copyState).

// copyOrder places a row in the order of the initial copy: the first 8
// bytes of the SHA-256 of its record key. The copy reads rows in this
// order (copyOrderSQL), so that the rows a failed copy sent are those up
// to a bound, which the publication's comment can record without holding
// a key (the record key may be personal data, and any user of the
// database may read comments). The key's text, not its value, is hashed,
// so that the order is the same for a row read from the snapshot and for
// one read from the WAL, whatever the key's type.
func copyOrder(recordKey string) uint64 {
	sum := sha256.Sum256([]byte(recordKey))
	return binary.BigEndian.Uint64(sum[:8])
}

// copyOrderSQL is copyOrder in SQL, to sort the copy by: bytea compares
// as bytes do, that is as the big-endian numbers copyOrder makes of them.
// Whether the two agree decides only how tight the recorded bound is,
// never whether it holds every row sent: the bound is the greatest
// copyOrder of the rows sent, whatever order they came in. (They differ
// for a legacy 15-digit citizen ID in the key, which recordKey upgrades,
// and for one typed in full-width characters, which it folds to ASCII:
// folding in SQL would need literals the database's encoding may lack.)
func (p *plan) copyOrderSQL() string {
	cols := make([]string, len(p.key))
	for i, k := range p.key {
		cols[i] = pgx.Identifier{k}.Sanitize() + "::text"
		if k == p.citizenID {
			cols[i] = "upper(btrim(" + cols[i] + "))" // as canonicalCitizenID reads an ASCII one
		}
	}
	return "substr(sha256(convert_to(concat_ws(E'\\x1f', " + strings.Join(cols, ", ") + "), 'UTF8')), 1, 8)"
}

// sentBound bounds the rows that failed copies of the table may have
// sent: those whose copyOrder is at most max.
type sentBound struct {
	any bool // false: no row was sent
	max uint64
}

// allSent is the bound of a copy whose progress is not known: an earlier
// version's, which copied in no particular order.
var allSent = sentBound{any: true, max: math.MaxUint64}

func (b sentBound) covers(order uint64) bool { return b.any && order <= b.max }

// with widens the bound to a row of the given order.
func (b sentBound) with(order uint64) sentBound {
	if b.covers(order) {
		return b
	}
	return sentBound{any: true, max: order}
}

func (b sentBound) String() string {
	if !b.any {
		return "none"
	}
	return fmt.Sprintf("%016x", b.max)
}

func parseSentBound(s string) (sentBound, error) {
	if s == "none" {
		return sentBound{}, nil
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil || len(s) != 16 {
		return allSent, fmt.Errorf("bound %q is not 16 hex digits", s)
	}
	return sentBound{any: true, max: v}, nil
}

// markPrefix starts the publication comment that records, for each slot
// (several sources may share a table), how far its initial copy got:
//
//	pophub cdc: initial snapshot complete for slots: <slot>=done,<oid> <slot>=copying,<bound>
//
// "<slot>=done,<oid>": the copy of the table with that OID completed.
// "<slot>" alone: a copy completed, of a table earlier versions did not
// record. "<slot>=copying,<bound>": it has not; the rows failed copies may
// have sent are those up to bound (sentBound.String). Earlier versions
// keep entries they do not know as other slots' names, and take a
// "done,<oid>" entry for a copy to take again.
const markPrefix = "pophub cdc: initial snapshot complete for slots:"

// copyState is the publication comment's entry for the stream's slot.
type copyState struct {
	done bool
	// oid is the table a completed copy is of; 0: not recorded. A table
	// renamed and replaced by another under its name has another OID,
	// and the new table's rows are in no copy (see ensureSlot).
	oid uint32
	// sent: the rows failed copies may have sent. A slot without an
	// entry is an earlier version's, whose copy failed in no particular
	// order: allSent.
	sent sentBound
}

func (c copyState) entry(slot string) string {
	switch {
	case c.done && c.oid != 0:
		return slot + "=done," + strconv.FormatUint(uint64(c.oid), 10)
	case c.done:
		return slot
	}
	return slot + "=copying," + c.sent.String()
}

// copyStateOf finds slot's entry among a comment's; a malformed one is
// taken for a copy of unknown progress.
func copyStateOf(entries []string, slot string) copyState {
	for _, e := range entries {
		name, rest, hasState := strings.Cut(e, "=")
		if name != slot {
			continue
		}
		if !hasState {
			return copyState{done: true}
		}
		state, bound, _ := strings.Cut(rest, ",")
		if state == "done" {
			oid, err := strconv.ParseUint(bound, 10, 32)
			if err != nil || oid == 0 {
				return copyState{sent: allSent}
			}
			return copyState{done: true, oid: uint32(oid)}
		}
		if state != "copying" {
			return copyState{sent: allSent}
		}
		sent, err := parseSentBound(bound)
		if err != nil {
			return copyState{sent: allSent}
		}
		return copyState{sent: sent}
	}
	return copyState{sent: allSent}
}

// queryRower is a connection or a transaction.
type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// markEntries reads the entries of the publication's comment.
func (s *Stream) markEntries(ctx context.Context, db queryRower) ([]string, error) {
	var comment *string
	err := db.QueryRow(ctx, `SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1`, s.cfg.Publication).Scan(&comment)
	if err != nil {
		return nil, fmt.Errorf("reading the comment of publication %s: %w", s.cfg.Publication, err)
	}
	if comment == nil || !strings.HasPrefix(*comment, markPrefix) {
		return nil, nil
	}
	return strings.Fields(strings.TrimPrefix(*comment, markPrefix)), nil
}

// copyState reads the slot's entry in the publication's comment.
func (s *Stream) copyState(ctx context.Context, db *pgx.Conn) (copyState, error) {
	entries, err := s.markEntries(ctx, db)
	return copyStateOf(entries, s.cfg.Slot), err
}

// setCopyState writes the slot's entry in the publication's comment. The
// comment is read and written under a lock, so that the streams of
// several sources sharing the table do not undo each other's entries.
func (s *Stream) setCopyState(ctx context.Context, db *pgx.Conn, st copyState) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "pophub cdc: comment of "+s.cfg.Publication); err != nil {
			return err
		}
		entries, err := s.markEntries(ctx, tx)
		if err != nil {
			return err
		}
		kept := []string{st.entry(s.cfg.Slot)}
		for _, e := range entries {
			if name, _, _ := strings.Cut(e, "="); name != s.cfg.Slot {
				kept = append(kept, e)
			}
		}
		// Slot names are [a-z0-9_], bounds [0-9a-f] or "none": nothing
		// to escape.
		_, err = tx.Exec(ctx, fmt.Sprintf("COMMENT ON PUBLICATION %s IS '%s %s'", s.cfg.Publication, markPrefix, strings.Join(kept, " ")))
		return err
	})
	if insufficientPrivilege(err) {
		return s.copyStateDenied(ctx, db, err)
	}
	if err != nil {
		return fmt.Errorf("recording the initial copy of slot %s: %w", s.cfg.Slot, err)
	}
	return nil
}

// catchUp is a session replaying the slot up to a new copy's snapshot, to
// send the ends a failed copy left owing (see resend).
type catchUp struct {
	// until is the new copy's position: it holds every transaction that
	// committed before it.
	until pglogrepl.LSN
	sent  sentBound
	// snap is the new copy's snapshot: what it will register.
	snap pgx.Tx
	// done: every transaction before until was received.
	done bool
	// resent counts the ends sent.
	resent int
}

// owes reports whether a failed copy may have sent the row an end is for.
// The key is read as the copy read it (see tableInfo.cell).
func (c *catchUp) owes(p *plan, r row) bool {
	key, err := p.recordKey(r)
	return err == nil && c.sent.covers(copyOrder(key))
}

// resend replays the slot, from its confirmed position up to until (the
// position of the new copy's snapshot), and sends what the new copy
// cannot say about the rows failed copies may have sent: a row deleted
// meanwhile is not in it, and a row moved to another citizen or key is in
// it only where it is now. Their ends are the events the stream would have
// sent for those changes (same ids), except those whose row the new copy
// registers again as it was (deleted and inserted again, or moved back),
// as the copy's event may be older than the end. The other changes before
// until are in the new copy. Once Kafka took the ends, it confirms until,
// so that the changes before it are not sent again should the new copy
// fail too, and the stream goes on from there once it succeeded.
func (s *Stream) resend(ctx context.Context, t *tableInfo, snap pgx.Tx, from, until pglogrepl.LSN, sent sentBound) error {
	repl, err := s.connectReplication(ctx)
	if err != nil {
		return err
	}
	defer repl.Close(context.WithoutCancel(ctx))
	if err := s.startReplication(ctx, repl, from); err != nil {
		return err
	}
	cu := &catchUp{until: until, sent: sent, snap: snap}
	st := &streamState{conn: repl, tbl: t, acked: from, skipBefore: from, nextStatus: time.Now().Add(s.cfg.StatusInterval), catchUp: cu}
	if err := s.stream(ctx, st); err != nil {
		return fmt.Errorf("sending the ends the interrupted copy owes: %w", err)
	}
	s.log.InfoContext(ctx, "cdc: sent the ends of rows the interrupted copy had sent", "ends", cu.resent,
		"from_lsn", from.String(), "to_lsn", until.String())
	return nil
}

// dropRecopied removes from batch the ends of rows the new copy registers
// again as they were: the same record key for the same citizen, citizen
// IDs compared as read (see canonicalCitizenID). When the citizen ID
// column is a key column, the row is looked up under each form of its ID
// (see citizenIDForms), as the table may hold it in another since.
func (s *Stream) dropRecopied(ctx context.Context, st *streamState, batch []queued) ([]queued, error) {
	if s.plan.ops[opSnapshot] == nil || len(batch) == 0 {
		return batch, nil // the copy registers nothing
	}
	t := st.tbl
	citizenKey := slices.Index(s.plan.key, s.plan.citizenID)
	var ords []int64 // the batch index + 1 of each looked-up key
	vals := make([][]string, len(s.plan.key))
	for j, q := range batch {
		forms := []string{""}
		if citizenKey >= 0 {
			forms = citizenIDForms(q.row[s.plan.citizenID].text)
		}
		for _, f := range forms {
			ords = append(ords, int64(j+1))
			for i, k := range s.plan.key {
				v := q.row[k].text
				if i == citizenKey {
					v = f
				}
				vals[i] = append(vals[i], v)
			}
		}
	}
	args := []any{ords}
	cols := []string{"$1::bigint[]"}
	names := []string{"ord"}
	on := make([]string, len(s.plan.key))
	for i, k := range s.plan.key {
		args = append(args, vals[i])
		cols = append(cols, fmt.Sprintf("$%d::text[]", i+2))
		names = append(names, fmt.Sprintf("k%d", i))
		// Compared as the column's type: by its index, and as the table
		// compares keys (a character(n) value's padding aside). A form
		// too long for the column is cut by the cast, and may find
		// another citizen's row, which the comparison below leaves out.
		on[i] = fmt.Sprintf("t.%s = u.k%d::%s", pgx.Identifier{k}.Sanitize(), i, t.keyTypes[i])
	}
	sql := fmt.Sprintf("SELECT u.ord, t.%s::text FROM unnest(%s) AS u(%s) JOIN %s t ON %s",
		pgx.Identifier{s.plan.citizenID}.Sanitize(), strings.Join(cols, ", "), strings.Join(names, ", "), t.qualified, strings.Join(on, " AND "))
	rows, err := st.catchUp.snap.Query(ctx, sql, args...)
	if insufficientPrivilege(err) {
		return nil, readDenied(t, "looking up the rows the new copy holds", err)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up the rows the new copy holds: %w", err)
	}
	recopied := make([]bool, len(batch))
	for rows.Next() {
		var ord int64
		var citizen *string
		if err := rows.Scan(&ord, &citizen); err != nil {
			rows.Close()
			return nil, fmt.Errorf("looking up the rows the new copy holds: %w", err)
		}
		if citizen == nil || ord < 1 || ord > int64(len(batch)) {
			continue
		}
		if id, _, err := parseCitizenID(*citizen); err == nil && id == batch[ord-1].ev.Subject {
			recopied[ord-1] = true
		}
	}
	if err := rows.Err(); insufficientPrivilege(err) {
		return nil, readDenied(t, "looking up the rows the new copy holds", err)
	} else if err != nil {
		return nil, fmt.Errorf("looking up the rows the new copy holds: %w", err)
	}
	out := make([]queued, 0, len(batch))
	for j, q := range batch {
		if !recopied[j] {
			out = append(out, q)
		}
	}
	return out, nil
}

// citizenIDForms lists the texts a table may hold for the citizen ID that
// text reads as (see canonicalCitizenID): text itself, its 18-digit form,
// that form with a lower-case x, and its legacy 15-digit form when it has
// one (born in the 1900s). A text that is no citizen ID has itself alone.
func citizenIDForms(text string) []string {
	forms := []string{text}
	add := func(f string) {
		if !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	id, _, err := parseCitizenID(text)
	if err != nil {
		return forms
	}
	s := string(id)
	add(s)
	if strings.HasSuffix(s, "X") {
		add(s[:17] + "x")
	}
	if s[6:8] == "19" {
		add(s[:6] + s[8:17]) // Upgrade15 gives id back: id is valid
	}
	return forms
}
