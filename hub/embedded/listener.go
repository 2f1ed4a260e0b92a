package embedded

import (
	"errors"
	"log/slog"
	"net"
	"syscall"
	"time"
)

// steadyListener keeps accepting through errors that pass: kfake's broker
// stops accepting at the first error its listener returns, so a moment
// without file descriptors (a burst of HTTP connections on a host with a
// low `ulimit -n`) closed the embedded broker's port for good, with
// nothing logged, while the rest of the hub ran on without ingest. It
// waits as net/http's server does, 5 ms doubling to 1 s, and logs the
// first error of each run of them.
type steadyListener struct {
	net.Listener
	log *slog.Logger // nil: not logged
}

// passing reports errors of accept(2) that a later call may not have:
// the process or system is out of file descriptors or buffers, or a
// client gave up before its connection was accepted.
func passing(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (l steadyListener) Accept() (net.Conn, error) {
	var wait time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil || !passing(err) {
			if err == nil && wait > 0 && l.log != nil {
				l.log.Info("embedded Kafka broker accepts connections again")
			}
			return c, err
		}
		if wait == 0 {
			wait = 5 * time.Millisecond
			if l.log != nil {
				l.log.Warn("embedded Kafka broker cannot accept a connection; retrying", "err", err)
			}
		} else {
			wait = min(2*wait, time.Second)
		}
		time.Sleep(wait)
	}
}
