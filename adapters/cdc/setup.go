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
	"github.com/jackc/pgx/v5/pgtype"
)

// tableInfo is what the stream learnt about its table.
type tableInfo struct {
	oid       uint32
	schema    string
	name      string
	qualified string // quoted, for SQL
	columns   []string
	// keyTypes are the SQL types of the mapping's key columns, in order.
	keyTypes []string
	// types are the mapped columns' types, by column, as inspect found them.
	types map[string]columnType
	// missing are the mapped columns the table no longer has: see
	// checkMissing.
	missing []string
	// generated are the mapped columns that are generated columns, whose
	// values PostgreSQL leaves out of the changes it sends unless the
	// publication asks for them (publish_generated_columns, PostgreSQL 18).
	generated []string
	// partitioned: the table is a partitioned table, whose rows live in
	// its partitions; the publication must publish their changes under
	// the table's own name (publish_via_partition_root).
	partitioned bool
	// unidentified are the relations, the table or its partitions, that
	// have no replica identity PostgreSQL can use: once a publication
	// publishes their updates or deletes, PostgreSQL refuses every UPDATE
	// and DELETE of them (see checkIdentity).
	unidentified []unidentified
	// publication is the table's publication as the session found it once
	// set up (see checkPublication).
	publication publicationState
	// inspectedAt is the server's WAL position just before the table was
	// inspected: a transaction committed before it was made while the
	// table was as inspect found it or earlier (see checkRelation).
	inspectedAt pglogrepl.LSN
	// user and database are the stream's, as the server names them, for
	// the messages that say which grant the user lacks (see grants.go).
	user, database string
}

