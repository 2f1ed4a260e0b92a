-- Walking the persons of a region (GET /v1/persons?region=…, the
-- subscriber bootstrap) in (address, key) order. Byte order (COLLATE "C")
-- makes a division-code prefix a key range whatever the database's
-- collation. An update that keeps the address stays a HOT update.
CREATE INDEX persons_address ON persons (address_code COLLATE "C", person_key COLLATE "C");
