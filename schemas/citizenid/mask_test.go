package citizenid

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// leaks reports whether out shows id, its first 17 digits or their hex.
func leaks(out string, id ID) bool {
	raw := string(id)
	return strings.Contains(out, raw[:17]) || strings.Contains(strings.ToLower(out), hex.EncodeToString([]byte(raw[:17])))
}

// TestMaskedUnderEveryVerb: no fmt verb prints the digits, not even a
// wrong one, whose error text "%!d(citizenid.ID=…)" used to show them.
// (%p cannot be intercepted, and go vet rejects it for a string.)
func TestMaskedUnderEveryVerb(t *testing.T) {
	id := ID("11010519491231002X")
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%#q", "%x", "%X", "%#x", "%10s", "%-30v", "%.6s",
		"%d", "%#d", "%t", "%c", "%U", "%e", "%f", "%b", "%o"}
	for _, verb := range verbs {
		if out := fmt.Sprintf(verb, id); leaks(out, id) {
			t.Errorf("%s prints %s", verb, out)
		}
	}
	type holder struct{ Subject ID }
	for name, v := range map[string]any{
		"slice":          []ID{id},
		"map key":        map[ID]int{id: 1},
		"exported field": holder{id},
		"pointer":        &id,
		"error":          fmt.Errorf("applying %v: %w", id, errors.New("x")),
	} {
		for _, verb := range []string{"%v", "%+v", "%s", "%d"} {
			if out := fmt.Sprintf(verb, v); leaks(out, id) {
				t.Errorf("%s of a %s prints %s", verb, name, out)
			}
		}
	}
	if got := fmt.Sprint(id); got != "1101**********002X" {
		t.Errorf("Sprint = %q", got)
	}
	if got := fmt.Sprintf("%#v", id); got != `citizenid.ID("1101**********002X")` {
		t.Errorf("%%#v = %s", got)
	}
	if got := fmt.Sprintf("[%20s]", id); got != "[  1101**********002X]" {
		t.Errorf("width is not kept: %s", got)
	}
}

// TestMaskedInLogs: slog's text and JSON handlers, in groups and as Any,
// show the masked form only. (The JSON handler writes a slice or struct
// holding IDs with encoding/json, which carries the full number: see the
// package documentation.)
func TestMaskedInLogs(t *testing.T) {
	id := ID("230102199001011230")
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		log := slog.New(h).With("citizen", id)
		log.Info("applied", slog.Any("id", id), slog.Group("event", "subject", id))
		log.Error("rejected", "err", fmt.Errorf("decoding %s: %w", id, &Error{ErrCheck}))
	}
	slog.New(slog.NewTextHandler(&buf, nil)).Info("batch", "ids", []ID{id, id})
	if out := buf.String(); leaks(out, id) || strings.Count(out, "2301**********1230") != 12 {
		t.Errorf("log output:\n%s", out)
	}
}

// TestZeroIDIsSafe: the zero ID, and other strings that are not 18
// characters long, do not panic in the accessors.
func TestZeroIDIsSafe(t *testing.T) {
	for _, id := range []ID{"", "2301", "23010219900101123"} {
		if !id.BirthDate().IsZero() || id.Gender() != "" || id.CountyCode() != "" || id.Masked() == string(id) && id != "" {
			t.Errorf("%q: birth %v, gender %q, county %q, masked %q", string(id), id.BirthDate(), id.Gender(), id.CountyCode(), id.Masked())
		}
	}
	if got := fmt.Sprint(ID("")); got != "****" {
		t.Errorf("zero ID prints %q", got)
	}
}

