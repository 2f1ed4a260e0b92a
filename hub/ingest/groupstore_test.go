package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/hub/telemetry"
	"github.com/pophub/pophub/internal/testenv"
)

// TestStoreBalancerAssignGroups: the group's leader hands out the
// partitions as kafka-go's balancer would while every member applies to
// one store (members that name none, older hubs and memdb, go with any),
// and none at all once two stores are in the group: each would commit
// offsets for events the other never gets. The conflict is logged, fails
// readiness and shows on pophub_consumer_group_store_conflict.
func TestStoreBalancerAssignGroups(t *testing.T) {
	topics := []string{"pop.events.tax", "pop.events.housing"}
	var partitions []kafka.Partition
	for _, topic := range topics {
		for id := range 3 {
			partitions = append(partitions, kafka.Partition{Topic: topic, ID: id})
		}
	}
	member := func(id string, userData []byte) kafka.GroupMember {
		return kafka.GroupMember{ID: id, Topics: topics, UserData: userData}
	}
	tests := []struct {
		name    string
		members []kafka.GroupMember
		// conflict names what the error and the log say; nil: no conflict.
		conflict []string
		// stores is the number of stores the error counts.
		stores int
	}{
		{"one member", []kafka.GroupMember{member("m1", memberData{store: "aaaa"}.userData())}, nil, 0},
		{"one store", []kafka.GroupMember{member("m1", memberData{store: "aaaa"}.userData()), member("m2", memberData{store: "aaaa"}.userData())}, nil, 0},
		{"a member without a store id", []kafka.GroupMember{member("m1", memberData{store: "aaaa"}.userData()), member("m2", nil), member("m3", memberData{store: "aaaa"}.userData())}, nil, 0},
		{"a member of an unknown encoding", []kafka.GroupMember{member("m1", memberData{store: "aaaa"}.userData()), member("m2", []byte("pophub-store:v9:bbbb"))}, nil, 0},
		{"no store ids", []kafka.GroupMember{member("m1", nil), member("m2", nil)}, nil, 0},
		{"two stores", []kafka.GroupMember{member("m1", memberData{store: "aaaa"}.userData()), member("m2", memberData{store: "bbbb"}.userData()), member("m3", memberData{store: "aaaa"}.userData())},
			[]string{"aaaa: 2 members (m1, m3)", "bbbb: 1 member (m2)"}, 2},
		{"two stores and a member without one", []kafka.GroupMember{member("m1", memberData{store: "bbbb"}.userData()), member("m2", nil), member("m3", memberData{store: "aaaa"}.userData())},
			[]string{"aaaa: 1 member (m3)", "bbbb: 1 member (m1)", "1 member without a store id (m2)"}, 2},
		// A store id is the schema's hub_meta id and, after a slash, the
		// database and server that hold it; hubs of two releases ago
		// sent the first part alone, which matches either. Hubs of the
		// previous release sent the whole id, without a region table.
		{"one store, a member of the previous release", []kafka.GroupMember{member("m1", memberData{store: "aaaa/0001", regions: "r1"}.userData()), member("m2", previousRelease("aaaa/0001"))}, nil, 0},
		{"another store of the previous release", []kafka.GroupMember{member("m1", memberData{store: "aaaa/0001", regions: "r1"}.userData()), member("m2", previousRelease("aaaa/0002"))},
			[]string{"aaaa/0001: 1 member (m1)", "aaaa/0002: 1 member (m2)"}, 2},
		{"one store, a member of two releases ago", []kafka.GroupMember{member("m1", memberData{store: "aaaa/0001"}.userData()), member("m2", twoReleasesAgo("aaaa")), member("m3", memberData{store: "aaaa/0001"}.userData())}, nil, 0},
		{"copies of a schema", []kafka.GroupMember{member("m1", memberData{store: "aaaa/0001"}.userData()), member("m2", memberData{store: "aaaa/0002"}.userData())},
			[]string{"aaaa/0001: 1 member (m1)", "aaaa/0002: 1 member (m2)"}, 2},
		{"copies of a schema and a member of two releases ago", []kafka.GroupMember{member("m1", memberData{store: "aaaa/0001"}.userData()), member("m2", memberData{store: "aaaa/0002"}.userData()), member("m3", twoReleasesAgo("aaaa"))},
			[]string{"aaaa/0001: 1 member (m1)", "aaaa/0002: 1 member (m2)", "aaaa: 1 member (m3)"}, 2},
		{"another store of two releases ago", []kafka.GroupMember{member("m1", memberData{store: "aaaa/0001"}.userData()), member("m2", twoReleasesAgo("bbbb"))},
			[]string{"aaaa/0001: 1 member (m1)", "bbbb: 1 member (m2)"}, 2},
	}
	for _, inner := range []kafka.GroupBalancer{kafka.RangeGroupBalancer{}, kafka.RoundRobinGroupBalancer{}} {
		for _, tt := range tests {
			t.Run(inner.ProtocolName()+"/"+tt.name, func(t *testing.T) {
				var logs testenv.LogBuffer
				g, err := newStoreGuard("g1", memberData{store: "aaaa"}, slog.New(slog.NewTextHandler(&logs, nil)), metricnoop.NewMeterProvider().Meter(""))
				if err != nil {
					t.Fatal(err)
				}
				b := g.balancers(inner)[0]
				if b.ProtocolName() != inner.ProtocolName() {
					t.Fatalf("protocol %q, want kafka-go's %q: older hubs, which know only that, could not join", b.ProtocolName(), inner.ProtocolName())
				}
				got := b.AssignGroups(tt.members, partitions)
				if tt.conflict == nil {
					if want := inner.AssignGroups(tt.members, partitions); !reflect.DeepEqual(got, want) {
						t.Errorf("assigned %v, want kafka-go's %v", got, want)
					}
					if err := g.problem(); err != nil {
						t.Errorf("readiness: %v; want ready", err)
					}
					if logs.String() != "" {
						t.Errorf("logged %s", logs.String())
					}
					return
				}
				if len(got) != len(tt.members) {
					t.Errorf("assigned %v: want every member, with nothing", got)
				}
				for _, m := range tt.members {
					if a, ok := got[m.ID]; !ok || len(a) != 0 {
						t.Errorf("member %s assigned %v, present %v: want present, with nothing", m.ID, a, ok)
					}
				}
				err = g.problem()
				if err == nil {
					t.Fatal("readiness: ready; want the conflict")
				}
				line := grepLines(logs.String(), "level=ERROR")
				for _, want := range append(tt.conflict, `"g1"`, fmt.Sprintf("spans %d stores", tt.stores), "--postgres", "--group") {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("readiness error %q does not say %q", err, want)
					}
				}
				for _, want := range append(tt.conflict, "group=g1", "--postgres", "--group") {
					if !strings.Contains(line, want) {
						t.Errorf("error log %q does not say %q", line, want)
					}
				}
			})
		}
	}
}

