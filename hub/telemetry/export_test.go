package telemetry

import "time"

// SetDropLogEvery shortens the drop log's rate limit for a test; the
// returned function restores it.
func SetDropLogEvery(d time.Duration) (restore func()) {
	old := dropLogEvery
	dropLogEvery = d
	return func() { dropLogEvery = old }
}
