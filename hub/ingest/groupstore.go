package ingest

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/metric"
)

// One consumer group, one store. The instances of a group share the
// source partitions, and each commits the offsets of the events it
// applied: an instance applying to another store than the rest (another
// database or schema, a mistyped --postgres) would take its share of the
// events into that store and commit them, and the group's right store
// would never get them. So each instance sends its store's id
// (Config.StoreID) with its group membership, and the group's leader, the
// one instance that assigns the partitions (and sees every member's
// data), compares them. Members that send none (hubs older than this
// check, stores without an id such as memdb) go with any store.
//
// When two stores are in the group the leader assigns no partitions at
// all: ingest stops, rather than splitting the events between the stores
// or giving them all to one that may be the wrong one, whose committed
// offsets would be lost to the right store. It logs an error naming the
// stores and their members, fails readiness (Ping) and sets the gauge
// pophub_consumer_group_store_conflict to 1, until a rebalance (the odd
// instance leaving, or being fixed and rejoining) finds one store, or
// this instance no longer leads the group.
//
// The leader compares the members' region tables too (Config.RegionTable,
// a digest of the table's content): instances that classify addresses
// by different tables mix urban and rural in the statistics' counters.
// That is logged and shows on pophub_consumer_group_region_conflict, but
// ingest goes on, since the tables of a group differ for a while whenever
// a new table (or a release with a new built-in one) is rolled out.
//
// The wrapped balancers keep kafka-go's protocol names, so a group
// mixing this version with older hubs (a rolling upgrade) still agrees on
// a protocol; while an older hub leads, nothing is checked.

// storeDataPrefix starts a member's user data: a version, then the store
// id and the digest of the instance's region table, in a few dozen bytes.
// Data without it (nil from older hubs, another version) names no store
// and no table.
//
// A store id is the schema's own id (kept in the schema, and so in a copy
// of it), a slash, and a hash of the server, database and schema that
// hold it (postgres.Store.StoreID). Hubs of two releases ago sent the
// first part alone, under storeDataPrefixV1, and compare ids whole; hubs
// of the previous release sent the store id alone, under
// storeDataPrefixV2, and take all that follows the prefix for the id.
// Each release sends under a version of its own, which a leader of an
// earlier release reads as naming no store, rather than finding two
// stores in a group of one store being upgraded and stopping ingest.
const (
	storeDataPrefix   = "pophub-store:v3:"
	storeDataPrefixV2 = "pophub-store:v2:"
	storeDataPrefixV1 = "pophub-store:v1:"
)

// memberData is what an instance says of itself with its group
// membership: its store's id ("" for none) and the digest of the region
// table it classifies addresses by (region.Table.Digest; "" from
// releases that did not send it).
type memberData struct{ store, regions string }

// userData encodes d for the group's leader: the store id, a space, the
// table's digest.
func (d memberData) userData() []byte {
	if d == (memberData{}) {
		return nil
	}
	return []byte(storeDataPrefix + d.store + " " + d.regions)
}

// memberOf reads what a member sent (memberData.userData, or an earlier
// release's store id).
func memberOf(userData []byte) memberData {
	if rest, ok := bytes.CutPrefix(userData, []byte(storeDataPrefix)); ok {
		store, regions, _ := strings.Cut(string(rest), " ")
		return memberData{store: store, regions: regions}
	}
	for _, prefix := range []string{storeDataPrefixV2, storeDataPrefixV1} {
		if id, ok := bytes.CutPrefix(userData, []byte(prefix)); ok {
			return memberData{store: string(id)}
		}
	}
	return memberData{}
}

// sameStore reports whether two store ids name one store: equal, or the
// same schema's id where one of them, from a hub of the previous release,
// does not say where the schema is.
func sameStore(a, b string) bool {
	if a == b {
		return true
	}
	schemaA, placeA, _ := strings.Cut(a, "/")
	schemaB, placeB, _ := strings.Cut(b, "/")
	return schemaA == schemaB && (placeA == "" || placeB == "")
}

