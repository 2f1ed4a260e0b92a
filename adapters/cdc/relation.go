package cdc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// ErrTableChanged is returned by Run when the table stopped fitting the
// mapping while the stream ran: a mapped column was renamed, dropped or
// given another type, the table was renamed, moved to another schema,
// dropped or replaced by another under its name, or its deleted rows no
// longer carry the columns the mapping reads. No retry can cure that, so
// Run returns it; the change that showed it is not confirmed (a table
// renamed, dropped or replaced may show in no change: it is found by a
// check of the catalog, before any position past it is confirmed), so the
// next start, once the table, the mapping or the publication is fixed,
// resumes with it.
var ErrTableChanged = errors.New("the table no longer fits the mapping")

// relationFit is what checkRelation found of the table's description.
type relationFit int

const (
	relationUnchecked relationFit = iota
	// relationFitsPast: the description differs from the table that
	// inspect found in a way the table has since been fixed (its name, or
	// its replica identity), so it is accepted for the transactions
	// committed before the inspection, and only for them.
	relationFitsPast
	relationFits
)

// checkRelation checks PostgreSQL's description of the table, as it was
// when the change at lsn was made, against the mapping.
//
// Every column the mapping reads must be there, whenever the change was
// made: a change without them cannot become its event, and confirming it
// would lose it. Each must have the type inspect found, unless the change
// is older than the inspection: a value of another type may not convert,
// and a bad row's position is confirmed. The table must have its configured name and, with
// deletes mapped, a replica identity that keeps the columns deletes read;
// a description that breaks either rule yet is older than the inspection
// at the start of the session (which found the table as configured)
// records a fault fixed since: the stream follows the table through an
// old name, and reports deletes that kept only their key as bad rows,
// since PostgreSQL never wrote the rest of the row.
func (s *Stream) checkRelation(ctx context.Context, st *streamState, lsn pglogrepl.LSN) error {
	past := st.commitLSN < st.tbl.inspectedAt
	if st.relFit == relationFits || st.relFit == relationFitsPast && past {
		return nil
	}
	rel, tbl := st.rel, st.tbl
	columns := make([]string, len(rel.Columns))
	for i, c := range rel.Columns {
		columns[i] = c.Name
	}
	var missing []string
	for _, c := range s.plan.columns() {
		if !slices.Contains(columns, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		// A column list narrowed while the stream runs leaves columns out
		// just as a rename does: say which it was.
		if st.catalog != nil {
			if err := s.checkPublication(ctx, st); err != nil {
				return err
			}
		}
		return tableChanged(tbl, lsn, fmt.Sprintf("when this change was made, it had no column %s (renamed or dropped?); its columns were %s. "+
			"PostgreSQL describes every change with the columns the table had when it was made: "+
			"change the mapping to name them and start again (renaming the column back does not alter changes already made); "+
			"after a rename while the stream was stopped, a start with the mapping naming the old columns sends the changes made before it, "+
			"and stops at the first made since, from where the new mapping goes on",
			strings.Join(missing, ", "), strings.Join(columns, ", ")))
	}

	fit := relationFits
	if changed := s.retypedColumns(ctx, st); len(changed) > 0 {
		if !past {
			return tableChanged(tbl, lsn, fmt.Sprintf("when this change was made, %s. The mapping was checked against the types the start found: "+
				"check that it reads the new type as it should (a date field takes the date of a timestamp, in the mapping's time zone) "+
				"and start again; the next start takes the columns as they are now", strings.Join(changed, "; ")))
		}
		fit = relationFitsPast
	}
	if rel.Namespace != tbl.schema || rel.RelationName != tbl.name {
		other := rel.Namespace + "." + rel.RelationName
		if !past {
			return tableChanged(tbl, lsn, renamedDetail(tbl, rel.Namespace, rel.RelationName))
		}
		s.log.InfoContext(ctx, "cdc: these changes were made while the table had another name; it has its own name again, and the stream follows it",
			"name_then", other, "lsn", lsn.String())
		fit = relationFitsPast
	}
	if lacking, key := s.keyOnlyDeletesLack(tbl, rel); len(lacking) > 0 {
		if !past {
			return tableChanged(tbl, lsn, fmt.Sprintf("deletes are mapped, but its deleted rows now keep only their replica identity (%s), without %s: "+
				"run ALTER TABLE %s REPLICA IDENTITY FULL and start again. A row deleted before then cannot be sent, "+
				"as PostgreSQL kept only its key: it is reported as a bad row",
				key, strings.Join(lacking, ", "), tbl.qualified))
		}
		s.log.WarnContext(ctx, "cdc: these changes were made while deleted rows kept only their key; such deletes are reported as bad rows",
			"lsn", lsn.String())
		fit = relationFitsPast
	}
	st.relFit = fit
	return nil
}

// retypedColumns says, for each mapped column whose type in the
// description is not the one inspect found, what it was and what it is.
// The next start inspects the new type and accepts it; a change made
// before that inspection keeps the type it was made with, accepted too
// (see checkRelation).
func (s *Stream) retypedColumns(ctx context.Context, st *streamState) []string {
	var changed []string
	for _, c := range st.rel.Columns {
		was, ok := st.tbl.types[c.Name]
		if !ok || was.oid == c.DataType { // types holds the mapped columns
			continue
		}
		now := fmt.Sprintf("the type with OID %d", c.DataType)
		var name string
		// A catch-up session has no catalog connection: the OID says it.
		if st.catalog != nil && st.catalog.QueryRow(ctx, "SELECT format_type($1, $2)", c.DataType, c.TypeModifier).Scan(&name) == nil {
			now = name
		}
		changed = append(changed, fmt.Sprintf("column %s was of type %s, not %s as when the stream started", c.Name, now, was.name))
	}
	return changed
}

// keyOnlyDeletesLack lists the columns deletes read that a deleted row,
// as the description says the table keeps it, lacks, and names the
// columns it keeps. A partitioned table's description gives the root's
// replica identity, not its partitions' that decide what a deleted row
// keeps: see checkPartitions.
func (s *Stream) keyOnlyDeletesLack(tbl *tableInfo, rel *pglogrepl.RelationMessage) (lacking []string, key string) {
	const full = 'f'
	if s.plan.ops[opDelete] == nil || tbl.partitioned || rel.ReplicaIdentity == full {
		return nil, ""
	}
	var keyColumns []string
	for _, c := range rel.Columns {
		if isKeyColumn(c) {
			keyColumns = append(keyColumns, c.Name)
		}
	}
	for _, c := range s.plan.deleteColumns() {
		if !slices.Contains(keyColumns, c) {
			lacking = append(lacking, c)
		}
	}
	if len(keyColumns) == 0 {
		return lacking, "no column"
	}
	return lacking, strings.Join(keyColumns, ", ")
}

// isKeyColumn reports whether a column belongs to the replica identity.
func isKeyColumn(c *pglogrepl.RelationMessageColumn) bool { return c.Flags&1 != 0 }

// renamedDetail says that the table was renamed to namespace.name, and
// how to go on.
func renamedDetail(tbl *tableInfo, namespace, name string) string {
	return fmt.Sprintf("it was renamed to %s.%s. The stream's slot, publication and mapping go by the name "+
		"it was configured with, so it does not follow: rename the table back (%s) and start again, "+
		"and the changes made under the other name are sent", namespace, name, renameBack(tbl, namespace, name))
}

// renameBack is the SQL giving the table, now namespace.name, its
// configured name back.
func renameBack(tbl *tableInfo, namespace, name string) string {
	var stmts []string
	current := pgx.Identifier{namespace, name}
	if namespace != tbl.schema {
		stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s SET SCHEMA %s", current.Sanitize(), pgx.Identifier{tbl.schema}.Sanitize()))
		current = pgx.Identifier{tbl.schema, name}
	}
	if name != tbl.name {
		stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s RENAME TO %s", current.Sanitize(), pgx.Identifier{tbl.name}.Sanitize()))
	}
	return strings.Join(stmts, "; ")
}

// namedTable is what the configured name, and the streamed table's OID,
// lead to in the catalog now (see checkTable).
type namedTable struct {
	// oid is the table the configured name names (nil: none), and
	// qualified its name, for SQL.
	oid       *uint32
	qualified *string
	// namespace and name are the streamed table's (nil: dropped).
	namespace, name *string
}

// checkTable checks, on the catalog connection, that the configured name
// still names the streamed table: a table renamed, dropped or replaced
// by another under its name shows in none of the stream's changes until
// the old table changes again, if ever, while the new one's changes are
// in no slot. It stops the stream (ErrTableChanged) before a position
// past the change is confirmed; the next start resumes from the last
// position checked.
func (s *Stream) checkTable(ctx context.Context, st *streamState) error {
	// The catalog connection crosses the same network as the stream's:
	// one cut silently must not hold the stream for longer than the
	// stream's own silence would (ReceiveTimeout).
	cctx, cancel := context.WithTimeout(ctx, s.cfg.ReceiveTimeout)
	defer cancel()
	var cur namedTable
	err := st.catalog.QueryRow(cctx, `SELECT c.oid, CASE WHEN c.oid IS NOT NULL THEN format('%I.%I', n.nspname, c.relname) END, o.nspname, o.relname
		FROM (SELECT to_regclass($1) AS named) q
		LEFT JOIN pg_class c ON c.oid = q.named LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN (SELECT oc.relname, onsp.nspname FROM pg_class oc JOIN pg_namespace onsp ON onsp.oid = oc.relnamespace
			WHERE oc.oid = $2) o ON true`, s.cfg.Table, st.tbl.oid).Scan(&cur.oid, &cur.qualified, &cur.namespace, &cur.name)
	if err != nil {
		return s.catalogFailed(ctx, cctx, fmt.Errorf("checking that %s is still the table streamed: %w", s.cfg.Table, err))
	}
	if detail := tableGone(st.tbl, s.cfg.Publication, cur); detail != "" {
		return fmt.Errorf("streaming %s: %w: %s. Nothing past LSN %s is confirmed: the next start resumes there",
			st.tbl.qualified, ErrTableChanged, detail, st.verified)
	}
	if err := s.checkPublication(cctx, st); err != nil {
		return s.catalogFailed(ctx, cctx, err)
	}
	return nil
}

// catalogFailed says, of a check on the catalog connection that failed
// because it had no answer within ReceiveTimeout (cctx ended, ctx did
// not), that the connection is presumed cut.
func (s *Stream) catalogFailed(ctx, cctx context.Context, err error) error {
	if ctx.Err() == nil && cctx.Err() != nil {
		return fmt.Errorf("nothing from PostgreSQL for %s: the connection is presumed cut: %w", s.cfg.ReceiveTimeout, err)
	}
	return err
}

// tableGone says what became of the streamed table, and what to do, when
// the configured name no longer names it; "" when it does. A new table
// under the name is streamed once added to the publication: the next
// start finds the copy was of another table, and copies it (see
// ensureSlot).
func tableGone(tbl *tableInfo, publication string, cur namedTable) string {
	switch {
	case cur.oid != nil && *cur.oid == tbl.oid:
		return ""
	case cur.oid == nil && cur.name != nil:
		return renamedDetail(tbl, *cur.namespace, *cur.name)
	case cur.oid == nil:
		return fmt.Sprintf("it was dropped. To stream a table created again under its name, add it to the publication "+
			"(ALTER PUBLICATION %s ADD TABLE %s) and start again: the next start copies its rows, then streams its changes",
			publication, tbl.qualified)
	}
	replaced := fmt.Sprintf("it was replaced: its name now names another table (OID %d, not %d). "+
		"To stream the new table, add it to the publication unless it is there (ALTER PUBLICATION %s ADD TABLE %s) and start again: "+
		"the next start copies its rows, then streams its changes", *cur.oid, tbl.oid, publication, *cur.qualified)
	if cur.name == nil {
		return replaced + "; the table streamed was dropped"
	}
	return fmt.Sprintf("%s. The table streamed was renamed to %s.%s: to go on with it instead, move the new table out of the way "+
		"and give it its name back (%s)", replaced, *cur.namespace, *cur.name, renameBack(tbl, *cur.namespace, *cur.name))
}

func tableChanged(tbl *tableInfo, lsn pglogrepl.LSN, detail string) error {
	return fmt.Errorf("streaming %s: %w: %s. The change at LSN %s and those after it are not confirmed: the next start resumes with them",
		tbl.qualified, ErrTableChanged, detail, lsn)
}

// checkPartitions checks, when a delete of a partitioned table cannot
// become its event, whether the partitions' replica identities keep what
// deletes read: the change does not say which partition its row was in,
// nor what that partition kept of it, but the catalog says what the
// partitions keep now. One that does not (its identity changed, or it was
// attached without FULL) is a table that no longer fits the mapping; when
// they all do, the row is a bad row, or one deleted before they were fixed.
func (s *Stream) checkPartitions(ctx context.Context, st *streamState, lsn pglogrepl.LSN) error {
	cfg, err := pgx.ParseConfig(s.cfg.Postgres)
	if err != nil {
		return fmt.Errorf("parsing PostgreSQL URL: %w", err)
	}
	setSessionParams(cfg.RuntimeParams)
	db, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connecting to PostgreSQL to check the partitions: %w", err)
	}
	defer db.Close(context.WithoutCancel(ctx))
	err = s.checkDeletedRows(ctx, db, st.tbl, "")
	var gap *identityGapError
	if errors.As(err, &gap) {
		return tableChanged(st.tbl, lsn, fmt.Sprintf("deletes are mapped, but a deleted row of its partition %s now keeps only its replica identity, without %s: "+
			"run ALTER TABLE %s REPLICA IDENTITY FULL and start again. A row deleted before then cannot be sent, "+
			"as PostgreSQL kept only its key: it is reported as a bad row",
			gap.relation, strings.Join(gap.lacking, ", "), gap.relation))
	}
	return err
}

