package cdc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// A department's names reach the hub as its register holds them, from
// the initial copy and from the changes alike, whatever the database's
// encoding: EUC_CN, PostgreSQL's server encoding for Simplified Chinese,
// or UTF-8 with GBK or GB 18030 set as client_encoding for the
// department's own older programs, by the database, the role or the URL's
// options; and with the table and its columns named in Chinese, as
// `--table 租赁备案` in the README.
func TestDatabaseEncodingKeepsNamesAsStored(t *testing.T) {
	connect(t) // skips without logical replication
	hukou := hukouTable{table: "hukou", key: "biz_no", citizenID: "citizen_id", name: "xm", registered: "registered"}
	chinese := hukouTable{table: "租赁备案", key: "业务号", citizenID: "身份证号", name: "姓名", registered: "登记时间"}
	tests := []struct {
		name     string
		encoding string // the database's
		tbl      hukouTable
		// settings run on the new database; %s is its quoted name.
		settings []string
		// options are the URL's options parameter.
		options string
		// othersGet is the client_encoding of a client that asks for
		// none, or why PostgreSQL refuses it.
		othersGet string
	}{
		{name: "EUC_CN, table in ASCII", encoding: "EUC_CN", tbl: hukou, othersGet: "EUC_CN"},
		{name: "EUC_CN, table and columns in Chinese", encoding: "EUC_CN", tbl: chinese, othersGet: "EUC_CN"},
		// PostgreSQL cannot convert EUC_CN to GBK, so a GBK default
		// there shuts out every client that does not ask for UTF-8.
		{name: "EUC_CN, the database sets GBK for its clients", encoding: "EUC_CN", tbl: chinese,
			settings:  []string{"ALTER DATABASE %s SET client_encoding = 'GBK'"},
			othersGet: "refused: conversion between GBK and EUC_CN is not supported"},
		{name: "UTF8, the database sets GBK for its clients", encoding: "UTF8", tbl: hukou,
			settings: []string{"ALTER DATABASE %s SET client_encoding = 'GBK'"}, othersGet: "GBK"},
		{name: "UTF8, the role sets GB18030 in the database, table in Chinese", encoding: "UTF8", tbl: chinese,
			settings: []string{"ALTER ROLE CURRENT_USER IN DATABASE %s SET client_encoding = 'GB18030'"}, othersGet: "GB18030"},
		{name: "UTF8, the URL's options set GBK", encoding: "UTF8", tbl: hukou, options: "-c client_encoding=GBK", othersGet: "GBK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dbURL := databaseIn(t, tt.encoding, tt.settings...)
			if tt.options != "" {
				// pgx reads a + in a URL as itself, not as a space.
				dbURL += "?" + strings.ReplaceAll(url.Values{"options": {tt.options}}.Encode(), "+", "%20")
			}
			if got := clientEncoding(t, dbURL); got != tt.othersGet {
				t.Fatalf("a client asking for no encoding gets %s; the case needs %s", got, tt.othersGet)
			}

			// The rows are written over a UTF-8 connection, so the
			// database holds the names as the Chinese they are.
			db := connectUTF8(t, dbURL)
			tt.tbl.create(t, db)
			exec(t, db, tt.tbl.sql(`INSERT INTO {t} ({key}, {id}, {name}, {registered}) VALUES ('B1', $1, '张三', '2025-01-01 10:00+08')`), citizen(1))

			m, err := ParseMapping([]byte(tt.tbl.sql(`
source: public_security
table: '{table}'
citizen_id: '{idcol}'
key: ['{keycol}']
time: '{regcol}'
insert:
  type: identity.corrected
  data:
    name: '{namecol}'
update:
  type: identity.corrected
  data:
    name: '{namecol}'
`)))
			if err != nil {
				t.Fatal(err)
			}
			addr := testenv.Kafka(t, partitions)
			pub, err := publisher.New(publisher.Config{Brokers: []string{addr}, Source: schemas.PublicSecurity, BatchTimeout: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pub.Close() })
			s, err := New(Config{Source: schemas.PublicSecurity, Postgres: dbURL, Table: tt.tbl.table, Mapping: m, Publisher: pub,
				FlushInterval: 5 * time.Millisecond, StatusInterval: time.Second, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			r := start(t, s)
			waitFor(t, r, "the copy", func() bool { return s.Stats().Published+s.Stats().Rejected == 1 })
			// 李小梅: in EUC_CN, 小 is D0 A1, which as UTF-8 would read
			// as a Cyrillic С rather than be refused.
			exec(t, db, tt.tbl.sql(`UPDATE {t} SET {name} = '李小梅' WHERE {key} = 'B1'`))
			waitFor(t, r, "the change", func() bool { return s.Stats().Published+s.Stats().Rejected == 2 })
			r.stop(t)

			var names []string
			for _, rec := range testenv.Records(t, addr, schemas.Topic(schemas.PublicSecurity)) {
				ev, err := schemas.Decode(schemas.Input{Topic: rec.Topic, Key: rec.Key, Value: rec.Value})
				if err != nil {
					t.Errorf("record does not decode: %v", err)
					continue
				}
				var d struct{ Name string }
				if err := json.Unmarshal(ev.Data, &d); err != nil {
					t.Errorf("event data: %v", err)
				}
				names = append(names, d.Name)
			}
			if want := []string{"张三", "李小梅"}; s.Stats().Rejected != 0 || !slices.Equal(names, want) {
				t.Errorf("sent names %q with %d bad rows; want %q (the copy, then the change), as the database holds them",
					names, s.Stats().Rejected, want)
			}
		})
	}
}

// hukouTable names a hukou table and its columns, in ASCII or in Chinese.
type hukouTable struct {
	table, key, citizenID, name, registered string
}

// create creates the table with REPLICA IDENTITY FULL.
func (tb hukouTable) create(t testing.TB, db *pgx.Conn) {
	t.Helper()
	exec(t, db, tb.sql(`CREATE TABLE {t} (
		{key}        text PRIMARY KEY,
		{id}         char(18) NOT NULL,
		{name}       text NOT NULL,
		{registered} timestamptz NOT NULL)`))
	exec(t, db, tb.sql(`ALTER TABLE {t} REPLICA IDENTITY FULL`))
}

// sql fills in the table's names: quoted as identifiers ({t}, {key}, {id},
// {name}, {registered}) or plain ({table}, {keycol}, {idcol}, {namecol},
// {regcol}), for a mapping.
func (tb hukouTable) sql(s string) string {
	q := func(n string) string { return pgx.Identifier{n}.Sanitize() }
	return strings.NewReplacer(
		"{t}", q(tb.table), "{key}", q(tb.key), "{id}", q(tb.citizenID), "{name}", q(tb.name), "{registered}", q(tb.registered),
		"{table}", tb.table, "{keycol}", tb.key, "{idcol}", tb.citizenID, "{namecol}", tb.name, "{regcol}", tb.registered,
	).Replace(s)
}

// databaseIn creates a database in encoding, with the C locale, runs
// settings on it (%s stands for its quoted name), and returns its URL. The database, and
// the replication slots a stream left in it, are dropped when the test
// ends.
func databaseIn(t testing.TB, encoding string, settings ...string) string {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 5)
	rand.Read(b)
	name := "cdc_" + strings.ToLower(encoding) + "_" + hex.EncodeToString(b)
	u, err := url.Parse(testenv.PostgresURL())
	if err != nil || u.Host == "" {
		testenv.Unavailable(t, "the test database's address is not a URL, so a database of the test's own cannot be named in it: %v", err)
	}
	u.Path = "/" + name
	admin := connect(t)
	quoted := pgx.Identifier{name}.Sanitize()
	exec(t, admin, "CREATE DATABASE "+quoted+" ENCODING '"+encoding+"' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
	t.Cleanup(func() {
		// A fresh connection: the test's may be closed already.
		db, err := pgx.Connect(ctx, testenv.PostgresURL())
		if err != nil {
			t.Errorf("cleaning up: %v", err)
			return
		}
		defer db.Close(ctx)
		// A slot lives in the cluster, not the database, and keeps a
		// database with one from being dropped.
		rows, err := db.Query(ctx, `SELECT slot_name FROM pg_replication_slots WHERE database = $1`, name)
		if err == nil {
			slots, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Errorf("listing the slots of %s: %v", name, err)
			}
			for _, slot := range slots {
				testenv.DropReplicationSlot(t, slot)
			}
		}
		if _, err := db.Exec(ctx, "DROP DATABASE IF EXISTS "+quoted+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping database %s: %v", name, err)
		}
	})
	for _, s := range settings {
		exec(t, admin, fmt.Sprintf(s, quoted))
	}
	return u.String()
}

// connectUTF8 opens a connection that asks for UTF-8, closed when the
// test ends.
func connectUTF8(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["client_encoding"] = "UTF8"
	db, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return db
}

// clientEncoding is the client_encoding of a connection to dbURL that
// asks for none, or "refused: " and PostgreSQL's reason.
func clientEncoding(t testing.TB, dbURL string) string {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgconn.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	var refused *pgconn.PgError
	if errors.As(err, &refused) {
		return "refused: " + refused.Message
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	return conn.ParameterStatus("client_encoding")
}