// countStores is the number of stores the ids name: those that say where
// their schema is, and those that do not (the previous release's) unless
// one that does has the same schema id.
func countStores(ids []string) int {
	placed := map[string]bool{}
	for _, id := range ids {
		if schema, place, _ := strings.Cut(id, "/"); place != "" {
			placed[schema] = true
		}
	}
	n := 0
	for _, id := range ids {
		if schema, place, _ := strings.Cut(id, "/"); place != "" || !placed[schema] {
			n++
		}
	}
	return n
}

// conflictRemedy says how to end a group split over stores.
const conflictRemedy = "every instance of a consumer group must use the same PostgreSQL database and schema: " +
	"fix the odd instance's --postgres (or --postgres-schema), or give it its own --group"

// tablesRemedy says how to end a group split over region tables.
const tablesRemedy = "every instance of a consumer group must classify addresses by the same region table " +
	"(the built-in table of one release, or the same --regions file): install it on every instance, then run " +
	"'pophub stats rebuild' to recount the statistics' counters"

// storeGuard is a consumer's side of the check: the store id and region
// table it sends, and the conflicts it found when it last assigned the
// partitions.
type storeGuard struct {
	group string
	self  memberData
	log   *slog.Logger

	mu sync.Mutex
	// conflict describes the stores of the group when this instance, as
	// leader, last found several; nil otherwise.
	conflict error
	// tables describes the region tables of the group when this
	// instance, as leader, last found several; nil otherwise. Ingest
	// goes on: the tables of a rolling change differ for a while.
	tables error
	// assigned is set when this instance assigned the partitions since
	// the group was last joined (see joined).
	assigned bool
}

func newStoreGuard(group string, self memberData, log *slog.Logger, m metric.Meter) (*storeGuard, error) {
	g := &storeGuard{group: group, self: self, log: log}
	// No unit: the exporter would name a unit of 1 ..._ratio.
	_, err := m.Int64ObservableGauge("pophub.consumer.group.store.conflict",
		metric.WithDescription("1 while this instance, leading the consumer group, finds its members applying to different stores "+
			"and assigns them no partitions (ingest stopped); 0 otherwise."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			if g.problem() != nil {
				o.Observe(1)
			} else {
				o.Observe(0)
			}
			return nil
		}))
	if err != nil {
		return nil, fmt.Errorf("creating store conflict gauge: %w", err)
	}
	_, err = m.Int64ObservableGauge("pophub.consumer.group.region.conflict",
		metric.WithDescription("1 while this instance, leading the consumer group, finds its members classifying addresses "+
			"by different region tables (the statistics' urban and rural counters mix them); 0 otherwise."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			if g.tablesProblem() != nil {
				o.Observe(1)
			} else {
				o.Observe(0)
			}
			return nil
		}))
	if err != nil {
		return nil, fmt.Errorf("creating region table conflict gauge: %w", err)
	}
	return g, nil
}

// balancers wraps kafka-go's balancers (which send no user data of their
// own) in the check.
func (g *storeGuard) balancers(inner ...kafka.GroupBalancer) []kafka.GroupBalancer {
	out := make([]kafka.GroupBalancer, len(inner))
	for i, b := range inner {
		out[i] = storeBalancer{inner: b, guard: g}
	}
	return out
}

// problem is the conflict found, for readiness; nil when none.
func (g *storeGuard) problem() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conflict
}

// tablesProblem is the region tables' conflict found; nil when none.
func (g *storeGuard) tablesProblem() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tables
}

// joined is called once this instance has joined the group (kafka-go's
// reader logs fmtJoined after the leader's assignment, in the goroutine
// that made it): an instance that did not assign this time is not the
// leader, and no longer knows the members' stores.
func (g *storeGuard) joined() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.assigned {
		g.conflict, g.tables = nil, nil
	}
	g.assigned = false
}