// stopOnTableChange ends the session at a change that does not fit the
// mapping: it publishes and confirms the transactions completed before
// it, and returns err. The change's own transaction stays unconfirmed, for
// the next start to receive again.
func (s *Stream) stopOnTableChange(ctx context.Context, st *streamState, err error) error {
	st.nextCheck = time.Time{} // confirm all that was handled, checked
	if ferr := s.flush(ctx, st, st.committed); ferr != nil {
		return errors.Join(err, fmt.Errorf("publishing the changes before it: %w", ferr))
	}
	s.log.ErrorContext(ctx, "cdc: stopping: the table no longer fits the mapping", "confirmed_lsn", s.Stats().Confirmed.String(), "error", err)
	return err
}

// ErrPublicationChanged is returned by Run when the table's publication
// was altered while the stream ran: it no longer publishes a kind of
// change the mapping maps, the table, or a column the mapping reads, or
// it was altered and may have left them out for a while. PostgreSQL
// decodes each change through the publication as it was when the change
// was made, so a change it left out is never sent, not even after the
// fix: Run stops before it confirms a position past the alteration, and
// says so, rather than go on as if nothing was lost.
var ErrPublicationChanged = errors.New("the publication was altered while streaming")

// publicationState is what the catalog says of the stream's publication.
type publicationState struct {
	exists bool
	// published: the kinds of change it publishes (insert, update,
	// delete, truncate).
	published []string
	// hasTable: it publishes the table; listed, the columns it publishes
	// (PostgreSQL 15 lists them all without a column list; nil before
	// 15); tables, how many tables it publishes.
	hasTable bool
	listed   []string
	tables   int
	viaRoot  bool
	// columns are the table's columns now: a mapped column renamed or
	// dropped is left to checkRelation, as the table's change it is.
	columns []string
	// version changes whenever the publication, or its entry for the
	// table, is altered: the xmin of their catalog rows, the transaction
	// that wrote each version. Their tuple ids would change too, but also
	// under VACUUM FULL of the catalogs (a nightly vacuumdb --full), which
	// alters nothing; a row keeps its xmin when it is moved, and frozen.
	version string
}

