// Package gateway is the HTTP door for departments that cannot run a Kafka
// client: POST /v1/events takes one CloudEvent (application/cloudevents+json
// or application/json) or a CloudEvents JSON batch
// (application/cloudevents-batch+json, up to MaxBatch events), validates
// every event exactly as the hub will, publishes them to the department's
// topic, and answers 202 only after Kafka acknowledged them.
//
// The body may be compressed with Content-Encoding: gzip; MaxBody then
// bounds it decompressed too (413), and any other content coding is
// refused (415). A leading UTF-8 byte order mark, as Windows tools save
// JSON, is skipped. A body that does not arrive within the server's read
// timeout (Config.ReadTimeout) is answered 408, the detail naming it; once
// the body is read, the request's wait for Kafka is bounded by
// PublishTimeout alone. A JSON array sent as one event is refused (400) with
// the batch media type to send it as.
//
// A batch is all or nothing: when any event is invalid, none is sent and
// the answer (422) lists every invalid event by index with the reason and
// field, so the department fixes and resends the whole batch — which is
// harmless, since the hub applies each (source, id) once. An event that is
// not valid JSON (a raw tab in a string, a bad escape) is one of them,
// not_json at its index, as long as the array around it is intact; a
// batch whose array is broken (cut short, a comma or bracket missing)
// answers 400 with the byte offset and the event where it breaks.
//
// Kafka's acknowledgement decides the rest. When Kafka refuses events in a
// way that sending them again will not mend (Message Size Too Large, an
// authorization failure, a missing topic: publisher.Retriable), the answer
// is 502, without Retry-After, listing every event not published with its
// reason (kafka_refused, topic_missing, or not_acknowledged for one that
// failed for a passing reason), for the hub's operators to fix. When every
// failure may pass, the answer is 503 with Retry-After: send the batch
// again.
//
// Each department authenticates with its own bearer token. Tokens are
// configured by their SHA-256 (never in clear) with the one source they may
// publish; an event of another source is refused (403). A request without
// a bearer token and one whose token is none of the configured ones are
// both refused (401), with details that tell which. Under the hub's
// access policy the hub checks the credentials in front of the handler
// instead (with X-Purpose, rate limit and audit, as on every /v1 route) and
// Config.Caller names the source. Errors are RFC 9457 problem details typed
// urn:pophub:problem:<slug>, as the rest of the API.
//
// The tokens file (LoadTokens), where each sha256 appears once (in any
// case): a token authenticates one department.
//
//	tokens:
//	  - source: housing
//	    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"gopkg.in/yaml.v3"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/internal/bearer"
	"github.com/pophub/pophub/internal/par"
	"github.com/pophub/pophub/internal/tracestate"
	"github.com/pophub/pophub/schemas"
)

// Route is the pattern the gateway serves.
const Route = "POST /v1/events"

// Media types.
const (
	ContentTypeEvent = "application/cloudevents+json"
	ContentTypeBatch = "application/cloudevents-batch+json"
)

// Sender publishes validated events and reports a result per event;
// *publisher.Publisher is one.
type Sender interface {
	Publish(ctx context.Context, events ...schemas.Event) ([]publisher.Result, error)
}

// Token is a department's credential: the SHA-256 of its bearer token and
// the source it may publish.
type Token struct {
	Source schemas.Source `yaml:"source"`
	SHA256 string         `yaml:"sha256"`
}

