package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// storeIDMeta names the hub_meta row that holds the schema's id: random,
// written by the first Open of the schema and never changed. Hub
// instances of one Kafka consumer group compare their stores' ids
// (ingest.Config.StoreID), as a group split over two stores would commit
// offsets for events that only one of them has. A copy of the schema
// (pg_dump and restore) holds the same row, so the id a Store gives
// (StoreID) adds where the schema is: see placeID.
const storeIDMeta = "store_id"

// ensureStoreID records a new random id for the schema unless it has one,
// and returns the store's id (StoreID).
func ensureStoreID(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("making a store id: %w", err)
	}
	// Two statements, as in checkSealing: an instance opening the schema
	// at the same time may insert first, and a SELECT in the INSERT's
	// statement would not see its row.
	if _, err := pool.Exec(ctx, `INSERT INTO hub_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
		storeIDMeta, hex.EncodeToString(b[:])); err != nil {
		return "", fmt.Errorf("recording the store id: %w", err)
	}
	id, err := readStoreID(ctx, pool)
	if err == nil && id == "" {
		err = errors.New("reading the store id: none recorded")
	}
	return id, err
}

// readStoreID returns the store's id (StoreID), or "" if no hub has
// opened the schema since the id was introduced (OpenExisting records
// nothing).
func readStoreID(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var metaID string
	err := pool.QueryRow(ctx, `SELECT value FROM hub_meta WHERE name = $1`, storeIDMeta).Scan(&metaID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the store id: %w", err)
	}
	place, err := placeID(ctx, pool)
	if err != nil {
		return "", err
	}
	// The hub_meta id first: hubs of the previous release gave it alone,
	// and the consumer group takes it for the same store as any id that
	// starts with it and a slash.
	return metaID + "/" + place, nil
}

// placeID is a short hash of where the schema is, which a copy cannot
// share: the server (its system identifier, kept by physical replicas and
// so by a failover), the database and the schema, by name and OID. The
// same for every Store on the schema however the server is reached (host
// names, addresses, poolers), as every part is the server's own. The
// schema is the connections' search_path (poolConfig).
func placeID(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	system, err := systemIdentifier(ctx, pool)
	if err != nil {
		return "", err
	}
	var db, nsp string
	var dbOID, nspOID uint32
	err = pool.QueryRow(ctx, `SELECT d.datname, d.oid, n.nspname, n.oid FROM pg_database d, pg_namespace n
		WHERE d.datname = current_database() AND n.nspname = current_schema()`).Scan(&db, &dbOID, &nsp, &nspOID)
	if err != nil {
		return "", fmt.Errorf("reading the store's database and schema: %w", err)
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%s\x00%d", system, db, dbOID, nsp, nspOID))
	return hex.EncodeToString(h[:6]), nil
}

// systemIdentifier is the server's system identifier, set when its data
// directory was made: "" when the role may not read it (a managed service
// may revoke pg_control_system from ordinary roles), leaving the database
// and schema to tell copies apart. Any other error fails, rather than
// have this instance's id differ from its peers'.
func systemIdentifier(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var id string
	err := pool.QueryRow(ctx, `SELECT system_identifier::text FROM pg_control_system()`).Scan(&id)
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "42501", "42883", "0A000": // insufficient privilege, no such function, not supported
			return "", nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("reading the server's system identifier: %w", err)
	}
	return id, nil
}

// StoreID identifies the store (see storeIDMeta and placeID): the same
// for every Store on the schema, different for any other schema or
// database, a copy of the schema included. "" only from OpenExisting on
// a schema no hub of this version has opened.
func (s *Store) StoreID() string { return s.id }
