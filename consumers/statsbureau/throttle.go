package statsbureau

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// throttle paces one pull's requests to what the hub lets the identity
// do. It bounds the requests in flight, a bound a refusal halves for the
// rest of the pull (down to one), and holds every request back while the
// hub has asked the client to wait. A hub under an access policy limits
// each identity with a token bucket: a pull that keeps the bucket's rate
// in flight settles under it, where one that keeps its first concurrency
// would be refused again at every level of the walk.
//
// Its methods are safe for concurrent use.
type throttle struct {
	mu       sync.Mutex
	limit    int           // requests allowed in flight
	inFlight int           // requests holding a slot
	epoch    int           // times limit was lowered; see acquire and refused
	until    time.Time     // no request starts before then
	changed  chan struct{} // closed and replaced when a slot frees or until passes
}

func newThrottle(limit int) *throttle {
	return &throttle{limit: max(limit, 1), changed: make(chan struct{})}
}

// acquire waits for a slot and for any pause the hub asked for to pass,
// and returns the epoch the request is sent in, which refused takes back.
// It returns ctx's error when ctx ends first; the caller then holds no
// slot.
func (t *throttle) acquire(ctx context.Context) (epoch int, err error) {
	for {
		t.mu.Lock()
		wait := time.Until(t.until)
		if wait <= 0 && t.inFlight < t.limit {
			t.inFlight++
			epoch = t.epoch
			t.mu.Unlock()
			return epoch, nil
		}
		changed := t.changed
		t.mu.Unlock()
		var timer <-chan time.Time
		var tm *time.Timer
		if wait > 0 {
			tm = time.NewTimer(wait)
			timer = tm.C
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-changed:
		case <-timer:
		}
		if tm != nil {
			tm.Stop()
		}
		if err != nil {
			return 0, err
		}
	}
}

// release gives back a slot acquire handed out.
func (t *throttle) release() {
	t.mu.Lock()
	t.inFlight--
	t.wake()
	t.mu.Unlock()
}

// wake lets every waiting acquire look again; t.mu is held.
func (t *throttle) wake() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// refused records that the hub refused a request sent in epoch and asked
// for a pause of wait: no request starts until it has passed. When the
// refusal was for the rate (slow), the limit is also halved, unless a
// refusal of a request sent at the same time has halved it already (a
// burst of refusals is one signal, not several). It returns the limit and
// whether it is lower than before.
func (t *throttle) refused(epoch int, wait time.Duration, slow bool) (limit int, lowered bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if until := time.Now().Add(wait); until.After(t.until) {
		t.until = until
	}
	if slow && epoch == t.epoch && t.limit > 1 {
		t.limit /= 2
		t.epoch++
		lowered = true
	}
	return t.limit, lowered
}

// Waits before a refused request is sent again.
const (
	// retryBase is the wait after a first refusal that does not say how
	// long to wait; it doubles with every further one, up to retryCap.
	retryBase = time.Second
	retryCap  = 30 * time.Second
)

// retryable reports whether a request answered status is worth sending
// again: the hub refused it for the rate (429), or is unavailable for a
// while it names (503 with Retry-After).
func retryable(status int, h http.Header) bool {
	return status == http.StatusTooManyRequests ||
		(status == http.StatusServiceUnavailable && h.Get("Retry-After") != "")
}

// retryDelay is how long to wait before the attempt-th try (the first
// retry is attempt 2) of a request the hub answered with header h: its
// Retry-After and a little more, so that requests refused together do not
// come back together; without one, an exponential wait with jitter.
func retryDelay(h http.Header, attempt int, now time.Time) time.Duration {
	if d, ok := retryAfter(h.Get("Retry-After"), now); ok {
		return d + rand.N(d/10+50*time.Millisecond)
	}
	base := min(retryBase<<min(attempt-2, 5), retryCap)
	return base/2 + rand.N(base/2)
}

// retryAfter reads a Retry-After header (RFC 9110 §10.2.3): a number of
// seconds or an HTTP date, a date already past being no wait.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, int64(24*time.Hour/time.Second))) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(at.Sub(now), 0), true
}
