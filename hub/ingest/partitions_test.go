package ingest

import (
	"context"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/schemas"
)

// TestAddedPartitionIsConsumed: an operator adds a partition to a source
// topic while the hub runs; a record written to it is applied, without a
// restart.
func TestAddedPartitionIsConsumed(t *testing.T) {
	k := broker(t) // two partitions per topic
	topic := schemas.Topic(schemas.Marriage)
	a := &recordingApplier{}
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "added-partition"}, a)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	defer stop()
	writeRecords(t, k.Addr(), kafka.Message{Topic: topic, Key: []byte(idA),
		Value: []byte(cloudEvent("m-1", "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))})
	waitUntil(t, "the first event applied", func() bool { return a.count() == 1 })

	cl := &kafka.Client{Addr: kafka.TCP(k.Addr()), Transport: &kafka.Transport{}}
	defer CloseTransport(cl.Transport)
	resp, err := cl.CreatePartitions(context.Background(), &kafka.CreatePartitionsRequest{
		Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range resp.Errors {
		if err != nil {
			t.Fatal(err)
		}
	}

	// Straight to the new partition's leader: a writer would balance over
	// the partitions it knew of.
	conn, err := kafka.DialLeader(context.Background(), "tcp", k.Addr(), topic, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.WriteMessages(kafka.Message{Key: []byte(idA),
		Value: []byte(cloudEvent("m-2", "marriage", "marriage.divorced", idA, `{"spouse_id":"`+idB+`"}`))}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the event on the new partition applied", func() bool { return a.count() == 2 })
}
