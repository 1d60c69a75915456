-- Step 2, continued: a transfer's path across shards on the split schema.
\set VERBOSITY terse
\set ON_ERROR_STOP off

-- The write: every check runs on the shard of the account it is about.
-- On the coordinator; each statement is routed to one shard.
create or replace function ledger.transfer(p_id uuid, p_source uuid, p_destination uuid, p_amount numeric)
returns bigint language plpgsql as $$
declare
    source_currency text; source_system boolean; destination_currency text;
    next_seq bigint; outgoing numeric; incoming numeric; balance numeric;
begin
    -- The destination's shard: it exists, is open, and has the currency.
    select a.currency_code into destination_currency
      from ledger.accounts a where a.account_id = p_destination and a.closed_at is null;
    if not found then raise exception 'destination % not found or closed', p_destination; end if;
    -- The source's shard: its account, its head, and its balance (its
    -- outgoing rows and its credits are both on that shard).
    select a.currency_code, a.is_system into source_currency, source_system
      from ledger.accounts a where a.account_id = p_source and a.closed_at is null;
    if not found then raise exception 'source % not found or closed', p_source; end if;
    if source_currency <> destination_currency then raise exception 'currency mismatch'; end if;
    select coalesce(max(t.source_seq) + 1, 0), coalesce(max(t.source_outgoing_total), 0)
      into next_seq, outgoing
      from ledger.transfers t where t.source_account_id = p_source;
    select coalesce(sum(c.amount), 0) into incoming
      from ledger.credits c where c.destination_account_id = p_source;
    balance := incoming - outgoing - p_amount;
    insert into ledger.transfer_ids (transfer_id, source_account_id) values (p_id, p_source);
    insert into ledger.transfers (source_account_id, source_seq, transfer_id, destination_account_id,
                                  amount, source_outgoing_total, source_balance_after, source_is_system)
    values (p_source, next_seq, p_id, p_destination, p_amount, outgoing + p_amount, balance, source_system);
    insert into ledger.credits (destination_account_id, transfer_id, source_account_id, amount)
    values (p_destination, p_id, p_source, p_amount);
    return next_seq;
end $$;

\echo '--- accounts: the USD system account and four customers, and where each lives'
insert into ledger.accounts (account_id, currency_code, is_system) values
  ('00000000-0000-0000-0000-000000000840', 'USD', true),
  ('11111111-0000-0000-0000-000000000001', 'USD', false),
  ('22222222-0000-0000-0000-000000000002', 'USD', false),
  ('33333333-0000-0000-0000-000000000003', 'USD', false),
  ('44444444-0000-0000-0000-000000000004', 'USD', false);
select id as account_id,
       (select nodeport from citus_shards
         where shardid = get_shard_id_for_distribution_column('ledger.accounts', id)) as worker_port
  from unnest(array['00000000-0000-0000-0000-000000000840', '11111111-0000-0000-0000-000000000001',
                    '22222222-0000-0000-0000-000000000002', '33333333-0000-0000-0000-000000000003',
                    '44444444-0000-0000-0000-000000000004']::uuid[]) id
 order by 1;

\echo '--- deposits (transfers out of the system account) and transfers between customers'
select ledger.transfer(gen_random_uuid(), '00000000-0000-0000-0000-000000000840', a, 100.00)
  from unnest(array['11111111-0000-0000-0000-000000000001', '22222222-0000-0000-0000-000000000002',
                    '33333333-0000-0000-0000-000000000003', '44444444-0000-0000-0000-000000000004']::uuid[]) a;
\echo '--- one transfer whose two sides are on different workers, with the commands Citus sends'
set citus.log_remote_commands = on;
set client_min_messages = notice;
begin;
select ledger.transfer('aaaaaaaa-0000-0000-0000-00000000000a', '11111111-0000-0000-0000-000000000001',
                       '22222222-0000-0000-0000-000000000002', 30.00);
commit;
reset citus.log_remote_commands;
set client_min_messages = warning;
\echo '--- an overdraft is refused (the source shard''s check)'
select ledger.transfer(gen_random_uuid(), '33333333-0000-0000-0000-000000000003',
                       '44444444-0000-0000-0000-000000000004', 1000.00);
\echo '--- a transfer id used twice, from another source: refused by transfer_ids'
select ledger.transfer('aaaaaaaa-0000-0000-0000-00000000000a', '33333333-0000-0000-0000-000000000003',
                       '44444444-0000-0000-0000-000000000004', 1.00);
\echo '--- balances: one shard each (outgoing rows and credits are co-located with the account)'
select a.account_id,
       (select coalesce(sum(c.amount), 0) from ledger.credits c where c.destination_account_id = a.account_id)
     - (select coalesce(max(t.source_outgoing_total), 0) from ledger.transfers t where t.source_account_id = a.account_id)
       as balance
  from ledger.accounts a order by 1;
\echo '--- the balance read of one account is a router query (one shard)'
explain (costs off)
select (select coalesce(sum(c.amount), 0) from ledger.credits c
         where c.destination_account_id = '22222222-0000-0000-0000-000000000002')
     - (select coalesce(max(t.source_outgoing_total), 0) from ledger.transfers t
         where t.source_account_id = '22222222-0000-0000-0000-000000000002');
\echo '--- the sum of all balances is zero (a fan-out to every shard)'
select (select sum(amount) from ledger.credits) - (select sum(amount) from ledger.transfers) as total;
\echo '--- a final horizon per worker (its own xids and clock); the cluster''s is the least'
select nodeport, result from run_command_on_workers('select public.advance_horizon()');
select pg_sleep(0.2);
select nodeport, result from run_command_on_workers('select public.advance_horizon()');
select min(result::timestamptz) as cluster_final_horizon
  from run_command_on_workers('select public.advance_horizon()');
