-- When the move that gave the roster's address took effect (the migration
-- notification's time). The hub's hukou address is that of the latest
-- move by effective time, which is not the latest notification when moves
-- reach the hub out of order: a January move applied after a June one
-- has the higher version but not the newer address. A notification's
-- address replaces the roster's only when its move is not older. NULL
-- for addresses from the bootstrap snapshot and for rows recorded before
-- this column existed: those follow the version, as before.
ALTER TABLE persons ADD COLUMN address_at timestamptz;
