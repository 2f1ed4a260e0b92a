package cdc

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// tableInfo is what the stream learnt about its table.
type tableInfo struct {
	oid       uint32
	schema    string
	name      string
	qualified string // quoted, for SQL
	columns   []string
	// partitioned: the table is a partitioned table, whose rows live in
	// its partitions; the publication must publish their changes under
	// the table's own name (publish_via_partition_root).
	partitioned bool
	// inspectedAt is the server's WAL position just before the table was
	// inspected: a transaction committed before it was made while the
	// table was as inspect found it or earlier (see checkRelation).
	inspectedAt pglogrepl.LSN
}

// inspect checks the server and the table: wal_level, the columns the
// mapping reads, and that deletes carry the columns their events need.
func (s *Stream) inspect(ctx context.Context, db *pgx.Conn) (*tableInfo, error) {
	var walLevel string
	if err := db.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		return nil, fmt.Errorf("reading wal_level: %w", err)
	}
	if walLevel != "logical" {
		return nil, fmt.Errorf("checking the server: wal_level is %q, logical replication needs \"logical\" "+
			"(ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL)", walLevel)
	}
	t := &tableInfo{}
	// Read before the catalog, so that whatever the catalog shows was
	// committed after every transaction before this position.
	var walPos string
	err := db.QueryRow(ctx, `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text`).Scan(&walPos)
	if err != nil {
		return nil, fmt.Errorf("reading the server's WAL position: %w", err)
	}
	if t.inspectedAt, err = pglogrepl.ParseLSN(walPos); err != nil {
		return nil, fmt.Errorf("parsing the server's WAL position: %w", err)
	}
	var replIdent string
	err = db.QueryRow(ctx, `SELECT c.oid, n.nspname, c.relname, c.relreplident::text, format('%I.%I', n.nspname, c.relname), c.relkind = 'p'
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p')`, s.cfg.Table).
		Scan(&t.oid, &t.schema, &t.name, &replIdent, &t.qualified, &t.partitioned)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("checking the table: table %q does not exist", s.cfg.Table)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up table %q: %w", s.cfg.Table, err)
	}
	if t.partitioned {
		var version int
		if err := db.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
			return nil, fmt.Errorf("reading the server version: %w", err)
		}
		if version < 130000 {
			return nil, fmt.Errorf("checking the table: %s is partitioned; streaming a partitioned table needs PostgreSQL 13 or later "+
				"(publish_via_partition_root), or stream each partition as a table of its own", t.qualified)
		}
	}
	rows, err := db.Query(ctx, `SELECT attname FROM pg_attribute
		WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, t.oid)
	if err != nil {
		return nil, fmt.Errorf("listing columns of %s: %w", t.qualified, err)
	}
	if t.columns, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, fmt.Errorf("listing columns of %s: %w", t.qualified, err)
	}
	var missing []string
	for _, c := range s.plan.columns() {
		if !slices.Contains(t.columns, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("checking the mapping: table %s has no column %s", t.qualified, strings.Join(missing, ", "))
	}
	if s.plan.ops[opDelete] != nil {
		if err := s.checkDeletedRows(ctx, db, t, replIdent); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// checkDeletedRows checks that a deleted row carries the columns its event
// needs: it arrives with only its replica identity columns. The rows of a
// partitioned table live in its partitions, and the WAL holds what each
// partition's own replica identity says (the table's own setting does not
// pass to them), so each partition is checked. While the stream runs,
// they are checked again when a delete cannot become its event (see
// checkPartitions), which catches a partition attached later without
// REPLICA IDENTITY FULL.
func (s *Stream) checkDeletedRows(ctx context.Context, db *pgx.Conn, t *tableInfo, replIdent string) error {
	type relation struct {
		oid       uint32
		qualified string
		replIdent string
	}
	rels := []relation{{t.oid, t.qualified, replIdent}}
	if t.partitioned {
		rows, err := db.Query(ctx, `SELECT c.oid, format('%I.%I', n.nspname, c.relname), c.relreplident::text
			FROM pg_partition_tree($1) p JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE p.isleaf ORDER BY 2`, t.oid)
		if err != nil {
			return fmt.Errorf("listing the partitions of %s: %w", t.qualified, err)
		}
		rels, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (relation, error) {
			var rel relation
			err := r.Scan(&rel.oid, &rel.qualified, &rel.replIdent)
			return rel, err
		})
		if err != nil {
			return fmt.Errorf("listing the partitions of %s: %w", t.qualified, err)
		}
	}
	for _, rel := range rels {
		if rel.replIdent == "f" {
			continue
		}
		rows, err := db.Query(ctx, `SELECT a.attname FROM pg_index i
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
			WHERE i.indrelid = $1 AND CASE $2 WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END`, rel.oid, rel.replIdent)
		if err != nil {
			return fmt.Errorf("reading the replica identity of %s: %w", rel.qualified, err)
		}
		ident, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("reading the replica identity of %s: %w", rel.qualified, err)
		}
		var lacking []string
		for _, c := range s.plan.deleteColumns() {
			if !slices.Contains(ident, c) {
				lacking = append(lacking, c)
			}
		}
		if len(lacking) > 0 {
			return &identityGapError{relation: rel.qualified, lacking: lacking}
		}
	}
	return nil
}

// identityGapError is a table or partition whose deleted rows keep only
// their replica identity, which lacks columns that deletes read.
type identityGapError struct {
	relation string // quoted, for SQL
	lacking  []string
}

func (e *identityGapError) Error() string {
	return fmt.Sprintf("checking the table: deletes are mapped, but a deleted row of %s carries only its replica identity, without %s: "+
		"run ALTER TABLE %s REPLICA IDENTITY FULL", e.relation, strings.Join(e.lacking, ", "), e.relation)
}

// ensurePublication creates the table's publication unless it exists.
// Truncates are left out: they carry no rows to turn into events.
//
// A partitioned table's changes happen in its partitions, and without
// publish_via_partition_root they arrive under the partitions' names,
// which the stream would take for other tables' and skip, confirming its
// position past them: lost. So a partitioned table's publication is
// created with it, and an existing one without it is refused.
func (s *Stream) ensurePublication(ctx context.Context, db *pgx.Conn, t *tableInfo) error {
	var exists, hasTable bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1),
		EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)`,
		s.cfg.Publication, t.schema, t.name).Scan(&exists, &hasTable)
	if err != nil {
		return fmt.Errorf("looking up publication %s: %w", s.cfg.Publication, err)
	}
	if exists && t.partitioned {
		// pubviaroot exists from PostgreSQL 13, which inspect required.
		var viaRoot bool
		err := db.QueryRow(ctx, `SELECT pubviaroot FROM pg_publication WHERE pubname = $1`, s.cfg.Publication).Scan(&viaRoot)
		if err != nil {
			return fmt.Errorf("looking up publication %s: %w", s.cfg.Publication, err)
		}
		if !viaRoot {
			return fmt.Errorf("checking publication %s: %s is partitioned, and the publication would send its changes "+
				"under the partitions' names, which the stream does not read: run ALTER PUBLICATION %s SET (publish_via_partition_root = true)",
				s.cfg.Publication, t.qualified, s.cfg.Publication)
		}
	}
	switch {
	case exists && hasTable:
		return nil
	case exists:
		return fmt.Errorf("checking publication %s: it exists but does not publish %s", s.cfg.Publication, t.qualified)
	}
	with := "publish = 'insert, update, delete'"
	if t.partitioned {
		with += ", publish_via_partition_root = true"
	}
	_, err = db.Exec(ctx, fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (%s)", s.cfg.Publication, t.qualified, with))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object: created meanwhile
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating publication %s: %w", s.cfg.Publication, err)
	}
	s.log.InfoContext(ctx, "cdc: created publication", "publication", s.cfg.Publication)
	return nil
}

