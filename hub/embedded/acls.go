package embedded

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The broker's users and ACLs come from its configuration at every start,
// never from its data directory.
//
// kfake persists its SCRAM users (sasl.json) and ACLs (acls.json) beside
// the log, and at start it loads them over what its options say: the
// users of kfake.User and kfake.Superuser are replaced by the saved ones,
// and the options' ACLs apply only to a directory that holds no state
// yet. A policy changed after the first start (a grant revoked, a
// password rotated, a new grant of a new release) therefore never
// reached the broker. So StartKafka
//
//  1. removes both files before the cluster loads the directory: the
//     users are then exactly the options' ones with their current
//     passwords, and the broker starts with no ACL at all, which refuses
//     every principal but a superuser (it fails closed while step 2
//     runs). Topics, records, offsets and groups live in other files
//     and are untouched;
//  2. makes the ACLs exactly KafkaConfig.ACLs through the Kafka protocol
//     (DescribeACLs, DeleteACLs, CreateACLs), as kfake's options cannot
//     install ACLs on a directory that holds state. The diff, rather
//     than creating the list alone, keeps the result exact should a
//     later kfake keep ACLs elsewhere.
//
// Step 2 needs a superuser, and a policy need not have one (its
// administrators are kfake's superusers, and it may have none with a
// Kafka credential). StartKafka therefore adds a superuser of its own for
// each start, bootstrapUser, with a random 256-bit password that only
// this process ever holds, connects as it over an in-process pipe (no
// network, so the broker's TLS certificate needs no checking), and
// deletes its credential before StartKafka returns: from then on nobody
// can log in as it. The name holds a dot, which no policy identity may,
// so it cannot take over a policy user. kfake keeps superuser names only
// in its options, never on disk, so the name grants nothing on a later
// start.

// bootstrapUser is the per-start superuser that installs the ACLs, with
// bootstrapMechanism.
const (
	bootstrapUser      = "pophub.bootstrap"
	bootstrapMechanism = "SCRAM-SHA-512"
)

// authFiles are the files in which kfake keeps its users and ACLs.
var authFiles = []string{"sasl.json", "acls.json"}

