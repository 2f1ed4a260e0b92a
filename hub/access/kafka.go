package access

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/schemas"
)

// SCRAMMechanism is the SASL mechanism every Kafka identity uses.
const SCRAMMechanism = "SCRAM-SHA-512"

// KafkaACL is one ALLOW ACL for principal User:<Principal>.
type KafkaACL struct {
	Principal string
	Resource  kmsg.ACLResourceType // Topic, Group or TransactionalId
	Name      string
	Pattern   kmsg.ACLResourcePatternType // Literal, or Prefixed: every name that starts with Name
	Operation kmsg.ACLOperation
}

// KafkaACLs lists the ACLs of the policy, by identity in file order:
//
//   - a department: WRITE and DESCRIBE on its own topic pop.events.<source>,
//     and on the transactional ids starting with TransactionalIDPrefix,
//     so that it may publish in transactions (README: it must only
//     commit them) without fencing another department's producers;
//   - the hub: READ and DESCRIBE on every source topic, READ on its
//     consumer group, WRITE and DESCRIBE on the DLQ topic, and CREATE on
//     all nine topics (it creates them at start when they are missing);
//     and WRITE on the source topics for its HTTP gateway, which takes a
//     department's events only with that department's token and only for
//     its own source;
//   - administrators are superusers and need none; others get none.
//
// Nobody but the hub may read a source topic, and nobody but its
// department (or the hub's gateway on its behalf) may write one.
func (p *Policy) KafkaACLs() []KafkaACL {
	var out []KafkaACL
	addPattern := func(who string, rt kmsg.ACLResourceType, name string, pt kmsg.ACLResourcePatternType, ops ...kmsg.ACLOperation) {
		for _, op := range ops {
			out = append(out, KafkaACL{Principal: who, Resource: rt, Name: name, Pattern: pt, Operation: op})
		}
	}
	add := func(who string, rt kmsg.ACLResourceType, name string, ops ...kmsg.ACLOperation) {
		addPattern(who, rt, name, kmsg.ACLResourcePatternTypeLiteral, ops...)
	}
	topic, group := kmsg.ACLResourceTypeTopic, kmsg.ACLResourceTypeGroup
	for _, id := range p.Identities {
		if id.Credentials.Kafka == nil {
			continue
		}
		switch id.Kind {
		case KindDepartment:
			for _, s := range id.Publish {
				add(id.Name, topic, schemas.Topic(s), kmsg.ACLOperationWrite, kmsg.ACLOperationDescribe)
			}
			if len(id.Publish) > 0 {
				addPattern(id.Name, kmsg.ACLResourceTypeTransactionalId, TransactionalIDPrefix(id.Name), kmsg.ACLResourcePatternTypePrefixed,
					kmsg.ACLOperationWrite, kmsg.ACLOperationDescribe)
			}
		case KindHub:
			for _, t := range schemas.Topics() {
				add(id.Name, topic, t, kmsg.ACLOperationRead, kmsg.ACLOperationDescribe, kmsg.ACLOperationCreate, kmsg.ACLOperationWrite)
			}
			add(id.Name, group, p.KafkaGroup, kmsg.ACLOperationRead, kmsg.ACLOperationDescribe)
			// Read too: the admin status counts the DLQ as the hub.
			// DescribeConfigs: the hub checks that the DLQ keeps rejects.
			add(id.Name, topic, schemas.DLQTopic, kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationDescribe, kmsg.ACLOperationCreate,
				kmsg.ACLOperationDescribeConfigs)
		}
	}
	return out
}

// KfakeACLs returns the ACLs of KafkaACLs for the embedded broker
// (embedded.KafkaConfig.ACLs), each with its principal User:<name>. The
// broker of `pophub dev` is given them at every start, so that a data
// directory holds the ACLs of the policy in force, not those of the
// policy it was first started with.
func (p *Policy) KfakeACLs() []kfake.ACL {
	var out []kfake.ACL
	for _, a := range p.KafkaACLs() {
		out = append(out, kfake.ACL{
			Principal: "User:" + a.Principal, Resource: a.Resource, Name: a.Name, Pattern: a.Pattern,
			Operation: a.Operation, Allow: true,
		})
	}
	return out
}

