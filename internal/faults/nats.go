package faults

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// NATSProcess is the machine's nats-server binary run as a child process
// with JetStream on a private store directory and a fixed free port, so
// that it can be killed with a real SIGKILL and started again: what an
// in-process server cannot show faithfully (its Shutdown always flushes
// the file store, and a killed process loses what it had buffered but not
// yet written).
type NATSProcess struct {
	bin  string
	dir  string
	conf string
	port int
	cmd  *exec.Cmd
	exit chan struct{}
}

// NATSProcessConfig configures a NATSProcess.
type NATSProcessConfig struct {
	// Bin is the nats-server binary (default: FindNATSServer).
	Bin string
	// Dir holds the configuration and the JetStream store (required).
	Dir string
	// SyncAlways fsyncs every write (sync_interval: always, as
	// ops/docker/nats.conf does); otherwise the server's default applies
	// (fsync every two minutes).
	SyncAlways bool
}

// FindNATSServer returns the path of the nats-server binary.
func FindNATSServer() (string, error) {
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"} {
		if isFile(p) {
			return p, nil
		}
	}
	return "", errors.New("no nats-server binary on PATH")
}

// BuildNATSServer builds the nats-server of the module's own
// github.com/nats-io/nats-server/v2 requirement into dir and returns its
// path: the version the hub is tested with in-process, and one that knows
// sync_interval (the machine's may be older). Run from inside the module.
func BuildNATSServer(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "nats-server")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building nats-server: %w: %s", err, out)
	}
	return bin, nil
}

// StartNATSProcess starts the server and waits until it accepts
// connections.
func StartNATSProcess(ctx context.Context, cfg NATSProcessConfig) (*NATSProcess, error) {
	bin := cfg.Bin
	if bin == "" {
		var err error
		if bin, err = FindNATSServer(); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	n := &NATSProcess{bin: bin, dir: cfg.Dir, conf: filepath.Join(cfg.Dir, "nats.conf"), port: port}
	sync := ""
	if cfg.SyncAlways {
		sync = "\n  sync_interval: always"
	}
	conf := fmt.Sprintf("listen: 127.0.0.1:%d\nserver_name: pophub-fault\njetstream {\n  store_dir: %q%s\n}\n", port, filepath.Join(cfg.Dir, "js"), sync)
	if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// URL is the nats:// URL clients connect to.
func (n *NATSProcess) URL() string { return "nats://" + n.Addr() }

// Addr is 127.0.0.1:port.
func (n *NATSProcess) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

// Start starts the server (again) on its port and store.
func (n *NATSProcess) Start(ctx context.Context) error {
	if n.cmd != nil {
		return errors.New("nats-server already running")
	}
	log, err := os.OpenFile(filepath.Join(n.dir, "nats.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(n.bin, "-c", n.conf)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting nats-server: %w", err)
	}
	n.cmd, n.exit = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		close(n.exit)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", n.Addr(), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-n.exit:
			n.cmd = nil
			return fmt.Errorf("nats-server exited at start: see %s", filepath.Join(n.dir, "nats.log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("nats-server not listening after 30s")
		}
	}
}

// Stop sends sig (SIGTERM: graceful, flushing the store; SIGKILL: kill -9)
// and waits for the process to exit.
func (n *NATSProcess) Stop(sig syscall.Signal) error {
	if n.cmd == nil {
		return nil
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return err
	}
	select {
	case <-n.exit:
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		<-n.exit
	}
	n.cmd = nil
	return nil
}

// Close kills the server. The directory belongs to the caller.
func (n *NATSProcess) Close() error { return n.Stop(syscall.SIGKILL) }
