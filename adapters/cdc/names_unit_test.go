package cdc

import "testing"

// The spellings of one table get one slot and one publication: a second
// would copy the table again and leave the first holding WAL for ever.
// Spellings of different tables keep apart.
func TestDefaultNameSameForEverySpelling(t *testing.T) {
	tests := []struct {
		table, slot string
	}{
		{"rentals", "pophub_housing_rentals"},
		{"public.rentals", "pophub_housing_rentals"},
		{"PUBLIC.Rentals", "pophub_housing_rentals"},
		{`"rentals"`, "pophub_housing_rentals"},
		{`"public"."rentals"`, "pophub_housing_rentals"},
		{`public."rentals"`, "pophub_housing_rentals"},
		{"Housing.Rentals", "pophub_housing_housing_rentals"},
		{`housing."rentals"`, "pophub_housing_housing_rentals"},
		// Quoted names that differ from their unquoted spelling are
		// other tables, and keep the names they always had.
		{`"Rentals"`, "pophub_housing__rentals_"},
		{`"Public".rentals`, "pophub_housing__public__rentals"},
		{"租赁备案", "pophub_housing_9a5b7eb9"},
		{"public.租赁备案", "pophub_housing_9a5b7eb9"},
		// Not a name PostgreSQL parses: left as it is.
		{`"rentals`, "pophub_housing__rentals"},
	}
	for _, tt := range tests {
		if got := defaultName("pophub_housing_", tt.table); got != tt.slot {
			t.Errorf("defaultName(%q) = %q, want %q", tt.table, got, tt.slot)
		}
	}
	if a, b := defaultName("pophub_", "rentals"), defaultName("pophub_", "public.rentals"); a != b {
		t.Errorf("one table, two publications: %q and %q", a, b)
	}
}