// assign records the outcome of the leader's check of members.
func (g *storeGuard) assign(members []kafka.GroupMember) (ok bool) {
	byStore, byTable := map[string][]string{}, map[string][]string{}
	for _, m := range members {
		d := memberOf(m.UserData)
		byStore[d.store] = append(byStore[d.store], m.ID)
		if d.regions != "" {
			byTable[d.regions] = append(byTable[d.regions], m.ID)
		}
	}
	unknown := byStore[""]
	delete(byStore, "")
	ids := slices.Sorted(maps.Keys(byStore))
	split := false
	for i, a := range ids {
		for _, b := range ids[i+1:] {
			split = split || !sameStore(a, b)
		}
	}
	var conflict error
	if split {
		stores := describeMembers(byStore, unknown)
		this := cmp.Or(g.self.store, "none")
		conflict = fmt.Errorf("consumer group %q spans %d stores (%s; this instance's store id: %s): no partitions are assigned, ingest is stopped; %s",
			g.group, countStores(ids), stores, this, conflictRemedy)
		g.log.Error("the consumer group's instances apply to different stores: assigning no partitions, so that no store takes events "+
			"and commits offsets the others never get; ingest is stopped until one store is left in the group; "+conflictRemedy,
			"group", g.group, "stores", stores, "this_store", this)
	}
	tables := g.checkTables(byTable)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.conflict, g.tables, g.assigned = conflict, tables, true
	return conflict == nil
}

// checkTables describes, and logs, the region tables of a group whose
// members classify addresses by several; nil for one. Members of releases
// that do not send their table are not counted.
func (g *storeGuard) checkTables(byTable map[string][]string) error {
	if len(byTable) < 2 {
		return nil
	}
	tables := describeMembers(byTable, nil)
	this := cmp.Or(g.self.regions, "none")
	g.log.Warn("the consumer group's instances classify addresses by different region tables: each counts the events it applies "+
		"as urban or rural by its own table, so the statistics mix them until one table is left in the group; "+tablesRemedy,
		"group", g.group, "region_tables", tables, "this_region_table", this)
	return fmt.Errorf("consumer group %q classifies addresses by %d region tables (%s; this instance's: %s); %s",
		g.group, len(byTable), tables, this, tablesRemedy)
}

// describeMembers lists the members of each store (or region table), in
// the ids' order, then the members that named none: "id: 2 members (m1, m3); …".
func describeMembers(byStore map[string][]string, unknown []string) string {
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(byStore)) {
		parts = append(parts, id+": "+listMembers(byStore[id], ""))
	}
	if len(unknown) > 0 {
		parts = append(parts, listMembers(unknown, " without a store id"))
	}
	return strings.Join(parts, "; ")
}

// listMembers is "2 members<qualifier> (m1, m3)": the member ids, which
// the broker's description of the group (kafka-consumer-groups.sh
// --describe --members) maps to client hosts.
func listMembers(ids []string, qualifier string) string {
	noun := "members"
	if len(ids) == 1 {
		noun = "member"
	}
	return strconv.Itoa(len(ids)) + " " + noun + qualifier + " (" + strings.Join(slices.Sorted(slices.Values(ids)), ", ") + ")"
}

// storeBalancer is one of kafka-go's balancers, under kafka-go's protocol
// name, sending the instance's store id and region table and assigning
// partitions only to a group of one store.
type storeBalancer struct {
	inner kafka.GroupBalancer
	guard *storeGuard
}

// ProtocolName implements kafka.GroupBalancer.
func (b storeBalancer) ProtocolName() string { return b.inner.ProtocolName() }

// UserData implements kafka.GroupBalancer: the store id and region
// table (memberData), in place of the
// inner balancer's data (kafka-go's range and round-robin send none).
func (b storeBalancer) UserData() ([]byte, error) { return b.guard.self.userData(), nil }

// AssignGroups implements kafka.GroupBalancer (run by the group's leader
// only): the inner balancer's assignment while the members apply to one
// store, else every member with no partitions. Every member is listed,
// as kafka-go's SyncGroup sends an assignment only for those.
func (b storeBalancer) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	if b.guard.assign(members) {
		return b.inner.AssignGroups(members, partitions)
	}
	none := make(kafka.GroupMemberAssignments, len(members))
	for _, m := range members {
		none[m.ID] = map[string][]int{}
	}
	return none
}
