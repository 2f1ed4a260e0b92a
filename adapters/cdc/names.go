package cdc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/schemas"
)

// maxName is the longest name PostgreSQL keeps for a slot or publication
// (NAMEDATALEN - 1 bytes).
const maxName = 63

// defaultName is the default slot or publication name for table: prefix
// followed by the table's name in lower case, with _ for other ASCII
// characters than letters and digits ("Housing.Rentals" gives
// housing_rentals). The name is taken as canonicalTable spells it, so
// that the spellings of one table (rentals, public.rentals, "rentals")
// share a slot: a second one would copy the table again and leave the
// first holding WAL.
//
// A name that cannot be spelled so without losing characters, because
// it has non-ASCII ones (租赁备案) or does not fit in 63 bytes, would
// share its slot and publication with every table that differs only in
// what was lost. So such a name drops what it cannot hold and ends with
// _ and 8 hex digits of the SHA-256 of the table as configured:
// pophub_housing_9a5b7eb9 for 租赁备案. Every other name is what it
// always was, so that existing deployments keep their slot.
func defaultName(prefix, table string) string {
	table = canonicalTable(table)
	part, lossless := identPart(table)
	name := prefix + part
	if lossless && len(name) <= maxName {
		return name
	}
	sum := sha256.Sum256([]byte(table))
	suffix := "_" + hex.EncodeToString(sum[:4])
	return strings.TrimRight(truncate(name, maxName-len(suffix)), "_") + suffix
}

// canonicalTable spells a table name one way for naming: unquoted
// parts in lower case (as PostgreSQL folds them), quotes dropped where
// they change nothing ("rentals" is rentals), and the schema left out
// when it is public, where an unqualified name is created by default.
// A name it cannot parse is returned as it is. Which table an
// unqualified name means depends on the search_path, unknown here: a
// slot of the table under another spelling is found in the database
// instead (see continueSlot).
func canonicalTable(table string) string {
	var parts []string
	for rest := table; ; {
		var part string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for {
				i := strings.IndexByte(rest[end:], '"')
				if i < 0 {
					return table // unterminated quote
				}
				end += i + 1
				if !strings.HasPrefix(rest[end:], `"`) {
					break
				}
				end++ // "" is a quote inside the name
			}
			part = rest[:end]
			// plainIdent: a name PostgreSQL reads the same quoted or not.
			if inner := strings.ReplaceAll(part[1:end-1], `""`, `"`); plainIdent.MatchString(inner) {
				part = inner
			}
			rest = rest[end:]
		} else {
			i := strings.IndexByte(rest, '.')
			if i < 0 {
				i = len(rest)
			}
			part, rest = strings.Map(func(r rune) rune {
				if r >= 'A' && r <= 'Z' {
					return r + ('a' - 'A')
				}
				return r
			}, rest[:i]), rest[i:]
			if strings.Contains(part, `"`) || part == "" {
				return table
			}
		}
		parts = append(parts, part)
		if rest == "" {
			break
		}
		if rest[0] != '.' || len(rest) == 1 {
			return table
		}
		rest = rest[1:]
	}
	if len(parts) == 2 && parts[0] == "public" {
		parts = parts[1:]
	}
	return strings.Join(parts, ".")
}

// identPart turns a table name into a slot and publication name part:
// lower case, with ASCII characters other than letters, digits and _
// replaced by _, and non-ASCII ones dropped; lossless reports that none
// was dropped.
func identPart(table string) (part string, lossless bool) {
	lossless = true
	part = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		case r < 0x80:
			return '_'
		}
		lossless = false
		return -1
	}, table)
	return part, lossless
}

// earlierDefaultName is the default name of versions before hashed
// names: every non-ASCII character became _, and the name was cut at 63
// bytes.
func earlierDefaultName(prefix, table string) string {
	return truncate(prefix+strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '_'
	}, table), maxName)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// keepEarlierNames switches to the slot and publication that versions