// KfakeOptions returns the embedded broker's options for the policy: SASL
// with a SCRAM-SHA-512 user per identity with a Kafka credential,
// administrators as superusers, ACL enforcement on, and the ACLs of
// KafkaACLs. kfake keeps salted passwords it derives itself, so every
// Kafka identity needs a password reference, which resolve reads; an
// identity with SCRAM keys only is an error naming it, and so is one whose
// password is not the one its keys are of (see KafkaCredential.CheckPassword).
//
// kfake seeds these ACLs only into a cluster that has no saved state, so
// they suffice for an in-memory broker; a broker on a data directory
// needs KfakeACLs as well (embedded.KafkaConfig.ACLs), which it enforces
// at every start.
func (p *Policy) KfakeOptions(resolve Resolver) ([]kfake.Opt, error) {
	acls := map[string][]kfake.ACL{}
	for _, a := range p.KfakeACLs() {
		name := strings.TrimPrefix(a.Principal, "User:")
		acls[name] = append(acls[name], a)
	}
	opts := []kfake.Opt{kfake.EnableSASL(), kfake.EnableACLs()}
	var errs []error
	for _, id := range p.Identities {
		k := id.Credentials.Kafka
		if k == nil {
			continue
		}
		if k.Password == "" {
			errs = append(errs, fmt.Errorf("%s: the embedded broker needs a password reference (credentials.kafka.password), not only SCRAM keys", id.Name))
			continue
		}
		pw, err := resolve(k.Password)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id.Name, err))
			continue
		}
		if err := k.CheckPassword(pw); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id.Name, err))
			continue
		}
		if id.Kind == KindAdmin {
			opts = append(opts, kfake.Superuser(SCRAMMechanism, id.Name, pw))
		} else {
			opts = append(opts, kfake.User(SCRAMMechanism, id.Name, pw, acls[id.Name]...))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("building the embedded broker's users: %w", err)
	}
	return opts, nil
}