// readPublication reads the publication's state. Columns that appeared
// in later versions are read through to_jsonb, as in ensurePublication.
func (s *Stream) readPublication(ctx context.Context, db *pgx.Conn, t *tableInfo) (publicationState, error) {
	st := publicationState{exists: true}
	err := db.QueryRow(ctx, `SELECT array_remove(ARRAY[CASE WHEN p.pubinsert THEN 'insert' END, CASE WHEN p.pubupdate THEN 'update' END,
			CASE WHEN p.pubdelete THEN 'delete' END, CASE WHEN p.pubtruncate THEN 'truncate' END], NULL),
		coalesce((to_jsonb(p)->>'pubviaroot')::bool, false),
		EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3),
		(SELECT array(SELECT jsonb_array_elements_text(to_jsonb(pt)->'attnames')) FROM pg_publication_tables pt
			WHERE pt.pubname = $1 AND pt.schemaname = $2 AND pt.tablename = $3 AND jsonb_typeof(to_jsonb(pt)->'attnames') = 'array'),
		(SELECT count(*) FROM pg_publication_tables WHERE pubname = $1),
		concat_ws(' ', p.xmin::text, (SELECT r.xmin::text FROM pg_publication_rel r WHERE r.prpubid = p.oid AND r.prrelid = $4)),
		array(SELECT attname::text FROM pg_attribute WHERE attrelid = $4 AND attnum > 0 AND NOT attisdropped)
		FROM pg_publication p WHERE p.pubname = $1`,
		s.cfg.Publication, t.schema, t.name, t.oid).Scan(&st.published, &st.viaRoot, &st.hasTable, &st.listed, &st.tables, &st.version, &st.columns)
	if errors.Is(err, pgx.ErrNoRows) {
		return publicationState{}, nil
	}
	if err != nil {
		return publicationState{}, fmt.Errorf("looking up publication %s: %w", s.cfg.Publication, err)
	}
	return st, nil
}

