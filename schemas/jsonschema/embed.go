// Package jsonschema holds pophub's contract in machine-readable form: a
// JSON Schema (2020-12) for every event type's data, for the CloudEvent
// envelope, the golden record, history entries, notifications and problem
// details; asyncapi.yaml for the Kafka topics and NATS subjects; and
// openapi.yaml for the HTTP API. The files are embedded, and tests check
// that they agree with the Go code.
package jsonschema

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/pophub/pophub/schemas"
)

//go:embed *.schema.json asyncapi.yaml openapi.yaml
var files embed.FS

// BaseURI is the $id prefix of every schema.
const BaseURI = "https://pophub.dev/schemas/"

// FS returns the embedded documents.
func FS() fs.FS { return files }

// DataSchema returns the JSON Schema of an event type's data.
func DataSchema(t schemas.Type) ([]byte, error) {
	b, err := files.ReadFile(string(t) + ".schema.json")
	if err != nil {
		return nil, fmt.Errorf("reading the schema of event type %q: %w", t, err)
	}
	return b, nil
}

// Validator validates documents against the embedded schemas.
type Validator struct {
	compiled map[string]*jsonschema.Schema
}

// NewValidator compiles every embedded schema. Formats (date, date-time)
// are asserted, not merely annotated, so that "2025-02-30" is rejected as
// the hub rejects it. A Validator is safe for concurrent use.
func NewValidator() (*Validator, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	names, err := fs.Glob(files, "*.schema.json")
	if err != nil {
		return nil, fmt.Errorf("listing schemas: %w", err)
	}
	for _, name := range names {
		b, err := files.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		if err := c.AddResource(BaseURI+name, doc); err != nil {
			return nil, fmt.Errorf("adding %s: %w", name, err)
		}
	}
	v := &Validator{compiled: map[string]*jsonschema.Schema{}}
	for _, name := range names {
		s, err := c.Compile(BaseURI + name)
		if err != nil {
			return nil, fmt.Errorf("compiling %s: %w", name, err)
		}
		v.compiled[name] = s
	}
	return v, nil
}

func (v *Validator) validate(name string, doc []byte) error {
	s, ok := v.compiled[name]
	if !ok {
		return fmt.Errorf("validating against %s: %w", name, fs.ErrNotExist)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("reading document: %w", err)
	}
	return s.Validate(inst)
}

// ValidateData validates an event's data against its type's schema. An
// unknown type is an error wrapping fs.ErrNotExist; a document that fails
// its schema is a *jsonschema.ValidationError.
func (v *Validator) ValidateData(t schemas.Type, data []byte) error {
	return v.validate(string(t)+".schema.json", data)
}

// ValidateEvent validates a whole CloudEvent.
func (v *Validator) ValidateEvent(event []byte) error {
	return v.validate("cloudevent.schema.json", event)
}

// ValidateRecord validates a golden record.
func (v *Validator) ValidateRecord(record []byte) error {
	return v.validate("record.schema.json", record)
}

// ValidateChange validates a history entry.
func (v *Validator) ValidateChange(change []byte) error {
	return v.validate("change.schema.json", change)
}

// ValidateNotification validates a notification body.
func (v *Validator) ValidateNotification(n []byte) error {
	return v.validate("notification.schema.json", n)
}

// ValidateProblem validates a problem details body.
func (v *Validator) ValidateProblem(p []byte) error {
	return v.validate("problem.schema.json", p)
}

// Examples returns the examples embedded in an event type's data schema.
func Examples(t schemas.Type) ([]json.RawMessage, error) {
	b, err := DataSchema(t)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Examples []json.RawMessage `json:"examples"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("reading examples of %s: %w", t, err)
	}
	return doc.Examples, nil
}

// OpenAPIPaths lists the operations of openapi.yaml as "METHOD /path"
// ("GET /v1/persons/{citizen_id}"), sorted: the form of net/http.ServeMux
// patterns. Path-item keys that are not HTTP methods (parameters, summary)
// are not operations.
func OpenAPIPaths() ([]string, error) {
	b, err := files.ReadFile("openapi.yaml")
	if err != nil {
		return nil, fmt.Errorf("reading openapi.yaml: %w", err)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("reading openapi.yaml: %w", err)
	}
	var out []string
	for path, ops := range doc.Paths {
		for key := range ops {
			switch m := strings.ToUpper(key); m {
			case "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE":
				out = append(out, m+" "+path)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// ValidateEligibility validates an eligibility notification body.
func (v *Validator) ValidateEligibility(n []byte) error {
	return v.validate("eligibility.schema.json", n)
}
