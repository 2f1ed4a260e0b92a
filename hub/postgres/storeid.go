package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// storeIDMeta names the hub_meta row that holds the store's id: random,
// written by the first Open of the schema and never changed. It tells two
// stores apart however they are reached (another database, another
// schema, another host name for the same server): hub instances of one
// Kafka consumer group compare it (ingest.Config.StoreID), as a group
// split over two stores would commit offsets for events that only one of
// them has.
const storeIDMeta = "store_id"

// ensureStoreID records a new random id for the schema unless it has one,
// and returns the one it has.
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

// readStoreID returns the schema's store id, or "" if no hub has opened
// it since the id was introduced (OpenExisting records nothing).
func readStoreID(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var id string
	err := pool.QueryRow(ctx, `SELECT value FROM hub_meta WHERE name = $1`, storeIDMeta).Scan(&id)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("reading the store id: %w", err)
	}
	return id, nil
}

// StoreID is the schema's id (see storeIDMeta): the same for every Store
// on the schema, different for any other schema or database. "" only from
// OpenExisting on a schema no hub of this version has opened.
func (s *Store) StoreID() string { return s.id }