// twoReleasesAgo is the user data a hub of two releases ago sends: the
// hub_meta id alone, under the first version.
func twoReleasesAgo(id string) []byte { return []byte("pophub-store:v1:" + id) }

// previousRelease is the user data a hub of the previous release sends:
// the store id alone, with no region table, under the second version.
func previousRelease(id string) []byte { return []byte("pophub-store:v2:" + id) }

// TestStoreUserData: an instance sends its store id and region table in
// its group membership, in a few dozen bytes; one with neither sends
// nothing, as older hubs do. A leader of an earlier release, which would
// take the longer data for another store than its own and stop ingest
// while a rolling upgrade is under way, reads none in it; this release
// reads theirs.
func TestStoreUserData(t *testing.T) {
	for _, ud := range [][]byte{twoReleasesAgo("0123456789abcdef0123456789abcdef"), previousRelease("0123456789abcdef0123456789abcdef/0123456789ab")} {
		if got, want := memberOf(ud), string(ud[len("pophub-store:v1:"):]); got != (memberData{store: want}) {
			t.Errorf("an earlier release's %q read as %+v, want store %q", ud, got, want)
		}
	}
	const store, table = "0123456789abcdef0123456789abcdef/0123456789ab", "0123456789abcdef"
	for _, self := range []memberData{{}, {store: store, regions: table}, {regions: table}, {store: store}} {
		g, err := newStoreGuard("g1", self, slog.New(slog.DiscardHandler), metricnoop.NewMeterProvider().Meter(""))
		if err != nil {
			t.Fatal(err)
		}
		ud, err := g.balancers(kafka.RangeGroupBalancer{})[0].UserData()
		if err != nil {
			t.Fatal(err)
		}
		if got := memberOf(ud); got != self {
			t.Errorf("%+v sent as %q, read back as %+v", self, ud, got)
		}
		if self == (memberData{}) && ud != nil {
			t.Errorf("nothing to say sent as %q, want nothing", ud)
		}
		if len(ud) > 96 {
			t.Errorf("user data of %d bytes", len(ud))
		}
		for _, earlier := range []string{"pophub-store:v1:", "pophub-store:v2:"} {
			if bytes.HasPrefix(ud, []byte(earlier)) {
				t.Errorf("%+v sent as %q, which a leader of an earlier release reads as a store id", self, ud)
			}
		}
	}
}

