package cdc

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
)

// TestPersonNamesReadAsImportDoes: a name column is read as `pophub
// import` reads a name cell, so that one person has one name whichever
// door it came through: trimmed of the ideographic spaces a GBK-era
// system pads a fixed-width field with, and of characters that show as
// nothing (left out when nothing remains), and with the middle dot U+00B7
// of the register between the parts of a two-part name, whatever look-
// alike the clerk typed. The event is one the hub accepts. A business's
// name is free text, sent as it is.
func TestPersonNamesReadAsImportDoes(t *testing.T) {
	m := Mapping{CitizenID: "citizen_id", Key: []string{"case_id"},
		Insert: &Operation{Type: schemas.IdentityCorrected, Data: map[string]string{"name": "name", "gender": "gender"}}}
	p, err := m.compile(schemas.PublicSecurity, "corrections")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, text string
		want       any // the data's name; nil: left out
	}{
		{"as typed", "张三", "张三"},
		{"padded with ideographic spaces", "张三\u3000\u3000", "张三"},
		{"a byte order mark first", "\ufeff张三", "张三"},
		{"blank", "\u3000\u3000", nil},
		{"katakana middle dot", "阿依古丽・买买提", "阿依古丽·买买提"},
		{"bullet and fullwidth full stop", "买买提•艾力．阿不都热合曼", "买买提·艾力·阿不都热合曼"},
		{"ASCII full stop between Han characters", "阿依古丽.买买提", "阿依古丽·买买提"},
		{"the middle dot", "阿依古丽·买买提", "阿依古丽·买买提"},
		{"Latin initials", "J. Smith", "J. Smith"},
		{"rare characters", "𠮷野家", "𠮷野家"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := row{"case_id": {text: "7"}, "citizen_id": {text: citizen(1)}, "name": {text: tt.text}, "gender": {text: "1"}}
			if got := acceptedData(t, p, r)["name"]; got != tt.want {
				t.Errorf("name %+q, want %+q", got, tt.want)
			}
		})
	}

	// A look-alike that joins no two parts is left for the hub to refuse,
	// naming the middle dot to use: the row is bad, not guessed at.
	r := row{"case_id": {text: "7"}, "citizen_id": {text: citizen(1)}, "name": {text: "・买买提"}, "gender": {null: true}}
	ev, _, err := p.event(change{kind: opInsert, row: r, version: 7, commit: time.Now()})
	if err != nil {
		t.Fatalf("event: %v", err)
	}
	b, err := schemas.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	_, err = schemas.Decode(schemas.Input{Value: b})
	if re, ok := errors.AsType[*schemas.RejectError](err); !ok || re.Field != "data.name" {
		t.Errorf("the hub: %v; want a reject on data.name", err)
	}

	// A business's name is no person's: sent as it is.
	bm := Mapping{CitizenID: "citizen_id", Key: []string{"business_id"},
		Insert: &Operation{Type: schemas.BusinessRegistered, Data: map[string]string{"business_id": "business_id", "region": "region", "name": "name"}}}
	bp, err := bm.compile(schemas.Tax, "businesses")
	if err != nil {
		t.Fatal(err)
	}
	r = row{"business_id": {text: "92230102MA00X1Y2KE"}, "citizen_id": {text: citizen(1)}, "region": {text: "230102"}, "name": {text: "李记・小吃"}}
	ev, _, err = bp.event(change{kind: opInsert, row: r, version: 7, commit: time.Now()})
	if err != nil {
		t.Fatalf("event: %v", err)
	}
	var data map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil || data["name"] != "李记・小吃" {
		t.Errorf("business name %+q (%v), want it sent as it is", data["name"], err)
	}
}

// TestHouseholdNumbersReadAsImportDoes: a household number (户号) is read
// trimmed, as `pophub import` reads every cell: the hub refuses a padded
// one, since "H1 " would name another household than "H1", and a varchar
// column keeps what the register's clerk pasted. A migration's number
// left blank is left out (the person keeps their household).
func TestHouseholdNumbersReadAsImportDoes(t *testing.T) {
	m := Mapping{CitizenID: "citizen_id", Key: []string{"case_id"},
		Insert: &Operation{Type: schemas.HukouMigrated, Data: map[string]string{
			"from_address_code": "from", "to_address_code": "to", "reason": "='family'", "household_id": "hh"}}}
	p, err := m.compile(schemas.PublicSecurity, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, text string
		want       any // the data's household_id; nil: left out
	}{
		{"as typed", "H230102000001", "H230102000001"},
		{"a trailing space", "H230102000001 ", "H230102000001"},
		{"ideographic spaces and a byte order mark", "\ufeffH230102000001\u3000", "H230102000001"},
		{"blank", "            ", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := row{"case_id": {text: "7"}, "citizen_id": {text: citizen(1)}, "from": {text: "230102001001"}, "to": {text: "230102001002"}, "hh": {text: tt.text}}
			if got := acceptedData(t, p, r)["household_id"]; got != tt.want {
				t.Errorf("household_id %+q, want %+q", got, tt.want)
			}
		})
	}
}

// acceptedData is the data of the event p makes of an insert of r,
// checking that the hub accepts the event.
func acceptedData(t *testing.T, p *plan, r row) map[string]any {
	t.Helper()
	ev, _, err := p.event(change{kind: opInsert, row: r, version: 7, commit: time.Now()})
	if err != nil {
		t.Fatalf("event: %v", err)
	}
	var data map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatal(err)
	}
	b, err := schemas.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := schemas.Decode(schemas.Input{Value: b}); err != nil {
		t.Errorf("the hub would reject it: %v", err)
	}
	return data
}
