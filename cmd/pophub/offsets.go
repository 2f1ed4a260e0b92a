package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/schemas"
)

// offsetsCommand is `pophub offsets`: the consumer group's committed
// offsets, which say where the hub goes on reading.
func offsetsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "offsets",
		Short: "Move the hub's consumer group back, to read the source topics again (after restoring the store)",
	}
	cmd.AddCommand(offsetsRewindCommand())
	return cmd
}

// offsetsRewindCommand is `pophub offsets rewind`. A store restored from
// a backup lacks every event applied since, while the group's committed
// offsets are past them: the hub would start clean and never read them
// again. The store drops events it already holds, so reading from before
// the backup is safe and brings the lost ones back.
func offsetsRewindCommand() *cobra.Command {
	var brokers, group, toTime string
	var only []string
	var toEarliest, dryRun bool
	var dataDir string
	var ca *caFlag
	var login *kafkaLogin
	cmd := &cobra.Command{
		Use:   "rewind (--to-time TIME | --to-earliest) [--dry-run]",
		Short: "Make the hub's consumer group read the source topics again from a time (after restoring the store from a backup)",
		Long: `Moves the consumer group's committed offsets back, so that the hub reads the
source topics (` + schemas.TopicPrefix + `<source>) again from a point: for each partition, the
first record produced at or after --to-time (Kafka's ListOffsets by timestamp;
the log end when none is), or the log start with --to-earliest.

Use it after restoring the hub's store (PostgreSQL or a memdb data directory)
from a backup: give the time of the backup minus a margin. The store drops the
events it already holds as duplicates, so records read twice change nothing.

Offsets only move back: a partition whose committed offset is at or before the
point is left as it is, and one with no committed offset is read from its log
start anyway. Every hub instance of the group (serve, dev) must be stopped
first; the command refuses while the group has members. --dry-run prints the
table and commits nothing.

pophub dev keeps its broker's log and the group's offsets in its data
directory, and its broker stops with it: give --data DIR instead of --kafka,
and the command starts the broker on that directory for its own time.`,
		Args: noArgsUse("--to-time TIME or --to-earliest"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var at time.Time
			switch {
			case toTime == "" && !toEarliest:
				return errors.New("give --to-time TIME or --to-earliest")
			case toTime != "" && toEarliest:
				return errors.New("give --to-time TIME or --to-earliest, not both")
			case toTime != "":
				var err error
				if at, err = time.Parse(time.RFC3339, toTime); err != nil {
					return fmt.Errorf("--to-time %q: want a time with its zone, such as 2026-12-05T02:00:00+08:00", toTime)
				}
				if at.UnixMilli() < 0 {
					at = time.Time{} // before any record: the log start, which Kafka's negative timestamps cannot ask for
				}
			}
			sources := schemas.Sources
			if len(only) > 0 {
				sources = nil
				for _, name := range only {
					s := schemas.Source(name)
					if !s.Valid() {
						return fmt.Errorf("--source: unknown source %q", name)
					}
					if !slices.Contains(sources, s) {
						sources = append(sources, s)
					}
				}
			}
			tc, err := ca.tls()
			if err != nil {
				return fmt.Errorf("--ca: %w", err)
			}
			mech, err := login.mechanism()
			if err != nil {
				return err
			}
			addrs := splitList(brokers)
			if dataDir != "" {
				if cmd.Flags().Changed("kafka") {
					return errors.New("give --kafka or --data, not both")
				}
				k, unlock, err := startDevBroker(cmd.Context(), dataDir)
				if err != nil {
					return err
				}
				defer unlock()
				addrs, tc, mech = []string{k.Addr()}, nil, nil
			}
			tr := &kafka.Transport{SASL: mech, TLS: tc, DialTimeout: 10 * time.Second}
			defer tr.CloseIdleConnections()
			rw := &rewind{client: &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second, Transport: tr},
				group: group, at: at}
			for _, s := range sources {
				rw.topics = append(rw.topics, schemas.Topic(s))
			}
			return rw.run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), dryRun)
		},
	}
	f := cmd.Flags()
	f.StringVar(&toTime, "to-time", "", "read again from the first record at or after this time (RFC 3339 with zone, e.g. 2026-12-05T02:00:00+08:00)")
	f.BoolVar(&toEarliest, "to-earliest", false, "read again from each partition's log start")
	f.StringVar(&brokers, "kafka", envOr("POPHUB_KAFKA", "127.0.0.1:19092"), "comma-separated Kafka bootstrap brokers (env POPHUB_KAFKA; for pophub dev, whose broker stops with it, give --data)")
	f.StringVar(&dataDir, "data", "", "the data directory of a stopped 'pophub dev': rewind the offsets its embedded broker keeps there (instead of --kafka)")
	f.StringVar(&group, "group", envOr("POPHUB_GROUP", access.DefaultKafkaGroup), "the hub's consumer group (env POPHUB_GROUP; under an access policy, its kafka_group)")
	f.StringSliceVar(&only, "source", nil, "rewind only these sources' topics (repeatable, or comma-separated; default: all eight)")
	f.BoolVar(&dryRun, "dry-run", false, "print the table, commit nothing")
	ca = addCAFlag(f)
	login = addKafkaLoginFlags(f, "an administrator of the access policy")
	return cmd
}