// removeAuthFiles removes the users and ACLs a data directory holds, so
// that those of the configuration apply.
func removeAuthFiles(dataDir string) error {
	for _, name := range authFiles {
		if err := os.Remove(filepath.Join(dataDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing the broker's saved users and ACLs: %w", err)
		}
	}
	return nil
}

// bootstrapPassword returns a random password for bootstrapUser.
func bootstrapPassword() (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("making the broker's bootstrap password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw[:]), nil
}

// aclKey is one ACL as the broker holds it.
type aclKey struct {
	principal, host string
	resource        kmsg.ACLResourceType
	name            string
	pattern         kmsg.ACLResourcePatternType
	operation       kmsg.ACLOperation
	permission      kmsg.ACLPermissionType
}

func keyOf(a kfake.ACL) aclKey {
	k := aclKey{principal: a.Principal, host: a.Host, resource: a.Resource, name: a.Name, pattern: a.Pattern,
		operation: a.Operation, permission: kmsg.ACLPermissionTypeDeny}
	if k.host == "" {
		k.host = "*"
	}
	if k.pattern == kmsg.ACLResourcePatternTypeUnknown {
		k.pattern = kmsg.ACLResourcePatternTypeLiteral
	}
	if a.Allow {
		k.permission = kmsg.ACLPermissionTypeAllow
	}
	return k
}

// enforceACLs makes the broker's ACLs exactly want, as bootstrapUser with
// password pw over a connection from ln, then deletes bootstrapUser's
// credential. It reports how many ACLs it created and deleted.
func enforceACLs(ctx context.Context, ln *localListener, seed string, serverTLS bool, pw string, want []kfake.ACL) (created, deleted int, err error) {
	if ln == nil {
		return 0, 0, errors.New("the broker's listener is not pophub's")
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		c, err := ln.dial(ctx)
		if err != nil || !serverTLS {
			return c, err
		}
		// The other end is this process's own listener through a pipe:
		// no one can stand between, so there is no certificate to check.
		return tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}), nil //nolint:gosec // in-process pipe
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seed), kgo.Dialer(dial),
		kgo.SASL(scram.Auth{User: bootstrapUser, Pass: pw}.AsSha512Mechanism()))
	if err != nil {
		return 0, 0, fmt.Errorf("connecting to the broker to install its ACLs: %w", err)
	}
	defer cl.Close()

	wanted := map[aclKey]bool{}
	for _, a := range want {
		wanted[keyOf(a)] = true
	}
	describe := kmsg.NewPtrDescribeACLsRequest()
	describe.ResourceType = kmsg.ACLResourceTypeAny
	describe.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
	describe.Operation = kmsg.ACLOperationAny
	describe.PermissionType = kmsg.ACLPermissionTypeAny
	dresp, err := describe.RequestWith(ctx, cl)
	if err == nil {
		err = errorFor(dresp.ErrorCode, dresp.ErrorMessage)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("listing the broker's ACLs: %w", err)
	}
	held := map[aclKey]bool{}
	del := kmsg.NewPtrDeleteACLsRequest()
	for _, r := range dresp.Resources {
		for _, a := range r.ACLs {
			k := aclKey{principal: a.Principal, host: a.Host, resource: r.ResourceType, name: r.ResourceName,
				pattern: r.ResourcePatternType, operation: a.Operation, permission: a.PermissionType}
			held[k] = true
			if wanted[k] {
				continue
			}
			f := kmsg.NewDeleteACLsRequestFilter()
			f.ResourceType, f.ResourceName, f.ResourcePatternType = k.resource, kmsg.StringPtr(k.name), k.pattern
			f.Principal, f.Host = kmsg.StringPtr(k.principal), kmsg.StringPtr(k.host)
			f.Operation, f.PermissionType = k.operation, k.permission
			del.Filters = append(del.Filters, f)
		}
	}
	if len(del.Filters) > 0 {
		resp, err := del.RequestWith(ctx, cl)
		if err != nil {
			return 0, 0, fmt.Errorf("deleting ACLs the policy does not grant: %w", err)
		}
		for _, r := range resp.Results {
			if err := errorFor(r.ErrorCode, r.ErrorMessage); err != nil {
				return 0, 0, fmt.Errorf("deleting ACLs the policy does not grant: %w", err)
			}
		}
		deleted = len(del.Filters)
	}
	create := kmsg.NewPtrCreateACLsRequest()
	for k := range wanted {
		if held[k] {
			continue
		}
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = k.resource, k.name, k.pattern
		c.Principal, c.Host, c.Operation, c.PermissionType = k.principal, k.host, k.operation, k.permission
		create.Creations = append(create.Creations, c)
	}
	if len(create.Creations) > 0 {
		resp, err := create.RequestWith(ctx, cl)
		if err != nil {
			return 0, deleted, fmt.Errorf("creating the policy's ACLs: %w", err)
		}
		for _, r := range resp.Results {
			if err := errorFor(r.ErrorCode, r.ErrorMessage); err != nil {
				return 0, deleted, fmt.Errorf("creating the policy's ACLs: %w", err)
			}
		}
		created = len(create.Creations)
	}

	alter := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
	d.Name, d.Mechanism = bootstrapUser, 2 // SCRAM-SHA-512
	alter.Deletions = append(alter.Deletions, d)
	aresp, err := alter.RequestWith(ctx, cl)
	if err == nil {
		for _, r := range aresp.Results {
			if err = errorFor(r.ErrorCode, r.ErrorMessage); err != nil {
				break
			}
		}
	}
	if err != nil {
		return created, deleted, fmt.Errorf("removing the broker's bootstrap user: %w", err)
	}
	return created, deleted, nil
}

// errorFor is the error of a Kafka error code, with the broker's message.
func errorFor(code int16, msg *string) error {
	err := kerr.ErrorForCode(code)
	if err != nil && msg != nil && *msg != "" {
		err = fmt.Errorf("%w: %s", err, *msg)
	}
	return err
}

// localListener is the broker's listener plus connections made by this
// process (dial), which reach the broker through a pipe and never touch
// the network.
type localListener struct {
	net.Listener
	local  chan net.Conn
	remote chan accepted
	closed chan struct{}
	once   sync.Once
}

type accepted struct {
	conn net.Conn
	err  error
}

func newLocalListener(l net.Listener) *localListener {
	ll := &localListener{Listener: l, local: make(chan net.Conn), remote: make(chan accepted), closed: make(chan struct{})}
	go ll.acceptRemote()
	return ll
}

// acceptRemote passes the network listener's connections to Accept, up
// to its first error, which ends the broker's accept loop.
func (l *localListener) acceptRemote() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.remote <- accepted{c, err}:
		case <-l.closed:
			if c != nil {
				c.Close()
			}
			return
		}
		if err != nil {
			return
		}
	}
}

func (l *localListener) Accept() (net.Conn, error) {
	select {
	case a := <-l.remote:
		return a.conn, a.err
	case c := <-l.local:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *localListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.closed)
		err = l.Listener.Close()
	})
	return err
}

// dial returns a connection to the broker that bypasses the network.
func (l *localListener) dial(ctx context.Context) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.local <- server:
		return client, nil
	case <-l.closed:
	case <-ctx.Done():
	}
	client.Close()
	server.Close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, net.ErrClosed
}
