package publisher

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pophub/pophub/schemas"
)

// TestEventIDGodocVectors: the godoc of EventID, what a department porting
// the recipe to its own system reads, gives test vectors, and each is the
// id EventID derives and the one the recipe the godoc and README.md state
// gives (SHA-256 of the source, a NUL byte and the key). The godoc once
// said the key alone was hashed: ids made so never match the library's,
// and the hub applied a version sent both ways twice.
func TestEventIDGodocVectors(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "publisher.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var doc string
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "EventID" {
			doc = fn.Doc.Text()
		}
	}
	if doc == "" {
		t.Fatal("EventID has no godoc")
	}
	if recipe := "SHA-256 of the\nsource, a NUL byte and the record key"; !strings.Contains(doc, recipe) {
		t.Errorf("the godoc of EventID does not state the recipe (%q):\n%s", recipe, doc)
	}
	vector := regexp.MustCompile(`EventID\("([^"]*)", "([^"]*)", (-?\d+)\)\s*== "([^"]*)"`)
	vectors := vector.FindAllStringSubmatch(doc, -1)
	if len(vectors) == 0 {
		t.Fatalf("the godoc of EventID gives no test vector (EventID(\"housing\", \"KEY\", 1) == \"…\"):\n%s", doc)
	}
	for _, v := range vectors {
		source, key, want := schemas.Source(v[1]), v[2], v[4]
		version, err := strconv.ParseInt(v[3], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if got := EventID(source, key, version); got != want {
			t.Errorf("EventID(%q, %q, %d) = %s; the godoc says %s", source, key, version, got, want)
		}
		// The recipe, as stated, written out independently.
		sum := sha256.Sum256([]byte(string(source) + "\x00" + key))
		var ver [8]byte
		binary.BigEndian.PutUint64(ver[:], uint64(version)^1<<63)
		if recipe := string(source) + "-" + hex.EncodeToString(sum[:12]) + "-" + hex.EncodeToString(ver[:]); recipe != want {
			t.Errorf("the godoc gives %s for (%q, %q, %d); its recipe gives %s", want, source, key, version, recipe)
		}
	}
}
