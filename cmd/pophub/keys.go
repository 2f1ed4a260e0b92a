package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/sealing"
)

// noKeys is the --keys value that runs a store in clear, for a development
// data directory written before stores were sealed.
const noKeys = "none"

// keysFlag adds --keys, the same for every command that opens a store.
func keysFlag(f *pflag.FlagSet, file *string, what string) {
	f.StringVar(file, "keys", os.Getenv("POPHUB_KEYS_FILE"),
		"key file sealing personal data at rest, from 'pophub keys init' (env POPHUB_KEYS_FILE; or POPHUB_KEYS holding its contents)"+what)
}

// keySource picks where a store's keys come from: a KMS client given in
// the Config, --keys, POPHUB_KEYS, or (dev, with a data directory) the
// generated <data>/keys. It returns nil for a store in clear.
func (m *Main) keySource() (sealing.KeySource, error) {
	c := &m.Config
	switch {
	case c.KeySource != nil:
		return c.KeySource, nil
	case c.KeysFile == noKeys:
		return nil, nil
	case c.KeysFile != "":
		return sealing.File(c.KeysFile), nil
	case os.Getenv("POPHUB_KEYS") != "":
		return sealing.Env("POPHUB_KEYS"), nil
	case !c.Embedded:
		// Production stores hold a province's records: in clear only when
		// the operator says so (--keys none), and never silently.
		m.Logger.Warn("personal data will be stored in clear: give --keys FILE (from 'pophub keys init') or POPHUB_KEYS to seal it, or --keys none to say it is meant")
		return nil, nil
	case c.DataDir == "":
		return nil, nil
	}
	path := filepath.Join(c.DataDir, "keys")
	if _, err := os.Stat(path); err == nil {
		return sealing.File(path), nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading the key file: %w", err)
	}
	if c.PostgresURL == "" {
		if err := missingKeysOfSealedStore(c.DataDir); err != nil {
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(c.DataDir, "store")); err == nil {
			// A data directory from before sealing: keep it readable.
			m.Logger.Warn("the memdb store under --data is in clear; start with a new --data directory to seal it", "dir", c.DataDir)
			return nil, nil
		}
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	if err := sealing.CreateFile(path); err != nil {
		return nil, fmt.Errorf("generating keys: %w", err)
	}
	m.Logger.Info("keys generated: personal data at rest is sealed with them", "file", path)
	return sealing.File(path), nil
}

// memdbSealMark is the file hub/memdb writes in a store directory it
// seals (the keyring's check value); a directory without it is in clear.
const memdbSealMark = "keys.check"

// missingKeysOfSealedStore refuses a data directory whose memdb store was
// sealed with <data>/keys when that file is gone: the store is not in
// clear, and a newly generated key could never open it.
func missingKeysOfSealedStore(dataDir string) error {
	store := filepath.Join(dataDir, "store")
	_, err := os.Stat(filepath.Join(store, memdbSealMark))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("reading the sealing mode of the store under %s: %w", store, err)
	}
	return fmt.Errorf("%s is missing but the store under %s is sealed with it: restore that file from the backup "+
		"(a new key cannot open the store), or give its keys (--keys or POPHUB_KEYS)", filepath.Join(dataDir, "keys"), store)
}

// loadKeys loads the keyring of a tool given --keys (or POPHUB_KEYS), or
// of a data directory that has <data>/keys; nil for a store in clear.
func loadKeys(ctx context.Context, file, dataDir string) (*sealing.Keyring, error) {
	var src sealing.KeySource
	switch {
	case file == noKeys:
		return nil, nil
	case file != "":
		src = sealing.File(file)
	case os.Getenv("POPHUB_KEYS") != "":
		src = sealing.Env("POPHUB_KEYS")
	case dataDir != "":
		path := filepath.Join(dataDir, "keys")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, missingKeysOfSealedStore(dataDir)
		} else if err != nil {
			return nil, fmt.Errorf("reading the key file: %w", err)
		}
		src = sealing.File(path)
	default:
		return nil, nil
	}
	return sealing.Load(ctx, src)
}

func keysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the keys that seal personal data at rest",
		Long: `A key file holds the HMAC-SHA-256 key that turns citizen IDs into storage keys
(never rotated) and the versioned AES-256-GCM data keys that seal golden records,
history and notifications in the store; the newest version seals. Keep it out of the
database's backups, mode 0600.`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "init FILE",
		Short: "Create a new key file (refuses to overwrite one)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sealing.CreateFile(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %s (data key version 1)\n", args[0])
			return nil
		},
	}, &cobra.Command{
		Use:   "add FILE",
		Short: "Add a new data key version, which seals from the next start on",
		Long: `Adds a data key version to the key file. Restart every hub instance with the file,
then run 'pophub keys rotate' to re-seal what older versions sealed (memdb re-seals by
itself: the snapshot written at the next stop uses the new version).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := sealing.AddToFile(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added data key version %d to %s\n", v, args[0])
			return nil
		},
	}, keysRotateCommand())
	return cmd
}

func keysRotateCommand() *cobra.Command {
	var pgURL, schema, keysFile string
	var batch int
	cmd := &cobra.Command{
		Use:   "rotate --postgres URL [--schema S] --keys FILE",
		Short: "Re-seal, with the newest data key, everything sealed with an older one",
		Long: `Walks persons, history and the outbox and re-seals every value sealed with a data
key older than the newest, in short transactions of --batch rows, while the hub runs.
Start every hub instance with the new key file first.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if pgURL == "" {
				return errors.New("--postgres is required")
			}
			keys, err := loadKeys(ctx, keysFile, "")
			if err != nil {
				return err
			}
			if keys == nil {
				return errors.New("--keys is required")
			}
			s, err := postgres.OpenExisting(ctx, postgres.Config{URL: pgURL, Schema: schema, Keys: keys, CacheSize: -1, MaxConns: 2})
			if err != nil {
				return storeOpenError(err)
			}
			defer s.Close()
			out := cmd.OutOrStdout()
			start, last := time.Now(), time.Now()
			n, err := s.Reseal(ctx, batch, func(table string, n int64) {
				if time.Since(last) >= time.Second {
					fmt.Fprintf(out, "%s: %d values re-sealed so far\n", table, n)
					last = time.Now()
				}
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "re-sealed %d values with data key version %d in %s\n", n, keys.Newest(), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&pgURL, "postgres", os.Getenv("POPHUB_POSTGRES"), "PostgreSQL URL of the hub's store (env POPHUB_POSTGRES)")
	f.StringVar(&schema, "schema", os.Getenv("POPHUB_POSTGRES_SCHEMA"), "schema of the hub's tables (env POPHUB_POSTGRES_SCHEMA; default: the one the --postgres URL's search_path names, else public)")
	batch = 1000
	f.Var((*positiveInt)(&batch), "batch", "rows per transaction")
	keysFlag(f, &keysFile, "")
	return cmd
}
