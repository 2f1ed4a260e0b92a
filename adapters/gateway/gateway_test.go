package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// setup runs the gateway in front of an in-process Kafka-protocol broker,
// with a token for housing.
func setup(t testing.TB) (url, broker string) {
	t.Helper()
	broker = testenv.Kafka(t, 4)
	pub, err := publisher.New(publisher.Config{Brokers: []string{broker}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	h, err := New(Config{Sender: pub, Tokens: []Token{{Source: schemas.Housing, SHA256: HashToken("housing-secret")}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, broker
}

// housingEvents are valid housing events of a synthetic population.
func housingEvents(t testing.TB, n int) []schemas.Event {
	t.Helper()
	var out []schemas.Event
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	synth.Generate(ctx, synth.Config{Persons: 50 * n, Seed: 5}, func(ev schemas.Event) error {
		if ev.Source == schemas.Housing && len(out) < n {
			out = append(out, ev)
		}
		if len(out) == n {
			cancel()
		}
		return nil
	})
	if len(out) < n {
		t.Fatalf("only %d housing events", len(out))
	}
	return out
}

func encodeAll(t testing.TB, evs []schemas.Event) []json.RawMessage {
	out := make([]json.RawMessage, len(evs))
	for i, ev := range evs {
		b, err := schemas.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

func post(t testing.TB, url, token, ctype string, body []byte) (int, Problem) {
	t.Helper()
	return postEncoded(t, url, token, ctype, "", body)
}

// postEncoded is post with a Content-Encoding.
func postEncoded(t testing.TB, url, token, ctype, encoding string, body []byte) (int, Problem) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p Problem
	json.NewDecoder(resp.Body).Decode(&p)
	return resp.StatusCode, p
}

// countRecords reads the housing topic and counts its records by event id.
func countRecords(t testing.TB, broker string, want int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, GroupID: fmt.Sprint("check", time.Now().UnixNano()),
		Topic: schemas.Topic(schemas.Housing), StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	for n := 0; n < want; n++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			t.Fatalf("read %d of %d records: %v", n, want, err)
		}
		var ev struct {
			ID      string `json:"id"`
			Subject string `json:"subject"`
		}
		json.Unmarshal(m.Value, &ev)
		if string(m.Key) != ev.Subject {
			t.Fatalf("record key is not the subject")
		}
		seen[ev.ID]++
	}
	return seen
}

func TestAcceptsSingleAndBatch(t *testing.T) {
	url, broker := setup(t)
	evs := housingEvents(t, 1001)
	raws := encodeAll(t, evs)
	if code, p := post(t, url, "housing-secret", ContentTypeEvent, raws[0]); code != http.StatusAccepted {
		t.Fatalf("single event: %d %+v", code, p)
	}
	batch, _ := json.Marshal(raws[1:])
	if code, p := post(t, url, "housing-secret", ContentTypeBatch, batch); code != http.StatusAccepted {
		t.Fatalf("batch of 1,000: %d %+v", code, p)
	}
	seen := countRecords(t, broker, len(evs))
	for _, ev := range evs {
		if seen[ev.ID] != 1 {
			t.Fatalf("event %s in Kafka %d times", ev.ID, seen[ev.ID])
		}
	}
}

// TestAcceptsGzipAndBOM: a body compressed with Content-Encoding: gzip,
// one that starts with a UTF-8 byte order mark (as Windows Notepad and
// PowerShell save JSON), and one declared charset=utf-8 are read as the
// events they hold.
func TestAcceptsGzipAndBOM(t *testing.T) {
	url, broker := setup(t)
	evs := housingEvents(t, 12)
	raws := encodeAll(t, evs)
	batch := func(rs ...json.RawMessage) []byte { b, _ := json.Marshal(rs); return b }
	bom := func(b []byte) []byte { return append([]byte("\ufeff"), b...) }
	tests := []struct {
		name, ctype, encoding string
		body                  []byte
	}{
		{"gzip batch", ContentTypeBatch, "gzip", gzipped(t, batch(raws[0], raws[1]))},
		{"gzip event", ContentTypeEvent, "GZip", gzipped(t, raws[2])},
		{"batch with a BOM", ContentTypeBatch, "", bom(batch(raws[3], raws[4]))},
		{"event with a BOM", ContentTypeEvent, "", bom(raws[5])},
		{"gzip event with a BOM", ContentTypeEvent, "gzip", gzipped(t, bom(raws[6]))},
		{"event declared UTF-8", ContentTypeEvent + "; charset=UTF-8", "", raws[7]},
		{"batch declared utf-8", ContentTypeBatch + `; charset="utf-8"`, "", batch(raws[8])},
		{"event declared utf8", ContentTypeEvent + "; charset=utf8", "", raws[9]},
		{"JSON declared UTF8", "application/json; charset=UTF8", "", raws[10]},
		{"event declared us-ascii", ContentTypeEvent + "; charset=us-ascii", "", raws[11]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, p := postEncoded(t, url, "housing-secret", tc.ctype, tc.encoding, tc.body); code != http.StatusAccepted {
				t.Fatalf("%d %+v, want 202", code, p)
			}
		})
	}
	seen := countRecords(t, broker, len(evs))
	for _, ev := range evs {
		if seen[ev.ID] != 1 {
			t.Errorf("event %s in Kafka %d times", ev.ID, seen[ev.ID])
		}
	}
}

// TestGzipBombIsRefused: a gzip body small on the wire whose
// decompressed bytes pass MaxBody answers 413, and the gateway stops
// reading there rather than decompressing the rest into memory.
func TestGzipBombIsRefused(t *testing.T) {
	const maxBody = 1 << 20
	h, err := New(Config{Sender: &recordingSender{}, MaxBody: maxBody,
		Tokens: []Token{{Source: schemas.Housing, SHA256: HashToken("housing-secret")}}})
	if err != nil {
		t.Fatal(err)
	}
	// 256 MiB of zeros, about 256 KiB compressed: within MaxBody on the
	// wire. The pipe lets the writer run only as far as the gateway reads.
	const total = 256 << 20
	pr, pw := io.Pipe()
	written := make(chan int)
	go func() {
		zw := gzip.NewWriter(pw)
		zeros := make([]byte, 64<<10)
		n := 0
		for n < total {
			if _, err := zw.Write(zeros); err != nil {
				break // the gateway stopped reading
			}
			n += len(zeros)
		}
		if n == total {
			zw.Close()
		}
		pw.Close()
		written <- n
	}()
	req := httptest.NewRequest(http.MethodPost, "/v1/events", pr)
	req.Header.Set("Content-Type", ContentTypeBatch)
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Authorization", "Bearer housing-secret")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	pr.CloseWithError(errors.New("the request is over"))
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Code != http.StatusRequestEntityTooLarge || p.Type != "urn:pophub:problem:too-large" {
		t.Fatalf("%d %s, want 413 too-large", rec.Code, rec.Body)
	}
	select {
	case n := <-written:
		if n > 64*maxBody {
			t.Errorf("the gateway read %d MiB decompressed of a body limited to %d MiB", n>>20, maxBody>>20)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the compressing writer is still running")
	}
}

// gzipped is b compressed with gzip.
func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRefusals(t *testing.T) {
	url, broker := setup(t)
	raws := encodeAll(t, housingEvents(t, 3))
	bad := json.RawMessage(strings.Replace(string(raws[1]), `"subject":"`, `"subject":"x`, 1))
	other := json.RawMessage(strings.Replace(string(raws[2]), `"source":"housing"`, `"source":"tax"`, 1))
	batch := func(rs ...json.RawMessage) []byte { b, _ := json.Marshal(rs); return b }
	// raws[1] under raws[0]'s id: another event the hub would drop as a
	// repeat of the first.
	var first, second map[string]any
	if json.Unmarshal(raws[0], &first) != nil || json.Unmarshal(raws[1], &second) != nil {
		t.Fatal("decoding events")
	}
	second["id"] = first["id"]
	sameID, _ := json.Marshal(second)
	// What the CloudEvents SDKs write for data given as bytes.
	delete(second, "data")
	second["data_base64"] = "eyJsZWFzZV9pZCI6IkwtMSJ9"
	base64Data, _ := json.Marshal(second)
	// 谢伟 in GBK (D0 BB CE B0), bytes that read as valid UTF-8 too.
	gbkName := bytes.Replace(raws[0], []byte(`"lease_id":"`), []byte("\"lease_id\":\"\xd0\xbb\xce\xb0"), 1)
	tests := []struct {
		name, token, ctype string
		encoding           string
		body               []byte
		code               int
		slug               string
		index              int
		detail             string // in the problem's or the event error's detail
	}{
		{"no token", "", ContentTypeEvent, "", raws[0], 401, "unauthenticated", -1, ""},
		{"unknown token", "guess", ContentTypeEvent, "", raws[0], 401, "unauthenticated", -1, ""},
		{"wrong content type", "housing-secret", "text/csv", "", raws[0], 415, "unsupported-media-type", -1, ""},
		{"charset GBK", "housing-secret", ContentTypeEvent + "; charset=GBK", "", raws[0], 415, "unsupported-media-type", -1, `charset "GBK"`},
		{"charset GB18030 on a batch", "housing-secret", ContentTypeBatch + "; charset=gb18030", "", batch(raws[0]), 415, "unsupported-media-type", -1, `charset "gb18030"`},
		{"charset GBK among unreadable parameters", "housing-secret", ContentTypeEvent + ";charset=gbk;;", "", raws[0], 415, "unsupported-media-type", -1, `charset "gbk"`},
		{"charset US-ASCII on GBK bytes", "housing-secret", ContentTypeEvent + "; charset=us-ascii", "", gbkName, 415, "unsupported-media-type", -1, "outside ASCII"},
		{"not JSON", "housing-secret", ContentTypeBatch, "", []byte("[{"), 400, "invalid-request", -1, ""},
		{"empty batch", "housing-secret", ContentTypeBatch, "", []byte("[]"), 400, "invalid-request", -1, ""},
		{"invalid event in a batch", "housing-secret", ContentTypeBatch, "", batch(raws[0], bad), 422, "invalid-events", 1, ""},
		{"another department's event", "housing-secret", ContentTypeBatch, "", batch(raws[0], other), 403, "forbidden", 1, ""},
		{"two events with one id", "housing-secret", ContentTypeBatch, "", batch(raws[0], sameID), 422, "invalid-events", 1, ""},
		{"too large", "housing-secret", ContentTypeEvent, "", bytes.Repeat([]byte(" "), 17<<20), 413, "too-large", -1, ""},
		{"too large once decompressed", "housing-secret", ContentTypeEvent, "gzip", gzipped(t, bytes.Repeat([]byte(" "), 17<<20)), 413, "too-large", -1, "decompressed"},
		{"not gzip", "housing-secret", ContentTypeEvent, "gzip", raws[0], 400, "invalid-request", -1, "gzip"},
		{"another content encoding", "housing-secret", ContentTypeEvent, "br", raws[0], 415, "unsupported-media-type", -1, `"br"`},
		{"two content encodings", "housing-secret", ContentTypeEvent, "gzip, br", gzipped(t, raws[0]), 415, "unsupported-media-type", -1, "gzip, br"},
		{"a batch sent as one event", "housing-secret", ContentTypeEvent, "", batch(raws[0], raws[1]), 400, "invalid-request", -1, ContentTypeBatch},
		{"a batch sent as application/json", "housing-secret", "application/json", "", batch(raws[0]), 400, "invalid-request", -1, ContentTypeBatch},
		{"one event sent as a batch", "housing-secret", ContentTypeBatch, "", raws[0], 400, "invalid-request", -1, ContentTypeEvent},
		{"data in base64", "housing-secret", ContentTypeEvent, "", base64Data, 422, "invalid-events", 0, `"data_base64" is not supported`},
		{"null in a batch", "housing-secret", ContentTypeBatch, "", []byte("[" + string(raws[0]) + ",null]"), 422, "invalid-events", 1, "is null, not"},
		{"a number in a batch", "housing-secret", ContentTypeBatch, "", []byte("[" + string(raws[0]) + ", 42]"), 422, "invalid-events", 1, "is a number, not"},
		{"an array in a batch", "housing-secret", ContentTypeBatch, "", []byte("[" + string(raws[0]) + ",[]]"), 422, "invalid-events", 1, "is an array, not"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, p := postEncoded(t, url, tc.token, tc.ctype, tc.encoding, tc.body)
			if code != tc.code || p.Type != "urn:pophub:problem:"+tc.slug || p.Detail == "" {
				t.Fatalf("%d %+v, want %d %s", code, p, tc.code, tc.slug)
			}
			if tc.index >= 0 && (len(p.Errors) != 1 || p.Errors[0].Index != tc.index || p.Errors[0].Reason == "") {
				t.Fatalf("errors %+v, want one at index %d", p.Errors, tc.index)
			}
			detail := p.Detail
			if tc.index >= 0 {
				detail = p.Errors[0].Detail
			}
			if !strings.Contains(detail, tc.detail) {
				t.Errorf("detail %q, want it to say %q", detail, tc.detail)
			}
		})
	}
	// Nothing of the refused requests reached Kafka: the next accepted
	// event is the first record.
	if code, _ := post(t, url, "housing-secret", ContentTypeEvent, raws[2]); code != 202 {
		t.Fatal(code)
	}
	if seen := countRecords(t, broker, 1); len(seen) != 1 {
		t.Fatalf("records %v", seen)
	}
}

func TestLoadTokens(t *testing.T) {
	dir := t.TempDir()
	good := dir + "/ok.yaml"
	writeFile(t, good, "tokens:\n  - source: housing\n    sha256: "+HashToken("x")+"\n")
	if toks, err := LoadTokens(good); err != nil || len(toks) != 1 || toks[0].Source != schemas.Housing {
		t.Fatalf("LoadTokens: %+v, %v", toks, err)
	}
	for name, body := range map[string]string{
		"bad source":  "tokens:\n  - source: police\n    sha256: " + HashToken("x") + "\n",
		"bad hash":    "tokens:\n  - source: housing\n    sha256: abc\n",
		"unknown key": "tokens:\n  - source: housing\n    token: plain\n",
		"empty":       "tokens: []\n",
	} {
		p := dir + "/" + strings.ReplaceAll(name, " ", "_") + ".yaml"
		writeFile(t, p, body)
		if _, err := LoadTokens(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// recordingSender keeps what it was asked to publish.
type recordingSender struct{ got []schemas.Event }

func (s *recordingSender) Publish(_ context.Context, evs ...schemas.Event) ([]publisher.Result, error) {
	s.got = append(s.got, evs...)
	return make([]publisher.Result, len(evs)), nil
}

// TestCaller: with a Caller (the hub's policy checked the credentials in
// front), no token list is needed; the Caller's source decides what may be
// published and its refusal answers 401.
func TestCaller(t *testing.T) {
	ev := housingEvents(t, 1)
	body := encodeAll(t, ev)[0]
	tests := []struct {
		name   string
		source schemas.Source
		known  bool
		want   int
	}{
		{"its own source", schemas.Housing, true, http.StatusAccepted},
		{"another source", schemas.Tax, true, http.StatusForbidden},
		{"nobody", "", false, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sender := &recordingSender{}
			h, err := New(Config{Sender: sender, Caller: func(*http.Request) (schemas.Source, bool) { return tc.source, tc.known }})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			code, p := post(t, srv.URL+"/v1/events", "", ContentTypeEvent, body)
			if code != tc.want {
				t.Fatalf("HTTP %d, want %d: %+v", code, tc.want, p)
			}
			if sent := len(sender.got); (code == http.StatusAccepted) != (sent == 1) {
				t.Errorf("%d events sent with HTTP %d", sent, code)
			}
		})
	}
	if _, err := New(Config{Sender: &recordingSender{}}); err == nil {
		t.Error("a gateway without tokens or a Caller was built")
	}
}

// TestMarkDuplicateIDs: within a batch, a later event with an earlier
// event's id and other content is refused; a byte-identical resend is not.
func TestMarkDuplicateIDs(t *testing.T) {
	ev := func(id string) schemas.Event { return schemas.Event{ID: id} }
	tests := []struct {
		name   string
		events []schemas.Event
		raws   []string
		errs   []*EventError
		want   []bool // marked duplicate
	}{
		{"distinct ids", []schemas.Event{ev("a"), ev("b")}, []string{"1", "2"}, make([]*EventError, 2), []bool{false, false}},
		{"identical resend", []schemas.Event{ev("a"), ev("a")}, []string{"1", "1"}, make([]*EventError, 2), []bool{false, false}},
		{"other content", []schemas.Event{ev("a"), ev("b"), ev("a")}, []string{"1", "2", "3"}, make([]*EventError, 3), []bool{false, false, true}},
		{"an invalid first does not count", []schemas.Event{ev("a"), ev("a")}, []string{"1", "2"},
			[]*EventError{{Reason: "invalid_data"}, nil}, []bool{false, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raws := make([][]byte, len(tc.raws))
			for i, r := range tc.raws {
				raws[i] = []byte(r)
			}
			markDuplicateIDs(tc.events, raws, tc.errs)
			for i, want := range tc.want {
				got := tc.errs[i] != nil && tc.errs[i].Reason == reasonDuplicateID
				if got != want {
					t.Errorf("event %d marked %v, want %v", i, got, want)
				}
			}
		})
	}
}
