// Command kafkabroker runs the embedded Kafka-protocol broker in a process
// of its own, for tests (testenv.KafkaProcess) whose broker must not pay
// the race detector's cost or share the test process's CPU: built
// without -race it answers like the broker a deployment runs beside the
// hub, not several times slower.
//
// It prints the broker's address on one line of standard output and runs
// until standard input closes (so that it ends with the test process that
// started it, however that ends) or it receives SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pophub/pophub/hub/embedded"
)

func main() {
	partitions := flag.Int("partitions", 4, "partitions of each topic")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	broker, err := embedded.StartKafka(ctx, embedded.KafkaConfig{Addr: "127.0.0.1:0", Partitions: *partitions})
	if err != nil {
		slog.Error("starting the broker", "err", err)
		os.Exit(1)
	}
	defer broker.Close()
	fmt.Println(broker.Addr())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	<-ctx.Done()
}
