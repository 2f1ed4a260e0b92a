package sdk_test

import (
	"context"
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
