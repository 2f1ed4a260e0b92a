package publisher_test

import (
	"crypto/sha256"
	"fmt"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/schemas"
)

// The id of version 1 of a housing bureau's lease, and the same id derived
// by hand, as a system in another language derives it: the SHA-256 of the
// source, a NUL byte and the record key, its first 12 bytes in hex, then
// the version with its sign bit flipped, as 16 hex digits.
func ExampleEventID() {
	fmt.Println(publisher.EventID(schemas.Housing, "HRB-2026-0042", 1))

	sum := sha256.Sum256([]byte("housing" + "\x00" + "HRB-2026-0042"))
	version := int64(1)
	fmt.Printf("housing-%x-%016x\n", sum[:12], uint64(version)^1<<63)
	// Output:
	// housing-6190c894d12e1bae077f4068-8000000000000001
	// housing-6190c894d12e1bae077f4068-8000000000000001
}
