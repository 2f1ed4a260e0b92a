package postgres

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// defaultMaxConns is the pool size when neither Config.MaxConns nor the
// URL's pool_max_conns sets one.
const defaultMaxConns = 8

// defaultConnectTimeout bounds a connection's set-up when the URL's
// connect_timeout does not: a server whose host froze accepts the TCP
// connection and never answers, and the hub would wait, silent, for ever
// (at start, where it should exit saying the database is unreachable, or
// in the pool later).
const defaultConnectTimeout = 10 * time.Second

// poolConfig parses the URL into the pool's configuration and settles
// cfg.Schema and cfg.MaxConns from what the Config and the URL say: an
// operator who writes search_path or pool_max_conns into the URL, as
// PostgreSQL and pgx document, gets them, and a URL that contradicts the
// Config is refused rather than overridden.
func poolConfig(cfg *Config) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parsing PostgreSQL URL: %w", err)
	}
	// pgxpool takes pool_max_conns out of the parameters it returns and
	// defaults it by the CPUs: parse once more to learn whether the URL
	// set it.
	cc, err := pgconn.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parsing PostgreSQL URL: %w", err)
	}
	_, urlMaxConns := cc.RuntimeParams["pool_max_conns"]
	cfg.schemaFromURL = cfg.Schema == "" && strings.TrimSpace(pc.ConnConfig.RuntimeParams["search_path"]) != ""
	if cfg.Schema, err = resolveSchema(cfg.Schema, pc.ConnConfig.RuntimeParams["search_path"]); err != nil {
		return nil, err
	}
	cfg.MaxConns = maxConns(cfg.MaxConns, pc.MaxConns, urlMaxConns)
	pc.MaxConns = cfg.MaxConns
	pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{cfg.Schema}.Sanitize()
	pc.AfterConnect = checkSearchPath(cfg.Schema)
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if pc.ConnConfig.RuntimeParams["application_name"] == "" {
		pc.ConnConfig.RuntimeParams["application_name"] = "pophub"
	}
	return pc, nil
}

// maxConns is the pool size: the configured one, else the URL's
// pool_max_conns when it set one, else defaultMaxConns.
func maxConns(configured, parsed int32, fromURL bool) int32 {
	switch {
	case configured > 0:
		return configured
	case fromURL:
		return parsed
	}
	return defaultMaxConns
}

// resolveSchema chooses the schema of the store's tables from the
// configured one and the URL's search_path ("" when the URL sets none).
// The store's connections then search that schema alone, so a path of
// several schemas is accepted only when the configuration names which.
func resolveSchema(configured, searchPath string) (string, error) {
	path, err := parseSearchPath(searchPath)
	if err != nil {
		return "", fmt.Errorf("postgres: the URL's search_path %q: %w", searchPath, err)
	}
	switch {
	case len(path) == 0 && configured == "":
		return "public", nil
	case len(path) == 0:
		return configured, nil
	case configured != "" && slices.Contains(path, configured):
		return configured, nil
	case configured != "":
		return "", fmt.Errorf("postgres: the schema %q and the URL's search_path %q name different schemas; name the hub's schema in one place, or the same in both",
			configured, searchPath)
	case len(path) > 1:
		return "", fmt.Errorf("postgres: the URL's search_path %q names several schemas (%s), and the hub keeps its tables in one: name it as the hub's schema, or leave only it in search_path",
			searchPath, strings.Join(path, ", "))
	case path[0] == "$user":
		return "", fmt.Errorf(`postgres: the URL's search_path %q names "$user", a schema that depends on the login role: name the schema itself`, searchPath)
	}
	return path[0], nil
}

