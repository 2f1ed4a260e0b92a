package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Standby makes an asynchronous streaming-replication standby of pg
// (pg_basebackup -R) in a directory of its own on a free port, and starts
// it: stopped, it stands for a standby lagging behind; started on pg's
// port (SetPort) once pg is stopped, and promoted, for a failover to it.
func (pg *Postgres) Standby(ctx context.Context) (*Postgres, error) {
	root, err := os.MkdirTemp("", "pophub-pg-standby-")
	if err != nil {
		return nil, err
	}
	sb := &Postgres{bin: pg.bin, root: root, data: filepath.Join(root, "data"), log: filepath.Join(root, "postgres.log"), uid: pg.uid, settings: pg.settings}
	if pg.uid != nil {
		// The server runs as pg's user, who must own its directory.
		uid, _ := strconv.Atoi(pg.uid.Uid)
		gid, _ := strconv.Atoi(pg.uid.Gid)
		if err := errors.Join(os.Chmod(root, 0o755), os.Chown(root, uid, gid)); err != nil {
			os.RemoveAll(root)
			return nil, fmt.Errorf("handing the standby's directory to %s: %w", pg.uid.Username, err)
		}
	}
	if sb.port, err = freePort(); err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	if out, err := sb.run(ctx, "pg_basebackup", "-D", sb.data, "-R", "-X", "stream", "-c", "fast",
		"-h", "127.0.0.1", "-p", strconv.Itoa(pg.port), "-U", "postgres"); err != nil {
		os.RemoveAll(root)
		return nil, fmt.Errorf("pg_basebackup: %w: %s", err, out)
	}
	if err := sb.Start(ctx); err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	return sb, nil
}

// Port is the instance's port.
func (pg *Postgres) Port() int { return pg.port }

// SetPort changes the port the next Start listens on.
func (pg *Postgres) SetPort(p int) { pg.port = p }

// Promote ends a standby's recovery (pg_ctl promote -w).
func (pg *Postgres) Promote(ctx context.Context) error {
	if out, err := pg.run(ctx, "pg_ctl", "promote", "-D", pg.data, "-w", "-t", "60"); err != nil {
		return fmt.Errorf("pg_ctl promote: %w: %s", err, out)
	}
	return nil
}