// KafkaScript renders the policy for a real Kafka cluster as a POSIX shell
// script of kafka-configs.sh (SCRAM users) and kafka-acls.sh commands. It
// reads the bootstrap address and an admin client configuration from
// $KAFKA_BOOTSTRAP and $KAFKA_ADMIN_CONFIG, and each password from the
// identity's reference when it runs (env:NAME as ${NAME}, file:PATH as
// $(cat PATH)), so the script holds no secret. Identities with SCRAM keys
// but no reference are listed as comments: their password must be set by
// whoever holds it.
//
// A cluster keeps what earlier scripts granted, so with prev, the policy
// the cluster was last set up from, the script first takes away what this
// one no longer grants: the ACLs prev had and this one has not, and the
// SCRAM users of identities that no longer have a Kafka credential.
// Without prev it only adds, and says so.
func (p *Policy) KafkaScript(prev *Policy) string {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
# Generated by "pophub policy kafka-acls" from the access policy; do not edit.
# Broker settings this assumes (server.properties):
#   sasl.enabled.mechanisms=SCRAM-SHA-512
#   authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
#   allow.everyone.if.no.acl.found=false
`)
	supers := superUsers(p)
	if len(supers) > 0 {
		fmt.Fprintf(&b, "#   super.users=%s\n", strings.Join(supers, ";"))
	}
	if prev == nil {
		b.WriteString("# It only adds: ACLs and users an earlier policy granted stay on the cluster. To take\n" +
			"# away what this policy no longer grants, generate it with --previous OLD-POLICY.\n")
	} else {
		for _, u := range superUsers(prev) {
			if !slices.Contains(supers, u) {
				fmt.Fprintf(&b, "# %s is no longer an administrator: remove it from super.users and restart the brokers\n", u)
			}
		}
	}
	b.WriteString(`set -eu
: "${KAFKA_BOOTSTRAP:?set KAFKA_BOOTSTRAP to host:port}"
: "${KAFKA_ADMIN_CONFIG:?set KAFKA_ADMIN_CONFIG to an admin client properties file}"
KC='kafka-configs.sh --bootstrap-server '"$KAFKA_BOOTSTRAP"' --command-config '"$KAFKA_ADMIN_CONFIG"
KA='kafka-acls.sh --bootstrap-server '"$KAFKA_BOOTSTRAP"' --command-config '"$KAFKA_ADMIN_CONFIG"
`)
	acls := p.KafkaACLs()
	var dropped []string
	if prev != nil {
		dropped = writeRevocations(&b, p, prev, acls)
	}
	for _, id := range p.Identities {
		k := id.Credentials.Kafka
		if k == nil {
			continue
		}
		fmt.Fprintf(&b, "\n# %s (%s)\n", id.Name, id.Kind)
		iter := 8192
		if k.SCRAM != nil {
			iter = k.SCRAM.Iterations
		}
		if pw := shellRef(k.Password); pw != "" {
			fmt.Fprintf(&b, "$KC --alter --entity-type users --entity-name %s --add-config \"SCRAM-SHA-512=[iterations=%d,password=%s]\"\n", id.Name, iter, pw)
		} else {
			fmt.Fprintf(&b, "# no password reference: set the SCRAM-SHA-512 credential of %s by hand\n", id.Name)
		}
		writeACLs(&b, "--add", id.Name, acls)
	}
	writeUserDeletions(&b, prev, dropped)
	return b.String()
}

// writeUserDeletions writes, after every grant, the deletion of the SCRAM
// users of the dropped identities: last, so that an administrator renamed
// in the policy exists before the old one goes, and tolerant of a user
// already gone, so that the script can run again (a broker refuses to
// delete a credential it does not have). An administrator of prev is
// never deleted here: the script may be running as it, and the brokers
// take it as a superuser until they restart with the new super.users.
func writeUserDeletions(b *strings.Builder, prev *Policy, dropped []string) {
	if len(dropped) == 0 {
		return
	}
	supers := superUsers(prev)
	b.WriteString("\n# Users of identities without a Kafka credential now.\n")
	for _, name := range dropped {
		if slices.Contains(supers, "User:"+name) {
			fmt.Fprintf(b, "# %s was an administrator: once the brokers run with the new super.users, delete it:\n"+
				"#   $KC --alter --entity-type users --entity-name %s --delete-config SCRAM-SHA-512\n", name, name)
			continue
		}
		fmt.Fprintf(b, "$KC --alter --entity-type users --entity-name %s --delete-config SCRAM-SHA-512 || echo \"%s: no SCRAM credential to delete (already gone?)\" >&2\n", name, name)
	}
}

// writeRevocations writes the commands that remove the ACLs prev granted
// and p does not, by identity, and returns the identities left without a
// Kafka credential, whose users writeUserDeletions deletes once every
// grant is made.
func writeRevocations(b *strings.Builder, p, prev *Policy, acls []KafkaACL) (dropped []string) {
	keep := map[KafkaACL]bool{}
	for _, a := range acls {
		keep[a] = true
	}
	var gone []KafkaACL
	for _, a := range prev.KafkaACLs() {
		if !keep[a] {
			gone = append(gone, a)
		}
	}
	header := false
	for _, id := range prev.Identities {
		if now, ok := p.Identity(id.Name); id.Credentials.Kafka != nil && (!ok || now.Credentials.Kafka == nil) {
			dropped = append(dropped, id.Name)
		}
		if !slices.ContainsFunc(gone, func(a KafkaACL) bool { return a.Principal == id.Name }) {
			continue
		}
		if !header {
			b.WriteString("\n# Taken away: granted by the previous policy, not by this one.\n")
			header = true
		}
		writeACLs(b, "--remove --force", id.Name, gone)
	}
	return dropped
}

// writeACLs writes one kafka-acls.sh command (verb: --add, or --remove
// --force) per resource of the principal's ACLs, with all its operations.
func writeACLs(b *strings.Builder, verb, principal string, acls []KafkaACL) {
	type key struct {
		rt   kmsg.ACLResourceType
		name string
		pt   kmsg.ACLResourcePatternType
	}
	var order []key
	ops := map[key][]string{}
	for _, a := range acls {
		if a.Principal != principal {
			continue
		}
		k := key{a.Resource, a.Name, a.Pattern}
		if _, ok := ops[k]; !ok {
			order = append(order, k)
		}
		ops[k] = append(ops[k], "--operation "+aclOpName(a.Operation))
	}
	for _, k := range order {
		var res string
		switch k.rt {
		case kmsg.ACLResourceTypeGroup:
			res = "--group " + k.name
		case kmsg.ACLResourceTypeTransactionalId:
			res = "--transactional-id " + k.name
		default:
			res = "--topic " + k.name
		}
		if k.pt == kmsg.ACLResourcePatternTypePrefixed {
			res += " --resource-pattern-type prefixed"
		}
		fmt.Fprintf(b, "$KA %s --allow-principal User:%s %s %s\n", verb, principal, strings.Join(ops[k], " "), res)
	}
}

// superUsers are the policy's administrators with a Kafka credential, as
// the broker's super.users names them.
func superUsers(p *Policy) []string {
	var out []string
	for _, id := range p.Identities {
		if id.Kind == KindAdmin && id.Credentials.Kafka != nil {
			out = append(out, "User:"+id.Name)
		}
	}
	return out
}

// shellRef renders a secret reference as a shell expansion, or "".
func shellRef(ref string) string {
	scheme, rest, _ := strings.Cut(ref, ":")
	switch scheme {
	case "env":
		return "${" + rest + ":?}"
	case "file":
		return "$(cat '" + strings.ReplaceAll(rest, "'", `'\''`) + "')"
	}
	return ""
}

func aclOpName(op kmsg.ACLOperation) string {
	switch op {
	case kmsg.ACLOperationRead:
		return "Read"
	case kmsg.ACLOperationWrite:
		return "Write"
	case kmsg.ACLOperationCreate:
		return "Create"
	case kmsg.ACLOperationDescribe:
		return "Describe"
	case kmsg.ACLOperationDescribeConfigs:
		return "DescribeConfigs"
	}
	return op.String()
}

// TransactionalIDPrefix is the start of every transactional id a
// department may use: its name and a dot. Names cannot hold a dot, so no
// department's prefix starts another's ("tax." does not cover
// "tax-east.1"), and one department cannot fence another's producers.
func TransactionalIDPrefix(name string) string { return name + "." }
