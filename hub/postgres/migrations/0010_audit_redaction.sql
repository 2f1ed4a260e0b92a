-- The audit log's redaction (hub/audit: audit purge redacts expired
-- entries that lie after one it must keep).
--
-- The audit tables are hub/audit's, created when a hub starts under an
-- access policy, and their DDL adds the redacted column and the trigger
-- that allows a redaction. This migration adds the column where the log
-- already exists, and, as a migration, makes a release before redaction
-- refuse the schema ("migrations this binary does not know") instead of
-- starting on it, re-creating the trigger without redaction, and calling
-- the redacted entries changed in audit verify.
DO $$
BEGIN
	IF to_regclass('audit_log') IS NOT NULL THEN
		ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS redacted boolean NOT NULL DEFAULT false;
	END IF;
END
$$;