// Config configures a Handler. Sender is required, and Tokens or Caller.
type Config struct {
	Sender Sender
	Tokens []Token
	// Caller, when set, replaces Tokens: it returns the source the
	// request's caller may publish, from credentials already checked in
	// front of the handler (the hub's access policy), or false to refuse
	// the request (401).
	Caller func(r *http.Request) (schemas.Source, bool)
	// MaxBody bounds a request body (default 16 MiB); MaxBatch the events
	// of one batch (default 1,000).
	MaxBody  int64
	MaxBatch int
	// MaxPending bounds the body bytes of requests whose events are being
	// published (default 4 × MaxBody); a request past it waits, and
	// answers 503 when PublishTimeout passes first. PublishTimeout
	// (default 30 s) is how long a request waits for its events' turn and
	// Kafka's acknowledgement. A request's events are published under a
	// context of their own: the Kafka writer keeps, and retries, the
	// records of a call its caller gave up, so while a broker hangs each
	// abandoned request would otherwise have added its records to the
	// writer's queue without bound.
	MaxPending     int64
	PublishTimeout time.Duration
	// ReadTimeout is the HTTP server's bound on reading a whole request,
	// body included (http.Server.ReadTimeout; the hub's is
	// api.Config.ReadTimeout, --http-read-timeout). The server enforces
	// it; the gateway names it in the 408 that answers a body that did not
	// arrive within it. Zero: the 408 names no duration.
	ReadTimeout time.Duration
	// Propagator continues the caller's trace (traceparent) into the Kafka
	// record headers (default W3C TraceContext). It is not used when the
	// request's context already holds a span (a server middleware's, which
	// continues the caller's trace itself): the events are published under
	// that span.
	Propagator propagation.TextMapPropagator
	// Logger receives failures to publish (default: discard). It never sees
	// citizen IDs or tokens.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxBody <= 0 {
		c.MaxBody = 16 << 20
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 4 * c.MaxBody
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 30 * time.Second
	}
	if c.Propagator == nil {
		c.Propagator = propagation.TraceContext{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports what is wrong with the configuration. Tokens are
// numbered from 1, in their order in the tokens file.
func (c Config) Validate() error {
	if c.Sender == nil {
		return errors.New("gateway: a Sender is required")
	}
	if len(c.Tokens) == 0 && c.Caller == nil {
		return errors.New("gateway: at least one department token (or a Caller) is required")
	}
	first := make(map[string]int, len(c.Tokens)) // lower-case hash → index
	for i, t := range c.Tokens {
		if !t.Source.Valid() {
			return fmt.Errorf("gateway: token %d: source %q is not a department source", i+1, t.Source)
		}
		if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("gateway: token %d (%s): sha256 must be 64 hexadecimal digits", i+1, t.Source)
		}
		if err := repeatedToken(c.Tokens, first, i); err != nil {
			return err
		}
	}
	return nil
}

// repeatedToken refuses the i-th token when an earlier one has its hash,
// in any case of the hex digits, and records it in first otherwise. A
// bearer token authenticates one department: under two sources, one
// department's token would publish as the other's (and which one would
// depend on the order of the file). Under one source the repeat is refused
// too: it is a copy-paste slip, most likely of the entry meant for another
// token or department. A department may still have several tokens (while
// one replaces another), each with its own hash.
func repeatedToken(tokens []Token, first map[string]int, i int) error {
	sum := strings.ToLower(tokens[i].SHA256)
	j, dup := first[sum]
	if !dup {
		first[sum] = i
		return nil
	}
	return fmt.Errorf("gateway: token %d (%s): the same sha256 as token %d (%s): a token authenticates one department, give each entry its own token",
		i+1, tokens[i].Source, j+1, tokens[j].Source)
}

// LoadTokens reads a tokens file (see the package comment).
func LoadTokens(path string) ([]Token, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	var f struct {
		Tokens []Token `yaml:"tokens"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("reading tokens %s: %w", path, err)
	}
	if err := (Config{Sender: nopSender{}, Tokens: f.Tokens}).Validate(); err != nil {
		return nil, fmt.Errorf("reading tokens %s: %w", path, err)
	}
	return f.Tokens, nil
}

type nopSender struct{}

func (nopSender) Publish(context.Context, ...schemas.Event) ([]publisher.Result, error) {
	return nil, nil
}

// HashToken is the SHA-256 (hex) under which a token is configured.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Handler serves POST /v1/events.
type Handler struct {
	cfg     Config
	hashes  [][]byte
	pending budget
}

// New returns the handler.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	h := &Handler{cfg: cfg}
	for _, t := range cfg.Tokens {
		b, _ := hex.DecodeString(t.SHA256)
		h.hashes = append(h.hashes, b)
	}
	return h, nil
}

// EventError is one invalid event of a request.
type EventError struct {
	Index  int    `json:"index"`
	ID     string `json:"id,omitempty"`
	Reason string `json:"reason"`
	Field  string `json:"field,omitempty"`
	Detail string `json:"detail"`
}

// Problem is an RFC 9457 problem with the per-event errors.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Instance names the request, urn:pophub:request:<id>, when the hub's
	// API gave it an id (the X-Request-Id header), as its other answers do.
	Instance string       `json:"instance,omitempty"`
	Errors   []EventError `json:"errors,omitempty"`
}

// Accepted is the body of a 202.
type Accepted struct {
	Accepted int `json:"accepted"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	source, refusal := h.authenticate(r)
	if refusal != nil {
		h.discardBody(r)
		w.Header().Set("WWW-Authenticate", refusal.challenge)
		problem(w, http.StatusUnauthorized, "unauthenticated", refusal.detail, nil)
		return
	}
	if r.URL.RawQuery != "" {
		// As the hub's other routes refuse what they do not take: a
		// department adding ?source=… would otherwise think it counted.
		h.discardBody(r)
		problem(w, http.StatusBadRequest, "invalid-request", "this route takes no query parameters: the source is the token's, and every event names its own", nil)
		return
	}
	if r.Header.Get("Ce-Specversion") != "" {
		// The CloudEvents SDKs' default: the attributes in ce-* headers,
		// the data alone in the body, which read as an event would be
		// refused for its data's member names.
		h.discardBody(r)
		problem(w, http.StatusUnsupportedMediaType, "unsupported-media-type",
			"CloudEvents binary content mode (ce-* headers) is not supported: send the event in structured mode, the whole event as the body, as "+
				ContentTypeEvent+" (one event) or "+ContentTypeBatch+" (a batch)", nil)
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		// The type read, parameters not (charset=gbk;;): a charset
		// among them still says how the body is encoded.
		params = looseParams(r.Header.Get("Content-Type"))
	}
	batch := mt == ContentTypeBatch
	if !batch && mt != ContentTypeEvent && mt != "application/json" {
		h.discardBody(r)
		problem(w, http.StatusUnsupportedMediaType, "unsupported-media-type",
			"send "+ContentTypeEvent+" (one event) or "+ContentTypeBatch+" (a batch)", nil)
		return
	}
	charset, declared := params["charset"]
	if declared && !utf8Labels[strings.ToLower(charset)] && !asciiLabels[strings.ToLower(charset)] {
		// Read as UTF-8, a GBK body is mostly refused as not JSON, but a
		// name whose GBK bytes happen to be valid UTF-8 would be taken,
		// garbled, while the department resends only the refused events.
		h.discardBody(r)
		problem(w, http.StatusUnsupportedMediaType, "unsupported-media-type",
			fmt.Sprintf("the body must be UTF-8, and charset %q was declared: convert the events to UTF-8 (or drop the charset parameter if they are)", charset), nil)
		return
	}
	sent, ok := h.readBody(w, r)
	if !ok {
		return
	}
	body := bytes.TrimPrefix(sent, utf8BOM)
	if declared && asciiLabels[strings.ToLower(charset)] && !isASCII(body) {
		// A body labelled ASCII that is not is in some other charset
		// (GBK mislabelled, most often), which reading it as UTF-8
		// would garble where it does not refuse it.
		problem(w, http.StatusUnsupportedMediaType, "unsupported-media-type",
			fmt.Sprintf("charset %q was declared, but the body holds bytes outside ASCII: send UTF-8 and declare it, or no charset", charset), nil)
		return
	}
	var raws [][]byte
	if !batch && firstByte(body) == '[' {
		problem(w, http.StatusBadRequest, "invalid-request",
			"the body is a JSON array: send a batch as "+ContentTypeBatch, nil)
		return
	}
	if batch {
		var err error
		if raws, err = splitBatch(body, len(sent)-len(body)); err != nil {
			detail := err.Error()
			if firstByte(body) == '{' {
				detail += " (send a single event as " + ContentTypeEvent + ")"
			}
			problem(w, http.StatusBadRequest, "invalid-request", detail, nil)
			return
		}
	} else {
		raws = [][]byte{body}
	}
	if len(raws) == 0 || len(raws) > h.cfg.MaxBatch {
		problem(w, http.StatusBadRequest, "invalid-request", fmt.Sprintf("a batch holds 1 to %d events, not %d", h.cfg.MaxBatch, len(raws)), nil)
		return
	}

	events := make([]schemas.Event, len(raws))
	errs := make([]*EventError, len(raws))
	now := time.Now() // one present for the request's checks
	par.Ranges(len(raws), 128, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			events[i], errs[i] = h.check(source, i, raws[i], now)
		}
	})
	markDuplicateIDs(events, raws, errs)
	var bad, foreign []EventError
	for _, e := range errs {
		switch {
		case e == nil:
		case e.Reason == reasonForbiddenSource:
			foreign = append(foreign, *e)
		default:
			bad = append(bad, *e)
		}
	}
	if len(foreign) > 0 {
		problem(w, http.StatusForbidden, "forbidden", "events of another department's source; nothing was sent", foreign)
		return
	}
	if len(bad) > 0 {
		problem(w, http.StatusUnprocessableEntity, "invalid-events",
			fmt.Sprintf("%d of %d events are invalid; nothing was sent", len(bad), len(raws)), bad)
		return
	}
	// The department's trace context goes on in the records and the
	// publish span: its trace state without members holding a citizen ID.
	// Within the hub, its API middleware has made it the parent of the
	// request's server span, which the request context holds: the events
	// are published under that span, so that a slow or failed publish
	// shows under the request that made it.
	ctx := r.Context()
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = tracestate.Clean(h.cfg.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header)))
	}
	results, err := h.publish(ctx, int64(len(sent)), events)
	if errors.Is(err, errBusy) {
		h.cfg.Logger.Warn("gateway: waited too long for earlier requests' events to be published", "source", source, "events", len(events),
			"pending_bytes", h.pending.queued(), "max_pending", h.cfg.MaxPending)
		w.Header().Set("Retry-After", "1")
		problem(w, http.StatusServiceUnavailable, "unavailable", "the hub is still publishing earlier requests' events (is Kafka slow or down?): nothing was sent; send them again", nil)
		return
	}
	if err == nil {
		for _, res := range results {
			if res.Err != nil {
				err = res.Err
				break
			}
		}
	}
	if err != nil {
		h.cfg.Logger.Warn("gateway: publishing", "source", source, "events", len(events), "error", err)
		if unsent, refused := unpublished(events, results); refused > 0 {
			// Refused for good: a department told to send again would
			// do so every second, forever.
			problem(w, http.StatusBadGateway, "internal", fmt.Sprintf("Kafka refused %d of the %d events in a way that sending them again will not mend "+
				"until the hub's operators fix its Kafka topics or settings; errors lists each event not published, with the reason; the others were published",
				refused, len(events)), unsent)
			return
		}
		w.Header().Set("Retry-After", "1")
		problem(w, http.StatusServiceUnavailable, "unavailable", "Kafka did not acknowledge the events; send them again", nil)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(Accepted{Accepted: len(events)})
}