// TestRegionTablesCompared: the group's leader warns while its members
// classify addresses by different region tables, naming each table with
// its members and the remedy, and shows it on
// pophub_consumer_group_region_conflict; ingest goes on (a new table is
// rolled out one instance at a time). Members that send no table
// (earlier releases) are not counted.
func TestRegionTablesCompared(t *testing.T) {
	parts := []kafka.Partition{{Topic: "t", ID: 0}, {Topic: "t", ID: 1}}
	member := func(id string, d memberData) kafka.GroupMember {
		return kafka.GroupMember{ID: id, Topics: []string{"t"}, UserData: d.userData()}
	}
	tests := []struct {
		name    string
		members []kafka.GroupMember
		// warn lists what the warning says; nil: no warning.
		warn []string
	}{
		{"one table", []kafka.GroupMember{member("m1", memberData{"aaaa/1", "r1"}), member("m2", memberData{"aaaa/1", "r1"})}, nil},
		{"a member of the previous release", []kafka.GroupMember{member("m1", memberData{"aaaa/1", "r1"}), {ID: "m2", Topics: []string{"t"}, UserData: previousRelease("aaaa/1")}}, nil},
		{"memdb instances of one table", []kafka.GroupMember{member("m1", memberData{regions: "r1"}), member("m2", memberData{regions: "r1"})}, nil},
		{"two tables", []kafka.GroupMember{member("m1", memberData{"aaaa/1", "r1"}), member("m2", memberData{"aaaa/1", "r2"}), member("m3", memberData{"aaaa/1", "r1"})},
			[]string{"r1: 2 members (m1, m3)", "r2: 1 member (m2)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "test"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tel.Shutdown(context.Background()) })
			var logs testenv.LogBuffer
			g, err := newStoreGuard("g1", memberData{"aaaa/1", "r1"}, slog.New(slog.NewTextHandler(&logs, nil)), tel.Meter("test"))
			if err != nil {
				t.Fatal(err)
			}
			inner := kafka.RangeGroupBalancer{}
			if got, want := g.balancers(inner)[0].AssignGroups(tt.members, parts), inner.AssignGroups(tt.members, parts); !reflect.DeepEqual(got, want) {
				t.Errorf("assigned %v, want kafka-go's %v: ingest must go on", got, want)
			}
			if err := g.problem(); err != nil {
				t.Errorf("readiness: %v; want ready", err)
			}
			rec := httptest.NewRecorder()
			tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			gauge := grepLines(rec.Body.String(), "pophub_consumer_group_region_conflict")
			warning := grepLines(logs.String(), "level=WARN")
			if tt.warn == nil {
				if logs.String() != "" || g.tablesProblem() != nil {
					t.Errorf("logged %q, found %v; want nothing", logs.String(), g.tablesProblem())
				}
				if !strings.Contains(gauge, "pophub_consumer_group_region_conflict 0") {
					t.Errorf("/metrics has %q, want 0", gauge)
				}
				return
			}
			if !strings.Contains(gauge, "pophub_consumer_group_region_conflict 1") {
				t.Errorf("/metrics has %q, want 1", gauge)
			}
			for _, want := range append(tt.warn, "group=g1", "this_region_table=r1", "--regions", "pophub stats rebuild") {
				if !strings.Contains(warning, want) {
					t.Errorf("warning %q does not say %q", warning, want)
				}
			}
			g.joined() // the join this instance assigned
			if g.tablesProblem() == nil {
				t.Error("the warning was cleared by the join it was found in")
			}
			g.joined() // a rebalance led by another instance: this one no longer knows
			if err := g.tablesProblem(); err != nil {
				t.Errorf("after a rebalance led by another instance: %v; want none", err)
			}
		})
	}
}