// TestParseBirthDateBounds: a birth date of today is accepted, tomorrow
// is in the future, and 1850 is the earliest year. (At 12:00 UTC it is
// 29 February in China too: TestParseAtJudgesTodayInChina covers the
// hours where the two days differ.)
func TestParseBirthDateBounds(t *testing.T) {
	at := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		first17 string
		want    error
	}{
		{"23010220240229123", nil},          // born today
		{"23010220240301123", ErrFuture},    // tomorrow
		{"23010218500101123", nil},          // 1850
		{"23010218491231123", ErrBirthDate}, // before 1850
		{"23010220230229123", ErrBirthDate}, // 2023 is not a leap year
		{"23010219000229123", ErrBirthDate}, // nor is 1900
		{"23010220000229124", nil},          // 2000 is
		{"23010219901301123", ErrBirthDate},
		{"23010219900100123", ErrBirthDate},
		{"00010219900101123", ErrProvince},
		{"72010219900101123", ErrProvince}, // between 71 (Taiwan) and 81 (Hong Kong)
		{"82010219900101123", nil},         // Macao
	}
	for _, tc := range tests {
		s := tc.first17 + string(CheckChar(tc.first17))
		id, err := ParseAt(s, at)
		if !errors.Is(err, tc.want) {
			t.Errorf("ParseAt(%s) = %v, want %v", tc.first17, err, tc.want)
			continue
		}
		var ce *Error
		if err != nil && (!errors.As(err, &ce) || strings.Contains(err.Error(), tc.first17)) {
			t.Errorf("error %v: not an *Error, or shows the input", err)
		}
		if err == nil && id.BirthDate().Format("20060102") != tc.first17[6:14] {
			t.Errorf("%s: BirthDate %v", tc.first17, id.BirthDate())
		}
	}
}

// TestGenderFromTheSeventeenthDigit: odd is male ("1"), even female ("2").
func TestGenderFromTheSeventeenthDigit(t *testing.T) {
	for d := byte('0'); d <= '9'; d++ {
		first17 := "2301021990010112" + string(d)
		id, err := ParseAt(first17+string(CheckChar(first17)), now)
		if err != nil {
			t.Fatal(err)
		}
		want := "2"
		if (d-'0')%2 == 1 {
			want = "1"
		}
		if id.Gender() != want || id.CountyCode() != "230102" {
			t.Errorf("17th digit %c: gender %s, county %s", d, id.Gender(), id.CountyCode())
		}
	}
}

// TestCheckCharKnownIDs: the MOD 11-2 check character of published
// examples, the X among them.
func TestCheckCharKnownIDs(t *testing.T) {
	for _, s := range []string{"11010519491231002X", "440524188001010014", "230102199001011230", "33060219850715231X"} {
		if got := CheckChar(s[:17]); got != s[17] {
			t.Errorf("CheckChar(%s) = %c, want %c", s[:17], got, s[17])
		}
	}
	// Every check character occurs: the sum mod 11 takes every value.
	seen := map[byte]bool{}
	for seq := 100; seq < 200 && len(seen) < 11; seq++ {
		seen[CheckChar(fmt.Sprintf("23010219900101%03d", seq))] = true
	}
	if len(seen) != 11 {
		t.Errorf("check characters seen: %d of 11", len(seen))
	}
}

// TestUpgrade15Cases: a legacy 15-digit number gains the century 19 and
// its check character, X included, and is validated like Parse.
func TestUpgrade15Cases(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  error
	}{
		{"110105491231002", "11010519491231002X", nil},
		{"230102900101123", "230102199001011230", nil},
		{"23010290010112", "", ErrLength},
		{"2301029001011234", "", ErrLength},
		{"2301029001011a3", "", ErrDigits},
		{"990102900101123", "", ErrProvince},
		{"230102900230123", "", ErrBirthDate},
	}
	for _, tc := range tests {
		id, err := Upgrade15(tc.in)
		if !errors.Is(err, tc.err) || string(id) != tc.want {
			t.Errorf("Upgrade15(%s) = %s, %v; want %s, %v", tc.in, string(id), err, tc.want, tc.err)
		}
	}
}

