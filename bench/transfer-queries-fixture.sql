-- A fixture of 1.1M transfers for the plans of bench/transfer-queries.sql
-- and the statement memory figure (docs/design.md, "Finding transfers").
--
--   createdb ledger_tq && DATABASE_URL=…/ledger_tq target/release/ledger migrate
--   psql …/ledger_tq -X -q -f bench/transfer-queries-fixture.sql
--
-- Run it on a PostgreSQL of its own, never on a server others test
-- against: its statements hold an xid for a minute or more, and every
-- final horizon of the whole server waits for them.
--
-- The rows are written with triggers off (session_replication_role =
-- replica), their derived columns computed here as the insert trigger would:
-- through the trigger, 1.1M rows took over 3 minutes per 100,000 on the
-- shared 2-core box. Sequence numbers, running outgoing totals, times and
-- balances of account S are exact (its statement checks its closing
-- balance against the ledger's as-of balance); the hash chain is not (a
-- placeholder hash: `ledger verify` fails on this database).
--   * account S (…-000000000001) receives one deposit of 100,000,000.00,
--     then pays 1,000,000 transfers, 10 ms apart, to 999 USD accounts in
--     turn; every 10th has metadata {"order_id": "o<n>", "shop": "s<n mod 50>"};
--   * 100 EUR accounts pay each other 100,000 transfers (no metadata), in
--     between S's in time.
\set ON_ERROR_STOP on
select ledger.ensure_system_account('USD') \g /dev/null
select ledger.ensure_system_account('EUR') \g /dev/null
insert into ledger.accounts (account_id, currency_code, metadata)
select ('40000000-0000-4000-8000-' || lpad(k::text, 12, '0'))::uuid, 'USD',
       case when k % 10 = 0 then jsonb_build_object('tier', 't' || (k % 7)) end
  from generate_series(1, 1000) k;
insert into ledger.accounts (account_id, currency_code)
select ('50000000-0000-4000-8000-' || lpad(k::text, 12, '0'))::uuid, 'EUR'
  from generate_series(0, 99) k;

set session_replication_role = replica;
create temp table base as select date_trunc('second', now()) - interval '1 day' as at;

-- The deposits: into S, and into each EUR account.
insert into ledger.transfers (source_account_id, source_seq, transfer_id,
    destination_account_id, currency_code, amount, source_outgoing_total,
    source_balance_after, source_is_system, created_at, row_hash)
select '00000000-0000-0000-0000-000000000840', 0, gen_random_uuid(),
       '40000000-0000-4000-8000-000000000001', 'USD', 100000000.00, 100000000.00,
       -100000000.00, true, (select at from base) - interval '1 second',
       sha256('fixture'::bytea);
insert into ledger.transfers (source_account_id, source_seq, transfer_id,
    destination_account_id, currency_code, amount, source_outgoing_total,
    source_balance_after, source_is_system, created_at, row_hash)
select '00000000-0000-0000-0000-000000000978', k, gen_random_uuid(),
       ('50000000-0000-4000-8000-' || lpad(k::text, 12, '0'))::uuid, 'EUR', 1000000.00,
       1000000.00 * (k + 1), -1000000.00 * (k + 1), true,
       (select at from base) - interval '1 second' + k * interval '1 microsecond',
       sha256('fixture'::bytea)
  from generate_series(0, 99) k;

-- S pays.
insert into ledger.transfers (source_account_id, source_seq, transfer_id,
    destination_account_id, currency_code, amount, source_outgoing_total,
    source_balance_after, source_is_system, created_at, metadata, row_hash)
select '40000000-0000-4000-8000-000000000001', n, gen_random_uuid(),
       ('40000000-0000-4000-8000-' || lpad((2 + n % 999)::text, 12, '0'))::uuid, 'USD',
       amount, total, 100000000.00 - total, false,
       (select at from base) + n * interval '10 milliseconds',
       case when n % 10 = 0
            then jsonb_build_object('order_id', 'o' || n, 'shop', 's' || (n % 50)) end,
       sha256('fixture'::bytea)
  from (select n, round(1.00 + (n % 100) / 100.0, 2) as amount,
               sum(round(1.00 + (n % 100) / 100.0, 2)) over (order by n) as total
          from generate_series(0, 999999) n) s;

-- EUR: account k pays account k+1 (mod 100); its m-th payment is row 100 m + k.
insert into ledger.transfers (source_account_id, source_seq, transfer_id,
    destination_account_id, currency_code, amount, source_outgoing_total,
    source_balance_after, source_is_system, created_at, row_hash)
select ('50000000-0000-4000-8000-' || lpad((g % 100)::text, 12, '0'))::uuid, g / 100,
       gen_random_uuid(),
       ('50000000-0000-4000-8000-' || lpad(((g + 1) % 100)::text, 12, '0'))::uuid,
       'EUR', 1.00, 1.00 * (g / 100 + 1), 999999.00, false,
       (select at from base) + g * interval '100 milliseconds' + interval '5 milliseconds',
       sha256('fixture'::bytea)
  from generate_series(0, 99999) g;
reset session_replication_role;

select ledger.advance_horizon() \g /dev/null
vacuum analyze ledger.transfers;
vacuum analyze ledger.accounts;
select ledger.advance_horizon() \g /dev/null
select count(*) as transfers, pg_size_pretty(pg_total_relation_size('ledger.transfers')) as size
  from ledger.transfers;