// TestStoreConflictFollowsLeadership: the conflict is reported by the
// group's leader, which alone sees the members' stores: a later
// assignment that finds one store clears it, and so does a rebalance in
// which this instance is no longer the leader (it no longer knows).
func TestStoreConflictFollowsLeadership(t *testing.T) {
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	gauge := func() string {
		rec := httptest.NewRecorder()
		tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return grepLines(rec.Body.String(), "pophub_consumer_group_store_conflict")
	}
	g, err := newStoreGuard("g1", memberData{store: "aaaa"}, slog.New(slog.DiscardHandler), tel.Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	b := g.balancers(kafka.RangeGroupBalancer{})[0]
	parts := []kafka.Partition{{Topic: "t", ID: 0}}
	split := []kafka.GroupMember{{ID: "m1", Topics: []string{"t"}, UserData: memberData{store: "aaaa"}.userData()}, {ID: "m2", Topics: []string{"t"}, UserData: memberData{store: "bbbb"}.userData()}}
	alone := split[:1]
	steps := []struct {
		name     string
		step     func()
		conflict bool
	}{
		{"started", func() {}, false},
		{"leader of two stores", func() { b.AssignGroups(split, parts); g.joined() }, true},
		{"leader of one store", func() { b.AssignGroups(alone, parts); g.joined() }, false},
		{"leader of two stores again", func() { b.AssignGroups(split, parts); g.joined() }, true},
		{"no longer the leader", func() { g.joined() }, false},
	}
	for _, s := range steps {
		s.step()
		if err := g.problem(); (err != nil) != s.conflict {
			t.Errorf("%s: readiness error %v, want a conflict: %v", s.name, err, s.conflict)
		}
		want := "pophub_consumer_group_store_conflict 0"
		if s.conflict {
			want = "pophub_consumer_group_store_conflict 1"
		}
		if got := gauge(); !strings.Contains(got, want) {
			t.Errorf("%s: /metrics has %q, want %q", s.name, got, want)
		}
	}
}

// openStore opens a PostgreSQL store on schema, as `pophub serve
// --postgres` does.
func openStore(t testing.TB, schema string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Config{URL: testenv.Postgres(t), Schema: schema})
	if err != nil {
		t.Fatalf("opening PostgreSQL store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// changes counts the history rows of s: the events it applied.
func changes(t testing.TB, s *postgres.Store) int64 {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Changes
}

// waitForMembers waits until group is stable with n members: each has
// its assignment, whatever it holds.
func waitForMembers(t testing.TB, addr, group string, n int) {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addr), Transport: &kafka.Transport{}}
	defer CloseTransport(cl.Transport)
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := cl.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err == nil && len(resp.Groups) == 1 {
			g := resp.Groups[0]
			if g.Error == nil && g.GroupState == "Stable" && len(g.Members) == n {
				return
			}
			last = fmt.Sprintf("state %s, %d members, error %v", g.GroupState, len(g.Members), g.Error)
		} else {
			last = fmt.Sprint(resp, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s not stable with %d members: %s", group, n, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGroupOverTwoStoresStopsIngest: two `serve` instances in one
// consumer group, one pointed at another schema by mistake. Sharing the
// partitions, each would apply its share of the events to its own store
// and commit their offsets, and neither store would ever hold them all.
// Instead neither gets a partition while both are in the group, the
// instance that leads the group reports the conflict on readiness, and
// once the odd instance is gone the other applies every event.
func TestGroupOverTwoStoresStopsIngest(t *testing.T) {
	k := broker(t)
	right, odd := openStore(t, testenv.Schema(t)), openStore(t, testenv.Schema(t))
	var logs testenv.LogBuffer
	start := func(s *postgres.Store) (*Consumer, func()) {
		c, err := New(withLog(Config{Brokers: []string{k.Addr()}, GroupID: "two-stores", StoreID: s.StoreID()}, &logs), s)
		if err != nil {
			t.Fatal(err)
		}
		return c, run(t, c)
	}
	c1, stop1 := start(right)
	defer stop1()
	c2, stop2 := start(odd)
	waitForMembers(t, k.Addr(), "two-stores", 2)

	in := storetest.Population(t, 30, 71)
	produce(t, k.Addr(), in, nil)
	time.Sleep(3 * time.Second) // without the check, the two instances applied their shares within this
	if r, o := changes(t, right), changes(t, odd); r != 0 || o != 0 {
		t.Fatalf("while the group spans two stores, %d events went to the right store and %d to the odd one; want none", r, o)
	}
	ping := func(c *Consumer) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return c.Ping(ctx)
	}
	var conflict error
	waitUntil(t, "an instance to report the two stores", func() bool {
		for _, c := range []*Consumer{c1, c2} {
			if err := ping(c); err != nil && strings.Contains(err.Error(), "spans 2 stores") {
				conflict = err
				return true
			}
		}
		return false
	})
	for _, want := range []string{right.StoreID(), odd.StoreID(), "--postgres", "--group"} {
		if !strings.Contains(conflict.Error(), want) {
			t.Errorf("readiness error %q does not say %q", conflict, want)
		}
	}
	if !strings.Contains(grepLines(logs.String(), "level=ERROR"), "different stores") {
		t.Errorf("no error logged about the stores:\n%s", logs.String())
	}

	stop2() // the odd instance leaves the group
	waitUntil(t, "every event in the right store", func() bool { return changes(t, right) == int64(len(in)) })
	waitUntil(t, "the remaining instance ready", func() bool { return ping(c1) == nil })
	if o := changes(t, odd); o != 0 {
		t.Errorf("%d events in the odd store", o)
	}
}

// TestGroupOverOneStoreSharesPartitions: instances on one store (two
// processes on one schema) share the partitions and together apply
// every event once, and are ready. Their region tables differ (a new
// table being rolled out): the leader warns, naming both, and ingest
// goes on.
func TestGroupOverOneStoreSharesPartitions(t *testing.T) {
	k := broker(t)
	schema := testenv.Schema(t)
	s1, s2 := openStore(t, schema), openStore(t, schema)
	if s1.StoreID() == "" || s1.StoreID() != s2.StoreID() {
		t.Fatalf("store ids %q and %q on one schema", s1.StoreID(), s2.StoreID())
	}
	var cs []*Consumer
	var logs testenv.LogBuffer
	for i, s := range []*postgres.Store{s1, s2} {
		c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "one-store", StoreID: s.StoreID(),
			RegionTable: fmt.Sprintf("table%d", i+1), Logger: slog.New(slog.NewTextHandler(&logs, nil))}, s)
		if err != nil {
			t.Fatal(err)
		}
		defer run(t, c)()
		cs = append(cs, c)
	}
	waitForMembers(t, k.Addr(), "one-store", 2)
	in := storetest.Population(t, 30, 72)
	produce(t, k.Addr(), in, nil)
	waitUntil(t, "every event applied", func() bool { return changes(t, s1) == int64(len(in)) })
	waitUntil(t, "every event counted", func() bool { return cs[0].Counts().Consumed+cs[1].Counts().Consumed == int64(len(in)) })
	for i, c := range cs {
		if n := c.Counts().Consumed; n == 0 {
			t.Errorf("instance %d consumed nothing: the partitions were not shared", i+1)
		}
		if err := c.Ping(context.Background()); err != nil {
			t.Errorf("instance %d not ready: %v", i+1, err)
		}
		// The leader's assignment is followed by kafka-go's message that
		// the instance joined (fmtJoined), which ends it: unseen, a
		// conflict found while leading would outlive the leadership.
		c.stores.mu.Lock()
		if c.stores.assigned {
			t.Errorf("instance %d: kafka-go's %q was not seen after the assignment", i+1, fmtJoined)
		}
		c.stores.mu.Unlock()
	}
	warning := grepLines(logs.String(), "different region tables")
	for _, want := range []string{"table1: 1 member", "table2: 1 member", "group=one-store"} {
		if !strings.Contains(warning, want) {
			t.Errorf("warning %q does not say %q", warning, want)
		}
	}
}
