package jsonschema

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
)

// TestDocumentsCompileStrictly: what strict validators and code
// generators (ajv's default strict mode) refuse is absent from every
// document. A YAML flow mapping splits at a comma, so an unquoted
// description "its offset, in decimal" inside {…} leaves a key "in
// decimal" with a null value: an unknown keyword to them, and a
// description cut short. And a schema with properties must say it is an
// object (ajv's strictTypes).
func TestDocumentsCompileStrictly(t *testing.T) {
	docs := map[string]any{"openapi.yaml": readYAML(t, "openapi.yaml"), "asyncapi.yaml": readYAML(t, "asyncapi.yaml")}
	names, err := fs.Glob(FS(), "*.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		b, err := fs.ReadFile(FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		docs[name] = doc
	}
	for name, doc := range docs {
		// typed: a schema at the same place in the data (an ancestor
		// through allOf, if, then…) says type: object, which ajv
		// carries down.
		var walk func(v any, at string, typed bool)
		walk = func(v any, at string, typed bool) {
			switch c := v.(type) {
			case map[string]any:
				typed = typed || c["type"] == "object"
				_, props := c["properties"].(map[string]any)
				if props && !typed && !isPropertyMap(at) {
					t.Errorf("%s: %s has properties but no type: object (strict validators refuse it)", name, at)
				}
				for k, sub := range c {
					if sub == nil {
						t.Errorf("%s: %s/%s is null: the tail of an unquoted description split at a comma?", name, at, k)
					}
					walk(sub, at+"/"+k, typed && sameInstance[k])
				}
			case []any:
				for i, sub := range c {
					walk(sub, fmt.Sprintf("%s/%d", at, i), typed)
				}
			}
		}
		walk(doc, "#", false)
	}
}

// sameInstance holds the keywords whose subschemas apply to the instance
// their schema applies to.
var sameInstance = map[string]bool{"allOf": true, "anyOf": true, "oneOf": true, "if": true, "then": true, "else": true, "not": true}

// isPropertyMap reports whether the object at is a map of property names
// (of which one may be "properties"), not a schema.
func isPropertyMap(at string) bool {
	return strings.HasSuffix(at, "/properties")
}

// TestAsyncAPIOperationsAreTheHubs: the document describes the hub, which
// receives the department topics and sends the DLQ and the notifications;
// a generator builds consumers of the former and producers of the latter.
func TestAsyncAPIOperationsAreTheHubs(t *testing.T) {
	doc := readYAML(t, "asyncapi.yaml")
	ops, _ := doc["operations"].(map[string]any)
	if len(ops) == 0 {
		t.Fatal("no operations")
	}
	var receive []string
	for id, op := range ops {
		op := op.(map[string]any)
		ref, _ := op["channel"].(map[string]any)["$ref"].(string)
		action := op["action"]
		if strings.HasPrefix(ref, "#/channels/events-") && ref != "#/channels/events-dlq" {
			receive = append(receive, id)
			if action != "receive" {
				t.Errorf("operation %s on %s: action %v, want receive (the hub consumes department topics)", id, ref, action)
			}
		} else if action != "send" {
			t.Errorf("operation %s on %s: action %v, want send", id, ref, action)
		}
	}
	if slices.Sort(receive); len(receive) != 8 {
		t.Errorf("operations on department topics %v, want one per source", receive)
	}
}
