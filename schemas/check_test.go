package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pophub/pophub/schemas/citizenid"
)

// TestCheckEncodedAsDecode: for every catalogue type, valid and broken in
// every envelope attribute and every payload field, with a typed payload
// and with the payload as raw JSON data, CheckEncoded of an event and its
// encoding returns exactly what Decode of that encoding returns, from a
// topic under a key and without either; except for an event holding a
// string that is not UTF-8, whose encoding reads back as other text: that
// is not_json, naming the string, as the same bytes sent raw would be.
func TestCheckEncodedAsDecode(t *testing.T) {
	var bases []Event
	for _, f := range append(schemaFixtures(t), handFixtures()...) {
		if f.topic == "" {
			continue
		}
		ev, err := Decode(Input{Topic: f.topic, Value: []byte(f.value(plainQuote, "")), Now: fixedNow})
		if err != nil {
			continue // fixtures of rejects
		}
		ev.Data = nil
		bases = append(bases, ev)
	}
	if len(bases) < len(catalogue) {
		t.Fatalf("%d valid fixtures for %d types", len(bases), len(catalogue))
	}
	typed, raw, total := 0, 0, 0
	for _, base := range bases {
		for _, v := range withRawData(t, variants(base)) {
			value, err := Encode(v.ev)
			if err != nil {
				continue // the publisher reports encoding errors itself
			}
			for _, in := range []Input{
				{Topic: Topic(base.Source), Key: []byte(base.Subject), Value: value, Now: fixedNow},
				{Value: value, Now: fixedNow},
			} {
				total++
				if readsBackAsIs(&v.ev, value) {
					typed++
				}
				if rawReadsBack(&v.ev, value) {
					raw++
				}
				got := CheckEncoded(&v.ev, in)
				if field := notUTF8Field(&v.ev); field != "" {
					if re, ok := got.(*RejectError); !ok || re.Reason != ReasonNotJSON || re.Field != field {
						t.Errorf("%s %s, topic %q: CheckEncoded says %v, want not_json at %s", base.Type, v.name, in.Topic, got, field)
					}
					continue
				}
				_, want := Decode(in)
				if !sameReject(got, want) {
					t.Errorf("%s %s, topic %q: CheckEncoded says %v, Decode says %v", base.Type, v.name, in.Topic, got, want)
				}
			}
		}
	}
	if typed < total/4 || raw < total/4 {
		t.Errorf("of %d checks only %d took the typed path and %d the raw data path", total, typed, raw)
	}
	t.Logf("%d checks, %d on the typed path, %d on the raw data path", total, typed, raw)
}

// TestCheckEncodedSpouseID: a typed payload holds a spouse_id as the
// publisher set it, never parsed; CheckEncoded must still reject an
// invalid one exactly as Decode of its encoding does.
func TestCheckEncodedSpouseID(t *testing.T) {
	tests := []struct {
		name   string
		typ    Type
		spouse string
		want   error // the reason under the invalid_data reject, or nil
	}{
		{"valid", MarriageRegistered, "11010519491231002X", nil},
		{"wrong check character", MarriageRegistered, "230102199001011231", citizenid.ErrCheck},
		{"not an ID", MarriageRegistered, "bogus", citizenid.ErrLength},
		{"letter among the digits", MarriageDivorced, "230102199001011x30", citizenid.ErrDigits},
		{"lower-case x", MarriageDivorced, "11010519491231002x", citizenid.ErrCheckCase},
		{"born after now", MarriageRegistered, withCheck("23010220261201001"), citizenid.ErrFuture},
		{"empty", MarriageDivorced, "", citizenid.ErrLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := Event{ID: "m-1", Source: Marriage, Type: tc.typ, Subject: validID, Time: fixedNow.Add(-time.Hour)}
			if tc.typ == MarriageRegistered {
				ev.Payload = &MarriageRegisteredData{SpouseID: citizenid.ID(tc.spouse)}
			} else {
				ev.Payload = &MarriageDivorcedData{SpouseID: citizenid.ID(tc.spouse)}
			}
			value, err := Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			in := Input{Topic: Topic(Marriage), Key: []byte(validID), Value: value, Now: fixedNow}
			got := CheckEncoded(&ev, in)
			if _, want := Decode(in); !sameReject(got, want) {
				t.Fatalf("CheckEncoded says %v, Decode says %v", got, want)
			}
			if tc.want == nil {
				if got != nil {
					t.Errorf("CheckEncoded = %v, want nil", got)
				}
				return
			}
			re, ok := errors.AsType[*RejectError](got)
			if !ok || re.Reason != ReasonInvalidData || re.Field != "data.spouse_id" || re.Detail != tc.want.Error() {
				t.Errorf("CheckEncoded = %v, want invalid_data: data.spouse_id: %v", got, tc.want)
			}
		})
	}
}

