package api

import "testing"

// FuzzPageToken: a token decodePageToken takes continues the walk it
// names, and encodes to a token of the same walk and cursor.
func FuzzPageToken(f *testing.F) {
	f.Add(encodePageToken(7, walk{region: "2301"}, "230102:abc"))
	f.Add(encodePageToken(7, walk{region: "230102", keyOrder: true}, "k1"))
	f.Add(encodePageToken(0, walk{}, "x"))
	f.Add("NzphYmM") // the previous format, 7:abc
	f.Fuzz(func(t *testing.T, tok string) {
		pt, err := decodePageToken(tok)
		if err != nil || !pt.bound {
			return
		}
		// base64 decoding skips line ends and takes non-zero padding
		// bits: equivalent tokens, so compare what they decode to.
		again := encodePageToken(pt.seq, pt.walk, pt.cursor)
		if pt2, err := decodePageToken(again); err != nil || pt2 != pt {
			t.Fatalf("%q decodes to %+v, which encodes as %q, decoding to %+v (%v)", tok, pt, again, pt2, err)
		}
	})
}
