// Package faults is test support for the hub's fault tests: a TCP proxy
// that cuts, delays and resets connections, and a private PostgreSQL
// instance that can be stopped and started again on the same port. It
// holds no production code.
package faults

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards TCP connections from its own address to a target, and
// can cut, delay, reset and refuse them on request. It is safe for
// concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	latency atomic.Int64 // nanoseconds added to every chunk, each way
	down    atomic.Bool  // refuse new connections

	mu    sync.Mutex
	conns map[*link]struct{}
	wg    sync.WaitGroup

	accepted atomic.Int64
	closed   atomic.Bool
}

// link is one proxied connection: the client side and the target side.
type link struct {
	client, server *net.TCPConn
	once           sync.Once
	// stalled: the link carries nothing more, either way, and closes
	// neither side (Stall).
	stalled atomic.Bool
}

// NewProxy listens on 127.0.0.1 at a free port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the host:port clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Accepted counts the connections accepted so far (refused ones included).
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// SetLatency delays every chunk of data by d in each direction (zero: none).
// Data already in flight keeps the delay it was read with.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// SetDown refuses (accepts and at once closes) new connections while down,
// as a server that is gone would; existing connections are not touched.
func (p *Proxy) SetDown(down bool) { p.down.Store(down) }

// Cut closes every open connection with an orderly FIN, as a server going
// away cleanly would. Returns how many it closed.
func (p *Proxy) Cut() int { return p.closeAll(false) }

// Reset aborts every open connection with a TCP RST (SO_LINGER 0), as a
// crashed peer or a middlebox dropping state would. Returns how many.
func (p *Proxy) Reset() int { return p.closeAll(true) }

// Stall makes every open connection silently carry nothing more, either
// way, not even a close, as a network path that drops every packet would,
// or a firewall that forgot the flow: each end's writes succeed and
// nothing arrives. New connections are not touched. Returns how many it
// stalled.
func (p *Proxy) Stall() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.conns {
		l.stalled.Store(true)
	}
	return len(p.conns)
}

// Close stops listening and closes every connection. Safe to call twice.
func (p *Proxy) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	err := p.ln.Close()
	p.closeAll(false)
	p.wg.Wait()
	return err
}

func (p *Proxy) closeAll(rst bool) int {
	p.mu.Lock()
	links := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close(rst)
	}
	return len(links)
}

func (l *link) close(rst bool) {
	l.once.Do(func() {
		if rst {
			l.client.SetLinger(0)
			l.server.SetLinger(0)
		}
		l.client.Close()
		l.server.Close()
	})
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		client := c.(*net.TCPConn)
		if p.down.Load() {
			client.SetLinger(0)
			client.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

func (p *Proxy) serve(client *net.TCPConn) {
	defer p.wg.Done()
	sc, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.SetLinger(0)
		client.Close()
		return
	}
	l := &link{client: client, server: sc.(*net.TCPConn)}
	p.mu.Lock()
	if p.closed.Load() {
		p.mu.Unlock()
		l.close(false)
		return
	}
	p.conns[l] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(l, l.server, l.client) })
	wg.Go(func() { p.pipe(l, l.client, l.server) })
	wg.Wait()
	l.close(false)
	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
}

// chunk is data read at a time, due for writing after the latency.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, holding each chunk back by the latency set when
// it was read, without limiting throughput to one chunk per latency.
func (p *Proxy) pipe(l *link, dst, src *net.TCPConn) {
	defer func() {
		if !l.stalled.Load() {
			l.close(false)
		}
	}()
	q := make(chan chunk, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			if d := time.Until(c.due); d > 0 {
				time.Sleep(d)
			}
			if l.stalled.Load() {
				continue // lost on the way
			}
			if _, err := dst.Write(c.data); err != nil {
				l.close(false)
				for range q {
				}
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			q <- chunk{data: append([]byte(nil), buf[:n]...), due: time.Now().Add(time.Duration(p.latency.Load()))}
		}
		if err != nil {
			break // EOF or closed: flush what was read, then close both sides
		}
	}
	close(q)
	<-done
}
