//go:build !race

package main

// raceEnabled sizes the fault battery down under the race detector.
const raceEnabled = false
