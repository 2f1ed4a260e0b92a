package memdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pophub/pophub/hub"
)

// streamMarksName is the file in Dir where the outbox relay keeps its last
// look at each notification stream (notify.StreamMarks), by stream name.
// It holds no personal data, and is not sealed.
const streamMarksName = "stream-marks.json"

// StreamMark returns the relay's last saved look at the stream, and false
// when none was saved.
func (s *Store) StreamMark(_ context.Context, stream string) (hub.StreamMark, bool, error) {
	s.marksMu.Lock()
	defer s.marksMu.Unlock()
	marks, err := s.readMarksLocked()
	if err != nil {
		return hub.StreamMark{}, false, err
	}
	m, ok := marks[stream]
	return m, ok, nil
}

// SaveStreamMark replaces the relay's saved look at the stream: in Dir,
// a new file synced and renamed over the old.
func (s *Store) SaveStreamMark(_ context.Context, stream string, m hub.StreamMark) error {
	s.marksMu.Lock()
	defer s.marksMu.Unlock()
	marks, err := s.readMarksLocked()
	if err != nil {
		// A damaged file would otherwise stop every save for good: it
		// is written anew, with this stream's mark only.
		s.cfg.Logger.Warn("the notification streams' marks are unreadable: writing them anew", "err", err)
		marks = map[string]hub.StreamMark{}
	}
	marks[stream] = m
	if s.cfg.Dir == "" {
		s.marks = marks
		return nil
	}
	b, err := json.Marshal(marks)
	if err != nil {
		return fmt.Errorf("saving the mark of stream %s: %w", stream, err)
	}
	path := filepath.Join(s.cfg.Dir, streamMarksName)
	tmp := path + ".tmp"
	if err := writeSynced(tmp, b); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("saving the mark of stream %s: %w", stream, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("saving the mark of stream %s: %w", stream, err)
	}
	return nil
}

// readMarksLocked returns a copy of the saved marks, from Dir or, for a
// store in memory, from memory.
func (s *Store) readMarksLocked() (map[string]hub.StreamMark, error) {
	marks := map[string]hub.StreamMark{}
	if s.cfg.Dir == "" {
		for k, v := range s.marks {
			marks[k] = v
		}
		return marks, nil
	}
	b, err := os.ReadFile(filepath.Join(s.cfg.Dir, streamMarksName))
	if errors.Is(err, fs.ErrNotExist) {
		return marks, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &marks)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the notification streams' marks: %w", err)
	}
	return marks, nil
}