// startDevBroker starts the embedded broker of a stopped pophub dev on
// its data directory, on a free local port, with the directory locked as
// dev locks it; stop closes the broker and releases the lock.
func startDevBroker(ctx context.Context, dir string) (k *embedded.Kafka, stop func(), err error) {
	kafkaDir := filepath.Join(dir, "kafka")
	if _, err := os.Stat(kafkaDir); err != nil {
		return nil, nil, fmt.Errorf("--data %s: no broker log (%w): not a pophub dev data directory", dir, err)
	}
	lock, err := lockDataDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: stop pophub dev first, then run this again", err)
	}
	k, err = embedded.StartKafka(ctx, embedded.KafkaConfig{DataDir: kafkaDir})
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("starting the embedded broker on %s: %w", kafkaDir, err), unlockDataDir(lock))
	}
	return k, func() { k.Close(); unlockDataDir(lock) }, nil
}

// rewind moves a group's committed offsets of some topics back to a
// time, or to the log start.
type rewind struct {
	client *kafka.Client
	group  string
	topics []string
	// at is the time to read again from; zero for the log start.
	at time.Time
}

// partitionRewind is one partition's committed offset and where the
// rewind puts it.
type partitionRewind struct {
	topic     string
	partition int
	// committed is the group's committed offset, -1 for none; metadata
	// is committed with it and kept.
	committed int64
	metadata  string
	// target is the first offset at or after the time (the log end when
	// no record is), or the log start.
	target int64
}

// moves reports whether the rewind commits target: only backwards, as
// a commit forward would skip records, and not where nothing was
// committed, which the hub reads from the log start anyway.
func (p partitionRewind) moves() bool { return p.committed >= 0 && p.target < p.committed }

// run prints the plan and, unless dryRun, commits it.
func (rw *rewind) run(ctx context.Context, out, errOut io.Writer, dryRun bool) error {
	members, err := rw.members(ctx)
	if err != nil {
		return err
	}
	if members > 0 && !dryRun {
		return groupBusyError{group: rw.group, members: members}
	}
	plan, err := rw.plan(ctx)
	if err != nil {
		return err
	}
	rw.print(out, plan, dryRun)
	if !rw.at.IsZero() {
		rw.warnProducerTimed(ctx, errOut)
	}
	if dryRun {
		if members > 0 {
			fmt.Fprintf(errOut, "note: %v\n", groupBusyError{group: rw.group, members: members})
		}
		return nil
	}
	if err := rw.commit(ctx, plan); err != nil {
		return err
	}
	fmt.Fprintln(out, "start the hub: it reads these records again, and its store drops those it already holds")
	return nil
}

// warnProducerTimed warns when topics keep their producers' timestamps:
// --to-time then finds the first record stamped at or after the time, and
// a record stamped earlier (a back-filled event stamped with its business
// time) yet appended after it is not read again.
func (rw *rewind) warnProducerTimed(ctx context.Context, errOut io.Writer) {
	topics, err := ingest.ProducerTimed(ctx, rw.client, rw.topics)
	switch {
	case err != nil:
		fmt.Fprintf(errOut, "note: could not check whose timestamps the topics' records carry (%v): if their producers set them, "+
			"--to-time may skip records appended after the time; --to-earliest never does\n", err)
	case len(topics) > 0:
		fmt.Fprintf(errOut, "warning: %s keep the timestamps their producers set (%s=CreateTime): a record stamped before "+
			"the time but appended after it is not read again. Use --to-earliest to read everything again (the store drops "+
			"what it holds), and set %s=LogAppendTime on them (kafka-configs.sh --alter --entity-type topics "+
			"--entity-name T --add-config %s=LogAppendTime), as the hub does on the topics it creates\n",
			strings.Join(topics, ", "), ingest.TimestampTypeConfig, ingest.TimestampTypeConfig, ingest.TimestampTypeConfig)
	}
}