// inspect checks the server and the table: wal_level, the columns the
// mapping reads and the user's right to read them, and that deletes carry
// the columns their events need.
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
	if err := db.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&t.user, &t.database); err != nil {
		return nil, fmt.Errorf("reading the user's name: %w", err)
	}
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
	if insufficientPrivilege(err) {
		return nil, s.schemaDenied(t.user, err)
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
	rows, err := db.Query(ctx, `SELECT attname, attgenerated <> '' FROM pg_attribute
		WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, t.oid)
	if err != nil {
		return nil, fmt.Errorf("listing columns of %s: %w", t.qualified, err)
	}
	var name string
	var generated bool
	_, err = pgx.ForEachRow(rows, []any{&name, &generated}, func() error {
		t.columns = append(t.columns, name)
		if generated && slices.Contains(s.plan.columns(), name) {
			t.generated = append(t.generated, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing columns of %s: %w", t.qualified, err)
	}
	var present []string
	for _, c := range s.plan.columns() {
		if slices.Contains(t.columns, c) {
			present = append(present, c)
		} else {
			t.missing = append(t.missing, c)
		}
	}
	// Checked before the slot is created, which holds WAL from then on.
	var canRead bool
	err = db.QueryRow(ctx, `SELECT bool_and(has_column_privilege($1::oid, c, 'SELECT')) FROM unnest($2::text[]) c`, t.oid, present).Scan(&canRead)
	if err != nil {
		return nil, fmt.Errorf("checking the right to read %s: %w", t.qualified, err)
	}
	if !canRead {
		return nil, readDenied(t, "checking the table", nil)
	}
	rows, err = db.Query(ctx, `SELECT format_type(a.atttypid, a.atttypmod) FROM unnest($2::text[]) WITH ORDINALITY AS k(name, ord)
		JOIN pg_attribute a ON a.attrelid = $1 AND a.attname = k.name ORDER BY k.ord`, t.oid, s.plan.key)
	if err != nil {
		return nil, fmt.Errorf("reading the key column types of %s: %w", t.qualified, err)
	}
	if t.keyTypes, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, fmt.Errorf("reading the key column types of %s: %w", t.qualified, err)
	}
	rows, err = db.Query(ctx, `SELECT a.attname, a.atttypid, CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE a.atttypid END,
			format_type(a.atttypid, a.atttypmod)
		FROM unnest($2::text[]) k(name) JOIN pg_attribute a ON a.attrelid = $1 AND a.attname = k.name
		JOIN pg_type ty ON ty.oid = a.atttypid`, t.oid, s.plan.columns())
	if err != nil {
		return nil, fmt.Errorf("reading the column types of %s: %w", t.qualified, err)
	}
	t.types = map[string]columnType{}
	var ct columnType
	_, err = pgx.ForEachRow(rows, []any{&name, &ct.oid, &ct.base, &ct.name}, func() error {
		t.types[name] = ct
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the column types of %s: %w", t.qualified, err)
	}
	if t.unidentified, err = findUnidentified(ctx, db, t); err != nil {
		return nil, err
	}
	if s.plan.ops[opDelete] != nil {
		if err := s.checkDeletedRows(ctx, db, t, replIdent); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// unidentified is a relation without a replica identity PostgreSQL can
// use, and why.
type unidentified struct {
	qualified string // quoted, for SQL
	why       string
}

// findUnidentified lists the relations whose rows the department writes,
// the table or, when it is partitioned, its partitions, that have no
// replica identity PostgreSQL can use: REPLICA IDENTITY NOTHING, DEFAULT
// without a primary key, or USING INDEX of an index dropped since. The
// index must be valid, unique, immediate and without a predicate, as
// PostgreSQL's relcache requires. FULL always does.
func findUnidentified(ctx context.Context, db *pgx.Conn, t *tableInfo) ([]unidentified, error) {
	oids := []uint32{t.oid}
	if t.partitioned {
		rows, err := db.Query(ctx, `SELECT relid::oid FROM pg_partition_tree($1) WHERE isleaf`, t.oid)
		if err != nil {
			return nil, fmt.Errorf("listing the partitions of %s: %w", t.qualified, err)
		}
		if oids, err = pgx.CollectRows(rows, pgx.RowTo[uint32]); err != nil {
			return nil, fmt.Errorf("listing the partitions of %s: %w", t.qualified, err)
		}
	}
	rows, err := db.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname), c.relreplident::text,
			EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
			EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisvalid AND i.indisunique AND i.indimmediate
				AND i.indpred IS NULL AND CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = ANY($1::oid[]) AND c.relreplident <> 'f' ORDER BY 1`, oids)
	if err != nil {
		return nil, fmt.Errorf("reading the replica identity of %s: %w", t.qualified, err)
	}
	var out []unidentified
	var rel, replIdent string
	var hasPrimary, usable bool
	_, err = pgx.ForEachRow(rows, []any{&rel, &replIdent, &hasPrimary, &usable}, func() error {
		switch {
		case usable:
		case replIdent == "n":
			out = append(out, unidentified{rel, "REPLICA IDENTITY NOTHING"})
		case replIdent == "d" && hasPrimary:
			out = append(out, unidentified{rel, "REPLICA IDENTITY DEFAULT, and a primary key PostgreSQL cannot use for it (deferrable, or not valid)"})
		case replIdent == "d":
			out = append(out, unidentified{rel, "no primary key, and REPLICA IDENTITY DEFAULT"})
		default:
			out = append(out, unidentified{rel, "REPLICA IDENTITY USING INDEX of an index that was dropped or cannot serve"})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the replica identity of %s: %w", t.qualified, err)
	}
	return out, nil
}

// checkIdentity refuses a publication that would publish the updates or
// deletes of a relation without a usable replica identity: PostgreSQL
// then refuses every UPDATE and DELETE of it ("cannot update table ...
// because it does not have a replica identity and publishes updates"),
// breaking the department's own system, and keeps refusing them after
// the stream stops, for as long as the publication exists. publish is
// what the publication would publish once the stream starts; already,
// whether it publishes the table's updates or deletes now. That is the
// department's doing, and its UPDATEs and DELETEs fail already: it is
// warned about, not refused, as a table only ever inserted into streams
// well under it.
func (s *Stream) checkIdentity(ctx context.Context, t *tableInfo, publish []string, already, exists bool) error {
	var kinds []string
	for _, k := range []string{opUpdate, opDelete} {
		if slices.Contains(publish, k) {
			kinds = append(kinds, k+"s")
		}
	}
	if len(t.unidentified) == 0 || len(kinds) == 0 {
		return nil
	}
	var rels, fixes []string
	for _, u := range t.unidentified {
		rels = append(rels, fmt.Sprintf("%s (%s)", u.qualified, u.why))
		fixes = append(fixes, fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL", u.qualified))
	}
	if already {
		s.log.ErrorContext(ctx, "cdc: the table has no replica identity, and its publication publishes its updates or deletes, "+
			"so PostgreSQL refuses every UPDATE and DELETE of it; give it one (or a primary key), or have the publication publish only inserts",
			"publication", s.cfg.Publication, "relations", strings.Join(rels, "; "), "fix", strings.Join(fixes, "; "))
		return nil
	}
	which := fmt.Sprintf("%s has no replica identity PostgreSQL can use (%s)", t.qualified, t.unidentified[0].why)
	if t.partitioned {
		which = fmt.Sprintf("partitions of %s have no replica identity PostgreSQL can use: %s", t.qualified, strings.Join(rels, ", "))
	}
	msg := fmt.Sprintf("checking the table: %s. Once publication %s publishes its %s, "+
		"PostgreSQL refuses every UPDATE and DELETE of it (\"cannot update table ... because it does not have a replica identity and publishes updates\"), "+
		"the department's own included, for as long as the publication exists. Give it one first: %s (or add a primary key), and start again",
		which, s.cfg.Publication, strings.Join(kinds, " and "), strings.Join(fixes, "; "))
	if !exists && s.plan.ops[opUpdate] == nil && s.plan.ops[opDelete] == nil {
		msg += fmt.Sprintf("; or, as the mapping maps only inserts, create the publication publishing inserts alone: %s, and start again",
			s.createPublicationSQLFor(t, "insert, truncate"))
	}
	if !exists {
		msg += ". Nothing was created"
	}
	return errors.New(msg)
}

// checkMissing decides whether the stream may start though the table
// lacks columns the mapping reads. A column renamed or dropped while the
// stream was stopped leaves, in the slot, the changes made before, which
// carry it, and those made since, which do not: the mapping that names it
// is the one for the first, so it may start on a slot whose copy is
// done. The stream then sends them, and stops at the first change
// without the column (see checkRelation), its position confirmed up to
// there, for a start with a mapping for the new columns. Without such a
// slot there is nothing to send with this mapping: the table is copied
// as it is now.
func (s *Stream) checkMissing(ctx context.Context, db *pgx.Conn, t *tableInfo) error {
	if len(t.missing) == 0 {
		return nil
	}
	refuse := fmt.Errorf("checking the mapping: table %s has no column %s", t.qualified, strings.Join(t.missing, ", "))
	var exists bool
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, s.cfg.Slot).Scan(&exists); err != nil {
		return fmt.Errorf("looking up slot %s: %w", s.cfg.Slot, err)
	}
	if !exists {
		return refuse
	}
	state, err := s.copyState(ctx, db)
	if err != nil {
		return err
	}
	if !state.done || state.oid != 0 && state.oid != t.oid { // 0: an earlier version's entry
		return refuse
	}
	s.log.WarnContext(ctx, "cdc: the table no longer has columns the mapping reads; the changes made before they were renamed or dropped "+
		"are sent with this mapping, and the stream stops at the first change made since, for a start with a mapping that names the new columns",
		"columns", strings.Join(t.missing, ", "))
	return nil
}

// columnType is a column's type.
type columnType struct {
	oid uint32
	// base is the type of a domain's values (a domain over a domain
	// gives the inner domain); oid for other types.
	base uint32
	name string // for messages, with its modifier: numeric(20,0)
}

// cell reads a column's text, with the type PostgreSQL gave for it, so
// that the initial copy, which reads each column as ::text, and the
// changes, which carry the type's output, read a value alike:
//
//   - A character(n) value (bpchar, or a domain over it) loses the blanks
//     that pad it, as its cast to text drops them: PostgreSQL counts them
//     as insignificant, and the WAL keeps them. Otherwise a key of
//     'HZ-001' copied and the same key changed later would be two records
//     in the hub, and the copied one never ended.
//   - A date or timestamp of infinity or -infinity, PostgreSQL's mark of a
//     period without an end (or a start), is read as no value, like NULL:
//     no data field can hold it, and a fallback (end_date | $commit_date)
//     gives the value the event needs.
func (t *tableInfo) cell(column string, typ uint32, text string) cell {
	if ct, ok := t.types[column]; ok && ct.oid == typ {
		typ = ct.base
	}
	switch typ {
	case pgtype.BPCharOID:
		return cell{text: strings.TrimRight(text, " ")}
	case pgtype.DateOID, pgtype.TimestampOID, pgtype.TimestamptzOID:
		if text == "infinity" || text == "-infinity" {
			return cell{null: true}
		}
	}
	return cell{text: text}
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
			if !slices.Contains(ident, c) && !slices.Contains(t.missing, c) {
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
// It publishes truncates, though they carry no rows to turn into events,
// so that the stream can say that the hub was not told of the rows they
// removed (see truncated); an existing publication of the user's own that
// leaves them out has them added.
//
// A partitioned table's changes happen in its partitions, and without
// publish_via_partition_root they arrive under the partitions' names,
// which the stream would take for other tables' and skip, confirming its
// position past them: lost. So a partitioned table's publication is
// created with it, and an existing one without it is refused. So is one
// that leaves out a kind of change the mapping maps (someone else may
// have created it, or altered it since), checked at every start.
// refuseDroppedPublication stops a start that finds the publication
// missing while the slot exists: the DBA dropped it since the stream
// last ran. Created again without a word, it would lack the comment that
// records the slot's completed copy, and the table would be copied again,
// every row changed since sent twice under new event ids.
func (s *Stream) refuseDroppedPublication(ctx context.Context, db *pgx.Conn, t *tableInfo) error {
	var slot bool
	if err := db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", s.cfg.Slot).Scan(&slot); err != nil {
		return fmt.Errorf("looking up replication slot %s: %w", s.cfg.Slot, err)
	}
	if !slot {
		return nil
	}
	return fmt.Errorf("checking publication %s: %w: it is missing while replication slot %s exists, so it was dropped since the stream "+
		"last ran. If the stream had copied the table (it had run before), create it again with the comment that records the copy: "+
		"%s; %s. Should the server then refuse to decode changes made while it was missing, or if the first copy never completed, "+
		"drop the slot instead (SELECT pg_drop_replication_slot('%s')): the next start copies the table again",
		s.cfg.Publication, ErrPublicationChanged, s.cfg.Slot, s.createPublicationSQL(t), s.copyDoneSQL(t), s.cfg.Slot)
}

// copyDoneSQL is the COMMENT that records, on a publication created again
// by hand, that the slot's copy of t completed (see copyState).
func (s *Stream) copyDoneSQL(t *tableInfo) string {
	return fmt.Sprintf("COMMENT ON PUBLICATION %s IS '%s %s'", s.cfg.Publication, markPrefix, copyState{done: true, oid: t.oid}.entry(s.cfg.Slot))
}

func (s *Stream) ensurePublication(ctx context.Context, db *pgx.Conn, t *tableInfo) error {
	var exists, hasTable, viaRoot, genPublished bool
	var published, listed []string
	var tables int
	// Columns that appeared in later versions are read through to_jsonb,
	// which gives NULL on servers without them: pubviaroot (PostgreSQL
	// 13, which only a partitioned table needs), the table's column list
	// (attnames, 15: NULL when the publication has none, or on older
	// servers) and pubgencols (18).
	err := db.QueryRow(ctx, `SELECT array_remove(ARRAY[CASE WHEN p.pubinsert THEN 'insert' END, CASE WHEN p.pubupdate THEN 'update' END,
			CASE WHEN p.pubdelete THEN 'delete' END, CASE WHEN p.pubtruncate THEN 'truncate' END], NULL),
		coalesce((to_jsonb(p)->>'pubviaroot')::bool, false),
		coalesce(to_jsonb(p)->>'pubgencols' = 's', false),
		EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3),
		(SELECT array(SELECT jsonb_array_elements_text(to_jsonb(pt)->'attnames')) FROM pg_publication_tables pt
			WHERE pt.pubname = $1 AND pt.schemaname = $2 AND pt.tablename = $3 AND jsonb_typeof(to_jsonb(pt)->'attnames') = 'array'),
		(SELECT count(*) FROM pg_publication_tables WHERE pubname = $1)
		FROM pg_publication p WHERE p.pubname = $1`,
		s.cfg.Publication, t.schema, t.name).Scan(&published, &viaRoot, &genPublished, &hasTable, &listed, &tables)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("looking up publication %s: %w", s.cfg.Publication, err)
	default:
		exists = true
	}
	if exists && t.partitioned && !viaRoot {
		return fmt.Errorf("checking publication %s: %s is partitioned, and the publication would send its changes "+
			"under the partitions' names, which the stream does not read: run ALTER PUBLICATION %s SET (publish_via_partition_root = true)",
			s.cfg.Publication, t.qualified, s.cfg.Publication)
	}
	publish := allPublished
	if exists {
		publish = slices.Clone(published)
		for _, kind := range []string{opInsert, opUpdate, opDelete} {
			if s.plan.ops[kind] != nil {
				publish = append(publish, kind)
			}
		}
	}
	if !exists {
		if err := s.refuseDroppedPublication(ctx, db, t); err != nil {
			return err
		}
	}
	already := exists && hasTable && (slices.Contains(published, opUpdate) || slices.Contains(published, opDelete))
	if err := s.checkIdentity(ctx, t, publish, already, exists); err != nil {
		return err
	}
	if exists {
		// A kind of change the mapping maps but the publication leaves
		// out never reaches the stream: each one would be lost unseen.
		var lacking []string
		for _, kind := range []string{opInsert, opUpdate, opDelete} {
			if s.plan.ops[kind] != nil && !slices.Contains(published, kind) {
				lacking = append(lacking, kind)
			}
		}
		if len(lacking) > 0 {
			return fmt.Errorf("checking publication %s: it does not publish %s, which the mapping maps (it publishes %s): "+
				"PostgreSQL would never send those changes, and they would be lost: run ALTER PUBLICATION %s SET (publish = '%s')",
				s.cfg.Publication, strings.Join(lacking, " or "), publishedList(published), s.cfg.Publication,
				strings.Join(uniq(append(published, lacking...)), ", "))
		}
	}
	if len(t.generated) > 0 && !genPublished {
		return s.generatedColumns(ctx, db, t)
	}
	if listed != nil {
		var left []string
		for _, c := range s.plan.columns() {
			if !slices.Contains(listed, c) && !slices.Contains(t.missing, c) {
				left = append(left, c)
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("checking publication %s: it publishes only the columns %s of %s, without %s, which the mapping reads: "+
				"PostgreSQL would leave them out of every change it sends. Add them to its column list: %s",
				s.cfg.Publication, strings.Join(listed, ", "), t.qualified, strings.Join(left, ", "),
				s.columnListSQL(t, append(slices.Clone(listed), left...), tables))
		}
	}
	if exists && hasTable && !slices.Contains(published, "truncate") {
		return s.publishTruncates(ctx, db, published)
	}
	switch {
	case exists && hasTable:
		return nil
	case exists:
		return fmt.Errorf("checking publication %s: it exists but does not publish %s", s.cfg.Publication, t.qualified)
	}
	_, err = db.Exec(ctx, s.createPublicationSQL(t))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object: created meanwhile
		return nil
	}
	if insufficientPrivilege(err) {
		return s.publicationDenied(ctx, db, t, err)
	}
	if err != nil {
		return fmt.Errorf("creating publication %s: %w", s.cfg.Publication, err)
	}
	s.log.InfoContext(ctx, "cdc: created publication", "publication", s.cfg.Publication)
	return nil
}

// publishTruncates adds truncates to an existing publication that leaves
// them out, when it is the stream's own (its default name, made by an
// earlier version or by the table's owner) and the user owns it;
// otherwise it warns that truncates go unseen. A publication named with
// --publication may have other subscribers, a PostgreSQL replica that
// would empty its copy of every table on a truncate: only its owner may
// decide.
func (s *Stream) publishTruncates(ctx context.Context, db *pgx.Conn, published []string) error {
	alter := fmt.Sprintf("ALTER PUBLICATION %s SET (publish = '%s')", s.cfg.Publication, strings.Join(append(published, "truncate"), ", "))
	owns := false
	if s.cfg.defaultPublication {
		if err := db.QueryRow(ctx, `SELECT pg_has_role(pubowner, 'USAGE') FROM pg_publication WHERE pubname = $1`, s.cfg.Publication).Scan(&owns); err != nil {
			return fmt.Errorf("looking up the owner of publication %s: %w", s.cfg.Publication, err)
		}
	}
	if owns {
		_, err := db.Exec(ctx, alter)
		if err == nil {
			s.log.InfoContext(ctx, "cdc: the publication now publishes truncates, so that a truncate of the table is reported", "publication", s.cfg.Publication)
			return nil
		}
		if !insufficientPrivilege(err) {
			return fmt.Errorf("adding truncates to publication %s: %w", s.cfg.Publication, err)
		}
	}
	s.log.WarnContext(ctx, "cdc: the publication does not publish truncates, so a truncate of the table goes unseen, "+
		"and the rows it removes stay registered in the hub; have its owner run "+alter, "publication", s.cfg.Publication)
	return nil
}

// generatedColumns explains why mapped generated columns cannot be
// streamed: PostgreSQL computes them when it writes the row, and its
// logical replication sends only the columns it stored from the
// statement (before PostgreSQL 18, always; from 18, unless the
// publication asks for stored generated columns). The initial copy would
// read them, and the first change then lack them.
func (s *Stream) generatedColumns(ctx context.Context, db *pgx.Conn, t *tableInfo) error {
	fix := "map the columns they are computed from instead"
	var version int
	if db.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version) == nil && version >= 180000 {
		fix += fmt.Sprintf(", or have the publication send them: ALTER PUBLICATION %s SET (publish_generated_columns = stored)", s.cfg.Publication)
	}
	return fmt.Errorf("checking the table: the mapping reads generated columns of %s (GENERATED ALWAYS AS ...): %s. "+
		"PostgreSQL leaves generated columns out of the changes it sends to the stream: %s",
		t.qualified, strings.Join(t.generated, ", "), fix)
}

// columnListSQL is the SQL giving the publication's entry for the table
// the column list cols. SET TABLE replaces the publication's whole list
// of tables, fine when the table is its only one; otherwise the entry is
// replaced in one transaction, so that no change falls between.
func (s *Stream) columnListSQL(t *tableInfo, cols []string, tables int) string {
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = ident(c)
	}
	entry := fmt.Sprintf("%s (%s)", t.qualified, strings.Join(quoted, ", "))
	if tables <= 1 {
		return fmt.Sprintf("ALTER PUBLICATION %s SET TABLE %s", s.cfg.Publication, entry)
	}
	return fmt.Sprintf("BEGIN; ALTER PUBLICATION %s DROP TABLE %s; ALTER PUBLICATION %s ADD TABLE %s; COMMIT",
		s.cfg.Publication, t.qualified, s.cfg.Publication, entry)
}

