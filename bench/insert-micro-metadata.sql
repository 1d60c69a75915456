-- bench/insert-micro.sql with metadata on every insert (issue 14): what the
-- partial GIN index of sql/V7__transfer_queries.sql adds to a row that has
-- metadata. Run and read it like insert-micro.sql.
-- Server-side cost of the write path's two statements, one at a time, with
-- no client, network or commit in the figure: what the insert trigger costs,
-- change by change (docs/design.md, "The write path").
--
--   psql "$DATABASE_URL" -X -q -f bench/insert-micro.sql
--
-- Needs a migrated ledger database (`ledger migrate`). Everything happens in
-- one transaction that is rolled back: it leaves nothing behind. Prints the
-- 10th and 50th percentile, in µs, over 2,000 transfers between 1,000 fresh
-- accounts, of (a) a head read like the store's (the source's next sequence
-- number and balance) and (b) the insert, trigger included. The 10th
-- percentile is the figure to compare: it is the least disturbed by whatever
-- else the machine is doing.
begin;
create temp table micro_timings (what text, us double precision) on commit drop;
select ledger.ensure_system_account('USD') \g /dev/null
insert into ledger.accounts (account_id, currency_code)
select ('30000000-0000-4000-8000-' || lpad(k::text, 12, '0'))::uuid, 'USD'
  from generate_series(0, 999) k;
insert into ledger.transfers (source_account_id, source_seq, transfer_id,
    destination_account_id, currency_code, amount)
select '00000000-0000-0000-0000-000000000840',
       coalesce((select max(source_seq) + 1 from ledger.transfers
                  where source_account_id = '00000000-0000-0000-0000-000000000840'), 0) + k,
       gen_random_uuid(), ('30000000-0000-4000-8000-' || lpad(k::text, 12, '0'))::uuid,
       'USD', 1000000.00
  from generate_series(0, 999) k order by k;
do $$
declare
    i int;
    source uuid;
    destination uuid;
    next_seq bigint;
    balance numeric;
    started timestamptz;
begin
    for i in 1..2000 loop
        source := ('30000000-0000-4000-8000-' || lpad(((i * 7) % 1000)::text, 12, '0'))::uuid;
        destination := ('30000000-0000-4000-8000-' || lpad(((i * 7 + 1) % 1000)::text, 12, '0'))::uuid;
        started := clock_timestamp();
        select coalesce(max(t.source_seq) + 1, 0) into next_seq
          from ledger.transfers t where t.source_account_id = source;
        balance := ledger.balance(source);
        insert into micro_timings values ('head read', extract(epoch from clock_timestamp() - started) * 1e6);
        started := clock_timestamp();
        insert into ledger.transfers (source_account_id, source_seq, transfer_id,
            destination_account_id, currency_code, amount, metadata)
        values (source, next_seq, gen_random_uuid(), destination, 'USD', 1.00,
                jsonb_build_object('order_id', 'o' || i, 'shop', 's' || (i % 50)));
        insert into micro_timings values ('insert', extract(epoch from clock_timestamp() - started) * 1e6);
    end loop;
end;
$$;
select what,
       round(percentile_cont(0.1) within group (order by us)::numeric, 1) as p10_us,
       round(percentile_cont(0.5) within group (order by us)::numeric, 1) as p50_us
  from micro_timings group by what order by what;
rollback;
