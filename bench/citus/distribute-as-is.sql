-- Step 1: today's schema (sql/V1..V5, migrated by `ledger migrate` on the
-- coordinator), distributed as it stands, with source_account_id as the
-- distribution column of ledger.transfers. Each statement is tried on its
-- own (psql without ON_ERROR_STOP), and each refusal is taken out of the
-- way to find the next: the errors are the findings.
\set VERBOSITY default
\echo '--- currencies as a reference table (every node has a copy)'
select create_reference_table('ledger.currencies');
\echo '--- accounts distributed by account_id, as they are'
select create_distributed_table('ledger.accounts', 'account_id');
\echo '--- the same with Citus''s unsafe triggers allowed'
set citus.enable_unsafe_triggers = on;
select create_distributed_table('ledger.accounts', 'account_id');
\echo '--- the same without the unique index "one system account per currency"'
drop index ledger.accounts_one_system_per_currency;
select create_distributed_table('ledger.accounts', 'account_id');
\echo '--- transfers distributed by source_account_id, co-located with accounts'
select create_distributed_table('ledger.transfers', 'source_account_id', colocate_with => 'ledger.accounts');
\echo '--- the same without the global unique key on transfer_id'
alter table ledger.transfers drop constraint transfers_transfer_id_key;
select create_distributed_table('ledger.transfers', 'source_account_id', colocate_with => 'ledger.accounts');
\echo '--- incoming checkpoints distributed by the receiving account'
select create_distributed_table('ledger.incoming_checkpoints', 'account_id', colocate_with => 'ledger.accounts');
\echo '--- opening the system account (a SQL function with a parameter)'
select ledger.ensure_system_account('USD');
\echo '--- two accounts on different workers, then a deposit through the unchanged trigger'
insert into ledger.accounts (account_id, currency_code, is_system)
values ('00000000-0000-0000-0000-000000000840', 'USD', true),
       ('11111111-0000-0000-0000-000000000001', 'USD', false);
select id as account_id,
       (select nodeport from citus_shards
         where shardid = get_shard_id_for_distribution_column('ledger.accounts', id)) as worker_port
  from unnest(array['00000000-0000-0000-0000-000000000840', '11111111-0000-0000-0000-000000000001']::uuid[]) id;
insert into ledger.transfers (source_account_id, source_seq, transfer_id, destination_account_id,
                              currency_code, amount)
values ('00000000-0000-0000-0000-000000000840', 0, gen_random_uuid(),
        '11111111-0000-0000-0000-000000000001', 'USD', 10.00);
