package publisher

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
)

// transport is the publisher's Kafka transport: it authenticates with m
// when set, speaks TLS with tc when set, and watches each connection's
// login (watchedConn), so that a broker refusing it is told from a
// connection lost.
func transport(m sasl.Mechanism, tc *tls.Config) *kafka.Transport {
	const dialTimeout = 10 * time.Second
	d := &net.Dialer{Timeout: dialTimeout}
	answered := new(atomic.Bool) // see watchedConn.answered
	return &kafka.Transport{SASL: m, DialTimeout: dialTimeout,
		// TLS is spoken here rather than by kafka-go (which would do it
		// over the dialled connection), so that watchedConn sees the
		// requests in clear.
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if tc != nil {
				cfg := tc
				if cfg.ServerName == "" {
					// As kafka-go does: the broker's host name.
					cfg = tc.Clone()
					if host, _, err := net.SplitHostPort(addr); err == nil {
						cfg.ServerName = host
					} else {
						cfg.ServerName = addr
					}
				}
				tlsConn := tls.Client(c, cfg)
				if err := tlsConn.HandshakeContext(ctx); err != nil {
					c.Close()
					return nil, err
				}
				c = tlsConn
			}
			return &watchedConn{Conn: c, credentials: m != nil, answered: answered, waiting: -1}, nil
		}}
}

// The Kafka API keys of the requests a broker that requires a login
// answers before it.
const (
	keySASLHandshake    = 17
	keyAPIVersions      = 18
	keySASLAuthenticate = 36
)

// LoginError is the error of events not sent because the broker closed
// the connection, without a word, at this client's login. A broker that
// requires SASL answers wrong credentials with [58] SASL Authentication
// Failed, but some close the connection instead: the hub's embedded
// broker (`pophub dev --policy`) does on a wrong password or an unknown
// user. And every such broker closes the connection of a client without
// credentials at its first request after the version check. kafka-go
// reports both as a connection lost (unexpected EOF), which sending again
// may mend; the publisher watches its connections' logins to tell them
// apart.
//
// A LoginError is kafka.SASLAuthenticationFailed to errors.Is and
// errors.As, as the broker's answer would be, and not Retriable: sending
// again fails the same way until the client's credentials are fixed.
// Without credentials it rests on the broker's behaviour alone, and is
// told only until a broker first answered the publisher such a request
// (brokers that do need no login): a broker that closed the connection at
// that very request for another reason (stopping at that moment) before
// would be taken for one that requires a login.
type LoginError struct {
	// Credentials is whether the client logged in (Config.SASL): the
	// broker then closed the connection in answer to its credentials.
	Credentials bool
}

func (e *LoginError) Error() string {
	if e.Credentials {
		return "[58] SASL Authentication Failed: the broker closed the connection in answer to this client's SASL credentials " +
			"(a wrong password, a user it does not know, or a broker that takes no login)"
	}
	return "[58] SASL Authentication Failed: the broker closed the connection at this client's first request after the version check, " +
		"as a broker does that requires SASL credentials of a client that has none (does it require TLS or SASL credentials? " +
		"this client was given no SASL credentials)"
}

// Unwrap makes a LoginError kafka.SASLAuthenticationFailed.
func (e *LoginError) Unwrap() error { return kafka.SASLAuthenticationFailed }

// watchedConn is a connection to a broker that returns a *LoginError in
// place of the end of its stream when the broker closes it at the login
// without a word: while a SaslAuthenticate request awaits its answer
// (credentials), or the first request past ApiVersions does (no
// credentials). It follows the head (size and API key) of each request
// written until the login is over: with credentials at the first request
// of another kind, as kafka-go sends none before it logged in; without,
// once that request is answered. From then on it only passes bytes on.
type watchedConn struct {
	net.Conn
	credentials bool
	// answered is shared by the connections of a transport: set once a
	// broker answered a request past ApiVersions of a client without
	// credentials, which then needs none.
	answered *atomic.Bool
	past     atomic.Bool // the login is over: nothing more to watch

	mu sync.Mutex // guards the rest; kafka-go writes and reads in turn
	// head collects the size and API key of the request being written,
	// rest counts its bytes after them still to come.
	head  [6]byte
	nhead int
	rest  int64
	// waiting is the API key of the last request written while no byte
	// of its answer was read, -1 when none.
	waiting int16
}

func (c *watchedConn) Write(p []byte) (int, error) {
	if !c.past.Load() {
		c.follow(p)
	}
	return c.Conn.Write(p)
}

// follow reads the heads of the requests in p, written next.
func (c *watchedConn) follow(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(p) > 0 {
		if c.rest > 0 {
			n := min(c.rest, int64(len(p)))
			c.rest -= n
			p = p[n:]
			continue
		}
		n := copy(c.head[c.nhead:], p)
		c.nhead += n
		p = p[n:]
		if c.nhead < len(c.head) {
			return
		}
		c.nhead = 0
		c.rest = int64(binary.BigEndian.Uint32(c.head[:4])) - 2 // the size counts the key
		key := int16(binary.BigEndian.Uint16(c.head[4:]))
		if c.credentials && !beforeLogin(key) {
			c.past.Store(true) // logged in
			return
		}
		c.waiting = key
	}
}

// beforeLogin reports whether a request of API key may come before the
// login.
func beforeLogin(key int16) bool {
	return key == keyAPIVersions || key == keySASLHandshake || key == keySASLAuthenticate
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.past.Load() {
		return n, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > 0 {
		if !c.credentials && c.waiting >= 0 && !beforeLogin(c.waiting) {
			c.past.Store(true) // the broker wants no login
			c.answered.Store(true)
		}
		c.waiting = -1
		return n, err
	}
	if err == nil || !closedByBroker(err) {
		return n, err
	}
	switch {
	case c.credentials && c.waiting == keySASLAuthenticate:
		return 0, &LoginError{Credentials: true}
	case !c.credentials && c.waiting >= 0 && !beforeLogin(c.waiting) && !c.answered.Load():
		return 0, &LoginError{}
	}
	return n, err
}

// closedByBroker reports whether a read's err is the end of a connection
// the broker closed.
func closedByBroker(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}