// members counts the group's members: 0 for a group the broker does not
// know.
func (rw *rewind) members(ctx context.Context) (int, error) {
	resp, err := rw.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{rw.group}})
	if err != nil {
		return 0, fmt.Errorf("describing group %s: %w", rw.group, err)
	}
	for _, g := range resp.Groups {
		switch {
		case g.GroupID != rw.group:
		case errors.Is(g.Error, kafka.GroupIdNotFound):
			return 0, nil
		case g.Error != nil:
			return 0, fmt.Errorf("describing group %s: %w", rw.group, g.Error)
		default:
			return len(g.Members), nil
		}
	}
	return 0, fmt.Errorf("describing group %s: no answer for it", rw.group)
}

// plan reads each partition's committed offset, log start and end, and
// the offset of the time.
func (rw *rewind) plan(ctx context.Context) ([]partitionRewind, error) {
	meta, err := rw.client.Metadata(ctx, &kafka.MetadataRequest{Topics: rw.topics})
	if err != nil {
		return nil, fmt.Errorf("reading topic metadata: %w", err)
	}
	parts := map[string][]int{}
	for _, t := range meta.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("reading metadata of %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			parts[t.Name] = append(parts[t.Name], p.ID)
		}
		slices.Sort(parts[t.Name])
	}
	committed, err := rw.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: rw.group, Topics: parts})
	if err != nil {
		return nil, fmt.Errorf("fetching the committed offsets of group %s: %w", rw.group, err)
	}
	if err := committed.Error; err != nil && !errors.Is(err, kafka.GroupIdNotFound) {
		return nil, fmt.Errorf("fetching the committed offsets of group %s: %w", rw.group, err)
	}
	// One request per kind of offset: a partition asked twice in one
	// request is refused.
	starts, err := rw.listOffsets(ctx, parts, func(p int) kafka.OffsetRequest { return kafka.FirstOffsetOf(p) })
	if err != nil {
		return nil, err
	}
	ends, err := rw.listOffsets(ctx, parts, func(p int) kafka.OffsetRequest { return kafka.LastOffsetOf(p) })
	if err != nil {
		return nil, err
	}
	var atTime map[string]map[int]kafka.PartitionOffsets
	if !rw.at.IsZero() {
		if atTime, err = rw.listOffsets(ctx, parts, func(p int) kafka.OffsetRequest { return kafka.TimeOffsetOf(p, rw.at) }); err != nil {
			return nil, err
		}
	}

	var plan []partitionRewind
	for _, topic := range rw.topics {
		if len(parts[topic]) == 0 {
			return nil, fmt.Errorf("reading metadata of %s: no partitions", topic)
		}
		for _, p := range parts[topic] {
			pr := partitionRewind{topic: topic, partition: p, committed: -1}
			for _, c := range committed.Topics[topic] {
				if c.Partition != p {
					continue
				}
				if c.Error != nil {
					return nil, fmt.Errorf("fetching the committed offset of %s/%d: %w", topic, p, c.Error)
				}
				pr.committed, pr.metadata = c.CommittedOffset, c.Metadata
			}
			start, end := max(starts[topic][p].FirstOffset, 0), max(ends[topic][p].LastOffset, 0)
			pr.target = start
			if atTime != nil {
				// The broker answers the first record at or after the
				// time, or offset -1 when every record is older.
				pr.target = end
				for off := range atTime[topic][p].Offsets {
					if off >= 0 {
						pr.target = min(max(off, start), end)
					}
				}
			}
			plan = append(plan, pr)
		}
	}
	return plan, nil
}

// listOffsets asks for one offset of every partition, keyed by topic and
// partition.
func (rw *rewind) listOffsets(ctx context.Context, parts map[string][]int, req func(partition int) kafka.OffsetRequest) (map[string]map[int]kafka.PartitionOffsets, error) {
	reqs := map[string][]kafka.OffsetRequest{}
	for t, ps := range parts {
		for _, p := range ps {
			reqs[t] = append(reqs[t], req(p))
		}
	}
	resp, err := rw.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: reqs})
	if err != nil {
		return nil, fmt.Errorf("listing offsets: %w", err)
	}
	out := map[string]map[int]kafka.PartitionOffsets{}
	for t, offs := range resp.Topics {
		out[t] = map[int]kafka.PartitionOffsets{}
		for _, o := range offs {
			if o.Error != nil {
				return nil, fmt.Errorf("listing offsets of %s/%d: %w", t, o.Partition, o.Error)
			}
			out[t][o.Partition] = o
		}
	}
	for t, ps := range parts {
		for _, p := range ps {
			if _, ok := out[t][p]; !ok {
				return nil, fmt.Errorf("listing offsets of %s/%d: no answer", t, p)
			}
		}
	}
	return out, nil
}

