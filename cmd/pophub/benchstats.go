package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/region"
)

func benchStatsCommand() *cobra.Command {
	var o statsBenchOptions
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Measure urban/rural count latency over millions of golden records in PostgreSQL",
		Long: `Builds a province's registered population in PostgreSQL with the store's bulk
loader (registrations, migrations and deaths merged by the hub's rules and written
with COPY: the same golden records, history and counters as applying them, without
the per-batch locks and upserts), then times GET /v1/stats/urban-rural for the province with its children,
as of today and as of a past date, over HTTP. --schema reuses a population built
earlier with --keep.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStatsBench(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Persons, "persons", 1_000_000, "persons to register")
	f.StringVar(&o.Province, "province", "23", "province whose villages the persons live in")
	f.StringVar(&o.Postgres, "postgres", envOr("POPHUB_POSTGRES", "postgres://postgres@127.0.0.1:5432/test"), "PostgreSQL URL (env POPHUB_POSTGRES)")
	f.StringVar(&o.Schema, "schema", "", "reuse this schema's population instead of building one")
	f.BoolVar(&o.Keep, "keep", false, "keep the schema afterwards (to reuse with --schema)")
	f.IntVar(&o.Requests, "requests", 300, "requests timed per date")
	return cmd
}

type statsBenchOptions struct {
	Persons  int
	Province string
	Postgres string
	Schema   string
	Keep     bool
	Requests int
}

func runStatsBench(ctx context.Context, out io.Writer, o statsBenchOptions) error {
	schema, build := o.Schema, o.Schema == ""
	if build {
		schema = fmt.Sprintf("pophub_statsbench_%d", time.Now().UnixNano())
	}
	if !o.Keep && build {
		defer dropSchema(context.WithoutCancel(ctx), o.Postgres, schema)
	}
	store, err := postgres.Open(ctx, postgres.Config{URL: o.Postgres, Schema: schema, CacheSize: -1})
	if err != nil {
		return err
	}
	defer store.Close()
	if build {
		start := time.Now()
		n, err := loadPopulation(ctx, out, store, o)
		if err != nil {
			return err
		}
		took := time.Since(start)
		fmt.Fprintf(out, "built %d golden records (%d events) in schema %s in %s: %.0f events/s\n",
			o.Persons, n, schema, took.Round(time.Second), float64(n)/took.Seconds())
	}
	var persons, counters int64
	_ = store.Pool().QueryRow(ctx, "SELECT (SELECT count(*) FROM persons), (SELECT count(*) FROM stats_counters)").Scan(&persons, &counters)
	fmt.Fprintf(out, "schema %s: %d golden records, %d counter rows\n", schema, persons, counters)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: api.New(api.Config{Store: store, Counter: store, Regions: apiRegions{}}).Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String() + "/v1/stats/urban-rural?children=true&region=" + o.Province
	today := time.Now().In(chinaTime).Format(time.DateOnly)
	for _, asOf := range []string{today, "2000-06-30"} {
		var lat []time.Duration
		var body struct {
			Total    int64      `json:"total"`
			Children []struct{} `json:"children"`
		}
		for i := 0; i < o.Requests+10; i++ {
			t0 := time.Now()
			resp, err := http.Get(base + "&as_of=" + asOf)
			if err != nil {
				return err
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET urban-rural as of %s: HTTP %d, %v", asOf, resp.StatusCode, err)
			}
			if i >= 10 { // the first requests warm the caches
				lat = append(lat, time.Since(t0))
			}
		}
		slices.Sort(lat)
		fmt.Fprintf(out, "  GET /v1/stats/urban-rural?region=%s&children=true&as_of=%s (total %d, %d children): p50 %s, p99 %s, max %s over %d requests\n",
			o.Province, asOf, body.Total, len(body.Children), lat[len(lat)/2].Round(10*time.Microsecond),
			lat[len(lat)*99/100].Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond), len(lat))
	}
	return nil
}

var chinaTime = time.FixedZone("CST", 8*3600)

// loadPopulation registers o.Persons persons at random villages of the
// province on dates since 1950; a tenth migrate once to another village,
// a twentieth die. Events go through the store's bulk loader in chunks of
// whole persons.
func loadPopulation(ctx context.Context, out io.Writer, store *postgres.Store, o statsBenchOptions) (int64, error) {
	var villages []string
	for _, city := range region.Children(o.Province) {
		for _, county := range region.Children(city.Code) {
			for _, town := range region.Children(county.Code) {
				for _, v := range region.Children(town.Code) {
					villages = append(villages, v.Code)
				}
			}
		}
	}
	if len(villages) == 0 {
		return 0, fmt.Errorf("province %s has no villages in the region table", o.Province)
	}
	// Generation and merging run while the previous chunk is copied.
	chunks := make(chan []hub.Input, 2)
	done := make(chan error, 1)
	loader := store.NewLoader()
	var applied atomic.Int64
	go func() {
		var err error
		for c := range chunks {
			if err == nil {
				err = loader.Load(ctx, c)
				applied.Add(int64(len(c)))
			}
		}
		if err == nil {
			err = loader.Close(ctx)
		}
		done <- err
	}()
	start, last := time.Now(), time.Now()
	epoch := time.Date(1950, 1, 1, 9, 0, 0, 0, chinaTime)
	span := int(time.Since(epoch).Hours() / 24)
	var batch []hub.Input
	var total int64
	for i := 0; i < o.Persons && ctx.Err() == nil; i++ {
		r := rand.New(rand.NewPCG(uint64(i), 77))
		id := benchID(i)
		at := epoch.AddDate(0, 0, r.IntN(span-400))
		home := villages[r.IntN(len(villages))]
		batch = append(batch, benchEvent(id, fmt.Sprintf("r%d", i), schemas.HukouRegistered, at,
			&schemas.HukouRegisteredData{Name: "王伟", Gender: "1", BirthDate: "1940-01-01", Ethnicity: "01", AddressCode: home, HouseholdID: "H" + strconv.Itoa(i/3), Reason: "settlement"}))
		if r.IntN(10) == 0 {
			to := villages[r.IntN(len(villages))]
			batch = append(batch, benchEvent(id, fmt.Sprintf("m%d", i), schemas.HukouMigrated, at.AddDate(0, 0, 1+r.IntN(300)),
				&schemas.HukouMigratedData{FromAddressCode: home, ToAddressCode: to, Reason: "employment"}))
		}
		if r.IntN(20) == 0 {
			d := at.AddDate(0, 0, 301+r.IntN(90))
			batch = append(batch, benchEvent(id, fmt.Sprintf("d%d", i), schemas.DeathCertified, d,
				&schemas.DeathCertifiedData{DateOfDeath: d.Format(time.DateOnly), CertificateNo: "D" + strconv.Itoa(i)}))
		}
		if len(batch) >= 20000 {
			total += int64(len(batch))
			chunks <- batch
			batch = nil
			if time.Since(last) > 10*time.Second {
				last = time.Now()
				fmt.Fprintf(out, "  %d of %d persons, %.0f events/s\n", i, o.Persons, float64(applied.Load())/time.Since(start).Seconds())
			}
		}
	}
	total += int64(len(batch))
	if len(batch) > 0 {
		chunks <- batch
	}
	close(chunks)
	if err := <-done; err != nil {
		return total, err
	}
	return total, ctx.Err()
}

// benchID is the n-th citizen ID of the benchmark population: Harbin,
// born 1940-01-01 plus n/500 days, with a valid check character.
func benchID(n int) citizenid.ID {
	birth := time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, n/500)
	first17 := "230102" + birth.Format("20060102") + fmt.Sprintf("%03d", n%500*2%1000)
	return citizenid.ID(first17 + string(citizenid.CheckChar(first17)))
}

func benchEvent(id citizenid.ID, eventID string, typ schemas.Type, at time.Time, data schemas.Data) hub.Input {
	raw, _ := json.Marshal(data)
	return hub.Input{Event: schemas.Event{SpecVersion: "1.0", ID: eventID, Source: schemas.SourceOf(typ), Type: typ, Subject: id, Time: at,
		DataContentType: "application/json", Data: raw, Payload: data}}
}
