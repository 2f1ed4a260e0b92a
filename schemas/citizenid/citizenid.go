// Package citizenid parses and validates the 18-character citizen identity
// number of GB 11643-1999, the only key of the population database.
//
// An ID is sensitive personal information: its String, Format and LogValue
// methods mask it, so that printing or logging one never leaks it. Code that
// must store or transmit the full number converts explicitly with
// string(id). MarshalText writes the full number, because JSON bodies
// carry it; so slog's JSON handler, which encodes slices and structs with
// encoding/json, prints in full the IDs inside a slice or struct: log IDs
// one attribute at a time.
package citizenid

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/pophub/pophub/schemas/region"
)

// ID is a validated 18-character citizen identity number. The zero value is
// not a valid ID. Construct with Parse.
type ID string

// Error reasons returned by Parse, wrapped in *Error.
var (
	ErrLength    = errors.New("must be 18 characters")
	ErrDigits    = errors.New("first 17 characters must be digits")
	ErrCheck     = errors.New("check character does not match (GB 11643 MOD 11-2)")
	ErrCheckCase = errors.New("check character must be upper-case X, not x (GB 11643)")
	ErrProvince  = errors.New("first two digits are not a province code")
	ErrBirthDate = errors.New("birth date digits are not a real date")
	ErrFuture    = errors.New("birth date lies in the future")
	ErrFullWidth = errors.New("must be written in ASCII digits (full-width digits are not accepted)")
)

// Error explains why a string is not a citizen ID. It never includes the
// input itself.
type Error struct{ Reason error }

func (e *Error) Error() string { return "invalid citizen ID: " + e.Reason.Error() }
func (e *Error) Unwrap() error { return e.Reason }

var weights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

const checkChars = "10X98765432"

// CheckChar computes the GB 11643 MOD 11-2 check character of 17 digits.
func CheckChar(first17 string) byte {
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(first17[i]-'0') * weights[i]
	}
	return checkChars[sum%11]
}

// Parse validates s against GB 11643-1999 as of now: 17 digits, the MOD 11-2
// check character (upper-case X), a real birth date not in the future, and a
// real province code or residence permit prefix (IsPrefix).
//
// A lower-case x is not accepted where the check character is X, but it is
// not reported as a wrong check character either: when the ID is valid but
// for its case, the error is ErrCheckCase, so that the sender upper-cases it
// rather than doubting the number. An ID wrong in other ways as well gets
// the error of its other fault.
//
// An ID travels in ASCII, but a Chinese input method in full-width mode
// types its digits as ２３０１…Ｘ, which look the same on screen. Such an
// ID is not accepted either, and is judged like the lower-case x: when it
// is valid but for the width of its characters, the error is
// ErrFullWidth, not ErrLength (its 18 characters are 54 bytes); when it is
// wrong in other ways as well, the error of its other fault. Any other
// character outside ASCII (an ideographic 〇 for a 0) counts as one
// character that is not a digit.
func Parse(s string) (ID, error) { return ParseAt(s, time.Now()) }

// ParseAt is Parse with an explicit "now" for the future-date check, which
// judges the birth date against Today(now).
func ParseAt(s string, now time.Time) (ID, error) {
	id, err := parseASCII(s, now)
	if err != nil && !isASCII(s) {
		// Only a refused ID is looked at again: one accepted is ASCII.
		return "", parseNonASCII(s, now)
	}
	return id, err
}

// parseASCII is ParseAt for an ID written in ASCII; anything else fails
// its rules, with an error that counts bytes, not characters.
func parseASCII(s string, now time.Time) (ID, error) {
	if len(s) != 18 {
		return "", &Error{ErrLength}
	}
	for i := 0; i < 17; i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", &Error{ErrDigits}
		}
	}
	c := CheckChar(s)
	lowerX := c == 'X' && s[17] == 'x'
	if c != s[17] && !lowerX {
		return "", &Error{ErrCheck}
	}
	if !IsPrefix(s[:2]) {
		return "", &Error{ErrProvince}
	}
	birth, ok := parseDate(s[6:14])
	if !ok {
		return "", &Error{ErrBirthDate}
	}
	if birth.After(Today(now)) {
		return "", &Error{ErrFuture}
	}
	if lowerX {
		return "", &Error{ErrCheckCase}
	}
	return ID(s), nil
}

// parseNonASCII is the error of ParseAt for a string that is not all
// ASCII, counted in characters rather than bytes: full-width digits and
// Ｘ/ｘ are read as their ASCII forms and any other non-ASCII character
// (or invalid UTF-8 byte) as '?', which no rule accepts, and the result is
// judged as Parse judges it. It never returns nil.
func parseNonASCII(s string, now time.Time) error {
	if utf8.RuneCountInString(s) != 18 {
		return &Error{ErrLength}
	}
	var b [18]byte
	wide := false
	i := 0
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf:
			b[i] = byte(r)
		case '０' <= r && r <= '９':
			b[i], wide = byte('0'+r-'０'), true
		case r == 'Ｘ' || r == 'ｘ':
			b[i], wide = byte('X'+r-'Ｘ'), true // 'x' for 'ｘ'
		default:
			b[i] = '?'
		}
		i++
	}
	_, err := parseASCII(string(b[:]), now)
	if wide && (err == nil || errors.Is(err, ErrCheckCase)) {
		// The width is what to fix first; a lower-case x, if any,
		// is reported once the ID is sent in ASCII.
		return &Error{ErrFullWidth}
	}
	return err
}

