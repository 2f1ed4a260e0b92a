package cdc

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
)

// TestBlankNameTakesTheFallback: a name column a GBK-era system padded to
// its width with U+3000 and left otherwise empty counts as no value, so a
// mapping's fallback (name: xm | zjxm) gives the name, as pophub import
// takes a field's default for a cell blank once trimmed. Without it an
// identity.corrected would lose its name, and a hukou.registered, which
// requires one, would be a bad row.
func TestBlankNameTakesTheFallback(t *testing.T) {
	m := Mapping{CitizenID: "citizen_id", Key: []string{"case_id"},
		Insert: &Operation{Type: schemas.IdentityCorrected, Data: map[string]string{"name": "xm | zjxm"}}}
	p, err := m.compile(schemas.PublicSecurity, "corrections")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		xm, zjxm cell
		want     any // the data's name; nil: left out
	}{
		{"blank with U+3000", cell{text: "\u3000\u3000\u3000\u3000"}, cell{text: "张三"}, "张三"},
		{"blank with spaces and a zero-width space", cell{text: "  \u200b"}, cell{text: "\u3000张三\u3000"}, "张三"},
		{"NULL", cell{null: true}, cell{text: "张三"}, "张三"},
		{"the first holds a name", cell{text: "李四\u3000\u3000"}, cell{text: "张三"}, "李四"},
		{"the fallback fixed as the first is", cell{null: true}, cell{text: "阿依古丽・买买提"}, "阿依古丽·买买提"},
		{"both blank", cell{text: "\u3000"}, cell{text: " "}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := row{"case_id": {text: "7"}, "citizen_id": {text: citizen(1)}, "xm": tt.xm, "zjxm": tt.zjxm}
			ev, _, err := p.event(change{kind: opInsert, row: r, version: 7, commit: time.Now()})
			if err != nil {
				t.Fatalf("event: %v", err)
			}
			var data map[string]any
			if err := json.Unmarshal(ev.Data, &data); err != nil {
				t.Fatal(err)
			}
			if data["name"] != tt.want {
				t.Errorf("name %+q; want %+q", data["name"], tt.want)
			}
		})
	}
}
