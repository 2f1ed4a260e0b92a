// Package cdc streams a department's own PostgreSQL table into hub events
// by change data capture: the path for departments whose systems have only
// a database, and no code that could call the publisher library.
//
// Inserts, updates and deletes of one table are read through logical
// replication (the pgoutput plugin, as PostgreSQL's own subscribers use
// it), turned into CloudEvents by a small YAML mapping, and published to
// pop.events.<source> with adapters/publisher. On first start the rows
// already in the table are sent too, copied from the snapshot the
// replication slot exported when it was created, so the copy and the
// stream meet exactly: nothing is missed between them, nothing is in both.
//
//	pophub cdc --source housing --postgres postgres://cdc@db/housing \
//	    --table rentals --mapping rentals.yaml --kafka kafka:9092
//
// # Setting up the department's database
//
//   - wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level =
//     logical; it takes a restart), with max_replication_slots and
//     max_wal_senders at least 2 more than already used: the stream uses
//     one of each, and a second for a while when it takes its initial
//     copy again (see A first start that fails during its copy).
//   - A user with the REPLICATION attribute, allowed to connect for
//     replication in pg_hba.conf, that may SELECT the table and owns its
//     publication (see below).
//   - When deletes are mapped, ALTER TABLE rentals REPLICA IDENTITY FULL:
//     otherwise a deleted row arrives with its primary key only, and its
//     event lacks the citizen ID. The stream checks this on start and
//     while it runs (see Changes to the table). For a partitioned table,
//     set it on every partition (the table's own setting does not pass to
//     them), including partitions added later.
//   - A replica identity PostgreSQL can use: a primary key (REPLICA
//     IDENTITY DEFAULT), a unique index (USING INDEX) or FULL. Once a
//     publication publishes a table's updates and deletes, PostgreSQL
//     refuses every UPDATE and DELETE of a table without one, the
//     department's own, for as long as the publication exists. A start
//     that would create such a publication refuses instead, with the
//     ALTER TABLE that gives the table one, and creates nothing; a
//     mapping of inserts alone may stream through a publication of
//     inserts alone (publish = 'insert, truncate'), created beforehand.
//   - PostgreSQL 11 or later; a partitioned table needs 13 or later.
//
// The stream's user must own the table's publication: the publication's
// comment records how far the initial copy got (see A first start that
// fails during its copy), and only its owner may write it. On first start
// the stream creates the publication, which takes owning the table and
// CREATE on the database:
//
//	CREATE ROLE cdc LOGIN REPLICATION PASSWORD '…';
//	ALTER TABLE rentals OWNER TO cdc;
//	ALTER TABLE rentals REPLICA IDENTITY FULL;
//	GRANT CREATE ON DATABASE housing TO cdc;
//
// Or the table stays with its owner, who creates the publication (for a
// partitioned table, WITH publish_via_partition_root = true as well), and
// the publication is handed to the user. Handing it over takes a
// superuser, or, short of one, the table's owner as a member of cdc
// (GRANT cdc TO owner) while cdc has CREATE on the database:
//
//	CREATE ROLE cdc LOGIN REPLICATION PASSWORD '…';
//	GRANT SELECT ON rentals TO cdc;
//	CREATE PUBLICATION pophub_rentals FOR TABLE rentals WITH (publish = 'insert, update, delete');
//	ALTER PUBLICATION pophub_rentals OWNER TO cdc;
//
// A start that lacks one of these rights stops before it creates its
// slot, saying which grant or ownership is missing, with the SQL to run.
//
// The stream creates, when missing:
//   - the publication pophub_<table> (--publication) FOR TABLE <table>
//     (inserts, updates, deletes and truncates; a truncate carries no
//     rows, so the rows it removed are not ended in the hub: it is logged
//     as an error saying how to send their ends, and counted in
//     Stats.Truncated), whose comment records how far each slot's initial
//     copy got. For a partitioned table it is created WITH
//     (publish_via_partition_root = true), so that the changes of every
//     partition, present or future, arrive under the table's name; an
//     existing publication without that setting is refused on start,
//     saying how to fix it;
//   - the logical replication slot pophub_<source>_<table> (--slot).
//
// In those default names <table> is the configured table in lower case,
// with _ for what is not a letter or digit (Housing.Rentals gives
// pophub_housing_rentals). A table name with non-ASCII characters, or
// one too long for PostgreSQL's 63 bytes, drops what does not fit and
// ends with _ and 8 hex digits of the SHA-256 of the configured name, so
// that tables differing only there do not share a slot and publication:
// 租赁备案 of housing streams through slot pophub_housing_9a5b7eb9 and
// publication pophub_9a5b7eb9. Versions before that gave such tables
// names without the hash (every non-ASCII character an _, the name cut
// at 63 bytes); a table streamed under them keeps them, as long as their
// publication publishes it.
//
// The table is named as one spelling of it, so that rentals,
// public.rentals and "rentals" share their names: unquoted parts in
// lower case, needless quotes dropped, the public schema left out. When
// the default slot does not exist, a slot of the source tied to a
// publication of the table (by OID: its comment names the slot, or the
// names are the default pair) is continued, with a log saying so: the
// table streamed under another spelling, or under the name a spelling
// gave before, keeps its slot and position.
//
// A slot keeps WAL until the stream confirms it: while the stream is
// stopped, WAL accumulates on the department's server. The progress log
// says how much the stream's slot keeps (retained_wal_bytes, also
// Stats.RetainedWAL), and each start warns about every inactive slot
// pophub created for the table, with the WAL it keeps and the SQL that
// drops it. A stream stopped for good must have its slot dropped (SELECT
// pg_drop_replication_slot('pophub_housing_rentals')), or the
// department's disk fills up. A server with max_slot_wal_keep_size
// invalidates a slot that keeps more: its changes are gone, and Run
// returns ErrSlotLost, at its start or while it streams, rather than
// retry. Once the slot is dropped by hand, the next start copies the
// table again; a row deleted in between gets no end.
//
// # Position: nothing lost, nothing repeated
//
// Once the initial copy completed, the slot is the saved position; there
// is no other state (for a copy that did not complete, see below). The
// stream confirms a WAL position to PostgreSQL (a standby status update)
// only after Kafka acknowledged every event before it, so after a crash
// or a restart PostgreSQL sends again from the last confirmed transaction:
// nothing is lost. A change sent again keeps its WAL position, and the
// event id is publisher.EventID(source, record key, that LSN), so a
// change published before the crash but not yet confirmed comes out with
// the same id and the hub drops it as a duplicate. Transactions committed
// before the confirmed position are skipped should PostgreSQL send them
// again. On a graceful stop (ctx cancelled) the stream publishes the
// changes of complete transactions, confirms them and closes, so the next
// start sends nothing twice.
//
// Where the mapping dates events by $commit_time (the default), the
// rows of the initial snapshot are dated by the database's clock read
// just before the slot is created, less a microsecond: every transaction
// the slot sends commits after it, so a row changed during the copy,
// which reaches the hub from the copy as it was and from the slot as
// changed, ends with the change, the later event.
//
// Rows of the initial snapshot take a hash of their mapped values as their
// version (negative, never a WAL position), not the slot's starting LSN,
// so that a copy taken again repeats no unchanged row: an unchanged row
// comes out with the event id it had, which the hub drops as a duplicate,
// and only a row that changed in between gets a new id.
//
// # A first start that fails during its copy
//
// The copy sends rows in batches, and Kafka may have taken some, which
// the hub applied, when the first start dies (killed, or Kafka failing).
// The next start takes the copy again; but a row the first copy sent that
// was deleted in between is not in the new copy, and a row moved to
// another citizen or record key is in it only where it is now: their ends
// are only in the slot's changes. So the slot is kept, and the next start
//
//  1. creates a temporary slot, whose snapshot the new copy is read from;
//  2. replays the kept slot up to that snapshot's position and sends the
//     ends owed: the delete's event of each row a failed copy may have
//     sent that was deleted, or moved away (see Mapping), in between, with
//     the event id the stream gives that change. An end is left out when
//     the new copy registers the row again as it was (deleted and
//     inserted again, or moved back), as the copy's event may be dated
//     before the end. It then confirms that position, before which the
//     new copy holds every change;
//  3. copies, and streams from that position once the copy completed.
//
// Which rows a failed copy may have sent is recorded as it goes: the copy
// reads rows in the order of a hash of their record key, and before each
// batch is published, the greatest hash sent so far is written in the
// publication's comment (a hash, as the comment is readable by every user
// of the database and the key may be personal data). A failed copy's
// last batch counts as sent, as Kafka may have taken part of it: a row of
// it deleted in between gets an end although the hub may never have
// registered it (an end without a registration shows in no record), and
// so does the citizen a row was moved to and back from. Rows past the
// bound owe nothing. A slot left by an earlier version, which recorded no
// bound, is taken to have sent every row. Should the copy taken again
// fail too, the next start goes on from the position confirmed in step 2,
// with the rows of both copies counted as sent. Reading in hash order
// sorts the table once, on the department's server, for each initial
// copy.
//
// # Bad rows
//
// A row whose citizen ID is invalid (a lower-case x, spaces around it
// and a legacy 15-digit number are not: see Mapping), whose values do
// not convert, or whose event the schemas reject does not stop the
// stream: it is logged with its WAL position, event id, reason and record
// key (the mapping's key columns, key.lease_id=90001, so that the
// department can find the row: the event is not sent and the WAL cannot
// be read again; never the row's other values, and a citizen ID in the
// key is masked, 1101**********1234) and counted in Stats.Rejected (the
// progress log's bad_rows), and its position is confirmed with the rest.
// Fix the row in the table: an update of it streams as any other change.
// A change that lacks a column the mapping reads is not a bad row but a
// table that changed: see below.
//
// # Changes to the table
//
// PostgreSQL describes the table to the stream before its first change
// and again after its definition changed, each time as it was when the
// change was made. The stream knows the table by its OID, which a rename
// keeps, and checks each description against the mapping. When a change
// no longer fits, Run returns ErrTableChanged, saying what changed and
// what to do, without confirming that change: once the table or the
// mapping is fixed, the next start resumes with it, and nothing is lost.
//
//   - A column the mapping reads was renamed or dropped: change the
//     mapping to name the columns as the changes describe them (renaming
//     the column back does not alter the changes made meanwhile). When
//     it was renamed while the stream was stopped, the slot holds changes
//     made before, with the old name, and after, with the new: start
//     with the old mapping, which the start accepts on a slot whose copy
//     is done; it sends the first and stops at the rename; then start
//     with the new mapping. A transaction that made changes on both sides
//     of the rename fits neither mapping.
//   - A column the mapping reads was given another type: check that the
//     mapping reads the new type as it should, and start again; the next
//     start takes the new type (changes made before it keep theirs).
//   - The table was renamed or moved to another schema: rename it back;
//     the changes made under the other name are then sent. The stream
//     does not follow the new name: its slot, publication and mapping are
//     named after the table, and a rename is often the first step of a
//     migration that puts a new table under the old name, whose changes
//     the stream would otherwise miss while it followed the old one.
//   - The table was dropped, or replaced by another under its name (the
//     old one renamed away or dropped): add the new table to the
//     publication (ALTER PUBLICATION pophub_rentals ADD TABLE rentals)
//     and start again. Its changes made before it was published are in no
//     slot, so the next start, finding that the completed copy was of
//     another table (the publication's comment records the copied
//     table's OID), copies the new table as a copy taken again is (see A
//     first start that fails during its copy), then streams its changes.
//
// A rename, drop or replacement may show in no change the stream
// receives: the old table may not change again, and the new one's
// changes are not its. So before it confirms a position, the stream
// checks on a second connection that the configured name still names
// the table it streams (one query, at most once a StatusInterval; until
// the next check the position last checked is confirmed), and stops with
// ErrTableChanged when it does not, having confirmed nothing past the
// position last checked. The same check reads the table's publication:
// should it no longer publish a kind of change the mapping maps, the
// table, or a column the mapping reads (ALTER PUBLICATION ... SET
// (publish = ...), DROP TABLE, SET TABLE with a column list), or have
// been altered at all since the start, the stream stops with
// ErrPublicationChanged, naming the change and the ALTER PUBLICATION
// that fixes it. PostgreSQL decodes each change through the publication
// as it was when the change was made, so a change the publication left
// out is never sent, not even after the fix: the stream cannot recover
// it, only refuse to go on as if nothing was lost.
//   - Deletes are mapped and the table's replica identity no longer keeps
//     the columns they read (set back to DEFAULT, or a partition without
//     FULL): set REPLICA IDENTITY FULL again. A row deleted in between
//     cannot be sent, since PostgreSQL kept only its key: the next start
//     reports it as a bad row.
//
// Adding columns, or changing those the mapping does not read, needs
// nothing.
//
// # Mapping
//
// See Mapping and examples/rentals.yaml:
//
//	source: housing
//	table: rentals
//	citizen_id: tenant_id          # the subject and Kafka key
//	key: [lease_id]                # the record key in the event id
//	time: $commit_time             # the default; or a column
//	insert:
//	  type: housing.rental_registered
//	  data: {lease_id: lease_id, address_code: address_code, start: start_date, end: end_date}
//	delete:
//	  type: housing.rental_ended
//	  data: {lease_id: lease_id, end: "end_date | $commit_date"}
//
// The hub keeps the later of a record's changes by event time, so a
// mapping that dates inserts by a column of the row (time: signed_at)
// and deletes by their commit cannot follow a row deleted and inserted
// again: the insert, dated by the row's old date, never outranks the
// delete. Dating every kind of change by $commit_time orders them as
// the table made them.
//
// The citizen ID is read as `pophub import` reads one: full-width digits
// and Ｘ (typed by an input method in full-width mode) are read as ASCII,
// spaces around it are dropped (a character(18) column pads a 15-digit
// number), and so are characters that show as nothing (a zero-width
// space pasted from a web page), one inside it making the row a bad row
// that names it, a lower-case x is upper-cased, and a legacy 15-digit number
// (GB 11643-1989) is upgraded to its 18-digit form, counted in
// Stats.Upgraded and in the progress the stream logs every minute. Data
// fields that hold a citizen ID (spouse_id) are read the same way. A
// citizen ID column in the record key is taken as read too, so that
// rewriting a legacy number in 18 digits, or a full-width one in ASCII,
// keeps the row's record and event ids.
//
// An update that moves a row to another citizen (the citizen_id column
// changed) or another record key registers it where it is now, with the
// update's event, and, when deletes are mapped, ends it where it was with
// the delete's event of the old row: otherwise the old citizen's record
// would hold it for ever. Citizen IDs are compared as read: an update
// that only upgrades a legacy number or upper-cases an x moves nothing. That end's event id is derived from the old
// record key and the update's WAL position, and differs from the
// update's own.
//
// Values are read as PostgreSQL prints them (DateStyle ISO, TimeZone UTC),
// a character(n) value without the blanks that pad it, as its cast to
// text gives it (the WAL keeps them; the initial copy reads the cast, and
// a key must read alike from both), and shaped by the data field they feed: a bigint lease_id becomes a JSON
// string, a numeric area_m2 a number, a text[] a list. Date fields want
// date columns, or take the date of a timestamp in the mapping's time
// zone. A date or timestamp of infinity or -infinity reads as NULL.
package cdc