// residencePermitPrefixes are the first two digits of the numbers on
// residence permits for residents of Hong Kong (81), Macao (82) and Taiwan
// (83), issued since 2018 under GB 11643 (810000, 820000 and 830000, then
// birth date, sequence and check character). 81 and 82 are also province
// codes; 83 is no division code at all, so it is listed here and not in
// the region table, whose codes name places.
var residencePermitPrefixes = map[string]bool{"81": true, "82": true, "83": true}

// IsPrefix reports whether p, two digits, can begin a citizen ID: a
// province code, or the prefix of a residents' residence permit number.
func IsPrefix(p string) bool { return region.IsProvince(p) || residencePermitPrefixes[p] }

// isASCII reports whether s holds only ASCII characters, as an ID does.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// china is China Standard Time: UTC+8 all year, no daylight saving time.
var china = time.FixedZone("CST", 8*3600)

// Today is the calendar day of now in China Standard Time, as midnight UTC
// (the form parseDate gives birth dates in). Births, deaths and
// registrations happen on Chinese calendar days: a child born and
// registered at 07:30 on 2 May in Harbin is born "today" even on a hub
// whose clock runs in UTC, where it is still 1 May. So every "not in the
// future" check on a date (here and in package schemas) compares against
// this day rather than the date of now in its own location.
func Today(now time.Time) time.Time {
	y, m, d := now.In(china).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Upgrade15 turns a legacy 15-digit number (GB 11643-1989) into its 18-digit
// form: the century "19" is inserted before the two-digit birth year and the
// check character is computed. The result is validated like Parse.
func Upgrade15(s string) (ID, error) {
	if len(s) != 15 {
		return "", &Error{ErrLength}
	}
	for i := 0; i < 15; i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", &Error{ErrDigits}
		}
	}
	first17 := s[:6] + "19" + s[6:]
	return Parse(first17 + string(CheckChar(first17)))
}

// parseDate reads YYYYMMDD as time.Parse("20060102", s) does, refusing
// years before 1850. Written out because every event's subject goes
// through it.
func parseDate(yyyymmdd string) (time.Time, bool) {
	if len(yyyymmdd) != 8 {
		return time.Time{}, false
	}
	var n [8]int
	for i := range 8 {
		c := yyyymmdd[i]
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
		n[i] = int(c - '0')
	}
	year := n[0]*1000 + n[1]*100 + n[2]*10 + n[3]
	month := n[4]*10 + n[5]
	day := n[6]*10 + n[7]
	if year < 1850 || month < 1 || month > 12 || day < 1 || day > DaysIn(month, year) {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC), true
}

// DaysIn is the number of days of month (1–12) in year, leap years as in
// package time.
func DaysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// BirthDate is the date encoded in digits 7–14, or the zero time if id is
// not 18 characters long (the zero ID).
func (id ID) BirthDate() time.Time {
	if len(id) != 18 {
		return time.Time{}
	}
	t, _ := parseDate(string(id)[6:14])
	return t
}

// Gender is the GB/T 2261.1 gender code implied by the 17th digit: "1"
// (male) when odd, "2" (female) when even; "" if id is not 18 characters
// long.
func (id ID) Gender() string {
	if len(id) != 18 {
		return ""
	}
	if (string(id)[16]-'0')%2 == 1 {
		return "1"
	}
	return "2"
}

// CountyCode is the 6-digit division code of the place where the number was
// first issued, or "" if id is not 18 characters long.
func (id ID) CountyCode() string {
	if len(id) != 18 {
		return ""
	}
	return string(id)[:6]
}

// Masked shows the first four and last four characters only, e.g.
// 2301**********1234.
func (id ID) Masked() string {
	s := string(id)
	if len(s) < 8 {
		return "****"
	}
	return s[:4] + "**********" + s[len(s)-4:]
}

// String masks the ID so that fmt never prints it in full.
func (id ID) String() string { return id.Masked() }

// GoString masks the ID in %#v output too.
func (id ID) GoString() string { return fmt.Sprintf("citizenid.ID(%q)", id.Masked()) }

// Format masks the ID under every fmt verb. Without it a wrong verb (%d,
// %t) would print the digits in fmt's error text, "%!d(citizenid.ID=…)".
// fmt cannot call methods on unexported struct fields, so a struct that
// keeps an ID in an unexported field still prints it in full with %v:
// give such structs a String or LogValue method of their own.
func (id ID) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, id.GoString())
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), id.Masked())
}

// LogValue masks the ID in structured logs.
func (id ID) LogValue() slog.Value { return slog.StringValue(id.Masked()) }

// MarshalText writes the full number: JSON bodies exchanged with authorised
// systems carry it. Logs and errors never use this path.
func (id ID) MarshalText() ([]byte, error) { return []byte(id), nil }

// UnmarshalText parses and validates.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
