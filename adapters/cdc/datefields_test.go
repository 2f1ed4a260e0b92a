package cdc

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/jsonschema"
)

// TestDateFieldsAreTheSchemasDates checks dateFields against the schemas'
// own validation: of every catalogue type, each string field given a
// timestamp is refused as "must be a date" exactly when dateFields names
// it, starting from the type's first schema example.
func TestDateFieldsAreTheSchemasDates(t *testing.T) {
	first := "11010119900101001"
	subject := citizenid.ID(first + string(citizenid.CheckChar(first)))
	for _, typ := range schemas.Types() {
		t.Run(string(typ), func(t *testing.T) {
			dates, err := dateFields(typ)
			if err != nil {
				t.Fatal(err)
			}
			b, err := jsonschema.DataSchema(typ)
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Examples []map[string]any `json:"examples"`
			}
			if err := json.Unmarshal(b, &doc); err != nil || len(doc.Examples) == 0 {
				t.Fatalf("the schema has no example to start from (%v)", err)
			}
			kinds := dataFields(schemas.NewData(typ))
			var got []string
			for _, name := range slices.Sorted(maps.Keys(kinds)) {
				if kinds[name] != kindString {
					continue
				}
				data := maps.Clone(doc.Examples[0])
				data[name] = "2025-01-01 00:00:00"
				raw, err := json.Marshal(data)
				if err != nil {
					t.Fatal(err)
				}
				ev := schemas.Event{SpecVersion: schemas.SpecVersion, ID: "e1", Source: schemas.SourceOf(typ), Type: typ,
					Subject: subject, Time: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), Data: raw}
				value, err := schemas.Encode(ev)
				if err != nil {
					t.Fatal(err)
				}
				_, err = schemas.Decode(schemas.Input{Topic: schemas.Topic(ev.Source), Key: []byte(subject), Value: value})
				if err != nil && strings.Contains(err.Error(), "data."+name+": must be a date") {
					got = append(got, name)
				}
			}
			if want := slices.Sorted(maps.Keys(dates)); !slices.Equal(got, want) {
				t.Errorf("fields refused as not a date: %q; dateFields: %q", got, want)
			}
		})
	}
}