// The reasons of the events a 502 lists: Kafka refused the event in a way
// that sending it again will not mend (kafka_refused), or its topic is
// missing (publisher.ReasonTopicMissing), or it was not acknowledged for a
// passing reason and may be sent again (not_acknowledged).
const (
	reasonKafkaRefused    = "kafka_refused"
	reasonNotAcknowledged = "not_acknowledged"
)

// unpublished lists the events that results (one per event) say were not
// published, and counts those that sending again will not publish
// (publisher.Retriable; an event its closed publisher did not send, as
// the hub stops, may pass). Details name no citizen and no address of the
// hub's network: a passing failure's cause stays in the hub's log.
func unpublished(events []schemas.Event, results []publisher.Result) (unsent []EventError, refused int) {
	if len(results) != len(events) {
		return nil, 0
	}
	for i, res := range results {
		if res.Err == nil {
			continue
		}
		e := EventError{Index: i, ID: events[i].ID}
		var tm *publisher.TopicMissingError
		var re *schemas.RejectError
		switch {
		case publisher.Retriable(res.Err), errors.Is(res.Err, publisher.ErrClosed):
			// A closed publisher never sends again, but the hub that
			// closed it is stopping: the event may be sent again to the
			// hub once it, or another instance, is up.
			e.Reason, e.Detail = reasonNotAcknowledged, "Kafka did not acknowledge the event, for a reason that may pass: it may be sent again"
		case errors.As(res.Err, &tm):
			e.Reason = publisher.ReasonTopicMissing
			e.Detail = fmt.Sprintf("the hub's Kafka has no topic %s, or the hub's Kafka user may not write it: the hub's operators must create the topic or grant it; the event was not sent", tm.Topic)
		case errors.As(res.Err, &re):
			e.Reason, e.Field, e.Detail = re.Reason, re.Field, re.Detail
		default:
			e.Reason = reasonKafkaRefused
			e.Detail = fmt.Sprintf("Kafka refused the event (%v): sending it again will not help until the hub's operators fix its Kafka topics or settings", res.Err)
		}
		if e.Reason != reasonNotAcknowledged {
			refused++
		}
		unsent = append(unsent, e)
	}
	return unsent, refused
}

