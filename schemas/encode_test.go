package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas/citizenid"
)

// sameEncoding encodes ev with Encode, with AppendJSON after a prefix,
// and with the encoding/json reference, and fails unless all give the
// same bytes and the same error.
func sameEncoding(t testing.TB, name string, ev Event) {
	t.Helper()
	want, wantErr := encodeStd(ev)
	got, gotErr := Encode(ev)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Fatalf("%s: event %#v\nEncode error    %v\nencodeStd error %v", name, ev, gotErr, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: event %#v\nEncode    %s\nencodeStd %s", name, ev, got, want)
	}
	prefix := []byte("prefix")
	appended, err := ev.AppendJSON(prefix)
	if fmt.Sprint(err) != fmt.Sprint(wantErr) || !bytes.Equal(appended, append(prefix, want...)) {
		t.Fatalf("%s: AppendJSON after a prefix gives %q, %v; want the prefix and %q, %v", name, appended, err, want, wantErr)
	}
}

// fastData fails unless appendData handles d itself and writes what
// json.Marshal writes: the differential tests must exercise the fast
// path, not only its fallback.
func fastData(t testing.TB, name string, d Data) {
	t.Helper()
	want, err := json.Marshal(d)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	got, ok := appendData(nil, d)
	if !ok {
		t.Fatalf("%s: appendData leaves %T to encoding/json", name, d)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: appendData\n got %s\nwant %s", name, got, want)
	}
	if !bytes.ContainsAny(want, "<>&") && !bytes.Contains(want, []byte("\u2028")) && !bytes.Contains(want, []byte("\u2029")) && !compactJSON(want) {
		t.Fatalf("%s: compactJSON refuses encoding/json's own output %s", name, want)
	}
}

// TestEncodeSchemaExamples: every example of every JSON Schema, as the
// event Decode makes of it (Data set), as an event built in Go (Payload
// only) and with its data spelled in other ways, encodes as encoding/json
// encodes it.
func TestEncodeSchemaExamples(t *testing.T) {
	fixtures := append(schemaFixtures(t), handFixtures()...)
	seen := map[Type]bool{}
	for _, f := range fixtures {
		v := f.value(plainQuote, "")
		ev, err := Decode(Input{Value: []byte(v), Now: fixedNow})
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		seen[ev.Type] = true
		sameEncoding(t, f.name, ev)
		fastData(t, f.name, ev.Payload)
		if got, _ := Encode(ev); !compactJSON(got) {
			t.Errorf("%s: compactJSON refuses Encode's output %s", f.name, got)
		}

		built := ev
		built.Data = nil
		sameEncoding(t, f.name+"/payload", built)
		built.SpecVersion, built.DataContentType = "", ""
		sameEncoding(t, f.name+"/payload, defaults", built)

		// The example data straight into its struct, valid or not.
		d := NewData(ev.Type)
		raw := render(f.data, plainQuote, "")
		if err := json.Unmarshal([]byte(raw), d); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		fastData(t, f.name+"/example data", d)

		for spelling, data := range map[string]string{
			"indented":      render(f.data, plainQuote, "\n\t "),
			"escaped":       render(f.data, escapeQuote, ""),
			"short escapes": render(f.data, shortEscapeQuote, ""),
			"html":          strings.ReplaceAll(raw, `"}`, `<&>\u2028"}`),
			"separator":     strings.ReplaceAll(raw, `"}`, "\u2029\"}"),
			"leading space": " " + raw,
			"trailing":      raw + " ",
			"invalid":       raw[:len(raw)-1],
			"two values":    raw + raw,
			"not json":      "{" + raw,
		} {
			ev := ev
			ev.Data = json.RawMessage(data)
			sameEncoding(t, f.name+"/"+spelling, ev)
		}
	}
	for _, typ := range Types() {
		if !seen[typ] {
			t.Errorf("no example of %s", typ)
		}
	}
}

