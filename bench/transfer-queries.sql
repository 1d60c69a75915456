-- The plan of every filter shape of GET /transfers, of a statement batch
-- and of the accounts' metadata filter, on the fixture of
-- bench/transfer-queries-fixture.sql (1.1M transfers):
--
--   psql …/ledger_tq -X -f bench/transfer-queries.sql
--
-- Each statement is the store's own (crates/ledger-store/src/queries.rs,
-- statements.rs, accounts.rs) with its parameters written in, for the
-- default page of 50 (+1 to see whether more follows). What to look for:
-- no `Seq Scan on transfers` anywhere; every shape starts from an index
-- and stops after about a page of rows. Excerpts are in docs/design.md,
-- "Finding transfers".
\set ON_ERROR_STOP on
\pset pager off
-- The page wrapper of list_transfers: byte budget and `matched` count.
\set head 'select * from (select r.*, sum(512 + coalesce(octet_length(metadata::text), 0)) over (order by created_at desc, transfer_id desc) - (512 + coalesce(octet_length(metadata::text), 0)) as bytes_before, count(*) over () as matched from ('
\set tail ') r) p where bytes_before < 1048576 order by created_at desc, transfer_id desc'
\set cols 'transfer_id, source_account_id, source_seq, destination_account_id, amount, currency_code, created_at, source_balance_after, metadata, created_by'
\set order 'order by created_at desc, transfer_id desc limit 51'
\set s '''40000000-0000-4000-8000-000000000001'''
\set a500 '''40000000-0000-4000-8000-000000000500'''
-- A time and id in the middle of S's payments, for windows and cursors.
select created_at as mid_at, transfer_id as mid_id from ledger.transfers
 where source_account_id = :s and source_seq = 500000 \gset
\set mid '''':mid_at''''
\set mid_id_lit '''':mid_id''''

\echo '== 1. no filter (the whole log, newest first)'
explain (analyze, buffers, costs off, timing off)
:head select :cols from ledger.transfers where amount > 0 and created_at < ledger.final_horizon() :order :tail;

\echo '== 2. account (either side): S, 1M payments out'
explain (analyze, buffers, costs off, timing off)
:head (select :cols from ledger.transfers where source_account_id = :s and amount > 0 and created_at < ledger.final_horizon() :order)
union all (select :cols from ledger.transfers where destination_account_id = :s and amount > 0 and created_at < ledger.final_horizon() :order)
order by created_at desc, transfer_id desc limit 51 :tail;

\echo '== 3. account, receiving only (~1,000 rows in)'
explain (analyze, buffers, costs off, timing off)
:head (select :cols from ledger.transfers where source_account_id = :a500 and amount > 0 and created_at < ledger.final_horizon() :order)
union all (select :cols from ledger.transfers where destination_account_id = :a500 and amount > 0 and created_at < ledger.final_horizon() :order)
order by created_at desc, transfer_id desc limit 51 :tail;

\echo '== 4. currency (EUR: 100k of 1.1M rows)'
explain (analyze, buffers, costs off, timing off)
:head select :cols from ledger.transfers where amount > 0 and created_at < ledger.final_horizon() and currency_code = 'EUR' :order :tail;

\echo '== 5. metadata, one matching row (order_id)'
explain (analyze, buffers, costs off, timing off)
:head select :cols from ledger.transfers where amount > 0 and created_at < ledger.final_horizon() and metadata is not null and metadata @> '{"order_id": "o123450"}' :order :tail;

\echo '== 6. metadata, 20,000 matching rows (shop)'
explain (analyze, buffers, costs off, timing off)
:head select :cols from ledger.transfers where amount > 0 and created_at < ledger.final_horizon() and metadata is not null and metadata @> '{"shop": "s10"}' :order :tail;

\echo '== 7. time window (from/to), one second in the middle'
explain (analyze, buffers, costs off, timing off)
:head select :cols from ledger.transfers where amount > 0 and created_at < ledger.final_horizon() and created_at >= :mid::timestamptz - interval '1 second' and created_at <= :mid::timestamptz :order :tail;

\echo '== 8. a page deep in the list (cursor in the middle)'
explain (analyze, buffers, costs off, timing off)
:head select :cols from ledger.transfers where amount > 0 and created_at < ledger.final_horizon() and created_at <= :mid and (created_at, transfer_id) < (:mid::timestamptz, :mid_id_lit::uuid) :order :tail;

\echo '== 9. statement batch: 1,000 lines of S from the middle'
explain (analyze, buffers, costs off, timing off)
(select transfer_id, created_at, destination_account_id as counterparty, amount, metadata, true as outgoing
   from ledger.transfers
  where source_account_id = :s and amount > 0
    and created_at >= greatest('-infinity'::timestamptz, :mid::timestamptz) and created_at < 'infinity'
    and (created_at, transfer_id) > (:mid::timestamptz, :mid_id_lit::uuid)
  order by created_at, transfer_id limit 1000)
union all
(select transfer_id, created_at, source_account_id as counterparty, amount, metadata, false as outgoing
   from ledger.transfers
  where destination_account_id = :s and amount > 0
    and created_at >= greatest('-infinity'::timestamptz, :mid::timestamptz) and created_at < 'infinity'
    and (created_at, transfer_id) > (:mid::timestamptz, :mid_id_lit::uuid)
  order by created_at, transfer_id limit 1000)
order by created_at, transfer_id limit 1000;

\echo '== 10. accounts by metadata (tier, 14 of 1,102 accounts)'
explain (analyze, buffers, costs off, timing off)
select account_id, currency_code, is_system, created_at, closed_at, metadata
  from ledger.accounts
 where account_id > '00000000-0000-0000-0000-000000000000'
   and metadata is not null and metadata @> '{"tier": "t3"}'
 order by account_id limit 51;