// errBusy: the request's events did not get their turn within
// PublishTimeout.
var errBusy = errors.New("earlier requests' events are still being published")

// publish sends events, whose request body had size bytes, once the
// bytes of requests being published leave room for them (see
// Config.MaxPending). The events are published under a context of their
// own, bounded by the Kafka writer's retries and twice PublishTimeout,
// which holds their bytes until the writer is done with them, whether
// or not the request still waits: the request waits at most
// PublishTimeout.
func (h *Handler) publish(ctx context.Context, size int64, events []schemas.Event) ([]publisher.Result, error) {
	wait, cancel := context.WithTimeout(ctx, h.cfg.PublishTimeout)
	defer cancel()
	if err := h.pending.acquire(wait, size, h.cfg.MaxPending); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errBusy
	}
	type outcome struct {
		results []publisher.Result
		err     error
	}
	done := make(chan outcome, 1)
	go func() {
		defer h.pending.release(size)
		pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*h.cfg.PublishTimeout)
		defer pcancel()
		res, err := h.cfg.Sender.Publish(pctx, events...)
		done <- outcome{res, err}
	}()
	select {
	case o := <-done:
		return o.results, o.err
	case <-wait.Done():
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("Kafka did not acknowledge the events within %v", h.cfg.PublishTimeout)
	}
}

