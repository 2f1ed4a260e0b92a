-- Walking a county's persons in key order: the region walk of an identity
-- that may not read the hukou section (its page tokens must carry no
-- address), which goes in person-key order with the region as a filter.
-- With only persons_address, every page sorted all of the region's index
-- entries from the cursor on, so a walk grew with the square of the
-- county's size; with this index a page reads its own entries (5 ms
-- against 140 ms a page of 1,000 in a county of 180,000). An update that
-- keeps the address stays a HOT update.
CREATE INDEX persons_county_key ON persons (substr(address_code, 1, 6) COLLATE "C", person_key COLLATE "C");
