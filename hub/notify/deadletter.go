package notify

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureDeadLetterStream creates stream name capturing <prefix>.>, where
// subscribers built on consumers/sdk put their dead letters
// (<prefix>.<subscriber>), unless some stream already captures them. The
// SDK creates the same stream itself when it may; under an access policy
// subscribers may not create streams (a stream captures arbitrary
// subjects), so the hub, which may, creates it for them. Its settings are
// the SDK's: file storage and no limits, so that a dead letter waits until
// an operator replays or deletes it, as rejected records do in the Kafka
// DLQ. An existing stream, the SDK's or an operator's, is left as it is.
func EnsureDeadLetterStream(ctx context.Context, js jetstream.JetStream, name, prefix string) error {
	if _, err := js.StreamNameBySubject(ctx, prefix+".>"); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("looking up the dead-letter stream: %w", err)
	}
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        name,
		Description: "pophub subscribers' dead letters",
		Subjects:    []string{prefix + ".>"},
		Storage:     jetstream.FileStorage,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("creating the dead-letter stream %s: %w", name, err)
	}
	return nil
}