// ensureSlot returns the position to stream from. With a slot whose
// initial snapshot completed, that is the slot's confirmed position.
// Otherwise it creates the slot, copies the table's rows as they were at
// the slot's start, and returns that start: every change after it comes
// from the slot, every one before it is in the copy.
//
// Whether the snapshot completed is written in the publication's comment,
// an object the stream owns: the slot itself cannot carry it. A slot
// without that mark is from a start that failed during its snapshot; its
// exported snapshot is gone, so the slot is dropped and the snapshot
// taken again (its unchanged rows get the same event ids: see
// snapshotVersion).
func (s *Stream) ensureSlot(ctx context.Context, db *pgx.Conn, repl *pgconn.PgConn, t *tableInfo) (pglogrepl.LSN, error) {
	confirmed, exists, err := s.idleSlot(ctx, db)
	if err != nil {
		return 0, err
	}
	if exists {
		done, err := s.snapshotDone(ctx, db)
		if err != nil {
			return 0, err
		}
		if done {
			return confirmed, nil
		}
		s.log.WarnContext(ctx, "cdc: the slot's initial snapshot did not complete; dropping the slot to take it again")
		if _, err := db.Exec(ctx, "SELECT pg_drop_replication_slot($1)", s.cfg.Slot); err != nil {
			return 0, fmt.Errorf("dropping slot %s: %w", s.cfg.Slot, err)
		}
	}
	if err := s.markSnapshot(ctx, db, false); err != nil {
		return 0, err
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, s.cfg.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return 0, fmt.Errorf("creating replication slot %s: %w", s.cfg.Slot, err)
	}
	start, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, fmt.Errorf("parsing the slot's consistent point: %w", err)
	}
	s.log.InfoContext(ctx, "cdc: created replication slot; copying existing rows", "lsn", start.String())
	// The exported snapshot lives until the replication connection's next
	// command, so the copy runs before replication starts.
	if err := s.snapshot(ctx, db, t, res.SnapshotName, start); err != nil {
		return 0, err
	}
	if err := s.markSnapshot(ctx, db, true); err != nil {
		return 0, err
	}
	return start, nil
}