// publishedList names the kinds of change a publication publishes.
func publishedList(published []string) string {
	if len(published) == 0 {
		return "nothing"
	}
	return strings.Join(published, ", ")
}

// ensureSlot returns the position to stream from. With a slot whose
// initial copy completed, that is the slot's confirmed position.
// Otherwise it copies the table's rows as they were at a position, and
// returns that position: every change after it comes from the slot, every
// one before it is in the copy.
//
// Without a slot, it creates one, and copies from the snapshot the slot
// exported at its start. A slot whose copy did not complete is from a
// start that failed during its copy, which may have sent some rows; their
// later deletes, and moves to another citizen or key, are in the slot
// alone. So the slot is kept: the copy is taken again from a temporary
// slot's snapshot, and before it, the ends those rows owe are sent from
// the slot's changes up to that snapshot (see resend).
//
// Whether the copy completed, and which rows a failed copy may have sent,
// is written in the publication's comment, an object the stream owns: the
// slot itself cannot carry it (see copyState).
func (s *Stream) ensureSlot(ctx context.Context, db *pgx.Conn, repl *pgconn.PgConn, t *tableInfo) (pglogrepl.LSN, error) {
	confirmed, exists, err := s.idleSlot(ctx, db)
	if err != nil {
		return 0, err
	}
	state, err := s.copyState(ctx, db)
	if err != nil {
		return 0, err
	}
	if exists && state.done {
		switch {
		case state.oid == t.oid:
			return confirmed, nil
		case state.oid == 0: // an earlier version's entry: record the table
			if err := s.setCopyState(ctx, db, copyState{done: true, oid: t.oid}); err != nil {
				return 0, err
			}
			return confirmed, nil
		}
		// Renamed away and replaced by another under its name: the
		// new table's rows are in no copy, and its changes before it
		// was added to the publication in no slot. The hub holds any
		// row of the old: the ends the new copy cannot say are owed
		// for all.
		s.log.WarnContext(ctx, "cdc: the table was replaced by another under its name since its rows were copied; copying the new table's",
			"copied_oid", state.oid, "oid", t.oid)
		state = copyState{sent: allSent}
		if err := s.setCopyState(ctx, db, state); err != nil {
			return 0, err
		}
	}
	// db holds the copy's snapshot until the copy ends: its progress is
	// recorded on a connection of its own.
	marks, err := s.connect(ctx)
	if err != nil {
		return 0, err
	}
	defer marks.Close(context.WithoutCancel(ctx))

	// Read before the slot is created: see copyTime.
	at, err := copyTime(ctx, db)
	if err != nil {
		return 0, err
	}
	var start pglogrepl.LSN
	var snap pgx.Tx
	if !exists {
		// A slot dropped by hand takes what its copy owed with it.
		state = copyState{}
		if err := s.setCopyState(ctx, marks, state); err != nil {
			return 0, err
		}
		if start, snap, err = s.createSlot(ctx, db, repl, s.cfg.Slot, false); err != nil {
			return 0, err
		}
		defer snap.Rollback(context.WithoutCancel(ctx))
		s.log.InfoContext(ctx, "cdc: created replication slot; copying existing rows", "lsn", start.String())
	} else {
		s.log.WarnContext(ctx, "cdc: the slot's initial snapshot did not complete; taking it again, "+
			"after sending the ends of the rows it sent that were deleted or moved since", "confirmed_lsn", confirmed.String(), "sent", state.sent.String())
		// Named after the replication connection's backend, which the
		// temporary slot lives and dies with: unique while it exists.
		tmp := fmt.Sprintf("pophub_copy_%d", repl.PID())
		if start, snap, err = s.createSlot(ctx, db, repl, tmp, true); err != nil {
			return 0, err
		}
		defer snap.Rollback(context.WithoutCancel(ctx))
		// The snapshot is imported: the temporary slot has done its part.
		if err := pglogrepl.DropReplicationSlot(ctx, repl, tmp, pglogrepl.DropReplicationSlotOptions{}); err != nil {
			return 0, fmt.Errorf("dropping temporary replication slot %s: %w", tmp, err)
		}
		if confirmed < start {
			if err := s.resend(ctx, t, snap, confirmed, start, state.sent); err != nil {
				return 0, err
			}
			if confirmed, _, err = s.idleSlot(ctx, marks); err != nil {
				return 0, err
			}
			if confirmed < start {
				return 0, fmt.Errorf("checking slot %s: it kept position %s, not %s, after the ends were sent", s.cfg.Slot, confirmed, start)
			}
		}
		s.log.InfoContext(ctx, "cdc: copying existing rows again", "lsn", start.String())
	}
	if s.slotCreated != nil {
		s.slotCreated(ctx)
	}
	if err := s.snapshot(ctx, snap, marks, t, start, at, state.sent); err != nil {
		return 0, err
	}
	if err := snap.Commit(ctx); err != nil {
		return 0, fmt.Errorf("ending snapshot transaction: %w", err)
	}
	if err := s.setCopyState(ctx, marks, copyState{done: true, oid: t.oid}); err != nil {
		return 0, err
	}
	return start, nil
}

