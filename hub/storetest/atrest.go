package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Marked is a person whose ID and names the data-at-rest tests look for
// in what a store writes: events that register, rename and move them,
// plus a small population around them so that pages, logs and snapshots
// hold more than one person.
type Marked struct {
	ID    citizenid.ID
	Names []string
	In    []hub.Input
}

// MarkedPerson returns the marked person's events and a population of
// persons around them.
func MarkedPerson(t testing.TB) Marked {
	t.Helper()
	id := ValidID(9_876_543)
	m := Marked{ID: id, Names: []string{"欧阳娜娜", "欧阳小娜"}}
	at := time.Date(2020, 5, 1, 9, 0, 0, 0, time.UTC)
	m.In = append(m.In,
		Event(t, schemas.HukouRegistered, id, "marked-1", at, schemas.HukouRegisteredData{
			Name: m.Names[0], Gender: id.Gender(), BirthDate: id.BirthDate().Format(time.DateOnly), Ethnicity: "01",
			AddressCode: "110101001001", HouseholdID: "HH-marked", Relation: "01", Reason: "birth",
		}),
		Event(t, schemas.IdentityCorrected, id, "marked-2", at.AddDate(1, 0, 0), schemas.IdentityCorrectedData{Name: m.Names[1]}),
	)
	m.In = append(m.In, Population(t, 30, 77)...)
	return m
}

// Secrets are the byte strings that must not appear at rest: the ID, its
// last 12 digits (birth date and sequence) and the names.
func (m Marked) Secrets() []string {
	return append([]string{string(m.ID), string(m.ID)[6:]}, m.Names...)
}

// Leaks returns the secrets that occur in dump.
func (m Marked) Leaks(dump []byte) []string {
	var found []string
	for _, s := range m.Secrets() {
		if bytes.Contains(dump, []byte(s)) {
			found = append(found, s)
		}
	}
	return found
}

// Keys returns fresh key material for a sealed store.
func Keys(t testing.TB) sealing.Material {
	t.Helper()
	m, err := sealing.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Keyring builds the keyring of m.
func Keyring(t testing.TB, m sealing.Material) *sealing.Keyring {
	t.Helper()
	k, err := sealing.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
