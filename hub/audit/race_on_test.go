//go:build race

package audit

// raceEnabled: the race detector slows JSON decoding about tenfold.
const raceEnabled = true
