package cdc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// maxName is the longest name PostgreSQL keeps for a slot or publication
// (NAMEDATALEN - 1 bytes).
const maxName = 63

// defaultName is the default slot or publication name for table: prefix
// followed by the table's name in lower case, with _ for other ASCII
// characters than letters and digits ("Housing.Rentals" gives
// housing_rentals).
//
// A name that cannot be spelled so without losing characters, because
// it has non-ASCII ones (租赁备案) or does not fit in 63 bytes, would
// share its slot and publication with every table that differs only in
// what was lost. So such a name drops what it cannot hold and ends with
// _ and 8 hex digits of the SHA-256 of the table as configured:
// pophub_housing_9a5b7eb9 for 租赁备案. Every other name is what it
// always was, so that existing deployments keep their slot.
func defaultName(prefix, table string) string {
	part, lossless := identPart(table)
	name := prefix + part
	if lossless && len(name) <= maxName {
		return name
	}
	sum := sha256.Sum256([]byte(table))
	suffix := "_" + hex.EncodeToString(sum[:4])
	return strings.TrimRight(truncate(name, maxName-len(suffix)), "_") + suffix
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
	s.log.InfoContext(ctx, "cdc: keeping the slot and publication an earlier version named",
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