// TestJSONCarriesTheFullID: JSON bodies carry the whole number (they go to
// authorised systems), and decoding validates.
func TestJSONCarriesTheFullID(t *testing.T) {
	type body struct {
		CitizenID ID   `json:"citizen_id"`
		Spouses   []ID `json:"spouses,omitempty"`
	}
	in := body{CitizenID: "11010519491231002X", Spouses: []ID{"230102199001011230"}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"citizen_id":"11010519491231002X","spouses":["230102199001011230"]}`; string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
	var out body
	if err := json.Unmarshal(b, &out); err != nil || out.CitizenID != in.CitizenID || len(out.Spouses) != 1 || out.Spouses[0] != in.Spouses[0] {
		t.Errorf("Unmarshal = %+v, %v", out, err)
	}
	for _, bad := range []string{`{"citizen_id":"11010519491231002x"}`, `{"citizen_id":"1101051949123100"}`, `{"spouses":["230102199001011231"]}`} {
		err := json.Unmarshal([]byte(bad), &out)
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("Unmarshal(%s) = %v, want a *citizenid.Error", bad, err)
		}
	}
}

// TestMaskRawInput: Mask agrees with ID.Masked on valid IDs and is safe on
// anything else.
func TestMaskRawInput(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"valid", "230102199001011230", "2301**********1230"},
		{"valid with X", "11010519491231002X", "1101**********002X"},
		{"legacy 15 digits", "230102900101123", "2301**********1123"},
		{"empty", "", "****"},
		{"short", "2301", "****"},
		{"eight", "23010219", "****"},
		{"fourteen", "23010219900101", "****"},
		{"seventeen", "23010219900101123", "2301**********1123"},
		{"long", strings.Repeat("1", 1000) + "ABCD", "1111**********ABCD"},
		{"newline", "23\n1021990010112\r0", "23*1**********12*0"},
		{"quotes", `"30102199001011230`, `*301**********1230`},
		{"chinese", "张三李四王五赵六钱七孙八周九吴十", "******************"},
		{"invalid UTF-8", "\xff\xfe0102199001011230", "**01**********1230"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Mask(tc.in)
			if got != tc.want {
				t.Errorf("Mask(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if !utf8.ValidString(got) || len(got) > 18 {
				t.Errorf("Mask(%q) = %q: invalid UTF-8 or too long", tc.in, got)
			}
		})
	}
	for _, s := range []string{"230102199001011230", "11010519491231002X", "440524188001010014"} {
		if Mask(s) != ID(s).Masked() {
			t.Errorf("Mask(%s) = %s, ID.Masked = %s", s[:4], Mask(s), ID(s).Masked())
		}
	}
}

// TestUnparsedMasked: an Unparsed value never prints in full.
func TestUnparsedMasked(t *testing.T) {
	u := Unparsed("11010519491231002x") // lower-case x: not a valid ID
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("rejected", "key", u)
	for _, out := range []string{fmt.Sprint(u), fmt.Sprintf("%v %s %q %d %#v %x", u, u, u, u, u, u), buf.String()} {
		if strings.Contains(out, "1101051949123") || strings.Contains(strings.ToLower(out), hex.EncodeToString([]byte("1101051949123"))) {
			t.Errorf("leaks: %s", out)
		}
	}
	if got := fmt.Sprint(u); got != "1101**********002x" {
		t.Errorf("Sprint = %q", got)
	}
}

func FuzzMask(f *testing.F) {
	f.Add("230102199001011230")
	f.Add("\x00\n")
	f.Fuzz(func(t *testing.T, s string) {
		got := Mask(s)
		if !utf8.ValidString(got) || (got != "****" && len(got) != 18) {
			t.Errorf("Mask(%q) = %q", s, got)
		}
		for _, c := range []byte(got) {
			if !(c == '*' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
				t.Errorf("Mask(%q) = %q shows %q", s, got, c)
			}
		}
	})
}

