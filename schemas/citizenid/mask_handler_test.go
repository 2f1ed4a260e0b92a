package citizenid_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/pophub/pophub/schemas/citizenid"
)

// TestMaskingHandler: a server's own error line quoting a request for a
// person reaches the log with the ID masked, through a *log.Logger as
// net/http writes it.
func TestMaskingHandler(t *testing.T) {
	const id = "11010519491231002X"
	var buf bytes.Buffer
	l := slog.NewLogLogger(citizenid.MaskingHandler(slog.NewTextHandler(&buf, nil)).WithAttrs([]slog.Attr{slog.String("server", "api")}), slog.LevelWarn)
	l.Printf("http: superfluous response.WriteHeader call from GET /v1/persons/%s", id)
	if strings.Contains(buf.String(), id) || !strings.Contains(buf.String(), citizenid.ID(id).Masked()) || !strings.Contains(buf.String(), "server=api") {
		t.Errorf("logged %q: want the ID masked as %s and the attribute kept", buf.String(), citizenid.ID(id).Masked())
	}
}