// TestEncodeEdgeCases: data and payloads the fast path leaves to
// encoding/json, and the attributes Encode defaults.
func TestEncodeEdgeCases(t *testing.T) {
	base := Event{ID: "ps-1", Source: PublicSecurity, Type: HukouCancelled, Subject: validID,
		Time: time.Date(2026, 3, 1, 8, 0, 0, 0, time.FixedZone("CST", 8*3600))}
	type embedding struct {
		*HukouCancelledData
		Extra string `json:"extra"`
	}
	for name, mod := range map[string]func(*Event){
		"no data":             func(*Event) {},
		"null data":           func(e *Event) { e.Data = json.RawMessage("null") },
		"empty data":          func(e *Event) { e.Data = json.RawMessage{} },
		"string data":         func(e *Event) { e.Data = json.RawMessage(`"x"`) },
		"number data":         func(e *Event) { e.Data = json.RawMessage(`-1.5e3`) },
		"deep data":           func(e *Event) { e.Data = json.RawMessage(strings.Repeat("[", 200) + strings.Repeat("]", 200)) },
		"deep invalid data":   func(e *Event) { e.Data = json.RawMessage(strings.Repeat("[", 200) + strings.Repeat("]", 199)) },
		"invalid utf-8 data":  func(e *Event) { e.Data = json.RawMessage("{\"a\":\"\xff\xfe\"}") },
		"control in data":     func(e *Event) { e.Data = json.RawMessage("{\"a\":\"\x01\"}") },
		"nil payload pointer": func(e *Event) { e.Payload = (*HukouCancelledData)(nil) },
		"embedding payload":   func(e *Event) { e.Payload = embedding{&HukouCancelledData{Reason: "death"}, "x"} },
		"data and payload": func(e *Event) {
			e.Data, e.Payload = json.RawMessage(`{"reason":"other"}`), &HukouCancelledData{Reason: "death"}
		},
		"NaN area": func(e *Event) {
			e.Type, e.Payload = PropertyRegistered, &PropertyRegisteredData{AreaM2: ptr(math.NaN())}
		},
		"infinite area": func(e *Event) {
			e.Type, e.Payload = PropertyRegistered, &PropertyRegisteredData{AreaM2: ptr(math.Inf(-1))}
		},
		"zero time":  func(e *Event) { e.Time = time.Time{} },
		"year 10000": func(e *Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 1, time.UTC) },
		"year -1":    func(e *Event) { e.Time = time.Date(-1, 1, 1, 0, 0, 0, 0, time.FixedZone("", -(9*3600+30*60+17))) },
		"all empty":  func(e *Event) { *e = Event{} },
		"odd attributes": func(e *Event) {
			e.SpecVersion, e.DataContentType, e.Source, e.Type = "0.3<", "text/plain&", "a\u2028b", "\xff"
		},
	} {
		ev := base
		mod(&ev)
		sameEncoding(t, name, ev)
	}
}