// parseSearchPath splits a search_path setting into its schema names as
// PostgreSQL reads it: names separated by commas, blanks around them
// ignored, a double-quoted name taken as written ("" standing for a
// quote), an unquoted one folded to lower case. An empty setting is an
// empty path.
func parseSearchPath(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var names []string
	rest := v
	for {
		rest = strings.TrimLeft(rest, " \t\n\r")
		var name string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			for {
				j := strings.IndexByte(rest[i:], '"')
				if j < 0 {
					return nil, fmt.Errorf("unterminated quoted name")
				}
				b.WriteString(rest[i : i+j])
				i += j + 1
				if !strings.HasPrefix(rest[i:], `"`) {
					break
				}
				b.WriteByte('"')
				i++
			}
			name, rest = b.String(), rest[i:]
		} else {
			end := strings.IndexAny(rest, ", \t\n\r")
			if end < 0 {
				end = len(rest)
			}
			name, rest = strings.ToLower(rest[:end]), rest[end:]
		}
		if name == "" {
			return nil, fmt.Errorf("an empty schema name")
		}
		names = append(names, name)
		rest = strings.TrimLeft(rest, " \t\n\r")
		if rest == "" {
			return names, nil
		}
		if rest[0] != ',' {
			return nil, fmt.Errorf("%q follows the name %q where a comma belongs", rest, name)
		}
		rest = rest[1:]
	}
}

// SchemaOf is the schema a store opened on url with Config.Schema
// configured keeps its tables in (see Config.Schema), for the tools that
// open a hub's other tables beside them, such as its audit log.
func SchemaOf(url, configured string) (string, error) {
	cc, err := pgconn.ParseConfig(url)
	if err != nil {
		return "", fmt.Errorf("parsing PostgreSQL URL: %w", err)
	}
	return resolveSchema(configured, cc.RuntimeParams["search_path"])
}

// Where names the store a connection string and configured schema
// (Config.Schema) reach, for output an operator reads: the servers (every
// host a multi-host string lists, in order), database and schema, never
// the user or a password, whichever form the string has (a URL, its
// password= parameter, or keyword/value pairs).
func Where(url, configured string) string {
	cc, err := pgconn.ParseConfig(url)
	if err != nil {
		return "an unparseable connection string"
	}
	out := servers(cc)
	if schema, err := resolveSchema(configured, cc.RuntimeParams["search_path"]); err == nil {
		out += ", schema " + schema
	}
	return out
}

// Server names the servers and database a connection string reaches, as
// Where does, without a schema.
func Server(url string) string {
	cc, err := pgconn.ParseConfig(url)
	if err != nil {
		return "an unparseable connection string"
	}
	return servers(cc)
}

// servers is "host:port, database D", with every host of a multi-host
// string (pgconn lists each again as a fallback per TLS mode) once.
func servers(cc *pgconn.Config) string {
	hosts := []string{net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))}
	for _, f := range cc.Fallbacks {
		if h := net.JoinHostPort(f.Host, strconv.Itoa(int(f.Port))); !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return strings.Join(hosts, ",") + ", database " + cc.Database
}

// legacySchema is where hubs before the URL's search_path was honoured
// kept their tables whatever that search_path said; tests point it
// elsewhere.
var legacySchema = "public"

// checkURLSchema refuses to create a store in schema, which only the
// URL's search_path named, when schema holds no hub store and
// legacySchema holds one: that is a hub upgraded with the URL it always
// had, whose store is in legacySchema, and creating an empty one would
// hide every record, history and count from it without a word.
func checkURLSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if schema == legacySchema {
		return nil
	}
	var here, legacy bool
	err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL`,
		pgx.Identifier{schema, "persons"}.Sanitize(), pgx.Identifier{legacySchema, "persons"}.Sanitize(),
		pgx.Identifier{legacySchema, "history"}.Sanitize()).Scan(&here, &legacy)
	if err != nil {
		return fmt.Errorf("postgres: looking for the hub's store: %w", err)
	}
	if !here && legacy {
		return fmt.Errorf("postgres: the URL's search_path names schema %q, which holds no hub store, while schema %q holds one "+
			"(hubs before this version kept their tables in %[2]q whatever the URL's search_path said): name the schema explicitly, "+
			"--postgres-schema %[2]s to go on with that store, or --postgres-schema %[1]s to start a new one", schema, legacySchema)
	}
	return nil
}