// publicationMismatch says how the publication, as it is now, leaves out
// what the stream needs, with the SQL that fixes it; "" when it does not.
func (s *Stream) publicationMismatch(t *tableInfo, st publicationState) string {
	pub := s.cfg.Publication
	if !st.exists {
		return fmt.Sprintf("publication %s was dropped, and PostgreSQL sends no change of the table without it: create it again, "+
			"with the comment that records this slot's completed copy (%s; %s)", pub, s.createPublicationSQL(t), s.copyDoneSQL(t))
	}
	var lacking []string
	for _, kind := range []string{opInsert, opUpdate, opDelete} {
		if s.plan.ops[kind] != nil && !slices.Contains(st.published, kind) {
			lacking = append(lacking, kind)
		}
	}
	if len(lacking) > 0 {
		return fmt.Sprintf("publication %s no longer publishes %s, which the mapping maps (it publishes %s): "+
			"ALTER PUBLICATION %s SET (publish = '%s')", pub, strings.Join(lacking, " or "), publishedList(st.published),
			pub, strings.Join(uniq(append(slices.Clone(st.published), lacking...)), ", "))
	}
	if !st.hasTable {
		return fmt.Sprintf("publication %s no longer publishes %s: ALTER PUBLICATION %s ADD TABLE %s", pub, t.qualified, pub, t.qualified)
	}
	if t.partitioned && !st.viaRoot {
		return fmt.Sprintf("publication %s no longer publishes the changes of %s's partitions under its name: "+
			"ALTER PUBLICATION %s SET (publish_via_partition_root = true)", pub, t.qualified, pub)
	}
	if st.listed != nil {
		var left []string
		for _, c := range s.plan.columns() {
			if !slices.Contains(st.listed, c) && slices.Contains(st.columns, c) {
				left = append(left, c)
			}
		}
		if len(left) > 0 {
			return fmt.Sprintf("publication %s now publishes only the columns %s of %s, without %s, which the mapping reads: %s",
				pub, strings.Join(st.listed, ", "), t.qualified, strings.Join(left, ", "),
				s.columnListSQL(t, append(slices.Clone(st.listed), left...), st.tables))
		}
	}
	return ""
}

