package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
)

// ConsumerJudge decides whether a consumer of a stream may stay: owner is
// who it belongs to ("" when no one in particular), problem why it must
// go ("" to keep it). filters are its filter subjects, empty for a
// consumer reading the whole stream; deliver is a push consumer's
// deliver subject, "" for a pull consumer. It must not block.
type ConsumerJudge func(name string, filters []string, deliver string) (owner, problem string)

// PruneConsumers deletes the consumers of stream that judge refuses,
// logging each deletion (consumer, identity, reason), and returns their
// names. The hub calls it at start under an access policy: a durable
// consumer outlives the policy it was made under, and NATS lets whoever
// may pull from a consumer's name read whatever its filter selects, so a
// consumer made under a wider, older policy would keep delivering what
// the current one no longer grants. A missing stream has no consumers; a
// consumer already gone (another hub instance pruned it) is no error.
//
// It uses only the consumer list and delete requests of the JetStream
// API, which NATS 2.9 has; the multi-filter FilterSubjects of later
// servers are judged too.
func PruneConsumers(ctx context.Context, js jetstream.JetStream, stream string, judge ConsumerJudge, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.Default()
	}
	st, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up stream %s: %w", stream, err)
	}
	type doomed struct{ name, owner, problem string }
	var drop []doomed
	l := st.ListConsumers(ctx)
	for ci := range l.Info() {
		filters := ci.Config.FilterSubjects
		if f := ci.Config.FilterSubject; f != "" {
			filters = append([]string{f}, filters...)
		}
		if owner, problem := judge(ci.Name, filters, ci.Config.DeliverSubject); problem != "" {
			drop = append(drop, doomed{ci.Name, owner, problem})
		}
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("listing consumers of stream %s: %w", stream, err)
	}
	var deleted []string
	for _, d := range drop {
		err := st.DeleteConsumer(ctx, d.name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			return deleted, fmt.Errorf("deleting consumer %s of stream %s: %w", d.name, stream, err)
		}
		log.Warn("deleted a consumer the access policy does not allow", "stream", stream, "consumer", d.name,
			"identity", d.owner, "reason", d.problem)
		deleted = append(deleted, d.name)
	}
	return deleted, nil
}