// createSlot creates a replication slot and imports the snapshot it
// exported into a transaction on db, which it returns with the slot's
// start: the transaction sees every transaction committed before it, and
// the slot sends every one committed after. The exported snapshot lives
// only until the replication connection's next command.
func (s *Stream) createSlot(ctx context.Context, db *pgx.Conn, repl *pgconn.PgConn, name string, temporary bool) (pglogrepl.LSN, pgx.Tx, error) {
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, name, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: temporary, Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	var pgErr *pgconn.PgError
	if temporary && errors.As(err, &pgErr) && pgErr.Code == "53400" { // configuration_limit_exceeded
		return 0, nil, fmt.Errorf("creating temporary replication slot %s to take the initial copy again: %w "+
			"(it needs one replication slot more than streaming does: raise max_replication_slots)", name, err)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("creating replication slot %s: %w", name, err)
	}
	start, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, nil, fmt.Errorf("parsing the consistent point of slot %s: %w", name, err)
	}
	if !snapshotName.MatchString(res.SnapshotName) {
		return 0, nil, fmt.Errorf("taking snapshot: unexpected snapshot name %q", res.SnapshotName)
	}
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, nil, fmt.Errorf("beginning snapshot transaction: %w", err)
	}
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+res.SnapshotName+"'"); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return 0, nil, fmt.Errorf("importing the snapshot of slot %s: %w", name, err)
	}
	return start, tx, nil
}

