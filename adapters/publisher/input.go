package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// errClosing is what a stoppableReader returns once the publisher is
// being closed; PublishJSONL reports it as a *closedReadingError.
var errClosing = errors.New("the publisher is being closed")

// closedReadingError is the error of a PublishFile or PublishJSONL call
// that Close stopped while it read its input: the lines up to line were
// sent as the FileReport says (send is why sending failed as a whole, if
// it did), the others not. It is ErrClosed to errors.Is, and so not
// Retriable with this publisher.
type closedReadingError struct {
	line int // the last line read whole
	send error
}

func (e *closedReadingError) Error() string {
	msg := fmt.Sprintf("the publisher was closed while the events were being read: the lines after line %d were not read, nor sent", e.line)
	if e.send != nil {
		msg = e.send.Error() + "; " + msg
	}
	return msg
}

func (e *closedReadingError) Is(target error) bool { return target == ErrClosed }

func (e *closedReadingError) Unwrap() error { return e.send }

// stoppableReader reads r in a goroutine of its own, so that PublishJSONL
// stops waiting for its input as soon as its context is done or the
// publisher is being closed, even while r's Read blocks: a pipe, a socket
// or a terminal that has nothing more to give for now.
//
// Once stopped, it starts no other Read of r. A Read of r under way then
// goes on in the goroutine until r returns, and whatever it returns is
// dropped: reading from a pipe, that part of its stream is lost (closing r,
// as PublishFile closes its file, ends such a Read at once). What r
// returned before the publisher is being closed is read out first; when
// ctx is done it is not: an interrupted call sends nothing more anyway.
type stoppableReader struct {
	ctx     context.Context
	closing <-chan struct{}
	reads   chan readResult // r's reads, in order
	free    chan []byte     // buffers the goroutine may read into
	quit    chan struct{}   // closed by stop: the goroutine ends
	ended   chan struct{}   // closed when the goroutine ends
	// reading is set while the goroutine may be in r's Read, or about to
	// start one it will not start once stopping.
	reading atomic.Bool
	buf     []byte // the buffer of the last read, given back once read out
	rest    []byte // the part of buf not read out yet
	err     error  // r's error, returned once rest is read out
}

type readResult struct {
	b   []byte
	err error
}

// readBuffer is the size of each of the two buffers r is read into: a
// syscall per 256 KiB of a file costs nothing next to the validation.
const readBuffer = 256 << 10

func newStoppableReader(ctx context.Context, closing <-chan struct{}, r io.Reader) *stoppableReader {
	s := &stoppableReader{ctx: ctx, closing: closing, reads: make(chan readResult),
		free: make(chan []byte, 2), quit: make(chan struct{}), ended: make(chan struct{})}
	s.free <- make([]byte, readBuffer)
	s.free <- make([]byte, readBuffer)
	go s.run(r)
	return s
}

// run reads r into free buffers and hands each read over, until r fails
// or ends, or the reader is stopped.
func (s *stoppableReader) run(r io.Reader) {
	defer close(s.ended)
	for {
		var b []byte
		select {
		case b = <-s.free:
		case <-s.quit:
			return
		}
		s.reading.Store(true)
		if s.stopping() != nil {
			return
		}
		n, err := r.Read(b)
		s.reading.Store(false)
		select {
		case s.reads <- readResult{b[:n], err}:
		case <-s.quit:
			return
		}
		if err != nil {
			return
		}
	}
}

// stopping returns why the reader stops, or nil while it need not.
func (s *stoppableReader) stopping() error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.closing:
		return errClosing
	default:
		return nil
	}
}

// Read reads what r gave. Once ctx is done it returns ctx's error; once
// the publisher is being closed, what r already gave and then errClosing.
func (s *stoppableReader) Read(p []byte) (int, error) {
	for len(s.rest) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if err := s.ctx.Err(); err != nil {
			return 0, err
		}
		if s.buf != nil {
			s.free <- s.buf[:cap(s.buf)] // never blocks: there are two buffers
			s.buf = nil
		}
		var rd readResult
		select {
		case rd = <-s.reads: // read already
		default:
			select {
			case rd = <-s.reads:
			case <-s.ctx.Done():
				return 0, s.ctx.Err()
			case <-s.closing:
				if s.reading.Load() {
					return 0, errClosing // waiting for r: nothing read
				}
				// r returned, and its read is on its way.
				select {
				case rd = <-s.reads:
				case <-s.ended:
					return 0, errClosing
				}
			}
		}
		s.buf, s.rest, s.err = rd.b, rd.b, rd.err
	}
	n := copy(p, s.rest)
	s.rest = s.rest[n:]
	return n, nil
}

// stop ends the goroutine once r's Read under way, if any, returns.
func (s *stoppableReader) stop() { close(s.quit) }

// open opens the events file at path. Opening a named pipe (a FIFO) waits
// until a program opens it for writing, so open gives up when ctx is done
// or the publisher is being closed first; the file, when it opens after
// all, is then closed.
func (p *Publisher) open(ctx context.Context, path string) (*os.File, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("opening events file: %w", err)
	}
	type opened struct {
		f   *os.File
		err error
	}
	done := make(chan opened, 1)
	go func() {
		f, err := os.Open(path)
		done <- opened{f, err}
	}()
	var err error
	select {
	case o := <-done:
		if o.err != nil {
			return nil, fmt.Errorf("opening events file: %w", o.err)
		}
		return o.f, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-p.closing:
		err = ErrClosed
	}
	go func() {
		if o := <-done; o.f != nil {
			o.f.Close()
		}
	}()
	return nil, fmt.Errorf("opening events file: %w", err)
}