// before hashed names gave the table by default, when the table was
// streamed under them: its slot holds its position and its publication's
// comment its initial copy, and new ones would copy the table again while
// the old slot kept WAL until the disk filled.
//
// Those names were shared by the tables that differ only in the
// characters hashed names keep apart, so they are the table's only when
// the earlier publication publishes it (the first such table to start
// created it for itself; the others could not start) and the new one
// does not exist yet. The earlier slot goes with the earlier publication;
// with a configured publication it is the table's when the publication's
// comment records a copy by it.
func (s *Stream) keepEarlierNames(ctx context.Context, db *pgx.Conn, t *tableInfo) error {
	if s.cfg.earlierSlot == "" && (s.cfg.earlierPublication == "" || s.cfg.earlierPublication == s.cfg.Publication) {
		return nil
	}
	slot, pub, err := s.earlierNames(ctx, db, t)
	if err != nil {
		return err
	}
	// Decided once: later sessions find the names in use.
	s.cfg.earlierSlot, s.cfg.earlierPublication = "", ""
	if pub == s.cfg.Publication && slot == s.cfg.Slot {
		return nil
	}
	// s.log names the slot it was made with, which is not the one kept.
	s.cfg.Logger.With("source", string(s.cfg.Source), "table", s.cfg.Table).InfoContext(ctx, "cdc: keeping the slot and publication an earlier version named",
		"slot", slot, "publication", pub, "new_slot", s.cfg.Slot, "new_publication", s.cfg.Publication)
	s.names.Lock()
	s.cfg.Slot, s.cfg.Publication = slot, pub
	s.names.Unlock()
	s.log = s.cfg.Logger.With("source", string(s.cfg.Source), "table", s.cfg.Table, "slot", slot)
	return nil
}

// earlierNames returns the slot and publication to use: the earlier
// default ones where they are the table's (see keepEarlierNames), the
// configured or new default ones otherwise.
func (s *Stream) earlierNames(ctx context.Context, db *pgx.Conn, t *tableInfo) (slot, pub string, err error) {
	slot, pub = s.cfg.Slot, s.cfg.Publication
	earlierSlot, earlierPub := s.cfg.earlierSlot, s.cfg.earlierPublication
	if earlierPub != "" && earlierPub != pub {
		exists, _, err := publicationOf(ctx, db, pub, t)
		if err != nil || exists {
			return slot, pub, err
		}
		_, publishes, err := publicationOf(ctx, db, earlierPub, t)
		if err != nil || !publishes {
			return slot, pub, err
		}
		pub = earlierPub
	}
	if earlierSlot != "" {
		keep, err := s.earlierSlotIsTables(ctx, db, t, pub, earlierPub, earlierSlot)
		if err != nil {
			return slot, pub, err
		}
		if keep {
			slot = earlierSlot
		}
	}
	return slot, pub, nil
}

// earlierSlotIsTables reports whether the earlier default slot is the
// table's, to be used with publication pub: the new slot does not exist,
// the earlier one does, pub publishes the table, and pub is the earlier
// default publication or its comment records a copy by the earlier slot.
func (s *Stream) earlierSlotIsTables(ctx context.Context, db *pgx.Conn, t *tableInfo, pub, earlierPub, earlierSlot string) (bool, error) {
	var hasNew, hasEarlier bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1),
		EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $2)`, s.cfg.Slot, earlierSlot).Scan(&hasNew, &hasEarlier)
	if err != nil {
		return false, fmt.Errorf("looking up slots %s and %s: %w", s.cfg.Slot, earlierSlot, err)
	}
	if hasNew || !hasEarlier {
		return false, nil
	}
	_, publishes, err := publicationOf(ctx, db, pub, t)
	if err != nil || !publishes {
		return false, err
	}
	if pub == earlierPub {
		return true, nil
	}
	var comment *string
	err = db.QueryRow(ctx, `SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1`, pub).Scan(&comment)
	if err != nil {
		return false, fmt.Errorf("reading the comment of publication %s: %w", pub, err)
	}
	if comment == nil || !strings.HasPrefix(*comment, markPrefix) {
		return false, nil
	}
	return slices.ContainsFunc(strings.Fields(strings.TrimPrefix(*comment, markPrefix)), func(e string) bool {
		name, _, _ := strings.Cut(e, "=")
		return name == earlierSlot
	}), nil
}

// publicationOf reports whether publication pub exists and whether it
// publishes the table.
func publicationOf(ctx context.Context, db *pgx.Conn, pub string, t *tableInfo) (exists, publishes bool, err error) {
	err = db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1),
		EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)`,
		pub, t.schema, t.name).Scan(&exists, &publishes)
	if err != nil {
		return false, false, fmt.Errorf("looking up publication %s: %w", pub, err)
	}
	return exists, publishes, nil
}

