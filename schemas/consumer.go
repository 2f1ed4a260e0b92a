package schemas

import (
	"crypto/sha256"
	"encoding/hex"
)

// FilterConsumerName is the durable consumer name of subscriber name's
// consumer for one filter subject when it runs one consumer per filter
// (consumers/sdk Config.ConsumerPerFilter): name, "-", and the first eight
// hexadecimal digits of the SHA-256 of subject, e.g.
// FilterConsumerName("si-harbin", "pop.death.23.2301.*") = "si-harbin-" + 8 hex.
//
// It is part of the contract because two sides must compute the same
// name: the SDK, which creates and binds the consumers, and the hub's
// access policy, which lets an identity create a consumer of that name
// only with that filter (hub/access NATSPermissions). It depends on
// nothing but its arguments, so a restarted subscriber binds the consumers
// it created before. The subject enters as a hash because a consumer name
// may not contain '.', '*', '>' or white space, of which subjects are
// made; the result holds only the name's characters, '-' and hex digits.
// Eight digits keep names short; that two filters of one subscriber share
// a name is a one-in-four-billion chance, which the SDK and the policy
// check refuse rather than ignore.
func FilterConsumerName(name, subject string) string {
	sum := sha256.Sum256([]byte(subject))
	return name + "-" + hex.EncodeToString(sum[:4])
}

// EligibilityWatcherConsumer is the durable consumer of the notification
// stream that the hub's eligibility watcher reads. An access policy may
// not name an identity so: NATS would let that identity pull from it, that
// is, every notification.
const EligibilityWatcherConsumer = "pophub-eligibility"
