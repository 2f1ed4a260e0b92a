package citizenid

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"valid", "230102199001011230", nil},
		{"valid with X check character", "11010519491231002X", nil},
		{"lower-case x", "11010519491231002x", ErrCheckCase},
		{"lower-case x, another", "23010219900101102x", ErrCheckCase},
		{"lower-case x where the check character is a digit", "23010219900101123x", ErrCheck},
		{"lower-case x and no such province", lowerX(t, "9901021990010112"), ErrProvince},
		{"lower-case x and no such date", lowerX(t, "2301021990023012"), ErrBirthDate},
		{"lower-case x and born in the future", lowerX(t, "2301022030123112"), ErrFuture},
		{"too short", "23010219900101123", ErrLength},
		{"too long", "2301021990010112300", ErrLength},
		{"letter in the digits", "2301021990A1011230", ErrDigits},
		{"wrong check character", "230102199001011231", ErrCheck},
		{"no such province", with(t, "99010219900101123"), ErrProvince},
		// Residence permits for residents of Hong Kong, Macao (81, 82) and
		// Taiwan (83, which is no division code) carry GB 11643 numbers.
		{"Hong Kong resident's permit", with(t, "81000019900101123"), nil},
		{"Macao resident's permit", with(t, "82000019900101123"), nil},
		{"Taiwan resident's permit", with(t, "83000019900101123"), nil},
		{"84 is no prefix", with(t, "84000019900101123"), ErrProvince},
		{"80 is no prefix", with(t, "80000019900101123"), ErrProvince},
		{"no such date", with(t, "23010219900230123"), ErrBirthDate},
		{"born in the future", with(t, "23010220301231123"), ErrFuture},
		// Full-width digits, as a Chinese input method types them: 18
		// characters, but not the ASCII the wire carries.
		{"full-width digits", fullWidth("230102199001011230"), ErrFullWidth},
		{"full-width digits and Ｘ", fullWidth("11010519491231002X"), ErrFullWidth},
		{"full-width digits and ｘ", fullWidth("11010519491231002x"), ErrFullWidth},
		{"one full-width digit among ASCII ones", "23010219900101123" + fullWidth("0"), ErrFullWidth},
		{"full-width and a wrong check character", fullWidth("230102199001011231"), ErrCheck},
		{"full-width and no such province", fullWidth(with(t, "99010219900101123")), ErrProvince},
		{"full-width and born in the future", fullWidth(with(t, "23010220301231123")), ErrFuture},
		{"full-width, too short", fullWidth("23010219900101123"), ErrLength},
		{"full-width, too long", fullWidth("2301021990010112300"), ErrLength},
		{"18 characters, one an ideographic zero", "〇" + "30102199001011230", ErrDigits},
		{"18 characters, a Chinese check character", "23010219900101123" + "零", ErrCheck},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAt(tc.in, now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseAt(%q) = %v, want %v", tc.in, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), tc.in) {
				t.Errorf("error %q repeats the input", err)
			}
			if tc.want == ErrCheckCase {
				if _, err := ParseAt(strings.ToUpper(tc.in), now); err != nil {
					t.Errorf("upper-cased, ParseAt = %v, want the ID accepted", err)
				}
			}
			if tc.want == ErrFullWidth {
				if _, err := ParseAt(strings.ToUpper(ascii(tc.in)), now); err != nil {
					t.Errorf("in ASCII, ParseAt = %v, want the ID accepted", err)
				}
			}
		})
	}
}

// lowerX completes 16 digits with the 17th digit that makes the check
// character X, and writes it as a lower-case x.
func lowerX(t *testing.T, first16 string) string {
	t.Helper()
	for d := '0'; d <= '9'; d++ {
		if first17 := first16 + string(d); CheckChar(first17) == 'X' {
			return first17 + "x"
		}
	}
	t.Fatalf("no 17th digit gives %s… the check character X", first16[:4])
	return ""
}

// fullWidth writes the ASCII digits and X/x of s in their full-width
// forms (U+FF10–FF19, U+FF38, U+FF58).
func fullWidth(s string) string {
	return strings.Map(func(r rune) rune {
		if '0' <= r && r <= '9' || r == 'X' || r == 'x' {
			return r - '!' + '！'
		}
		return r
	}, s)
}

// ascii is the inverse of fullWidth.
func ascii(s string) string {
	return strings.Map(func(r rune) rune {
		if '０' <= r && r <= '９' || r == 'Ｘ' || r == 'ｘ' {
			return r - '！' + '!'
		}
		return r
	}, s)
}

// with completes 17 digits with their check character.
func with(t *testing.T, first17 string) string {
	t.Helper()
	return first17 + string(CheckChar(first17))
}

func TestDerivedFields(t *testing.T) {
	id, err := ParseAt("230102199001011230", now)
	if err != nil {
		t.Fatal(err)
	}
	if got := id.BirthDate().Format(time.DateOnly); got != "1990-01-01" {
		t.Errorf("BirthDate = %s", got)
	}
	if id.Gender() != "1" || id.CountyCode() != "230102" {
		t.Errorf("Gender %s, county %s", id.Gender(), id.CountyCode())
	}
	female, _ := ParseAt(with(t, "23010219920202124"), now)
	if female.Gender() != "2" {
		t.Errorf("even 17th digit gives gender %s", female.Gender())
	}
}

func TestUpgrade15(t *testing.T) {
	id, err := Upgrade15("230102900101123")
	if err != nil {
		t.Fatal(err)
	}
	if string(id) != "230102199001011230" {
		t.Errorf("Upgrade15 = %s", string(id))
	}
	if _, err := Upgrade15("23010290010112X"); !errors.Is(err, ErrDigits) {
		t.Errorf("non-digit legacy ID: %v", err)
	}
}

// TestNeverPrintedInFull: fmt verbs and slog mask the ID; JSON carries it.
func TestNeverPrintedInFull(t *testing.T) {
	id := ID("230102199001011230")
	for _, verb := range []string{"%v", "%s", "%+v", "%#v", "%q"} {
		if out := fmt.Sprintf(verb, id); strings.Contains(out, string(id)) {
			t.Errorf("%s prints %s", verb, out)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "id", id)
	if strings.Contains(buf.String(), string(id)) || !strings.Contains(buf.String(), "2301**********1230") {
		t.Errorf("slog output %s", buf.String())
	}
	b, _ := json.Marshal(struct{ ID ID }{id})
	var back struct{ ID ID }
	if err := json.Unmarshal(b, &back); err != nil || back.ID != id {
		t.Errorf("JSON round trip: %s, %v", b, err)
	}
	if err := json.Unmarshal([]byte(`{"ID":"230102199001011231"}`), &back); err == nil {
		t.Error("unmarshalling an invalid ID succeeded")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"230102199001011230", "11010519491231002X", "", "000000000000000000", "23010219900230123X"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseAt(s, now)
		if err != nil {
			return
		}
		if len(id) != 18 || CheckChar(string(id)) != id[17] {
			t.Fatalf("accepted %q with a wrong check character", s)
		}
		if id.BirthDate().After(now) || id.BirthDate().IsZero() {
			t.Fatalf("accepted %q with birth date %v", s, id.BirthDate())
		}
	})
}

// TestParseAtJudgesTodayInChina: a birth date is in the future only after
// the calendar day in China (UTC+8), whatever zone now is in; at 23:30 UTC
// on 1 May it is already 2 May in China, and a child born that day exists.
func TestParseAtJudgesTodayInChina(t *testing.T) {
	bornMay2 := with(t, "23010220260502123")
	tests := []struct {
		name string
		now  time.Time
		want error
	}{
		{"07:30 in China, clock in UTC", time.Date(2026, 5, 1, 23, 30, 0, 0, time.UTC), nil},
		{"07:30 in China, clock in UTC-10", time.Date(2026, 5, 1, 13, 30, 0, 0, time.FixedZone("", -10*3600)), nil},
		{"07:30 in China, clock in China", time.Date(2026, 5, 2, 7, 30, 0, 0, time.FixedZone("CST", 8*3600)), nil},
		{"23:59 the day before in China", time.Date(2026, 5, 1, 15, 59, 0, 0, time.UTC), ErrFuture},
		{"midnight in China", time.Date(2026, 5, 1, 16, 0, 0, 0, time.UTC), nil},
		{"2 May in UTC+14, still 1 May in China", time.Date(2026, 5, 1, 23, 0, 0, 0, time.FixedZone("", 14*3600)), ErrFuture},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseAt(bornMay2, tc.now); !errors.Is(err, tc.want) {
				t.Errorf("ParseAt(born 2026-05-02, %v) = %v, want %v", tc.now, err, tc.want)
			}
			if got, want := Today(tc.now), tc.now.In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly); got.Format(time.DateOnly) != want || got.Location() != time.UTC {
				t.Errorf("Today(%v) = %v, want %s at midnight UTC", tc.now, got, want)
			}
		})
	}
}