// budget counts the bytes of requests being published.
type budget struct {
	mu    sync.Mutex
	bytes int64
	freed chan struct{} // closed when bytes fall
}

// acquire waits until n more bytes fit under limit, or none are counted
// (a request as large as the limit goes alone), or ctx ends.
func (b *budget) acquire(ctx context.Context, n, limit int64) error {
	for {
		b.mu.Lock()
		if b.bytes == 0 || b.bytes+n <= limit {
			b.bytes += n
			b.mu.Unlock()
			return nil
		}
		if b.freed == nil {
			b.freed = make(chan struct{})
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-freed:
		}
	}
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.bytes -= n
	if b.freed != nil {
		close(b.freed)
		b.freed = nil
	}
	b.mu.Unlock()
}

func (b *budget) queued() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes
}

// utf8Labels are the charset labels of UTF-8 (the WHATWG Encoding
// Standard's, in lower case): a body declared so is read as it is.
var utf8Labels = map[string]bool{
	"utf-8": true, "utf8": true, "unicode-1-1-utf-8": true, "unicode11utf8": true, "unicode20utf8": true, "x-unicode20utf8": true,
}

// asciiLabels are the IANA labels of US-ASCII, UTF-8's subset: a body
// declared so is read as UTF-8 when it holds ASCII only.
var asciiLabels = map[string]bool{"us-ascii": true, "ascii": true}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// looseParams reads the parameters of a Content-Type that
// mime.ParseMediaType refuses (an empty parameter, one without a value):
// each name=value between semicolons, the value unquoted.
func looseParams(ct string) map[string]string {
	params := map[string]string{}
	parts := strings.Split(ct, ";")
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		params[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return params
}

// utf8BOM is the byte order mark Windows Notepad and PowerShell write at
// the start of a UTF-8 file; JSON forbids it (RFC 8259 §8.1), and
// `pophub import` and `pophub publish` skip it, so the gateway does too.
var utf8BOM = []byte("\xef\xbb\xbf")

// discardBody reads and drops the body of a request refused before its
// body was read, up to MaxBody, unless the client waits for 100 Continue
// (then it sends none) or has announced more: Go's server otherwise
// closes the connection under a client still sending a large body, which
// sees a reset instead of the answer.
func (h *Handler) discardBody(r *http.Request) {
	if r.Body == nil || r.ContentLength > h.cfg.MaxBody || strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		return
	}
	io.Copy(io.Discard, io.LimitReader(r.Body, h.cfg.MaxBody))
}

