package cdc

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PostgreSQL's "permission denied" and "must be owner of" errors name
// neither the user nor what would grant the right. Each setup step that
// can meet one says instead which grant or ownership its user lacks, as
// SQL to run, with PostgreSQL's error after it.

// insufficientPrivilege reports whether err is PostgreSQL's
// insufficient_privilege (SQLSTATE 42501).
func insufficientPrivilege(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

var plainIdent = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// ident quotes a name for the SQL a message suggests, when it needs it.
func ident(name string) string {
	if plainIdent.MatchString(name) {
		return name
	}
	return pgx.Identifier{name}.Sanitize()
}

// connectDenied explains a refused connection: a database whose CONNECT
// right was revoked from PUBLIC, or, for replication, a user without
// the REPLICATION attribute (PostgreSQL checks it before the database).
func connectDenied(cfg *pgconn.Config, replication bool, err error) error {
	if replication {
		return fmt.Errorf("connecting to PostgreSQL for replication: the user %s lacks the REPLICATION attribute: ALTER ROLE %s REPLICATION: %w",
			ident(cfg.User), ident(cfg.User), err)
	}
	return fmt.Errorf("connecting to PostgreSQL: the user %s may not connect to database %s: GRANT CONNECT ON DATABASE %s TO %s: %w",
		ident(cfg.User), ident(cfg.Database), ident(cfg.Database), ident(cfg.User), err)
}

// createPublicationSQL is how the stream creates its publication, for
// the table's owner to run instead when the stream's user may not.
func (s *Stream) createPublicationSQL(t *tableInfo) string {
	return s.createPublicationSQLFor(t, strings.Join(allPublished, ", "))
}

// allPublished is what a publication the stream creates publishes.
var allPublished = []string{opInsert, opUpdate, opDelete, "truncate"}

// createPublicationSQLFor is createPublicationSQL publishing publish.
func (s *Stream) createPublicationSQLFor(t *tableInfo, publish string) string {
	with := "publish = '" + publish + "'"
	if t.partitioned {
		with += ", publish_via_partition_root = true"
	}
	return fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (%s)", s.cfg.Publication, t.qualified, with)
}

// publicationDenied explains why the user may not create the table's
// publication: that takes CREATE on the database and owning the table.
// Either can be had another way: the publication created by someone who
// may, and handed to the user, who must own it (see setCopyState).
// Handing it over takes a superuser, or the table's owner with the right
// to act as the user while the user has CREATE on the database.
func (s *Stream) publicationDenied(ctx context.Context, db *pgx.Conn, t *tableInfo, err error) error {
	var canCreate, ownsTable bool
	var owner string
	qerr := db.QueryRow(ctx, `SELECT has_database_privilege(current_database(), 'CREATE'), pg_has_role(c.relowner, 'USAGE'), r.rolname
		FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = $1`, t.oid).Scan(&canCreate, &ownsTable, &owner)
	if qerr != nil {
		return fmt.Errorf("creating publication %s: the user %s may not: %w", s.cfg.Publication, ident(t.user), err)
	}
	user, database, pub := ident(t.user), ident(t.database), s.cfg.Publication
	handOver := fmt.Sprintf("%s; ALTER PUBLICATION %s OWNER TO %s", s.createPublicationSQL(t), pub, user)
	var why string
	switch {
	case !canCreate && ownsTable:
		why = fmt.Sprintf("the user %s may not create publications in database %s: GRANT CREATE ON DATABASE %s TO %s; "+
			"or have a superuser create publication %s and make %s its owner: %s",
			user, database, database, user, pub, user, handOver)
	case canCreate && !ownsTable:
		why = fmt.Sprintf("the user %s does not own table %s, and only its owner (%s) may create a publication for it: "+
			"ALTER TABLE %s OWNER TO %s; or create publication %s as %s and make %s its owner: %s",
			user, t.qualified, ident(owner), t.qualified, user, pub, ident(owner), user, handOver)
	case !canCreate && !ownsTable:
		why = fmt.Sprintf("the user %s may not create publications in database %s, nor for table %s, which %s owns: "+
			"GRANT CREATE ON DATABASE %s TO %s and ALTER TABLE %s OWNER TO %s; "+
			"or have a superuser create publication %s and make %s its owner: %s",
			user, database, t.qualified, ident(owner), database, user, t.qualified, user, pub, user, handOver)
	default:
		why = fmt.Sprintf("the user %s may not", user)
	}
	return fmt.Errorf("creating publication %s: %s: %w", pub, why, err)
}

// copyStateDenied explains why the user may not write the publication's
// comment, where the initial copy is recorded: it does not own the
// publication, which someone else created.
func (s *Stream) copyStateDenied(ctx context.Context, db *pgx.Conn, err error) error {
	var user, database, owner string
	qerr := db.QueryRow(ctx, `SELECT current_user, current_database(), r.rolname
		FROM pg_publication p JOIN pg_roles r ON r.oid = p.pubowner WHERE p.pubname = $1`, s.cfg.Publication).Scan(&user, &database, &owner)
	if qerr != nil {
		return fmt.Errorf("recording the initial copy of slot %s in the comment of publication %s, which only its owner may write: %w",
			s.cfg.Slot, s.cfg.Publication, err)
	}
	return fmt.Errorf("recording the initial copy of slot %s: the user %s does not own publication %s (%s does), "+
		"whose comment records the initial copy: ALTER PUBLICATION %s OWNER TO %s, as a superuser, "+
		"or as %s while a member of %s that has CREATE on database %s: %w",
		s.cfg.Slot, ident(user), s.cfg.Publication, ident(owner), s.cfg.Publication, ident(user), ident(owner), ident(user), ident(database), err)
}

// readDenied explains why the user may not read the table; err is
// PostgreSQL's, or nil when the stream found it out itself.
func readDenied(t *tableInfo, what string, err error) error {
	msg := fmt.Sprintf("%s: the user %s may not read table %s: GRANT SELECT ON %s TO %s",
		what, ident(t.user), t.qualified, t.qualified, ident(t.user))
	if err == nil {
		return errors.New(msg)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// schemaDenied explains why the user may not look the table up.
func (s *Stream) schemaDenied(user string, err error) error {
	schema, _ := splitTable(s.cfg.Table)
	return fmt.Errorf("looking up table %q: the user %s may not use schema %s: GRANT USAGE ON SCHEMA %s TO %s: %w",
		s.cfg.Table, ident(user), ident(schema), ident(schema), ident(user), err)
}