// currentWAL is the server's current WAL position, on a primary or a
// standby.
const currentWAL = `CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END`

// retainedWAL reads how many bytes of WAL the stream's slot keeps on the
// server; -1 when it cannot tell (the slot was invalidated, or the query
// failed, which is logged: it only feeds the progress log).
func (s *Stream) retainedWAL(ctx context.Context, db *pgx.Conn) int64 {
	var n *int64
	err := db.QueryRow(ctx, `SELECT pg_wal_lsn_diff(`+currentWAL+`, restart_lsn)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, s.Slot()).Scan(&n)
	if err != nil {
		s.log.DebugContext(ctx, "cdc: reading the WAL the slot retains", "error", err)
		return -1
	}
	if n == nil {
		return -1
	}
	return *n
}

// tableSlot is a replication slot pophub created that streams a table:
// a logical slot of the database named pophub_<source>_…, tied to a
// publication of the table by the publication's comment (which records
// each slot's copy, see markPrefix) or, for slots older than that, by
// the default names (pophub_<source>_<x> and pophub_<x>).
type tableSlot struct {
	slot, publication string
	source            schemas.Source // "" when the name is no source's
	active            bool
	// retained is the WAL the slot keeps, in bytes; nil when the slot
	// was invalidated and keeps none.
	retained *int64
}

// tableSlots lists the slots pophub created that stream the table with
// OID t.oid, in the order of their names.
func tableSlots(ctx context.Context, db *pgx.Conn, t *tableInfo) ([]tableSlot, error) {
	type publication struct {
		name    string
		comment *string
	}
	rows, err := db.Query(ctx, `SELECT p.pubname::text, obj_description(p.oid, 'pg_publication')
		FROM pg_publication p JOIN pg_publication_rel r ON r.prpubid = p.oid
		WHERE r.prrelid = $1 ORDER BY 1`, t.oid)
	if err != nil {
		return nil, fmt.Errorf("listing the publications of %s: %w", t.qualified, err)
	}
	pubs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (publication, error) {
		var p publication
		return p, r.Scan(&p.name, &p.comment)
	})
	if err != nil {
		return nil, fmt.Errorf("listing the publications of %s: %w", t.qualified, err)
	}
	if len(pubs) == 0 {
		return nil, nil
	}
	rows, err = db.Query(ctx, `SELECT slot_name::text, active, pg_wal_lsn_diff(`+currentWAL+`, restart_lsn)::bigint
		FROM pg_replication_slots
		WHERE slot_type = 'logical' AND plugin = 'pgoutput' AND database = current_database() AND slot_name LIKE 'pophub\_%'
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("listing replication slots: %w", err)
	}
	slots, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tableSlot, error) {
		var s tableSlot
		return s, r.Scan(&s.slot, &s.active, &s.retained)
	})
	if err != nil {
		return nil, fmt.Errorf("listing replication slots: %w", err)
	}
	var out []tableSlot
	for _, sl := range slots {
		sl.source = slotSource(sl.slot)
		if sl.source == "" {
			continue // a copy's temporary slot, or not pophub's
		}
		for _, p := range pubs {
			var entries []string
			if p.comment != nil && strings.HasPrefix(*p.comment, markPrefix) {
				entries = strings.Fields(strings.TrimPrefix(*p.comment, markPrefix))
			}
			named := slices.ContainsFunc(entries, func(e string) bool {
				name, _, _ := strings.Cut(e, "=")
				return name == sl.slot
			})
			if named || p.name == "pophub_"+strings.TrimPrefix(sl.slot, "pophub_"+string(sl.source)+"_") {
				sl.publication = p.name
				out = append(out, sl)
				break
			}
		}
	}
	return out, nil
}