// readBody reads the request's body, decompressed when its
// Content-Encoding is gzip.
// MaxBody bounds the bytes read from the wire and, for gzip, the bytes
// decompressed: a few kilobytes of gzip can expand to gigabytes, and the
// gateway stops reading at the bound rather than hold them. When the body
// cannot be read it answers the request itself (400, 408, 413 or 415) and
// returns false.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > h.cfg.MaxBody {
		// Before the first read, which would send 100 Continue to a
		// client that waits for it, and have it send a body the answer
		// then cuts off with a connection reset.
		problem(w, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the body exceeds %d bytes", h.cfg.MaxBody), nil)
		return nil, false
	}
	var src io.Reader = http.MaxBytesReader(w, r.Body, h.cfg.MaxBody)
	tooBig := func(err error) bool {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			problem(w, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the body exceeds %d bytes", h.cfg.MaxBody), nil)
			return true
		}
		return false
	}
	// counted counts the bytes read from the wire, for the 408.
	counted := &countingReader{r: src}
	src = counted
	tooSlow := func(err error) bool {
		if !isTimeout(err) {
			return false
		}
		problem(w, http.StatusRequestTimeout, "request-timeout", h.timeoutDetail(counted.n, r.ContentLength), nil)
		return true
	}
	compressed := false
	switch enc := strings.TrimSpace(strings.Join(r.Header.Values("Content-Encoding"), ", ")); {
	case enc == "" || strings.EqualFold(enc, "identity"):
	case strings.EqualFold(enc, "gzip") || strings.EqualFold(enc, "x-gzip"):
		zr, err := gzip.NewReader(src)
		if err != nil {
			if !tooBig(err) && !tooSlow(err) {
				problem(w, http.StatusBadRequest, "invalid-request", "the body is not gzip data, as its Content-Encoding says: "+err.Error(), nil)
			}
			return nil, false
		}
		defer zr.Close()
		src, compressed = zr, true
	default:
		// RFC 9110 §15.5.16: a 415 for the content coding names the
		// codings accepted.
		w.Header().Set("Accept-Encoding", "gzip")
		problem(w, http.StatusUnsupportedMediaType, "unsupported-media-type",
			fmt.Sprintf("Content-Encoding %q is not supported: send the body uncompressed or compressed with gzip", enc), nil)
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(src, h.cfg.MaxBody+1))
	switch {
	case tooBig(err), tooSlow(err):
		return nil, false
	case err != nil && compressed:
		problem(w, http.StatusBadRequest, "invalid-request", "decompressing the body: "+err.Error(), nil)
		return nil, false
	case err != nil:
		problem(w, http.StatusBadRequest, "invalid-request", "reading the body failed", nil)
		return nil, false
	case int64(len(body)) > h.cfg.MaxBody:
		problem(w, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the body exceeds %d bytes decompressed", h.cfg.MaxBody), nil)
		return nil, false
	}
	return body, true
}

