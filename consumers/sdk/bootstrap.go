package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/schemas/citizenid"
)

// Person is one golden record of a bootstrap snapshot.
type Person struct {
	CitizenID citizenid.ID
	Version   int64
	Status    string
	// AddressCode is the hukou address ("" when the person has none).
	AddressCode string
	// Record is the golden record's JSON as the hub served it.
	Record json.RawMessage
}

// snapshot is what a consumer keeps of the bootstrap snapshot it was
// created from: each citizen's highest version in it, for telling the
// notifications it already covers (see Bootstrap.DeliverCovered). The map
// costs some 70 bytes a person, gigabytes for a province, so it is kept
// only while a notification it may cover can still reach the workers
// (see releaseSnapshot). It is never modified after setup built it.
type snapshot struct {
	versions map[citizenid.ID]int64
	// through is the stream's last sequence when the walk had finished:
	// the hub published every change the snapshot reflects at or before
	// it, unless its outbox relay was behind. Zero, with stream, when the
	// user may not read the stream's info: releaseSnapshot then waits for
	// the consumer to be caught up once, which it is first after it was
	// created, so after the walk.
	through uint64
	// stream is when the stream was created that through counts on.
	stream time.Time
}

// releaseSnapshot drops consumer d's snapshot once no notification it
// covers can come to the workers again: when the consumer's info ci, read
// after the stream's info si, shows every message up to through acked (the
// ack floor reached it, or nothing is pending or unacked on a stream that
// reached it), or shows a stream created again since the walk, which holds
// none of them. Acked is what counts, not delivered: a message delivered
// before a later one may still wait in a queue or a retry, unchecked.
//
// A notification after through is not looked up any more, though one the
// hub published late (its relay was behind during the walk) may be
// covered: it reaches the Handler as after a restart, unmarked.
//
// Without the stream's info (si nil, or a snapshot taken without it) only
// a consumer seen caught up releases it: ci is read after the consumer
// was created, after the walk, so nothing pending or unacked means every
// notification published up to the walk's end was acked.
func (s *Subscriber) releaseSnapshot(d *durable, si *jetstream.StreamInfo, ci *jetstream.ConsumerInfo) {
	snap := d.snapshot.Load()
	if snap == nil {
		return
	}
	caughtUp := ci.NumPending == 0 && ci.NumAckPending == 0
	var newStream, floorPast bool
	if si != nil && !snap.stream.IsZero() {
		caughtUp = caughtUp && si.State.LastSeq >= snap.through
		newStream = !si.Created.Equal(snap.stream)
		floorPast = ci.AckFloor.Stream >= snap.through
	}
	if !floorPast && !caughtUp && !newStream {
		return
	}
	if d.snapshot.CompareAndSwap(snap, nil) {
		s.cfg.Logger.Info("subscriber: the consumer is past the bootstrap snapshot; dropped its versions",
			"subscriber", s.cfg.Name, "consumer", d.name, "persons", len(snap.versions), "through_seq", snap.through)
	}
}

// personHead is the part of a golden record the SDK reads.
type personHead struct {
	CitizenID citizenid.ID `json:"citizen_id"`
	Version   int64        `json:"version"`
	Status    string       `json:"status"`
	Hukou     *struct {
		AddressCode string `json:"address_code"`
	} `json:"hukou"`
}

// personsPage is one page of GET /v1/persons.
type personsPage struct {
	Persons        []json.RawMessage `json:"persons"`
	Next           string            `json:"next"`
	StreamSequence *uint64           `json:"stream_sequence"`
}

// bootstrap walks the snapshot of every bootstrap region, hands each
// person to Bootstrap.Handle, and returns the highest version seen per
// citizen and the stream sequence to continue after: the lowest of the
// walks', so that nothing a walk missed is skipped (the versions drop
// what a later walk already had).
//
// The contract: every page of one walk carries the same stream_sequence S,
// the POP stream's last sequence when the first page was served. The
// records are at least as new as S, possibly newer; a notification after
// S whose Version is not above the snapshot's is already in the snapshot.
func (s *Subscriber) bootstrap(ctx context.Context) (uint64, map[citizenid.ID]int64, error) {
	b := s.cfg.Bootstrap
	versions := make(map[citizenid.ID]int64)
	var start uint64
	for i, code := range b.Regions {
		seq, n, err := s.walk(ctx, code, versions)
		if err != nil {
			return 0, nil, fmt.Errorf("bootstrapping region %q: %w", code, err)
		}
		if i == 0 || seq < start {
			start = seq
		}
		s.cfg.Logger.Info("subscriber: snapshot walked", "subscriber", s.cfg.Name, "region", code, "persons", n, "stream_sequence", seq)
	}
	return start, versions, nil
}

func (s *Subscriber) walk(ctx context.Context, code string, versions map[citizenid.ID]int64) (seq uint64, persons int, err error) {
	b := s.cfg.Bootstrap
	after := ""
	for page := 0; ; page++ {
		p, err := s.fetchPage(ctx, code, after)
		if err != nil {
			return 0, persons, fmt.Errorf("fetching page %d: %w", page+1, err)
		}
		if p.StreamSequence == nil {
			return 0, persons, fmt.Errorf("page %d has no stream_sequence", page+1)
		}
		if page == 0 {
			seq = *p.StreamSequence
		} else if *p.StreamSequence != seq {
			return 0, persons, fmt.Errorf("page %d reflects stream sequence %d, the walk began at %d", page+1, *p.StreamSequence, seq)
		}
		for _, raw := range p.Persons {
			var h personHead
			if err := json.Unmarshal(raw, &h); err != nil {
				return 0, persons, fmt.Errorf("decoding a person of page %d: %w", page+1, err)
			}
			person := Person{CitizenID: h.CitizenID, Version: h.Version, Status: h.Status, Record: raw}
			if h.Hukou != nil {
				person.AddressCode = h.Hukou.AddressCode
			}
			if err := b.Handle(ctx, person); err != nil {
				return 0, persons, fmt.Errorf("handling a snapshot person: %w", err)
			}
			if h.Version > versions[h.CitizenID] {
				versions[h.CitizenID] = h.Version
			}
			persons++
		}
		if p.Next == "" {
			return seq, persons, nil
		}
		if p.Next == after {
			return 0, persons, fmt.Errorf("page %d repeats its token", page+1)
		}
		after = p.Next
	}
}

func (s *Subscriber) fetchPage(ctx context.Context, code, after string) (*personsPage, error) {
	b := s.cfg.Bootstrap
	q := url.Values{}
	if code != "" {
		q.Set("region", code)
	}
	q.Set("limit", strconv.Itoa(b.PageSize))
	if after != "" {
		q.Set("after", after)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(b.HubURL, "/")+"/v1/persons?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("X-Purpose", b.Purpose)
	req.Header.Set("Accept", "application/json")
	if b.Token != "" {
		req.Header.Set("Authorization", "Bearer "+b.Token)
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("requesting: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		err := fmt.Errorf("hub answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			err = fmt.Errorf("%w: %w", ErrBootstrapRefused, err)
		}
		return nil, err
	}
	var p personsPage
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return nil, fmt.Errorf("decoding page: %w", err)
	}
	return &p, nil
}