func TestMaskText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"no digits", "invalid_data: data.spouse_id", "invalid_data: data.spouse_id"},
		{"short numbers kept", "port 5432, offset 12345678901234 and region 230102", "port 5432, offset 12345678901234 and region 230102"},
		{"18 digits", "id 230102199001011234 failed", "id 2301**********1234 failed"},
		{"trailing X", "id 11010519491231002X.", "id 1101**********002X."},
		{"lower x", "11010519491231002x", "1101**********002x"},
		{"whole text", "230102199001011234", "2301**********1234"},
		{"legacy 15 digits", "legacy 230102900101123", "legacy 2301*******1123"},
		{"two, adjacent", "a 230102199001011234,110105194912310021 b", "a 2301**********1234,1101**********0021 b"},
		{"in JSON", `{"subject":"230102199001011230","ids":[11010519491231002X]}`, `{"subject":"2301**********1230","ids":[1101**********002X]}`},
		{"longer runs too", "long 12345678901234567890123", "long 1234***************0123"},

		// Written forms (MaskText's list): masked like the plain form.
		{"6-8-4 with hyphens", "for 330602-19851021-0103 only", "for 3306**********0103 only"},
		{"6-8-4 with spaces", "for 330602 19851021 0103", "for 3306**********0103"},
		{"6-4-4-4", "330602 1985 1021 0103", "3306**********0103"},
		{"6-4-2-2-4", "330602-1985-10-21-0103", "3306**********0103"},
		{"6-8-3-1 with X", "110105-19491231-002-X", "1101**********002X"},
		{"6-12", "330602 198510210103", "3306**********0103"},
		{"groups of four", "3306 0219 8510 2101 03", "3306**********0103"},
		{"6-8-4 ending in X", "110105 19491231 002X.", "1101**********002X."},
		{"separators mixed", "330602-19851021 0103", "3306**********0103"},
		{"legacy 6-6-3", "old 230102 900101 123", "old 2301*******1123"},
		{"full-width digits", "核查３３０６０２１９８５１０２１０１０３的申请", "核查3306**********0103的申请"},
		{"full-width X", "１１０１０５１９４９１２３１００２Ｘ", "1101**********002X"},
		{"full-width lower x", "１１０１０５１９４９１２３１００２ｘ", "1101**********002x"},
		{"full-width, separated", "３３０６０２－１９８５１０２１－０１０３", "3306**********0103"},
		{"ideographic space", "３３０６０２　１９８５１０２１　０１０３", "3306**********0103"},
		{"mixed widths", "330602１９８５１０２１0103", "3306**********0103"},
		{"after a phone number", "tel 13812345678 330602 19851021 0103", "tel 13812345678 3306**********0103"},
		{"plain ID then a number", "330602198510210103 1234", "3306**********0103 1234"},
		{"6-8-4 ending in lower x", "110105-19491231-002x", "1101**********002x"},
		{"double separators", "330602  19851021  0103", "3306**********0103"},
		{"other separators", "330602/19851021/0103 330602.19851021.0103", "3306**********0103 3306**********0103"},
		{"more separators", "330602_19851021_0103 330602–19851021–0103 330602 - 19851021 - 0103", "3306**********0103 3306**********0103 3306**********0103"},
		{"the birth date written as a date", "3306021985-10-21-0103", "3306**********0103"},
		// An unbroken run is masked whether or not it is a valid ID.
		{"plain, wrong check character", "id 330602198510210104", "id 3306**********0104"},
		{"full-width, wrong check character", "３３０６０２１９８５１０２１０１０４", "3306**********0104"},

		// Numbers that are not IDs stay as they are.
		{"phone, grouped", "call 138 1234 5678 or 138-1234-5678", "call 138 1234 5678 or 138-1234-5678"},
		{"phone, plain", "call 13812345678", "call 13812345678"},
		{"two phones", "13812345678 13987654321", "13812345678 13987654321"},
		{"landline", "0571-8888 8888 ext 123", "0571-8888 8888 ext 123"},
		{"dates", "2024-01-15 2024-01-16 2024-01-17", "2024-01-15 2024-01-16 2024-01-17"},
		{"full-width short number", "案号２０２６－０１７", "案号２０２６－０１７"},
		{"17 digits grouped", "330602-19851021-010", "330602-19851021-010"},
		{"X not at the end", "330602-1985102X-0103", "330602-1985102X-0103"},
		{"four separators are not one", "330602    19851021    0103", "330602    19851021    0103"},
		// Region, date and sequence in paths and file names pass the
		// check character about once in eleven: left alone there.
		{"a path", "open /data/imports/330602/19851021/0103.csv: no such file", "open /data/imports/330602/19851021/0103.csv: no such file"},
		{"a relative path", "imports/330602/19851021/0103/", "imports/330602/19851021/0103/"},
		{"a batch file name", "batch 330602_19851021_0103.csv rejected", "batch 330602_19851021_0103.csv rejected"},
		{"a longer name", "run_330602.19851021.0103_b", "run_330602.19851021.0103_b"},
		{"a Windows path", `C:\data\330602\19851021\0103.csv`, `C:\data\330602\19851021\0103.csv`},
		// A counter written zero-padded past an ID's length is none, as
		// the memdb store names its logs; an ID run into one still is,
		// and a run of an ID's length is masked whatever it begins with.
		{"a zero-padded log generation", "write /data/store/wal-00000000000000000002.log: no space left", "write /data/store/wal-00000000000000000002.log: no space left"},
		{"an ID after zeros", "wal-00330602198510210103.log", "wal-0033************0103.log"},
		{"a legacy ID padded to 20", "id=00000330602851021010 rejected", "id=0000************1010 rejected"},
		{"a mistyped ID after a zero", "id=0330602198510210104 rejected", "id=0330***********0104 rejected"},
		{"18 digits of zeros", "seq 000000000000000002", "seq 0000**********0002"},
		{"19 digits not from 0", "n 1000000000000000002", "n 1000***********0002"},
		// Standing alone, such a form is an ID: after an abbreviation's
		// period, or quoted and escaped as %q and JSON in JSON write it.
		{"after No.", "No.330602.19851021.0103", "No.3306**********0103"},
		{"JSON inside JSON", `{"detail":"{\"id\":\"330602.19851021.0103\"}"}`, `{"detail":"{\"id\":\"3306**********0103\"}"}`},
		{"after an escaped newline", `"line\n330602.19851021.0103"`, `"line\n3306**********0103"`},
		{"between escaped tabs", `"name\t330602_19851021_0103\tx"`, `"name\t3306**********0103\tx"`},
		{"in a quoted request line", `malformed request "GET /?id=330602.19851021.0103\r\n"`, `malformed request "GET /?id=3306**********0103\r\n"`},
		{"bank card 4-4-4-4-3", "6222 0212 3456 7890 123", "6222 0212 3456 7890 123"},
		// Separated groups in an ID's written form, but no plausible ID:
		// the check character or the birth date is wrong.
		{"county and address code", "codes 230102 230102001001", "codes 230102 230102001001"},
		{"offsets", "offsets [123456 123456789012]", "offsets [123456 123456789012]"},
		{"case number, dashed date", "case 230102-2026-12-04-0001", "case 230102-2026-12-04-0001"},
		{"business number", "event HS-230102-20240301-0001 missing", "event HS-230102-20240301-0001 missing"},
		{"date and serials in fours", "2026 1204 2210 0000 12", "2026 1204 2210 0000 12"},
		{"6-8-4, wrong check character", "330602-19851021-0104", "330602-19851021-0104"},
		{"6-8-4, born in the future", "230102-20301231-0016", "230102-20301231-0016"},
		{"6-6-3, no such date", "230102 901301 123", "230102 901301 123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MaskText(tt.in); got != tt.want {
				t.Errorf("MaskText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzMaskText: any text is safe to mask (no panic, valid UTF-8 stays
// valid), and masking twice changes nothing more.
func FuzzMaskText(f *testing.F) {
	for _, s := range []string{"330602-19851021-0103", "１１０１０５１９４９１２３１００２Ｘ", "110105-19491231-002-X", "1\xef\xbc", "0 0-0\u30000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := MaskText(s)
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Errorf("MaskText(%q) = %q, not UTF-8", s, got)
		}
		if again := MaskText(got); again != got {
			t.Errorf("MaskText(%q) = %q, masked again %q", s, got, again)
		}
	})
}