// idleSlot reads the slot's confirmed position once no other connection
// uses it: a previous session's walsender may still be going away, and
// only once it has, the position it was told last is final.
func (s *Stream) idleSlot(ctx context.Context, db *pgx.Conn) (pglogrepl.LSN, bool, error) {
	deadline := time.Now().Add(s.cfg.SlotWait)
	for {
		var (
			active                     bool
			pid                        *int32
			plugin, dbName             *string
			current, lsnTxt, walStatus *string
		)
		// wal_status through to_jsonb: PostgreSQL before 13 has no such
		// column, and keeps a slot's WAL whatever its size.
		err := db.QueryRow(ctx, `SELECT active, active_pid, plugin::text, database::text, current_database()::text, confirmed_flush_lsn::text,
				to_jsonb(s)->>'wal_status'
			FROM pg_replication_slots s WHERE slot_name = $1`, s.cfg.Slot).Scan(&active, &pid, &plugin, &dbName, &current, &lsnTxt, &walStatus)
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
		case deref(walStatus) == "lost":
			return 0, false, slotLost(s.cfg.Slot, deref(lsnTxt))
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

// ErrSlotLost is returned by Run when the server invalidated the
// stream's replication slot: the slot's WAL outgrew the server's
// max_slot_wal_keep_size while the stream was stopped or behind, and the
// changes after the slot's confirmed position are gone. No retry can
// cure that: the slot must be dropped by hand, and the next start copies
// the table again (see slotLost).
var ErrSlotLost = errors.New("the replication slot was invalidated by the server")

// slotLost says what an invalidated slot cost and how to go on. Dropping
// the slot is left to a person: the rows deleted since it was
// invalidated will never reach the hub, which the department has to
// know before the stream starts over.
func slotLost(slot, confirmed string) error {
	if confirmed == "" {
		confirmed = "unknown"
	}
	return fmt.Errorf("checking slot %s: %w (its WAL passed max_slot_wal_keep_size); "+
		"the table's changes after position %s are gone. Drop it with SELECT pg_drop_replication_slot('%s') and start again: "+
		"the table is copied again, but a row deleted since then is never ended in the hub, so have the department end such rows by hand; "+
		"to keep it from happening again, raise max_slot_wal_keep_size or keep the stream from stopping that long",
		slot, ErrSlotLost, confirmed, strings.ReplaceAll(slot, "'", "''"))
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

var snapshotName = regexp.MustCompile(`^[0-9A-Fa-f-]+$`)

// snapshot publishes the rows of the snapshot imported into tx, as of
// start, dated at (see copyTime). Their event version is
// snapshotVersion, not the slot's start position: a copy taken again,
// after a first start that failed during its copy, comes from another
// snapshot, and must not send every row again under a new id.
//
// Rows come in copyOrder. Before each batch is published, the bound of
// the rows sent (sent, widened to the batch) is recorded on marks: should
// the copy fail, Kafka may have taken any row of a batch whose publishing
// began, and the next start sends the ends those rows owe (see resend).
func (s *Stream) snapshot(ctx context.Context, tx pgx.Tx, marks *pgx.Conn, t *tableInfo, start pglogrepl.LSN, at time.Time, sent sentBound) error {
	if s.plan.ops[opSnapshot] == nil {
		return nil // neither inserts nor updates are mapped: rows have no event
	}
	cols := s.plan.columns()
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = pgx.Identifier{c}.Sanitize() + "::text"
	}
	rows, err := tx.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+t.qualified+" ORDER BY "+s.plan.copyOrderSQL())
	if insufficientPrivilege(err) {
		return readDenied(t, "reading existing rows", err)
	}
	if err != nil {
		return fmt.Errorf("reading existing rows: %w", err)
	}
	defer rows.Close()
	batch := make([]queued, 0, s.cfg.BatchSize)
	pending := sent // sent, widened to the batch being filled
	publish := func() error {
		if pending != sent {
			if err := s.setCopyState(ctx, marks, copyState{sent: pending}); err != nil {
				return err
			}
			sent = pending
		}
		if err := s.publish(ctx, batch); err != nil {
			return fmt.Errorf("publishing existing rows: %w", err)
		}
		batch = batch[:0]
		return nil
	}
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
				r[c] = t.cell(c, t.types[c].oid, *vals[i])
			}
		}
		s.stats.snapshot.Add(1)
		ev, upgraded, err := s.plan.event(change{kind: opSnapshot, row: r, version: snapshotVersion(cols, vals), commit: at})
		if err != nil {
			s.reject(ctx, opSnapshot, start, ev.ID, r, err)
			continue
		}
		key, _ := s.plan.recordKey(r) // the event has one
		pending = pending.with(copyOrder(key))
		batch = append(batch, queued{ev: ev, kind: opSnapshot, lsn: start, row: r, upgraded: upgraded})
		if len(batch) == s.cfg.BatchSize {
			if err := publish(); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); insufficientPrivilege(err) {
		return readDenied(t, "reading existing rows", err)
	} else if err != nil {
		return fmt.Errorf("reading existing rows: %w", err)
	}
	if len(batch) > 0 {
		if err := publish(); err != nil {
			return err
		}
	}
	s.log.InfoContext(ctx, "cdc: copied existing rows", "rows", n)
	return nil
}

// copyTime is the time of the copy's events, where the mapping dates
// them by $commit_time: the database's clock, read before the copy's slot
// is created, less a microsecond. A row changed after the slot's start
// comes from the copy as it was and from the slot as changed, and the hub
// keeps the later by event time: every transaction the slot sends took
// its commit time on the same clock after this read (it began after the
// slot was asked for), so the change wins, by a microsecond should the
// two read the clock at once (at equal times the hub would pick by event
// id). The host's clock, read at the copy, would date the copy after
// changes made while the slot was being created.
func copyTime(ctx context.Context, db *pgx.Conn) (time.Time, error) {
	var now time.Time
	if err := db.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("reading the database's clock for the copy's time: %w", err)
	}
	return now.Add(-time.Microsecond), nil
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
