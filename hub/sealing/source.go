package sealing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pophub/pophub/internal/durable"
)

// KeySource supplies keyring material. A KMS or HSM client implements it
// (unwrapping data keys it holds); File and Env serve development and
// small deployments. Material is called once when a store opens; it may
// block and should honour ctx.
type KeySource interface {
	Material(ctx context.Context) (Material, error)
}

// Load builds a keyring from a source.
func Load(ctx context.Context, src KeySource) (*Keyring, error) {
	m, err := src.Material(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading keys: %w", err)
	}
	return New(m)
}

// File is a key file: Material's JSON, readable by its owner only.
type File string

// Material implements KeySource. It refuses a file that others can read,
// and one it cannot parse with an error naming the file and what to do.
func (f File) Material(context.Context) (Material, error) {
	fi, err := os.Stat(string(f))
	if err != nil {
		return Material{}, fmt.Errorf("reading key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Material{}, fmt.Errorf("reading key file %s: mode %v lets others read it; chmod 600", f, fi.Mode().Perm())
	}
	b, err := os.ReadFile(string(f))
	if err != nil {
		return Material{}, fmt.Errorf("reading key file: %w", err)
	}
	return f.parse(b)
}

// parse parses the file's contents. The hub cannot start without its
// keys, so an error says which file and what to do: an empty file is
// what a first start killed while creating it left before key files were
// written whole (CreateFile), and nothing can have been sealed with it;
// a file cut short or changed may have sealed data and is only to be
// restored, never replaced.
func (f File) parse(b []byte) (Material, error) {
	if len(b) == 0 {
		return Material{}, fmt.Errorf("key file %s is empty, most likely left by a first start that was interrupted while creating it; "+
			"nothing can have been sealed with an empty key file, so remove it and create it again ('pophub keys init', "+
			"or a start with --data and no --keys generates <data>/keys); if it held keys before, restore it from the backup instead", f)
	}
	m, err := parse(b)
	if err != nil {
		return Material{}, fmt.Errorf("key file %s is damaged (%w): restore it from the backup", f, err)
	}
	return m, nil
}

// Env is the name of an environment variable holding a key file's
// contents (POPHUB_KEYS).
type Env string

// Material implements KeySource.
func (e Env) Material(context.Context) (Material, error) {
	v, ok := os.LookupEnv(string(e))
	if !ok || v == "" {
		return Material{}, fmt.Errorf("reading keys: %s is not set", string(e))
	}
	m, err := parse([]byte(v))
	if err != nil {
		return Material{}, fmt.Errorf("keys in %s: %w", string(e), err)
	}
	return m, nil
}

func parse(b []byte) (Material, error) {
	var m Material
	if err := json.Unmarshal(b, &m); err != nil {
		return Material{}, fmt.Errorf("parsing keys: %w", err)
	}
	if _, err := New(m); err != nil {
		return Material{}, err
	}
	return m, nil
}

// CreateFile writes fresh material to a new key file with mode 0600; it
// refuses to overwrite one, whose loss would make sealed data unreadable.
// The file appears whole or not at all (createWhole): a first start
// killed, or out of disk space, while creating it leaves no empty key
// file to stop the next start.
func CreateFile(path string) error {
	m, err := Generate()
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := makeDirs(filepath.Dir(path)); err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	return createWhole(path, append(b, '\n'))
}

// makeDirs makes dir and its missing parents, readable by their owner
// only (`pophub keys init /etc/pophub/keys` on a fresh machine), and syncs
// the parent of each one it made: a directory just made must outlast a
// power cut as the key will. Nothing above a directory that existed is
// touched (its parent may not be readable: 0711 on a hardened host).
func makeDirs(dir string) error {
	var missing []string // deepest first
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, d := range missing {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// createWhole writes b to a new file at path, mode 0600, failing with
// fs.ErrExist if path exists; the file appears whole or not at all
// (durable.CreateNew). A directory that cannot be synced is reported.
func createWhole(path string, b []byte) error {
	err := durable.CreateNew(path, func(f *os.File) error { _, err := f.Write(b); return err })
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	return nil
}

// AddToFile adds a data key version to a key file (replacing it
// atomically) and returns the new version.
func AddToFile(ctx context.Context, path string) (uint32, error) {
	m, err := File(path).Material(ctx)
	if err != nil {
		return 0, err
	}
	if err := m.AddDataKey(); err != nil {
		return 0, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return 0, err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("writing key file: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("writing key file: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return 0, fmt.Errorf("writing key file: %w", err)
	}
	return m.Data[len(m.Data)-1].Version, nil
}

// syncDir makes the names in dir durable: a key file created or renamed
// there is otherwise lost to a power failure even though its contents
// were synced, and with it every row sealed since. A variable so that
// tests can see it called.
var syncDir = durable.SyncDir