// checkPublication checks, on the catalog connection, that the
// publication still sends what the mapping maps, and was not altered
// since the session started (see ErrPublicationChanged).
func (s *Stream) checkPublication(ctx context.Context, st *streamState) error {
	now, err := s.readPublication(ctx, st.catalog, st.tbl)
	if err != nil {
		return fmt.Errorf("checking publication %s: %w", s.cfg.Publication, err)
	}
	const decoded = "PostgreSQL decodes each change through the publication as it was when the change was made, and does not send such a change again"
	const another = "send those another way (update each row changed meanwhile, or send its events with pophub import or publish)"
	if detail := s.publicationMismatch(st.tbl, now); detail != "" {
		return fmt.Errorf("streaming %s: %w: %s, and start again. The changes of the table it left out since it was altered, after LSN %s, "+
			"were never sent, nor will they be after the fix (%s): %s. Nothing past LSN %s is confirmed",
			st.tbl.qualified, ErrPublicationChanged, detail, st.verified, decoded, another, st.verified)
	}
	if now.version != st.tbl.publication.version {
		return fmt.Errorf("streaming %s: %w: publication %s was altered after LSN %s; it publishes what the mapping needs now, "+
			"but had it left out for a while a kind of change, the table or a column the mapping reads, the changes of the table made meanwhile "+
			"were never sent (%s): %s. An alteration that left out nothing the mapping needs (a new owner, say) lost nothing. "+
			"Nothing past LSN %s is confirmed: start again to go on",
			st.tbl.qualified, ErrPublicationChanged, s.cfg.Publication, st.verified, decoded, another, st.verified)
	}
	return nil
}
