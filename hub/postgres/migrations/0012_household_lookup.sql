-- Looking up a household's members by (address, household) through an
-- index (hub.PersonQuery.Household). Before, eligibility walked every
-- person at the 12-digit address and kept the household's: at a large
-- community or a collective hukou, tens of thousands of rows a decision,
-- and it gave up after 20,000 of them.
--
-- household_key is the household id in clear, or its keyed hash when the
-- store seals personal data (sealer.householdKey): state may be sealed,
-- so the column cannot be filled from it in SQL. Rows written before
-- this migration get it from a hub of this release, which walks them in
-- the background once it has opened the schema
-- (indexHouseholdsInBackground in households.go), as this asks in
-- hub_meta when the schema holds persons; until it is done a household
-- lookup fails rather than miss members.
--
-- ADD COLUMN with a constant default rewrites no row. The index holds
-- only rows with a household; an update that keeps the address and the
-- household stays a HOT update.
ALTER TABLE persons ADD COLUMN household_key text NOT NULL DEFAULT '';
CREATE INDEX persons_household ON persons (address_code COLLATE "C", household_key COLLATE "C", person_key COLLATE "C")
    WHERE household_key <> '';
INSERT INTO hub_meta (name, value)
SELECT 'households_unindexed', 'persons written before the household index'
WHERE EXISTS (SELECT 1 FROM persons WHERE version > 0)
ON CONFLICT (name) DO NOTHING;
