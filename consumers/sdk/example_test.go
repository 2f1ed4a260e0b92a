package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os/signal"
	"syscall"

	"github.com/pophub/pophub/consumers/sdk"
)

// A pension office in Harbin follows migrations out of the city and deaths
// in it. The handler keys its writes on ChangeID, so a notification
// delivered twice after a crash changes nothing.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sub, err := sdk.New(sdk.Config{
		Name: "pension-2301",
		URL:  "nats://127.0.0.1:14222",
		Filters: []sdk.Filter{
			{Kind: sdk.MigrationsOut, Region: "2301"},
			{Kind: sdk.Deaths, Region: "2301"},
		},
		Handler: func(ctx context.Context, d *sdk.Delivery) error {
			// The ID prints masked; use string(d.CitizenID) to store it.
			fmt.Printf("%s %s: %s → %s\n", d.Section, d.CitizenID, d.FromAddressCode, d.ToAddressCode)
			return nil // ack; an error would retry, then dead-letter
		},
		Start: sdk.Start{Policy: sdk.StartAll},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Run(ctx); err != nil { // until SIGINT; in-flight messages finish
		log.Fatal(err)
	}
}

// A handler marks the failures of its own database as transient: the
// notification then waits for the database however long it is down,
// instead of being dead-lettered after MaxAttempts. A failure the
// notification causes stays an ordinary error.
func ExampleTransient() {
	errConnRefused := errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	save := func(context.Context, *sdk.Delivery) error { return errConnRefused }
	handler := func(ctx context.Context, d *sdk.Delivery) error {
		if err := save(ctx, d); err != nil {
			if errors.Is(err, errConnRefused) {
				err = sdk.Transient(err)
			}
			return fmt.Errorf("recording task: %w", err)
		}
		return nil
	}
	err := handler(context.Background(), &sdk.Delivery{})
	fmt.Println(sdk.IsTransient(err), err)
	// Output: true recording task: dial tcp 127.0.0.1:5432: connect: connection refused
}
