-- Facts about the schema itself. 'sealed' records whether personal data
-- is stored sealed (the keyring's check value) or in clear (empty); the
-- store refuses to open a schema with the other mode. A schema that
-- already holds persons was written in clear.
CREATE TABLE hub_meta (
    name  text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO hub_meta (name, value) SELECT 'sealed', '' WHERE EXISTS (SELECT 1 FROM persons);