// idleSlot reads the slot's confirmed position once no other connection
// uses it: a previous session's walsender may still be going away, and
// only once it has, the position it was told last is final.
func (s *Stream) idleSlot(ctx context.Context, db *pgx.Conn) (pglogrepl.LSN, bool, error) {
	deadline := time.Now().Add(s.cfg.SlotWait)
	for {
		var (
			active          bool
			pid             *int32
			plugin, dbName  *string
			current, lsnTxt *string
		)
		err := db.QueryRow(ctx, `SELECT active, active_pid, plugin::text, database::text, current_database()::text, confirmed_flush_lsn::text
			FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&active, &pid, &plugin, &dbName, &current, &lsnTxt)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("looking up slot %s: %w", s.cfg.Slot, err)
		}
		switch {
		case plugin == nil || *plugin != "pgoutput":
			return 0, false, fmt.Errorf("checking slot %s: it is not a logical slot of the pgoutput plugin", s.cfg.Slot)
		case dbName == nil || current == nil || *dbName != *current:
			return 0, false, fmt.Errorf("checking slot %s: it belongs to another database", s.cfg.Slot)
		case !active:
			if lsnTxt == nil {
				return 0, false, fmt.Errorf("checking slot %s: it has no confirmed position", s.cfg.Slot)
			}
			lsn, err := pglogrepl.ParseLSN(*lsnTxt)
			if err != nil {
				return 0, false, fmt.Errorf("parsing the slot's confirmed position: %w", err)
			}
			return lsn, true, nil
		case time.Now().After(deadline):
			return 0, false, fmt.Errorf("checking slot %s: another connection (pid %d) still uses it", s.cfg.Slot, deref(pid))
		}
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// markPrefix starts the publication comment listing the slots whose
// initial snapshot completed (several sources may share a table).
const markPrefix = "pophub cdc: initial snapshot complete for slots:"

func (s *Stream) snapshotDone(ctx context.Context, db *pgx.Conn) (bool, error) {
	slots, err := s.markedSlots(ctx, db)
	return slices.Contains(slots, s.cfg.Slot), err
}

func (s *Stream) markedSlots(ctx context.Context, db *pgx.Conn) ([]string, error) {
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

// markSnapshot adds the slot to the publication's comment, or removes it.
func (s *Stream) markSnapshot(ctx context.Context, db *pgx.Conn, done bool) error {
	slots, err := s.markedSlots(ctx, db)
	if err != nil {
		return err
	}
	slots = slices.DeleteFunc(slots, func(x string) bool { return x == s.cfg.Slot })
	if done {
		slots = append(slots, s.cfg.Slot)
	}
	comment := "NULL"
	if len(slots) > 0 {
		// Slot names are [a-z0-9_]: nothing to escape.
		comment = "'" + markPrefix + " " + strings.Join(slots, " ") + "'"
	}
	if _, err := db.Exec(ctx, fmt.Sprintf("COMMENT ON PUBLICATION %s IS %s", s.cfg.Publication, comment)); err != nil {
		return fmt.Errorf("marking the snapshot of slot %s: %w", s.cfg.Slot, err)
	}
	return nil
}

var snapshotName = regexp.MustCompile(`^[0-9A-Fa-f-]+$`)

// snapshot publishes the rows of the exported snapshot, as of the slot's
// start. Their event version is snapshotVersion, not the slot's start
// position: a copy taken again, after a first start that failed during
// its snapshot, comes from a new slot, and must not send every row again
// under a new id.
func (s *Stream) snapshot(ctx context.Context, db *pgx.Conn, t *tableInfo, name string, start pglogrepl.LSN) error {
	if s.plan.ops[opSnapshot] == nil {
		return nil // neither inserts nor updates are mapped: rows have no event
	}
	if !snapshotName.MatchString(name) {
		return fmt.Errorf("taking snapshot: unexpected snapshot name %q", name)
	}
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("beginning snapshot transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+name+"'"); err != nil {
		return fmt.Errorf("importing the slot's snapshot: %w", err)
	}
	cols := s.plan.columns()
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = pgx.Identifier{c}.Sanitize() + "::text"
	}
	rows, err := tx.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+t.qualified)
	if err != nil {
		return fmt.Errorf("reading existing rows: %w", err)
	}
	defer rows.Close()
	at := time.Now()
	batch := make([]queued, 0, s.cfg.BatchSize)
	vals := make([]*string, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("reading existing rows: %w", err)
		}
		n++
		r := make(row, len(cols))
		for i, c := range cols {
			if vals[i] == nil {
				r[c] = cell{null: true}
			} else {
				r[c] = cell{text: *vals[i]}
			}
		}
		s.stats.snapshot.Add(1)
		ev, err := s.plan.event(change{kind: opSnapshot, row: r, version: snapshotVersion(cols, vals), commit: at})
		if err != nil {
			s.reject(ctx, opSnapshot, start, ev.ID, err)
			continue
		}
		batch = append(batch, queued{ev: ev, kind: opSnapshot, lsn: start})
		if len(batch) == s.cfg.BatchSize {
			if err := s.publish(ctx, batch); err != nil {
				return fmt.Errorf("publishing existing rows: %w", err)
			}
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading existing rows: %w", err)
	}
	if len(batch) > 0 {
		if err := s.publish(ctx, batch); err != nil {
			return fmt.Errorf("publishing existing rows: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("ending snapshot transaction: %w", err)
	}
	s.log.InfoContext(ctx, "cdc: copied existing rows", "rows", n)
	return nil
}

// snapshotVersion is the event version of a snapshot row: a hash of the
// values the mapping reads, so that a row copied again unchanged has the
// same event id (the hub drops the repeat), while a row that changed in
// between has a new one. It is negative, so that it never equals the WAL
// position a change of the row takes as its version.
func snapshotVersion(cols []string, vals []*string) int64 {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	field := func(b []byte) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
		h.Write(b)
	}
	for i, c := range cols {
		field([]byte(c))
		if vals[i] == nil {
			h.Write([]byte{0}) // NULL, unlike any text
			continue
		}
		h.Write([]byte{1})
		field([]byte(*vals[i]))
	}
	return -int64(binary.BigEndian.Uint64(h.Sum(nil))>>1) - 1
}