// print writes the plan: a row per partition, then the total.
func (rw *rewind) print(out io.Writer, plan []partitionRewind, dryRun bool) {
	point := "each partition's log start"
	if !rw.at.IsZero() {
		point = "the first record at or after " + rw.at.Format(time.RFC3339)
	}
	fmt.Fprintf(out, "group %s: reading again from %s\n", rw.group, point)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tCOMMITTED\tNEW\tREAD AGAIN")
	var moved int
	var again int64
	for _, p := range plan {
		name := p.topic + "/" + strconv.Itoa(p.partition)
		switch {
		case p.committed < 0:
			fmt.Fprintf(tw, "%s\tnone\t-\t0: nothing committed, the hub reads it from the log start\n", name)
		case !p.moves():
			fmt.Fprintf(tw, "%s\t%d\t%d\t0: at or before the target, left as is\n", name, p.committed, p.committed)
		default:
			moved++
			again += p.committed - p.target
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s read again\n", name, p.committed, p.target, records(p.committed-p.target))
		}
	}
	tw.Flush()
	if dryRun {
		fmt.Fprintf(out, "dry run: would rewind %d of %d partitions of group %s; %s would be read again; nothing committed\n",
			moved, len(plan), rw.group, records(again))
		return
	}
	fmt.Fprintf(out, "rewound %d of %d partitions of group %s; %s will be read again\n", moved, len(plan), rw.group, records(again))
}

// commit commits the plan's moves as a client outside the group (a
// "simple" commit: generation -1, no member id), which the broker takes
// only while the group has no member.
func (rw *rewind) commit(ctx context.Context, plan []partitionRewind) error {
	req := &kafka.OffsetCommitRequest{GroupID: rw.group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{}}
	for _, p := range plan {
		if p.moves() {
			req.Topics[p.topic] = append(req.Topics[p.topic], kafka.OffsetCommit{Partition: p.partition, Offset: p.target, Metadata: p.metadata})
		}
	}
	if len(req.Topics) == 0 {
		return nil
	}
	resp, err := rw.client.OffsetCommit(ctx, req)
	if err != nil {
		return rw.commitError(ctx, err)
	}
	var errs []error
	for topic, ps := range resp.Topics {
		for _, p := range ps {
			if p.Error != nil {
				if groupRefused(p.Error) {
					return rw.commitError(ctx, p.Error)
				}
				errs = append(errs, fmt.Errorf("committing %s/%d: %w", topic, p.Partition, p.Error))
			}
		}
	}
	return errors.Join(errs...)
}

// commitError words a refused commit: a group that gained a member since
// it was described refuses commits from outside it.
func (rw *rewind) commitError(ctx context.Context, err error) error {
	if !groupRefused(err) {
		return fmt.Errorf("committing the offsets of group %s: %w", rw.group, err)
	}
	n, derr := rw.members(ctx)
	if derr != nil {
		n = 0
	}
	return groupBusyError{group: rw.group, members: n}
}

// groupRefused reports whether the broker refused a commit because the
// group has members (or is rebalancing between them).
func groupRefused(err error) bool {
	return errors.Is(err, kafka.UnknownMemberId) || errors.Is(err, kafka.IllegalGeneration) || errors.Is(err, kafka.RebalanceInProgress)
}

// groupBusyError refuses a rewind while hub instances consume: their
// next commit would undo it.
type groupBusyError struct {
	group   string
	members int // 0 when unknown
}

func (e groupBusyError) Error() string {
	has := "has members"
	switch {
	case e.members == 1:
		has = "has 1 member"
	case e.members > 1:
		has = fmt.Sprintf("has %d members", e.members)
	}
	return fmt.Sprintf("the group %s %s: stop every hub instance (serve/dev) first, then run this again", e.group, has)
}

// records says "1 record" or "N records".
func records(n int64) string {
	if n == 1 {
		return "1 record"
	}
	return strconv.FormatInt(n, 10) + " records"
}