// TestCheckEncodedRawDataNotUnicode: raw data is written verbatim, so
// data that is not UTF-8 or holds a lone surrogate escape makes Decode
// reject the whole value as not_json before any envelope rule; CheckEncoded
// must too, even for an event whose envelope is also wrong.
func TestCheckEncodedRawDataNotUnicode(t *testing.T) {
	tests := []struct {
		name   string
		source Source
		data   string
	}{
		{"invalid UTF-8", Marriage, "{\"spouse_id\":\"\xff\"}"},
		{"lone surrogate escape", Marriage, `{"spouse_id":"\ud800"}`},
		{"invalid UTF-8 and unknown source", "police", "{\"\":\"\xff\"}"},
		{"lone surrogate escape and unknown source", "police", `{"x":"\udc00"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := Event{ID: "m-1", Source: tc.source, Type: MarriageRegistered, Subject: validID,
				Time: fixedNow.Add(-time.Hour), Data: []byte(tc.data)}
			value, err := Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			in := Input{Topic: Topic(Marriage), Key: []byte(validID), Value: value, Now: fixedNow}
			got := CheckEncoded(&ev, in)
			if _, want := Decode(in); !sameReject(got, want) || ReasonOf(got) != ReasonNotJSON {
				t.Errorf("CheckEncoded says %v, Decode says %v; want both not_json", got, want)
			}
		})
	}
}

// withRawData adds to vs, for each variant with a typed payload, the same
// event carrying that payload as raw JSON data, compact (read from the
// encoding as it is) and indented (which the encoder rewrites), and a few
// data attributes no payload gives.
func withRawData(t *testing.T, vs []variant) []variant {
	out := vs
	for _, v := range vs {
		if v.ev.Payload == nil || reflect.ValueOf(v.ev.Payload).IsNil() {
			continue
		}
		compact, err := json.Marshal(v.ev.Payload)
		if err != nil {
			t.Fatal(err)
		}
		var indented bytes.Buffer
		if err := json.Indent(&indented, compact, "", " "); err != nil {
			t.Fatal(err)
		}
		for _, r := range []struct {
			name string
			data []byte
		}{{"raw", compact}, {"raw indented", indented.Bytes()}} {
			ev := v.ev
			ev.Payload, ev.Data = nil, r.data
			out = append(out, variant{v.name + ", " + r.name, ev})
		}
	}
	base := vs[0].ev
	for _, d := range []string{`{}`, `null`, `[]`, `"x"`, `{"unknown":1}`, `{"a":1,"a":2}`, `{"x":"\ufffd"}`, `{"x":"\u0000"}`} {
		ev := base
		ev.Payload, ev.Data = nil, []byte(d)
		out = append(out, variant{"raw " + d, ev})
	}
	return out
}

// sameCheck fails unless CheckEncoded of ev and its encoding says what
// Decode of the encoding says, from ev's topic under its subject as key
// and without either (an event Encode refuses is not checked), or not_json
// at the first of its strings that is not UTF-8.
func sameCheck(t testing.TB, name string, ev Event) {
	t.Helper()
	value, err := Encode(ev)
	if err != nil {
		return
	}
	for _, in := range []Input{
		{Topic: Topic(ev.Source), Key: []byte(ev.Subject), Value: value, Now: fixedNow},
		{Value: value, Now: fixedNow},
	} {
		if field := notUTF8Field(&ev); field != "" {
			if re, ok := CheckEncoded(&ev, in).(*RejectError); !ok || re.Reason != ReasonNotJSON || re.Field != field {
				t.Fatalf("%s: %s, topic %q: CheckEncoded says %v, want not_json at %s", name, value, in.Topic, re, field)
			}
			continue
		}
		_, want := Decode(in)
		if got := CheckEncoded(&ev, in); !sameReject(got, want) {
			t.Fatalf("%s: %s, topic %q: CheckEncoded says %v, Decode says %v", name, value, in.Topic, got, want)
		}
	}
}

// notUTF8Field names the first attribute or (flat) payload field of ev
// holding a string that is not UTF-8, or is "".
func notUTF8Field(ev *Event) string {
	for _, a := range []struct{ name, s string }{
		{"specversion", ev.SpecVersion}, {"id", ev.ID}, {"source", string(ev.Source)},
		{"type", string(ev.Type)}, {"subject", string(ev.Subject)}, {"datacontenttype", ev.DataContentType},
	} {
		if !utf8.ValidString(a.s) {
			return a.name
		}
	}
	if ev.Data != nil || ev.Payload == nil || reflect.ValueOf(ev.Payload).IsNil() {
		return ""
	}
	v := reflect.ValueOf(ev.Payload).Elem()
	for i := range v.NumField() {
		var texts []string
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			texts = []string{f.String()}
		case reflect.Slice:
			texts, _ = f.Interface().([]string)
		case reflect.Pointer:
			if s, ok := f.Interface().(*string); ok && s != nil {
				texts = []string{*s}
			}
		}
		for _, s := range texts {
			if !utf8.ValidString(s) {
				name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
				return "data." + name
			}
		}
	}
	return ""
}

func sameReject(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var ra, rb *RejectError
	return errors.As(a, &ra) && errors.As(b, &rb) && *ra == *rb
}

type variant struct {
	name string
	ev   Event
}

// variants are base and copies of it broken in one place each.
func variants(base Event) []variant {
	out := []variant{{"as is", base}}
	env := func(name string, change func(*Event)) {
		ev := base
		ev.Payload = clonePayload(base.Payload)
		change(&ev)
		out = append(out, variant{name, ev})
	}
	env("spec 0.3", func(e *Event) { e.SpecVersion = "0.3" })
	env("no id", func(e *Event) { e.ID = "" })
	env("long id", func(e *Event) { e.ID = strings.Repeat("号", 201) })
	env("id with NUL", func(e *Event) { e.ID = "a\x00b" })
	env("id not UTF-8", func(e *Event) { e.ID = "a\xffb" })
	env("id with HTML", func(e *Event) { e.ID = "<a&b>\u2028" })
	env("unknown source", func(e *Event) { e.Source = "police" })
	env("other source", func(e *Event) {
		e.Source = Health
		if base.Source == Health {
			e.Source = Tax
		}
	})
	env("unknown type", func(e *Event) { e.Type = "hukou.lost" })
	env("no type", func(e *Event) { e.Type = "" })
	for typ, spec := range catalogue {
		if typ != base.Type && spec.source == base.Source {
			env("type "+string(typ), func(e *Event) { e.Type = typ })
		}
	}
	env("bad subject", func(e *Event) { e.Subject = "230102199001011231" })
	env("other subject", func(e *Event) { e.Subject = "11010519491231002X" })
	env("no subject", func(e *Event) { e.Subject = "" })
	env("future", func(e *Event) { e.Time = fixedNow.Add(25 * time.Hour) })
	env("skew", func(e *Event) { e.Time = fixedNow.Add(23 * time.Hour) })
	env("1849", func(e *Event) { e.Time = time.Date(1849, 12, 31, 23, 0, 0, 0, time.UTC) })
	env("1850 in +08", func(e *Event) { e.Time = time.Date(1850, 1, 1, 3, 0, 0, 0, time.FixedZone("CST", 8*3600)) })
	env("year 10000", func(e *Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) })
	env("zone with seconds", func(e *Event) { e.Time = time.Date(1900, 1, 1, 0, 0, 0, 0, time.FixedZone("LMT", 8*3600+5*60+43)) })
	// RFC 3339 drops the 43 seconds of this offset, so the encoding says
	// 43 s later: past the limit, while the event itself is 20 s short of it.
	env("zone with seconds at the limit", func(e *Event) {
		e.Time = fixedNow.Add(MaxClockSkew - 20*time.Second).In(time.FixedZone("LMT", 8*3600+43))
	})
	env("zone -23:59", func(e *Event) { e.Time = time.Date(2020, 1, 1, 0, 0, 0, 0, time.FixedZone("", -(23*3600+59*60))) })
	env("nanoseconds", func(e *Event) { e.Time = time.Date(2020, 1, 1, 0, 0, 0, 123456789, time.Local) })
	env("zero time", func(e *Event) { e.Time = time.Time{} })
	env("text/plain", func(e *Event) { e.DataContentType = "text/plain" })
	env("json; charset", func(e *Event) { e.DataContentType = "application/json; charset=utf-8" })
	env("no payload", func(e *Event) { e.Payload = nil })
	env("nil payload", func(e *Event) { e.Payload = reflect.Zero(reflect.TypeOf(base.Payload)).Interface().(Data) })
	env("raw data", func(e *Event) { e.Payload, e.Data = nil, []byte(`{"x":1}`) })

	// Every payload field, emptied and set to values each rule refuses.
	fields := reflect.TypeOf(base.Payload).Elem()
	for i := range fields.NumField() {
		f := fields.Field(i)
		var values []any
		switch {
		case f.Type == reflect.TypeFor[citizenid.ID]():
			values = []any{citizenid.ID(""), citizenid.ID("bogus"), citizenid.ID("230102199001011231"),
				citizenid.ID("11010519491231002x"), citizenid.ID(withCheck("23010220990101123")), citizenid.ID("11010519491231002X")}
		case f.Type.Kind() == reflect.String:
			values = []any{"", "x", "\xff", "<&>", "2026-13-01", "2026-02", "230102", "230102001001", "999999999999",
				"11010519491231002X", "91350100M000100Y43", "  ", "\u2028"}
		case f.Type.Kind() == reflect.Slice:
			values = []any{[]string(nil), []string{}, []string{"pension", "pension"}, []string{"bogus"}, []string{"medical", "\xff"}}
		case f.Type.Kind() == reflect.Pointer:
			s := func(v string) *string { return &v }
			values = []any{(*string)(nil), s(""), s("bogus"), s("\xff"), s("2026-01-01")}
		case f.Type.Kind() == reflect.Float64:
			values = []any{-1.0, 0.0, 1e9, 123.45}
		}
		for _, val := range values {
			rv := reflect.ValueOf(val)
			if !rv.Type().AssignableTo(f.Type) {
				continue
			}
			env(f.Name+"="+strings.ToValidUTF8(reflect.ValueOf(val).String(), "?"), func(e *Event) {
				reflect.ValueOf(e.Payload).Elem().Field(i).Set(rv)
			})
		}
	}
	return out
}

// clonePayload is a shallow copy of a payload struct, so that variants do
// not share one.
func clonePayload(d Data) Data {
	if d == nil {
		return nil
	}
	v := reflect.ValueOf(d)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return d
	}
	c := reflect.New(v.Elem().Type())
	c.Elem().Set(v.Elem())
	return c.Interface().(Data)
}

func BenchmarkCheckEncoded(b *testing.B) {
	var evs []Event
	var ins []Input
	for _, in := range benchMix(b) {
		ev, err := Decode(in)
		if err != nil {
			b.Fatal(err)
		}
		ev.Data = nil
		v, err := Encode(ev)
		if err != nil {
			b.Fatal(err)
		}
		evs = append(evs, ev)
		ins = append(ins, Input{Topic: in.Topic, Key: in.Key, Value: v, Now: fixedNow})
	}
	b.Run("typed", func(b *testing.B) {
		n := 0
		for b.Loop() {
			i := n % len(evs)
			if err := CheckEncoded(&evs[i], ins[i]); err != nil {
				b.Fatal(err)
			}
			n++
		}
	})
	b.Run("decode", func(b *testing.B) {
		n := 0
		for b.Loop() {
			if _, err := Decode(ins[n%len(ins)]); err != nil {
				b.Fatal(err)
			}
			n++
		}
	})
}

// checkedAlike encodes ev and returns Decode's error for it, failing
// unless CheckEncoded, the publisher's check, gives the same.
func checkedAlike(t *testing.T, ev Event) error {
	t.Helper()
	value, err := Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Topic: Topic(ev.Source), Key: []byte(ev.Subject), Value: value, Now: fixedNow}
	_, derr := Decode(in)
	if cerr := CheckEncoded(&ev, in); !sameReject(cerr, derr) {
		t.Fatalf("CheckEncoded says %v, Decode says %v", cerr, derr)
	}
	return derr
}

// TestDatesBeforeBirth: a date of the subject's life more than a year
// before the birth date in its citizen ID (a placeholder 1900-01-01 or
// 0001-01-01 for an unknown date) is refused as invalid_data naming the
// field, by Decode and CheckEncoded alike. Within the year it is taken:
// an ID's birth date may be wrong, and the birth date fields, which may
// correct it, are not checked.
func TestDatesBeforeBirth(t *testing.T) {
	subject := citizenid.ID(withCheck("23010219900307001")) // born 1990-03-07
	tests := []struct {
		name    string
		source  Source
		typ     Type
		payload Data
		field   string // refused on, or "" for accepted
	}{
		{"death 1900-01-01", Health, DeathCertified, &DeathCertifiedData{DateOfDeath: "1900-01-01", CertificateNo: "D1"}, "data.date_of_death"},
		{"death 0001-01-01", Health, DeathCertified, &DeathCertifiedData{DateOfDeath: "0001-01-01", CertificateNo: "D1"}, "data.date_of_death"},
		{"death 1970-01-01", Health, DeathCertified, &DeathCertifiedData{DateOfDeath: "1970-01-01", CertificateNo: "D1"}, "data.date_of_death"},
		{"death a year and a day before birth", Health, DeathCertified, &DeathCertifiedData{DateOfDeath: "1989-03-06", CertificateNo: "D1"}, "data.date_of_death"},
		{"death a year before birth", Health, DeathCertified, &DeathCertifiedData{DateOfDeath: "1989-03-07", CertificateNo: "D1"}, ""},
		{"infant's death before the ID's wrong birth date", Health, DeathCertified, &DeathCertifiedData{DateOfDeath: "1990-02-20", CertificateNo: "D1"}, ""},
		{"death on the day of birth", Health, DeathCertified, &DeathCertifiedData{DateOfDeath: "1990-03-07", CertificateNo: "D1"}, ""},
		{"contract from 1900", Employment, ContractStarted, &ContractStartedData{ContractID: "C1", EmployerID: "91350100M000100Y43",
			EmployerName: "x", WorkRegion: "230102", Start: "1900-01-01"}, "data.start"},
		{"contract from 2012", Employment, ContractStarted, &ContractStartedData{ContractID: "C1", EmployerID: "91350100M000100Y43",
			EmployerName: "x", WorkRegion: "230102", Start: "2012-01-01"}, ""},
		{"contribution 13 months before birth", SocialInsurance, ContributionRecorded, &ContributionRecordedData{Month: "1989-02",
			Region: "230102", Insurances: []string{"pension"}}, "data.month"},
		{"contribution the month before birth", SocialInsurance, ContributionRecorded, &ContributionRecordedData{Month: "1990-02",
			Region: "230102", Insurances: []string{"pension"}}, ""},
		{"contribution in the month of birth", SocialInsurance, ContributionRecorded, &ContributionRecordedData{Month: "1990-03",
			Region: "230102", Insurances: []string{"pension"}}, ""},
		{"corrected birth date before the ID's", PublicSecurity, IdentityCorrected, &IdentityCorrectedData{BirthDate: "1990-01-01"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			derr := checkedAlike(t, Event{ID: "e-1", Source: tc.source, Type: tc.typ, Subject: subject, Time: fixedNow.Add(-time.Hour), Payload: tc.payload})
			if tc.field == "" {
				if derr != nil {
					t.Errorf("refused: %v", derr)
				}
				return
			}
			re, ok := errors.AsType[*RejectError](derr)
			if !ok || re.Reason != ReasonInvalidData || re.Field != tc.field || !strings.Contains(re.Detail, "before the subject's birth date") {
				t.Errorf("Decode = %v, want invalid_data on %s: before the subject's birth date", derr, tc.field)
			}
		})
	}
}

// TestPlaceholderDatesBeforeBirth: the dates systems write for one they
// do not know (0001-01-01, 1900-01-01, 1970-01-01, and their months) are
// refused before the subject's birth even within the year's grace, so
// that the Unix epoch is no date of death for a person born in May 1970;
// on or after the birth they are dates like any other.
func TestPlaceholderDatesBeforeBirth(t *testing.T) {
	bornMay1970 := citizenid.ID(withCheck("23010219700515001"))
	bornJan1970 := citizenid.ID(withCheck("23010219700101001"))
	for _, tc := range []struct {
		name    string
		subject citizenid.ID
		typ     Type
		payload Data
		refused bool
	}{
		{"epoch death, born May 1970", bornMay1970, DeathCertified, &DeathCertifiedData{DateOfDeath: "1970-01-01", CertificateNo: "D1"}, true},
		{"epoch month, born May 1970", bornMay1970, ContributionRecorded, &ContributionRecordedData{Month: "1970-01", Region: "230102", Insurances: []string{"pension"}}, true},
		{"another date of January 1970, born May 1970", bornMay1970, DeathCertified, &DeathCertifiedData{DateOfDeath: "1970-01-02", CertificateNo: "D1"}, false},
		{"epoch death, born on it", bornJan1970, DeathCertified, &DeathCertifiedData{DateOfDeath: "1970-01-01", CertificateNo: "D1"}, false},
		{"epoch month, born in it", bornJan1970, ContributionRecorded, &ContributionRecordedData{Month: "1970-01", Region: "230102", Insurances: []string{"pension"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := SourceOf(tc.typ)
			err := checkedAlike(t, Event{ID: "e-1", Source: src, Type: tc.typ, Subject: tc.subject, Time: fixedNow.Add(-time.Hour), Payload: tc.payload})
			re, ok := errors.AsType[*RejectError](err)
			switch {
			case !tc.refused && err != nil:
				t.Errorf("refused: %v", err)
			case tc.refused && (!ok || re.Reason != ReasonInvalidData || !strings.Contains(re.Detail, "placeholder")):
				t.Errorf("Decode = %v, want invalid_data calling it a placeholder", err)
			}
		})
	}
}

// TestContributionMonthAhead: a contribution month may lie up to twelve
// months after the month, in China (UTC+8), of the event's time (a year
// paid ahead); one further ahead is a typo (2062-03 for 2026-03) or a
// filler for "unknown" (9999-12), which the record would count for ever,
// and is refused as invalid_data on the month, by Decode and CheckEncoded
// alike.
func TestContributionMonthAhead(t *testing.T) {
	for _, tc := range []struct {
		name, time, month string
		refused           bool
	}{
		{"the month of the time", "2026-04-15T09:00:00+08:00", "2026-04", false},
		{"a month paid late", "2026-04-15T09:00:00+08:00", "2026-03", false},
		{"the next month", "2026-04-15T09:00:00+08:00", "2026-05", false},
		{"a year paid ahead", "2026-04-15T09:00:00+08:00", "2027-04", false},
		{"resident medical insurance paid in the autumn for the next year", "2026-09-15T09:00:00+08:00", "2027-12", false},
		{"paid in January for the whole next year", "2026-01-05T09:00:00+08:00", "2027-12", false},
		{"the year after next", "2025-12-31T09:00:00+08:00", "2027-01", true},
		{"a typo for 2026-03", "2026-04-15T09:00:00+08:00", "2062-03", true},
		{"a filler for an unknown month", "2026-04-15T09:00:00+08:00", "9999-12", true},
		{"next year's December from the first day of the year in China, the last in UTC", "2024-12-31T16:30:00Z", "2026-12", false},
		{"the year after next in China", "2024-12-31T15:30:00Z", "2026-01", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, err := time.Parse(time.RFC3339, tc.time)
			if err != nil {
				t.Fatal(err)
			}
			err = checkedAlike(t, Event{ID: "si-1", Source: SocialInsurance, Type: ContributionRecorded, Subject: validID, Time: at,
				Payload: &ContributionRecordedData{Month: tc.month, Region: "230102", Insurances: []string{"pension"}}})
			re, ok := errors.AsType[*RejectError](err)
			switch {
			case !tc.refused && err != nil:
				t.Errorf("refused: %v", err)
			case tc.refused && (!ok || re.Reason != ReasonInvalidData || re.Field != "data.month" || re.Detail != "lies after the end of the year after the event's time"):
				t.Errorf("Decode = %v, want invalid_data on data.month: lies after the end of the year after the event's time", err)
			}
		})
	}
}

// TestRefusedNameCharacters: a name holding a private-use character (a
// 造字 of a department's own font, as it comes in UTF-8) is refused naming
// the code point, whichever encoding the department's file had; so is a
// name that lost a character on its way, to a ? (Excel's and WPS's CSV in
// GBK write one for a character GBK lacks: 𠮷野 as ?野) or to U+FFFD (a
// lossy conversion), saying to save the file as UTF-8. A blank or padded
// name, an invisible character or a look-alike of the middle dot is
// refused naming it (see TestNameCharacterSets). Rare characters with
// standard codes, in and beyond the BMP, and the joiners scripts need
// inside a name, are kept.
func TestRefusedNameCharacters(t *testing.T) {
	const garbled = "save the file as UTF-8"
	tests := []struct {
		name, value string
		refused     []string // what the detail says, or nil for accepted
	}{
		{"GBK AAA1 as GB 18030 maps it", "张\ue000", []string{"U+E000"}},
		{"end of the BMP's area", "李\uf8ff明", []string{"U+F8FF"}},
		{"plane 15", "王\U000F0001", []string{"U+F0001"}},
		{"question mark for 𠮷", "?野", []string{"holds ?,", garbled}},
		{"question mark for 䶮", "刘?", []string{"holds ?,", garbled}},
		{"question mark inside a minority name", "阿依古丽?买买提", []string{"holds ?,", garbled}},
		{"replacement character", "刘\ufffd", []string{"holds U+FFFD", garbled}},
		{"CJK extension B", "𠮷野", nil},
		{"CJK extension A", "刘䶮", nil},
		{"middle dot of a minority name", "阿依古丽·买买提", nil},
		{"blank of ideographic spaces", "\u3000\u3000", []string{"is blank", "U+3000 (ideographic space)"}},
		{"padded with an ideographic space", "张三\u3000", []string{"ends with U+3000 (ideographic space): remove the padding"}},
		{"padded with a space", " 张三", []string{"begins with U+0020 (space): remove the padding"}},
		{"byte order mark first", "\ufeff张三", []string{"begins with U+FEFF (zero width no-break space, a byte order mark)"}},
		{"zero width space inside", "张\u200b三", []string{"holds U+200B (zero width space), an invisible character"}},
		{"right-to-left override", "\u202e三张", []string{"holds U+202E (right-to-left override), an invisible character"}},
		{"left-to-right mark inside", "张\u200e三", []string{"holds U+200E (left-to-right mark), an invisible character"}},
		{"katakana middle dot", "阿依古丽\u30fb买买提", []string{"holds ・, U+30FB (katakana middle dot), a look-alike of the middle dot", "use U+00B7"}},
		{"zero width joiner inside", "क्\u200dष", nil},
		{"Mongolian vowel separator", "ᠪᠠᠲᠤ\u180eᠶᠠ", nil},
		{"space inside", "John Smith", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			derr := checkedAlike(t, Event{ID: "ps-1", Source: PublicSecurity, Type: IdentityCorrected, Subject: validID, Time: fixedNow.Add(-time.Hour),
				Payload: &IdentityCorrectedData{Name: tc.value}})
			if tc.refused == nil {
				if derr != nil {
					t.Errorf("refused: %v", derr)
				}
				return
			}
			re, ok := errors.AsType[*RejectError](derr)
			if !ok || re.Reason != ReasonInvalidData || re.Field != "data.name" {
				t.Fatalf("Decode = %v, want invalid_data on data.name", derr)
			}
			for _, w := range tc.refused {
				if !strings.Contains(re.Detail, w) {
					t.Errorf("Decode = %v, want the detail to say %q", derr, w)
				}
			}
		})
	}
}
