package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// Postgres is a private PostgreSQL instance made with the machine's
// binaries (initdb, pg_ctl): its own data directory in a temporary
// directory, a free port on 127.0.0.1, trust authentication, user
// postgres. It can be stopped in any shutdown mode and started again on
// the same port. When the process runs as root, which initdb refuses, the
// server runs as the system user "postgres".
type Postgres struct {
	bin  string // directory of initdb, pg_ctl
	root string // temporary directory (removed by Close)
	data string
	log  string
	port int
	uid  *user.User // nil: run as ourselves
	// settings are the server settings asked for, name=value each.
	settings []string
}

// FindPostgresBin returns the newest /usr/lib/postgresql/*/bin holding
// initdb and pg_ctl, or the directory of initdb on PATH.
func FindPostgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isFile(filepath.Join(d, "initdb")) && isFile(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin or on PATH")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// StartPostgres creates and starts a private instance, with settings
// (name=value each, "wal_level=logical") on top of its fixed ones.
func StartPostgres(ctx context.Context, settings ...string) (*Postgres, error) {
	bin, err := FindPostgresBin()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "pophub-pg-")
	if err != nil {
		return nil, err
	}
	pg := &Postgres{bin: bin, root: root, data: filepath.Join(root, "data"), log: filepath.Join(root, "postgres.log"), settings: settings}
	fail := func(err error) (*Postgres, error) {
		os.RemoveAll(root)
		return nil, err
	}
	if os.Geteuid() == 0 {
		if pg.uid, err = user.Lookup("postgres"); err != nil {
			return fail(fmt.Errorf("running as root, and initdb refuses root: looking up user postgres: %w", err))
		}
		uid, _ := strconv.Atoi(pg.uid.Uid)
		gid, _ := strconv.Atoi(pg.uid.Gid)
		if err := os.Chmod(root, 0o755); err != nil {
			return fail(err)
		}
		if err := os.Chown(root, uid, gid); err != nil {
			return fail(err)
		}
	}
	if pg.port, err = freePort(); err != nil {
		return fail(err)
	}
	if out, err := pg.run(ctx, "initdb", "-D", pg.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		return fail(fmt.Errorf("initdb: %w: %s", err, out))
	}
	if err := pg.Start(ctx); err != nil {
		return fail(err)
	}
	return pg, nil
}

// URL is the connection string for database postgres.
func (pg *Postgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
}

// Addr is 127.0.0.1:port.
func (pg *Postgres) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(pg.port)) }

// Start starts the server and waits until it accepts connections.
func (pg *Postgres) Start(ctx context.Context) error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=60 -c shared_buffers=64MB", pg.port, pg.root)
	for _, s := range pg.settings {
		opts += " -c " + s
	}
	if out, err := pg.run(ctx, "pg_ctl", "start", "-D", pg.data, "-l", pg.log, "-w", "-t", "60", "-o", opts); err != nil {
		return fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, pg.Log())
	}
	return nil
}

// Stop stops the server in mode "smart", "fast" or "immediate" (the last
// is a crash: no checkpoint, recovery on the next start) and waits.
func (pg *Postgres) Stop(ctx context.Context, mode string) error {
	if out, err := pg.run(ctx, "pg_ctl", "stop", "-D", pg.data, "-m", mode, "-w", "-t", "60"); err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %w: %s", mode, err, out)
	}
	return nil
}

// Log returns the server log's last few kilobytes.
func (pg *Postgres) Log() string {
	b, _ := os.ReadFile(pg.log)
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

// Close stops the server (immediately) and removes its directory.
func (pg *Postgres) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if isFile(filepath.Join(pg.data, "postmaster.pid")) {
		pg.Stop(ctx, "immediate")
	}
	return os.RemoveAll(pg.root)
}

func (pg *Postgres) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	path := filepath.Join(pg.bin, prog)
	var cmd *exec.Cmd
	if pg.uid != nil {
		cmd = exec.CommandContext(ctx, "setpriv", append([]string{"--reuid=" + pg.uid.Uid, "--regid=" + pg.uid.Gid, "--clear-groups", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = pg.root
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// pg_ctl start leaves the postmaster running with our pipes as its
	// output unless told otherwise (-l): do not wait for them to close.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil
	}
	return out.Bytes(), err
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
