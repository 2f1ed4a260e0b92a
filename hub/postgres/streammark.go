package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub"
)

// streamMarkPrefix starts the hub_meta names under which the outbox relay
// keeps its last look at each notification stream (notify.StreamMarks).
// In the schema, so that the instance taking the relay's lease over reads
// what the last leader saw.
const streamMarkPrefix = "stream_mark:"

// StreamMark returns the relay's last saved look at the stream, and false
// when none was saved.
func (s *Store) StreamMark(ctx context.Context, stream string) (hub.StreamMark, bool, error) {
	var m hub.StreamMark
	var v string
	err := s.pool.QueryRow(ctx, `SELECT value FROM hub_meta WHERE name = $1`, streamMarkPrefix+stream).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("reading the mark of stream %s: %w", stream, err)
	}
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return hub.StreamMark{}, false, fmt.Errorf("reading the mark of stream %s: %w", stream, err)
	}
	return m, true, nil
}

// SaveStreamMark replaces the relay's saved look at the stream.
func (s *Store) SaveStreamMark(ctx context.Context, stream string, m hub.StreamMark) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("saving the mark of stream %s: %w", stream, err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO hub_meta (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, streamMarkPrefix+stream, string(b)); err != nil {
		return fmt.Errorf("saving the mark of stream %s: %w", stream, err)
	}
	return nil
}