// isTimeout reports whether reading the body failed because the server's
// read deadline passed.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// timeoutDetail is the detail of the 408 of a body of which received
// bytes arrived (of announced, when the client announced a length).
func (h *Handler) timeoutDetail(received, announced int64) string {
	within := "within the hub's read timeout"
	if h.cfg.ReadTimeout > 0 {
		within = "within " + h.cfg.ReadTimeout.String()
	}
	of := ""
	if announced > 0 {
		of = fmt.Sprintf(" of %d", announced)
	}
	return fmt.Sprintf("the body did not arrive %s (%d%s bytes did), the time the hub gives a whole request: "+
		"send it again, in smaller batches or compressed with gzip, or ask the hub's operators for a longer limit",
		within, received, of)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// splitBatch returns the events of a batch body, which starts at byte base
// of the body as sent (after a byte order mark). A batch the fast scanner
// does not read is split by its structure alone (schemas.DelimitArray,
// which gives encoding/json's elements wherever encoding/json reads the
// array), so that an event with a malformed string is refused at its
// index, as not_json, with the batch's other invalid events, instead of
// the whole batch without a word of where. When even the structure is
// broken, the error gives the byte offset, counted in the body as sent
// (decompressed), and the event it lies in.
func splitBatch(body []byte, base int) ([][]byte, error) {
	if raws, ok := schemas.SplitArray(body); ok {
		return raws, nil
	}
	raws, err := schemas.DelimitArray(body)
	var ae *schemas.ArrayError
	if errors.As(err, &ae) {
		return nil, fmt.Errorf("a batch must be a JSON array of CloudEvents: %s", arrayErrorDetail(ae, base))
	}
	if err != nil {
		return nil, fmt.Errorf("a batch must be a JSON array of CloudEvents: %w", err)
	}
	return raws, nil
}

// arrayErrorDetail says where a batch stops being an array, in the terms
// of the request: bytes of the body as sent, events of the batch.
func arrayErrorDetail(ae *schemas.ArrayError, base int) string {
	if ae.Index < 0 {
		return fmt.Sprintf("at byte %d: %s", ae.Offset+base, ae.Reason)
	}
	return fmt.Sprintf("at byte %d (event %d): %s", ae.Offset+base, ae.Index, ae.Reason)
}

// firstByte is the first byte of b that is not JSON white space, or 0.
func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}

// notAnObject names the JSON value raw starts with when it is not an
// object, as "null" or "a number"; or "" for an object, or for something
// that is not JSON, which decoding reports.
func notAnObject(raw []byte) string {
	switch c := firstByte(raw); {
	case c == 'n':
		return "null"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == '"':
		return "a string"
	case c == '[':
		return "an array"
	case c == '-' || c >= '0' && c <= '9':
		return "a number"
	}
	return ""
}

// reasonForbiddenSource is the reason of an event of another source than
// the token's.
const reasonForbiddenSource = "forbidden_source"

// reasonDuplicateID is the reason of an event whose id an earlier event of
// the batch has, with other content: the hub applies one event per
// (source, id), so the later one would be dropped as a repeat while the
// department was told it was accepted. `pophub import` refuses the same.
const reasonDuplicateID = "duplicate_id"

// markDuplicateIDs sets the error of every valid event whose id an earlier
// valid event of the batch has with different bytes. A byte-identical
// repeat is a harmless resend, applied once.
func markDuplicateIDs(events []schemas.Event, raws [][]byte, errs []*EventError) {
	if len(events) < 2 {
		return
	}
	first := make(map[string]int, len(events))
	for i := range events {
		if errs[i] != nil {
			continue
		}
		j, seen := first[events[i].ID]
		if !seen {
			first[events[i].ID] = i
			continue
		}
		if !bytes.Equal(raws[i], raws[j]) {
			errs[i] = &EventError{Index: i, ID: events[i].ID, Reason: reasonDuplicateID, Field: "id",
				Detail: fmt.Sprintf("event %d of the batch has this id with other content; an id names one event of its source", j)}
		}
	}
}

