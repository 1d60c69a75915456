-- Step 2: the schema step proposed in docs/scaling.md, on Citus: every
-- row that a write checks lives on the shard of the account it belongs to.
--
--   currencies       reference table (on every node)
--   accounts         distributed by account_id
--   transfers        distributed by source_account_id: the debit side and
--                    the log row, with the source's hash chain and running
--                    total, co-located with the source's account
--   credits          distributed by destination_account_id: one row per
--                    transfer on the destination's shard, co-located with
--                    the destination's account (the trigger's read of the
--                    destination becomes a local check there)
--   transfer_ids     distributed by transfer_id: the global uniqueness of a
--                    transfer id (a unique key must hold the distribution
--                    column, so it gets a table of its own)
--
-- A transfer is one distributed transaction of three inserts; Citus
-- commits it with two-phase commit when the shards are on different
-- workers.
\set ON_ERROR_STOP on
create schema ledger;
create table ledger.currencies (
    currency_code text primary key, minor_units int not null);
insert into ledger.currencies values ('USD', 2), ('EUR', 2);
select create_reference_table('ledger.currencies');

create table ledger.accounts (
    account_id uuid primary key,
    currency_code text not null references ledger.currencies,
    is_system boolean not null default false,
    closed_at timestamptz);
select create_distributed_table('ledger.accounts', 'account_id', shard_count => 8);

create table ledger.transfers (
    source_account_id uuid not null,
    source_seq bigint not null,
    transfer_id uuid not null,
    destination_account_id uuid not null,
    amount numeric not null check (amount > 0),
    source_outgoing_total numeric not null,
    source_balance_after numeric not null,
    source_is_system boolean not null,
    created_at timestamptz not null default clock_timestamp(),
    constraint transfers_pkey primary key (source_account_id, source_seq),
    -- Was unique (transfer_id): a unique key must contain the distribution
    -- column. Global uniqueness moves to ledger.transfer_ids.
    constraint transfers_transfer_id_key unique (source_account_id, transfer_id),
    constraint transfers_distinct_accounts check (source_account_id <> destination_account_id),
    constraint transfers_no_overdraft check (source_is_system or source_balance_after >= 0));
select create_distributed_table('ledger.transfers', 'source_account_id', colocate_with => 'ledger.accounts');

create table ledger.credits (
    destination_account_id uuid not null,
    transfer_id uuid not null,
    source_account_id uuid not null,
    amount numeric not null check (amount > 0),
    created_at timestamptz not null default clock_timestamp(),
    primary key (destination_account_id, transfer_id));
select create_distributed_table('ledger.credits', 'destination_account_id', colocate_with => 'ledger.accounts');

create table ledger.transfer_ids (
    transfer_id uuid primary key,
    source_account_id uuid not null);
select create_distributed_table('ledger.transfer_ids', 'transfer_id', colocate_with => 'none');