// slotSource is the source a default slot name pophub_<source>_… is of.
func slotSource(slot string) schemas.Source {
	for _, src := range schemas.Sources {
		if strings.HasPrefix(slot, "pophub_"+string(src)+"_") {
			return src
		}
	}
	return ""
}

// continueSlot switches, once, to the slot (and, when defaulted, the
// publication) the table was streamed under with another spelling of
// Table, when the default slot does not exist: public.rentals before
// rentals, or a spelling an earlier version named apart (see
// canonicalTable). A new slot would copy the table again, and the old
// one would keep WAL until the disk filled. The slot must be the
// source's and tied to a publication of the table (the configured one,
// if one was), by OID: the spelling that named it may mean another table
// today. An inactive one is preferred; an active one is another stream
// of the table, and the start waits for it as for its own slot.
func (s *Stream) continueSlot(ctx context.Context, db *pgx.Conn, t *tableInfo) error {
	if !s.cfg.findSlot {
		return nil
	}
	var exists bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, s.cfg.Slot).Scan(&exists)
	if err != nil {
		return fmt.Errorf("looking up slot %s: %w", s.cfg.Slot, err)
	}
	if exists {
		s.cfg.findSlot = false
		return nil
	}
	slots, err := tableSlots(ctx, db, t)
	if err != nil {
		return err
	}
	// Decided once: later sessions find the names in use.
	s.cfg.findSlot = false
	var found *tableSlot
	for i, sl := range slots {
		if sl.source != s.cfg.Source || (!s.cfg.defaultPublication && sl.publication != s.cfg.Publication) {
			continue
		}
		if found == nil || (found.active && !sl.active) {
			found = &slots[i]
		}
	}
	if found == nil {
		return nil
	}
	s.cfg.Logger.With("source", string(s.cfg.Source), "table", s.cfg.Table).InfoContext(ctx, "cdc: continuing the slot the table was streamed under with another spelling of its name",
		"slot", found.slot, "publication", found.publication, "table_oid", t.oid, "new_slot", s.cfg.Slot, "new_publication", s.cfg.Publication)
	s.names.Lock()
	s.cfg.Slot = found.slot
	if s.cfg.defaultPublication {
		s.cfg.Publication = found.publication
	}
	s.names.Unlock()
	s.log = s.cfg.Logger.With("source", string(s.cfg.Source), "table", s.cfg.Table, "slot", found.slot)
	return nil
}

// warnInactiveSlots warns about every other inactive slot pophub
// created for the table, of any source: PostgreSQL keeps all WAL from
// its position on, and so fills the department's disk, until it is
// dropped. Each warning has the SQL that drops it, with its publication
// when no other slot of the table uses that. A failure to look is logged,
// not returned: the warning must not stop a stream.
func (s *Stream) warnInactiveSlots(ctx context.Context, db *pgx.Conn, t *tableInfo) {
	slots, err := tableSlots(ctx, db, t)
	if err != nil {
		s.log.WarnContext(ctx, "cdc: could not look for inactive slots of the table", "error", err)
		return
	}
	slot, pub := s.Slot(), s.Publication()
	for _, sl := range slots {
		if sl.active || sl.slot == slot {
			continue
		}
		drop := fmt.Sprintf("SELECT pg_drop_replication_slot('%s');", sl.slot)
		shared := sl.publication == pub || slices.ContainsFunc(slots, func(o tableSlot) bool {
			return o.slot != sl.slot && o.publication == sl.publication
		})
		if !shared {
			drop += " DROP PUBLICATION " + ident(sl.publication) + ";"
		}
		retained := int64(-1) // invalidated: it keeps no WAL, but cannot stream either
		if sl.retained != nil {
			retained = *sl.retained
		}
		s.log.WarnContext(ctx, "cdc: an inactive replication slot of this table keeps WAL on the database server until it is dropped; "+
			"if no stream uses it any more (another spelling of --table, or a source that stopped for good), drop it",
			"inactive_slot", sl.slot, "slot_source", string(sl.source), "publication", sl.publication, "retained_wal_bytes", retained, "drop_sql", drop)
	}
}