// randomText draws strings that exercise every branch of JSON quoting.
func randomText(r *rand.Rand) string {
	pieces := []string{"a", "Z9", "龙江", "欧阳娜娜", "𠀀", "é", "<", ">", "&", `"`, `\`, "/", "'", "\n", "\r", "\t", "\b", "\f",
		"\x00", "\x01", "\x1f", "\x7f", "\u2028", "\u2029", "\xff", "\xe2\x80", "\xe2\x80\xa8", "\xed\xa0\x80", "\ufffd",
		"230102", "2026-03-01", " ", "pension", "\u00a0", "\U0010ffff"}
	var b strings.Builder
	for range r.IntN(6) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// randomFloat draws areas: ordinary, at the format's cut-offs, extreme,
// and now and then not a number at all.
func randomFloat(r *rand.Rand) float64 {
	switch r.IntN(8) {
	case 0:
		return []float64{0, math.Copysign(0, -1), 1e-6, 9.999999e-7, 1e21, 9.99999e20, 1e-7, 123e-9, math.MaxFloat64,
			math.SmallestNonzeroFloat64, 88.25, 1, -1}[r.IntN(13)]
	case 1:
		return math.Float64frombits(r.Uint64()) // NaN and the infinities too, sometimes
	case 2:
		return math.Inf(1)
	default:
		return math.Round(r.NormFloat64()*1e4) / float64(int(1)<<r.IntN(12))
	}
}

// randomData fills a new data struct of typ by reflection: every field
// empty or set, strings of every kind.
func randomData(r *rand.Rand, typ Type) Data {
	d := NewData(typ)
	rv := reflect.ValueOf(d).Elem()
	for i := range rv.NumField() {
		f := rv.Field(i)
		if r.IntN(4) == 0 {
			continue // left empty
		}
		switch f.Interface().(type) {
		case string:
			f.SetString(randomText(r))
		case citizenid.ID:
			f.SetString(randomText(r))
		case []string:
			list := []string{}
			for range r.IntN(4) {
				list = append(list, randomText(r))
			}
			f.Set(reflect.ValueOf(list))
		case *float64:
			v := randomFloat(r)
			f.Set(reflect.ValueOf(&v))
		default:
			panic(fmt.Sprintf("%s: field of type %s", typ, f.Type()))
		}
	}
	return d
}

// randomTime draws times in many zones and at every precision.
func randomTime(r *rand.Rand) time.Time {
	zones := []*time.Location{time.UTC, time.FixedZone("CST", 8*3600), time.FixedZone("", -(3*3600 + 30*60)),
		time.FixedZone("LMT", 8*3600+5*60+43), time.FixedZone("", 14*3600)}
	t := time.Unix(r.Int64N(1<<36)-1<<35, 0).In(zones[r.IntN(len(zones))])
	switch r.IntN(4) {
	case 0:
		t = t.Add(time.Duration(r.IntN(1e9)))
	case 1:
		t = t.Add(time.Duration(r.IntN(1000)) * time.Millisecond)
	}
	return t
}

// TestEncodeRandomEvents: random events of every catalogue type, built
// with a Payload, with their Data, and with both, encode as encoding/json
// encodes them.
func TestEncodeRandomEvents(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for _, typ := range Types() {
		for i := range n {
			name := fmt.Sprintf("%s#%d", typ, i)
			d := randomData(r, typ)
			ev := Event{ID: randomText(r), Source: SourceOf(typ), Type: typ, Subject: citizenid.ID(randomText(r)),
				Time: randomTime(r), Payload: d}
			if r.IntN(2) == 0 {
				ev.ID, ev.Subject = fmt.Sprintf("%s-%d", ev.Source, i), validID
			}
			if r.IntN(3) == 0 {
				ev.SpecVersion, ev.DataContentType = SpecVersion, "application/json"
			}
			if r.IntN(10) == 0 {
				ev.SpecVersion, ev.DataContentType, ev.Source = randomText(r), randomText(r), Source(randomText(r))
			}
			sameEncoding(t, name+"/payload", ev)
			if p, ok := d.(*PropertyRegisteredData); ok && p.AreaM2 != nil && (math.IsNaN(*p.AreaM2) || math.IsInf(*p.AreaM2, 0)) {
				continue
			}
			fastData(t, name, d)
			data, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			ev.Data = data
			sameEncoding(t, name+"/data", ev)
			ev.Payload = nil
			sameEncoding(t, name+"/data only", ev)
		}
	}
}

// FuzzEncode: Encode writes what encoding/json writes, for events with
// any attributes, any raw data and payloads of any type filled with any
// text. The seeds, run by every go test, are the schema examples and the
// hand-written fixtures.
func FuzzEncode(f *testing.F) {
	for i, fx := range append(schemaFixtures(f), handFixtures()...) {
		ev, err := Decode(Input{Value: []byte(fx.value(plainQuote, "")), Now: fixedNow})
		if err != nil {
			f.Fatalf("%s: %v", fx.name, err)
		}
		f.Add(ev.ID, string(ev.Source), string(ev.Type), string(ev.Subject), ev.Time.Unix(), int64(ev.Time.Nanosecond()), 8*3600,
			[]byte(ev.Data), uint8(i), "龙江", 88.25)
	}
	f.Add("id <&> \u2028", "", "", "", int64(-62135596800), int64(0), 0, []byte(" {} "), uint8(0), "\xff\x00\"\\", math.Inf(1))
	f.Add("", "housing", "hukou.registered", "\xe2\x80", int64(253402300800), int64(999999999), -3600, []byte(nil), uint8(5), "", 1e21)
	types := Types()
	f.Fuzz(func(t *testing.T, id, source, typ, subject string, sec, nsec int64, offset int, data []byte, which uint8, text string, area float64) {
		ev := Event{ID: id, Source: Source(source), Type: Type(typ), Subject: citizenid.ID(subject),
			Time: time.Unix(sec, nsec).In(time.FixedZone("", offset%(48*3600)))}
		if data != nil {
			ev.Data = data
		}
		sameEncoding(t, "raw data", ev)
		sameCheck(t, "raw data", ev)
		// A payload of the chosen type, every string field the text.
		d := NewData(types[int(which)%len(types)])
		rv := reflect.ValueOf(d).Elem()
		for i := range rv.NumField() {
			switch f := rv.Field(i); f.Kind() {
			case reflect.String:
				f.SetString(text)
			case reflect.Slice:
				f.Set(reflect.ValueOf([]string{text, id}))
			case reflect.Pointer:
				f.Set(reflect.ValueOf(&area))
			}
		}
		ev.Data, ev.Payload = nil, d
		sameEncoding(t, "payload", ev)
		sameCheck(t, "payload", ev)
	})
}

// BenchmarkEncode compares Encode with the encoding/json reference on the
// decode benchmark's mix, from Data (as a publisher re-encodes decoded
// events) and from Payload (as a department builds them in Go).
func BenchmarkEncode(b *testing.B) {
	var evs []Event
	for _, in := range benchMix(b) {
		ev, err := Decode(in)
		if err != nil {
			b.Fatal(err)
		}
		evs = append(evs, ev)
	}
	for _, bc := range []struct {
		name   string
		encode func(Event) ([]byte, error)
	}{
		{"fast", Encode},
		{"encoding-json", encodeStd},
	} {
		for _, from := range []string{"data", "payload"} {
			b.Run(bc.name+"/"+from, func(b *testing.B) {
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					ev := evs[n%len(evs)]
					if from == "payload" {
						ev.Data = nil
					}
					if _, err := bc.encode(ev); err != nil {
						b.Fatal(err)
					}
					n++
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// A publisher encodes a batch of events into one buffer; each event's
// bytes are a slice of it.
func ExampleEvent_AppendJSON() {
	ev := Event{ID: "si-9", Source: SocialInsurance, Type: ContributionRecorded, Subject: "230102199001011230",
		Time:    time.Date(2024, 5, 31, 0, 0, 0, 0, time.FixedZone("CST", 8*3600)),
		Payload: &ContributionRecordedData{Month: "2024-05", Region: "230102", Insurances: []string{"pension"}}}
	var buf []byte
	start := len(buf)
	buf, err := ev.AppendJSON(buf)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s\n", buf[start:])
	// Output:
	// {"specversion":"1.0","id":"si-9","source":"social_insurance","type":"social_insurance.contribution_recorded","subject":"230102199001011230","time":"2024-05-31T00:00:00+08:00","datacontenttype":"application/json","data":{"month":"2024-05","region":"230102","insurances":["pension"]}}
}

// TestEncodeKeepsInstantOfLocalMeanTime: a department that builds event
// times in a tz-database zone gets local mean time for old dates, an
// offset with seconds that RFC 3339 cannot write (+08:05:43 in Shanghai
// before 1901, +07:36:42 in Hong Kong before 1904). The hub must keep the
// instant that was sent, not one shifted by those seconds.
func TestEncodeKeepsInstantOfLocalMeanTime(t *testing.T) {
	first := "11010118800101001"
	id := citizenid.ID(first + string(citizenid.CheckChar(first)))
	for _, zone := range []string{"Asia/Shanghai", "Asia/Hong_Kong", "Asia/Harbin"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(1900, 6, 1, 23, 59, 50, 0, loc)
		ev := Event{ID: "ps-1", Source: PublicSecurity, Type: IdentityCorrected, Subject: id, Time: at,
			Payload: &IdentityCorrectedData{Name: "张三"}}
		sameEncoding(t, zone, ev)
		value, err := Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		in := Input{Topic: Topic(PublicSecurity), Key: []byte(id), Value: value, Now: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
		if err := CheckEncoded(&ev, in); err != nil {
			t.Fatalf("%s: %v", zone, err)
		}
		got, err := Decode(in)
		if err != nil {
			t.Fatalf("%s: %v", zone, err)
		}
		if !got.Time.Equal(at) {
			t.Errorf("%s: sent %s, the hub keeps %s: %v off", zone, at.UTC().Format(time.RFC3339), got.Time.UTC().Format(time.RFC3339), got.Time.Sub(at))
		}
	}
}

// TestClock: the date of an instant in China's time follows the clocks
// of the day, +09:00 in the summers of 1986–1991, where the fixed CST
// gives the day before; other zones are used as given.
func TestClock(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		instant string
		loc     *time.Location
		want    string
	}{
		{"1988-05-31T15:00:00Z", CST(), "1988-06-01T00:00:00+09:00"}, // '1988-06-01' kept as a timestamptz in Asia/Shanghai
		{"1991-01-01T16:00:00Z", CST(), "1991-01-02T00:00:00+08:00"},
		{"2026-02-28T16:30:00Z", CST(), "2026-03-01T00:30:00+08:00"},
		{"2026-03-01T03:00:00Z", ny, "2026-02-28T22:00:00-05:00"},
	} {
		at, err := time.Parse(time.RFC3339, tc.instant)
		if err != nil {
			t.Fatal(err)
		}
		if got := Clock(at, tc.loc).Format(time.RFC3339); got != tc.want {
			t.Errorf("Clock(%s, %v) = %s, want %s", tc.instant, tc.loc, got, tc.want)
		}
	}
}
