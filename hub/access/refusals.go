package access

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RefusalLimit bounds the audit entries of requests whose credentials
// identify nobody (401). Such a request has no identity, so no identity's
// token bucket holds it back, and the audit trail can be neither trimmed
// nor purged early: without a bound, anyone who can reach the port could
// fill it. Each client address gets a token bucket of refusals audited
// one by one; past it a refused request is answered 429 instead of 401,
// is not audited on its own, and counts towards one summary entry per
// address and Interval ("N refused requests from ADDR suppressed in the
// last T"). Requests that authenticate never touch these buckets, so a
// flood of bad tokens from an address does not lock out a valid token
// from the same address (a NAT, a department's proxy).
//
// The address is the TCP peer (http.Request.RemoteAddr): the hub has no
// notion of a trusted proxy, and X-Forwarded-For is the client's to
// forge. IPv6 peers count per /64, the block one subscriber usually
// holds. The zero value is the defaults.
type RefusalLimit struct {
	// RPS and Burst are each address's bucket of individually audited
	// refusals (default 1 a second, 20 at once). Twenty is more than a
	// misconfigured client or a person mistyping a token produces before
	// someone notices, and each is then on record with its route; one a
	// second matches the Retry-After of the 429 (1 s) and bounds one
	// address at 86,400 entries a day plus one summary a minute, against
	// thousands a second unbounded.
	RPS   float64
	Burst int
	// Interval is how often an address's suppressed refusals are written
	// as one summary entry (default one minute), counted from the first
	// suppressed one.
	Interval time.Duration
	// Addresses bounds the addresses tracked at once (default 10,000, a
	// few megabytes). When every slot holds an address that is still being
	// limited, further addresses share one bucket (reported as "other
	// addresses"); an address whose bucket has refilled is forgotten,
	// which changes nothing for it.
	Addresses int
}

func (c *RefusalLimit) setDefaults() {
	if c.RPS <= 0 {
		c.RPS = 1
	}
	if c.Burst <= 0 {
		c.Burst = 20
	}
	if c.Interval <= 0 {
		c.Interval = time.Minute
	}
	if c.Addresses <= 0 {
		c.Addresses = 10_000
	}
}

// otherAddresses names the shared bucket of addresses beyond
// RefusalLimit.Addresses.
const otherAddresses = "other addresses"

// refusalLimiter is the per-address limit of audited refusals. It is safe
// for concurrent use.
type refusalLimiter struct {
	cfg RefusalLimit
	now func() time.Time
	// report writes the summary of n refusals of addr suppressed since a
	// bucket's first suppressed one, the first of them on route. It is
	// called on a timer's goroutine, without mu held.
	report func(addr, route string, n int)

	mu        sync.Mutex
	buckets   map[string]*refusalBucket
	overflow  *refusalBucket
	nextSweep time.Time // when a full table may be swept again
}

// refusalBucket is one address's bucket. Its fields but lim are guarded
// by refusalLimiter.mu.
type refusalBucket struct {
	addr       string
	lim        *rate.Limiter
	suppressed int         // refusals not audited since the timer started
	route      string      // of the first of them
	timer      *time.Timer // pending summary, or nil
	gen        int         // counts timers, so that a stale one does nothing
}

func newRefusalLimiter(cfg RefusalLimit, now func() time.Time, report func(addr, route string, n int)) *refusalLimiter {
	cfg.setDefaults()
	l := &refusalLimiter{cfg: cfg, now: now, report: report, buckets: map[string]*refusalBucket{}}
	l.overflow = l.newBucket(otherAddresses)
	return l
}

func (l *refusalLimiter) newBucket(addr string) *refusalBucket {
	return &refusalBucket{addr: addr, lim: rate.NewLimiter(rate.Limit(l.cfg.RPS), l.cfg.Burst)}
}

// allow reports whether a refusal from remoteAddr on route is audited on
// its own. When it is not, it is counted for the address's summary.
func (l *refusalLimiter) allow(remoteAddr, route string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(clientAddr(remoteAddr), now)
	if b.lim.AllowN(now, 1) {
		return true
	}
	b.suppressed++
	if b.timer == nil {
		b.route = route
		b.gen++
		gen := b.gen
		b.timer = time.AfterFunc(l.cfg.Interval, func() { l.flush(b, gen) })
	}
	return false
}

// bucket returns addr's bucket, making one when there is room.
func (l *refusalLimiter) bucket(addr string, now time.Time) *refusalBucket {
	if b, ok := l.buckets[addr]; ok {
		return b
	}
	if len(l.buckets) >= l.cfg.Addresses && !now.Before(l.nextSweep) {
		l.sweep(now)
	}
	if len(l.buckets) >= l.cfg.Addresses {
		return l.overflow
	}
	b := l.newBucket(addr)
	l.buckets[addr] = b
	return b
}

// sweep forgets the addresses whose bucket is full again and which have
// no summary pending: a fresh bucket is the same. A table full of busy
// addresses is swept at most once a second, so that a flood from many
// addresses does not make every refusal walk the table.
func (l *refusalLimiter) sweep(now time.Time) {
	l.nextSweep = now.Add(time.Second)
	for addr, b := range l.buckets {
		if b.timer == nil && b.lim.TokensAt(now) >= float64(l.cfg.Burst) {
			delete(l.buckets, addr)
		}
	}
}

// flush reports b's suppressed refusals, when its timer gen is still
// the pending one, and starts its next interval.
func (l *refusalLimiter) flush(b *refusalBucket, gen int) {
	l.mu.Lock()
	if b.timer == nil || b.gen != gen {
		l.mu.Unlock()
		return // flushed by flushAll
	}
	n, route := b.take()
	l.mu.Unlock()
	l.report(b.addr, route, n)
}

// take ends b's interval: its count and route, its timer stopped. It is
// called with mu held.
func (b *refusalBucket) take() (int, string) {
	n, route := b.suppressed, b.route
	b.timer.Stop()
	b.suppressed, b.route, b.timer = 0, "", nil
	return n, route
}

// flushAll reports every pending summary now.
func (l *refusalLimiter) flushAll() {
	type summary struct {
		addr, route string
		n           int
	}
	var due []summary
	l.mu.Lock()
	for _, b := range l.buckets {
		if b.timer != nil {
			n, route := b.take()
			due = append(due, summary{b.addr, route, n})
		}
	}
	if l.overflow.timer != nil {
		n, route := l.overflow.take()
		due = append(due, summary{l.overflow.addr, route, n})
	}
	l.mu.Unlock()
	for _, s := range due {
		l.report(s.addr, s.route, s.n)
	}
}

// clientAddr is the key of a request's peer: its IPv4 address, its IPv6
// /64, or RemoteAddr as it is when it is no IP address (a Unix socket).
func clientAddr(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
