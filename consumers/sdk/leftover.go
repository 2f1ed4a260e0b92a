package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/schemas"
)

// checkLeftoverConsumers stops a Config.ConsumerPerFilter subscriber whose
// filters changed under the same name. Its consumer names hash their
// subjects (schemas.FilterConsumerName), so new filters get new names and
// bind never meets the old consumers: without this check the subscriber
// would create the new ones at Config.Start (or from a bootstrap) and
// carry on, the old ones staying on the server, and what two
// configurations consumed would mix in one store. It returns an error
// wrapping ErrFilterChanged that names every consumer of the stream this
// name made for a subject the configuration no longer filters.
//
// A consumer counts as this name's when it is named
// FilterConsumerName(Config.Name, its own filter subject): not merely
// "<name>-" and eight hex digits, which another subscriber may be called
// (its single consumer filters something else than the subject hashing to
// its name), nor "<name>-x", another subscriber's per-filter prefix.
//
// A NATS user under the hub's access policy may not list the stream's
// consumers; the check is then skipped, with a warning logged once, rather
// than setting up failing for a permission the policy does not grant.
// Called under setupMu.
func (s *Subscriber) checkLeftoverConsumers(ctx context.Context) error {
	if !s.cfg.ConsumerPerFilter || s.listRefused {
		return nil
	}
	infos, err := s.listConsumers(ctx)
	if errors.Is(err, errRefused) {
		s.listRefused = true
		s.cfg.Logger.Warn("subscriber: may not list the stream's consumers, so consumers of this name left from earlier filters (another region) go unnoticed: delete them when the filters change",
			"subscriber", s.cfg.Name, "error", err)
		return nil
	}
	if err != nil {
		return err
	}
	configured := make(map[string]bool, len(s.durables))
	present := make(map[string]bool, len(infos))
	for _, d := range s.durables {
		configured[d.filter] = true
	}
	for _, ci := range infos {
		present[ci.Name] = true
	}
	// The consumer an older SDK made for a configured filter is the
	// filter's when the filter's own does not exist (see bind).
	for _, d := range s.durables {
		if d.legacyName != "" && !present[d.name] {
			configured[d.legacyFilter] = true
		}
	}
	var leftover []string
	for _, ci := range infos {
		f := ci.Config.FilterSubject
		if !configured[f] && ci.Name == schemas.FilterConsumerName(s.cfg.Name, f) {
			leftover = append(leftover, fmt.Sprintf("%s filters %q", ci.Name, f))
		}
	}
	switch len(leftover) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("durable consumer %s, a subject the configuration does not filter: delete it or use another name: %w",
			leftover[0], ErrFilterChanged)
	}
	slices.Sort(leftover)
	return fmt.Errorf("durable consumers of the name %s filter subjects the configuration does not (%s): delete them or use another name: %w",
		s.cfg.Name, strings.Join(leftover, "; "), ErrFilterChanged)
}

// errRefused is apiRequest's error when the server refused the request
// for want of permission.
var errRefused = errors.New("the NATS user may not make this request")

// consumerListResponse is a page of $JS.API.CONSUMER.LIST's answer.
type consumerListResponse struct {
	Error     *jetstream.APIError       `json:"error,omitempty"`
	Total     int                       `json:"total"`
	Consumers []*jetstream.ConsumerInfo `json:"consumers"`
}

// listConsumers lists the stream's consumers with their configurations,
// page by page ($JS.API.CONSUMER.LIST, which NATS 2.9 has). It makes the
// requests itself rather than through jetstream.Stream.ListConsumers to
// tell a refusal at once: the server drops a request its permissions
// forbid and says so only in an asynchronous -ERR, which the client keeps
// as the connection's last error, and the request would merely time out.
// The server answers a PING after that -ERR, so once a flush following
// the request returns, the refusal is known. It returns an error wrapping
// errRefused then.
func (s *Subscriber) listConsumers(ctx context.Context) ([]*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	subj := s.consumerListSubject()
	var out []*jetstream.ConsumerInfo
	for {
		var page consumerListResponse
		if err := s.apiRequest(ctx, subj, fmt.Appendf(nil, `{"offset":%d}`, len(out)), &page); err != nil {
			return nil, fmt.Errorf("listing the consumers of stream %s: %w", s.cfg.Stream, err)
		}
		if page.Error != nil {
			return nil, fmt.Errorf("listing the consumers of stream %s: %w", s.cfg.Stream, page.Error)
		}
		out = append(out, page.Consumers...)
		if len(page.Consumers) == 0 || len(out) >= page.Total {
			return out, nil
		}
	}
}

// apiRequest sends a JetStream API request and decodes its answer into
// resp, telling a publish permission refused (errRefused) from an
// answer that does not come (see listConsumers).
func (s *Subscriber) apiRequest(ctx context.Context, subj string, body []byte, resp any) error {
	inbox := s.nc.NewInbox() // under Config.InboxPrefix, which the policy lets the user subscribe to
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("subscribing to the reply inbox: %w", err)
	}
	defer sub.Unsubscribe()
	if err := s.nc.PublishRequest(subj, inbox, body); err != nil {
		return fmt.Errorf("sending the request: %w", err)
	}
	if err := s.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("sending the request: %w", err)
	}
	if last := s.nc.LastError(); refused(last, subj) {
		return fmt.Errorf("%w: %v", errRefused, last)
	}
	msg, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the answer: %w", err)
	}
	if err := json.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	return nil
}

// consumerListSubject is the JetStream API subject listConsumers sends to.
func (s *Subscriber) consumerListSubject() string {
	return "$JS.API.CONSUMER.LIST." + s.cfg.Stream
}

// refused reports whether err is the server's refusal to let the
// connection publish to subj.
func refused(err error, subj string) bool {
	return errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subj+`"`)
}

// asyncErrors is the error handler of the SDK's own connection. The
// server refuses a request its permissions forbid with an asynchronous
// -ERR, which nats.go hands to the handler besides keeping it as the last
// error; its default handler writes it to standard error. The refusals of
// the consumer list request and of the stream info requests are expected
// under an access policy, and apiRequest already tells them from the last
// error so that checkLeftoverConsumers and streamInfo say so once: here
// they are only logged at debug.
// Every other error (another subject refused, a slow consumer) is logged
// at error level when the caller gave a Logger, and otherwise goes to
// next (nats.go's default handler), as before, rather than to the
// discarding default Logger.
func (s *Subscriber) asyncErrors(next nats.ErrHandler, logged bool) nats.ErrHandler {
	return func(nc *nats.Conn, sub *nats.Subscription, err error) {
		if refused(err, s.consumerListSubject()) {
			s.cfg.Logger.Debug("subscriber: the server refused to list the stream's consumers", "subscriber", s.cfg.Name, "error", err)
			return
		}
		if refused(err, streamInfoSubject(s.cfg.Stream)) || refused(err, streamInfoSubject(s.cfg.DeadLetterStream)) {
			s.cfg.Logger.Debug("subscriber: the server refused to tell a stream's info", "subscriber", s.cfg.Name, "error", err)
			return
		}
		if !logged {
			if next != nil {
				next(nc, sub, err)
			}
			return
		}
		args := []any{"subscriber", s.cfg.Name, "error", err}
		if sub != nil {
			args = append(args, "subscription", sub.Subject)
		}
		s.cfg.Logger.Error("subscriber: NATS connection error", args...)
	}
}
