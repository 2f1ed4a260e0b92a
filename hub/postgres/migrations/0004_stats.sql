-- Registered-population and residence-permit counters (hub/stats): one row
-- per region prefix (2, 4, 6, 9 or 12 digits), class ('u' urban, 'r'
-- rural, 'p' permit holders) and bucket ("Y2026", "M202603",
-- "D20260305"), holding the net change of the count in that bucket. They
-- are written in the transaction that writes the golden records, and a
-- count as of a date is the sum of about 150 of them per region and class.
CREATE TABLE stats_counters (
    region text   COLLATE "C" NOT NULL,
    class  "char" NOT NULL,
    bucket text   COLLATE "C" NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (region, class, bucket)
);
