package main

import (
	"errors"
	"os"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/spf13/pflag"

	"github.com/pophub/pophub/hub/access"
)

// kafkaLogin is the identity a command logs into the brokers with, when
// an access policy makes them ask for one (SASL/SCRAM-SHA-512): one pair
// of flags, the same on every command that talks to Kafka.
type kafkaLogin struct {
	user, password string
}

// addKafkaLoginFlags adds --kafka-user and --kafka-password (env
// POPHUB_KAFKA_USER, POPHUB_KAFKA_PASSWORD); who says whose identity the
// command needs, for the help.
func addKafkaLoginFlags(f *pflag.FlagSet, who string) *kafkaLogin {
	l := &kafkaLogin{}
	f.StringVar(&l.user, "kafka-user", os.Getenv("POPHUB_KAFKA_USER"),
		"SASL/SCRAM-SHA-512 user when the brokers ask for one: "+who+" (env POPHUB_KAFKA_USER)")
	f.StringVar(&l.password, "kafka-password", os.Getenv("POPHUB_KAFKA_PASSWORD"),
		"its password (env POPHUB_KAFKA_PASSWORD)")
	return l
}

// mechanism is the SASL mechanism to log in with: nil without a user,
// for brokers that ask for none. A user without a password, or a
// password without a user, is refused rather than sent as it is: the
// broker's answer would only say that authentication failed.
func (l *kafkaLogin) mechanism() (sasl.Mechanism, error) {
	switch {
	case l.user == "" && l.password == "":
		return nil, nil
	case l.user == "":
		return nil, errors.New("--kafka-password is set but --kafka-user is not (env POPHUB_KAFKA_USER)")
	case l.password == "":
		return nil, errors.New("--kafka-user is set but --kafka-password is not (env POPHUB_KAFKA_PASSWORD)")
	}
	return access.SCRAMClient{User: l.user, Password: l.password}, nil
}
