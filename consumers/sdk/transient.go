package sdk

import "errors"

// Transient marks a Handler's error as one that will pass without any
// change to the notification: its database or a service it calls is
// unreachable. The subscriber retries the notification with the
// Config.Backoff delays, the last repeating, until the Handler succeeds or
// Run's context ends, however long that takes, and does not count these
// failures against Config.MaxAttempts: an outage longer than the backoff
// schedule does not dead-letter the notifications it meets. The retry
// holds back the citizen's later notifications as any retry does.
//
// Mark only failures outside the notification: one the notification
// itself causes would be retried for ever, and hold back every citizen of
// its worker, and once that worker holds the consumer's MaxAckPending
// messages every notification (see the package doc's Per-citizen order).
// Transient(nil) is nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err: err}
}

// IsTransient reports whether err or an error it wraps was marked with
// Transient.
func IsTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}

// transientError is an error marked with Transient; its text is the
// error's own.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }
