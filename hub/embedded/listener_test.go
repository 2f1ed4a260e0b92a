package embedded

import (
	"context"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestBrokerOutlivesRunningOutOfFiles: a connection the broker cannot
// accept because the process has no file descriptor left (EMFILE) is
// accepted once one is free, and the broker goes on serving: kfake alone
// stopped listening at the first such error, for good.
func TestBrokerOutlivesRunningOutOfFiles(t *testing.T) {
	k, err := StartKafka(context.Background(), KafkaConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)

	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	// ReadDir's own descriptor is closed again: the client's socket takes
	// the last one, and the broker's accept finds none.
	tight := lim
	tight.Cur = uint64(len(entries))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &tight); err != nil {
		t.Fatal(err)
	}
	conn, dialErr := net.DialTimeout("tcp", k.Addr(), 5*time.Second)
	time.Sleep(200 * time.Millisecond) // the broker meets EMFILE meanwhile
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if dialErr != nil {
		t.Fatalf("dialing with one descriptor left: %v", dialErr)
	}
	conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(k.Addr())}
	if _, err := cl.Metadata(ctx, &kafka.MetadataRequest{}); err != nil {
		t.Fatalf("the broker after running out of descriptors: %v", err)
	}
}