// check decodes and validates the i-th event of a request by source's
// token: the event, ready for the publisher, or why it cannot be sent.
func (h *Handler) check(source schemas.Source, i int, raw []byte, now time.Time) (schemas.Event, *EventError) {
	forbidden := func(id string) *EventError {
		return &EventError{Index: i, ID: id, Reason: reasonForbiddenSource, Field: "source",
			Detail: fmt.Sprintf("this token publishes %s events only", source)}
	}
	// Decoding would report null as an event without attributes, and
	// other values in the terms of its Go types. A value that is not JSON
	// (a batch element such as tru or a string with a raw tab, see
	// splitBatch) is left to decoding, which says not_json.
	if kind := notAnObject(raw); kind != "" && json.Valid(raw) {
		return schemas.Event{}, &EventError{Index: i, Reason: schemas.ReasonNotCloudEvent,
			Detail: fmt.Sprintf("the event is %s, not a JSON object with the CloudEvents attributes", kind)}
	}
	// Validated without a topic: an event of another source is forbidden
	// (403), not invalid (422).
	ev, err := schemas.Decode(schemas.Input{Value: raw, Now: now})
	if err != nil {
		var re *schemas.RejectError
		errors.As(err, &re)
		// The event is another department's only if its source is, as
		// the hub reads it. Decode returns the source once it read the
		// attribute. When it stopped before (a missing id, a bad time),
		// encoding/json reads the same source, provided the decoder
		// found the members unique and named as CloudEvents attributes:
		// its rejects of the document itself are not_json (a duplicate
		// member) or name no field (a name in another case, escaped).
		// encoding/json would read those differently — the last of two
		// members, "SOURCE" as "source" — and blame the token for an
		// event that is merely invalid.
		id, src := ev.ID, ev.Source
		if id == "" || src == "" {
			// The attributes as sent: the id for the report in any case.
			var env struct {
				ID     string `json:"id"`
				Source string `json:"source"`
			}
			_ = json.Unmarshal(raw, &env)
			if id == "" {
				id = env.ID
			}
			if src == "" && re != nil && re.Reason != schemas.ReasonNotJSON && re.Field != "" {
				src = schemas.Source(env.Source)
			}
		}
		if src != "" && src != source {
			return schemas.Event{}, forbidden(id)
		}
		e := &EventError{Index: i, ID: id, Reason: schemas.ReasonOf(err), Detail: err.Error()}
		if re != nil {
			e.Field, e.Detail = re.Field, re.Detail
		}
		return schemas.Event{}, e
	}
	if ev.Source != source {
		return schemas.Event{}, forbidden(ev.ID)
	}
	// The publisher encodes the typed payload and checks it without
	// parsing JSON again (schemas.CheckEncoded); kept, the raw data would
	// be decoded a second time.
	ev.Data = nil
	return ev, nil
}

// authRefusal is why a request is not authenticated: the detail of its 401
// and its WWW-Authenticate challenge. Neither repeats what the client sent.
type authRefusal struct {
	detail, challenge string
}

// The 401s. A department told only that a token is "required" when it did
// send one looks for a missing header instead of a wrong or revoked token;
// so a token that is none of the configured ones is reported as such, with
// RFC 6750's invalid_token error code. A request without credentials gets
// the bare challenge (RFC 6750 §3.1: no error code).
var (
	refusedNoToken = &authRefusal{
		detail:    "a department bearer token is required",
		challenge: "Bearer",
	}
	refusedMalformed = &authRefusal{
		detail:    `a department bearer token is required: the Authorization header is not of the form "Bearer <token>"`,
		challenge: "Bearer",
	}
	refusedUnknownToken = &authRefusal{
		detail:    "the bearer token is not recognised: it is none of the department tokens this gateway is configured with",
		challenge: `Bearer error="invalid_token", error_description="the token is not recognised"`,
	}
)

// authenticate finds the source of the request's bearer token, comparing
// its hash with every configured one in constant time; or asks the Caller.
// It returns why the request is refused, or nil.
func (h *Handler) authenticate(r *http.Request) (schemas.Source, *authRefusal) {
	if h.cfg.Caller != nil {
		// The policy in front already answered a wrong token; a
		// refusal here means no department's credentials.
		source, ok := h.cfg.Caller(r)
		if !ok {
			return "", refusedNoToken
		}
		return source, nil
	}
	header := r.Header.Get("Authorization")
	if strings.TrimSpace(header) == "" {
		return "", refusedNoToken
	}
	tok, ok := bearer.Token(header)
	if !ok {
		return "", refusedMalformed
	}
	sum := sha256.Sum256([]byte(tok))
	found := -1
	for i, hsh := range h.hashes {
		if subtle.ConstantTimeCompare(sum[:], hsh) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", refusedUnknownToken
	}
	return h.cfg.Tokens[found].Source, nil
}

func problem(w http.ResponseWriter, status int, slug, detail string, errs []EventError) {
	p := Problem{Type: "urn:pophub:problem:" + slug, Title: http.StatusText(status), Status: status, Detail: detail, Errors: errs}
	if id := w.Header().Get("X-Request-Id"); id != "" {
		p.Instance = "urn:pophub:request:" + id
	}
	b, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
