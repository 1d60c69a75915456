-- The key that authenticates pagination cursors.
--
-- A cursor says where the next page starts (the last row's time and id, or
-- the last account id). Unauthenticated, a client could forge one that
-- points anywhere, or outside PostgreSQL's timestamp range (a 500). The
-- store appends an HMAC-SHA-256 of the cursor's content under this key and
-- refuses any cursor whose MAC does not match (400 invalid_request).
--
-- Why in the database: every instance of the service must accept the
-- cursors of every other one, and a cursor must survive a restart; the
-- database is the one thing all instances share. The key is generated here,
-- once, by the database's strong random source (gen_random_uuid() reads
-- pg_strong_random): two version-4 UUIDs, 32 bytes with 244 random bits.
-- Rotating it (update the row, restart the service) only invalidates the
-- cursors in flight: clients restart their listing from the first page.

create table ledger.cursor_secret (
    -- One row, ever.
    singleton boolean primary key default true
        constraint cursor_secret_singleton check (singleton),
    secret bytea not null
        constraint cursor_secret_length check (octet_length(secret) = 32)
);

insert into ledger.cursor_secret (secret)
select decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex');
