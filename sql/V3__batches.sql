-- Atomic multi-leg batches (POST /batches): many transfers, out of many
-- sources, applied in one transaction, all or nothing, and atomic in time:
-- every row of a batch carries the same created_at, so an as-of read, a
-- history page, a statement or a digest sees all of a batch or none of it.
--
-- What this relaxes: created_at per source was strictly increasing; it is
-- now strictly increasing between transactions and *equal* between the rows
-- of one batch out of one source. Everything that ordered a source's rows by
-- created_at alone breaks ties by source_seq (ledger.balance_at and the
-- index transfers_source_created_at_idx in V1, the digest's chain heads in
-- ledger-store, and `ledger verify`'s time_order check, non-decreasing). The
-- trigger's side (ledger.batch_at) is in V1 too: the schema was reshaped in
-- place before its first release. See docs/design.md, "Batches".

-- A batch, recorded in the batch's own transaction so that GET /batches/{id}
-- and an idempotent replay return exactly its transfers, in leg order.
create table ledger.batches (
    batch_id uuid primary key,
    -- The one created_at of every transfer in the batch.
    created_at timestamptz not null,
    transfer_ids uuid[] not null
        constraint batches_not_empty check (cardinality(transfer_ids) between 1 and 8189)
);

create trigger batches_append_only
    before update or delete on ledger.batches
    for each row execute function ledger.reject_change();
create trigger batches_no_truncate
    before truncate on ledger.batches
    for each statement execute function ledger.reject_change();

grant insert on ledger.batches to ledger_app;
grant select on ledger.batches to ledger_app;

-- One idempotency key covers a whole batch; it records the batch.
alter table ledger.idempotency_keys add column batch_id uuid;
alter table ledger.idempotency_keys drop constraint idempotency_keys_operation_check;
alter table ledger.idempotency_keys add constraint idempotency_keys_operation_check
    check (operation in ('open_account', 'close_account', 'transfer', 'deposit', 'withdrawal',
                         'batch'));

-- ledger.claim_idempotency_key for a batch: the same outcomes, with the
-- batch's id instead of a transfer's.
create function ledger.claim_batch_idempotency_key(
    p_key text, p_fingerprint bytea, p_batch_id uuid)
returns table (outcome text, batch_id uuid)
language plpgsql volatile as $$
declare
    saved_lock_timeout text := current_setting('lock_timeout');
    claimed boolean;
    existing ledger.idempotency_keys%rowtype;
begin
    perform set_config('lock_timeout', '100ms', true);
    begin
        insert into ledger.idempotency_keys
            (idempotency_key, request_fingerprint, operation, batch_id)
        values (p_key, p_fingerprint, 'batch', p_batch_id)
        on conflict on constraint idempotency_keys_pkey do nothing;
        claimed := found;
    exception when lock_not_available then
        perform set_config('lock_timeout', saved_lock_timeout, true);
        return query select 'in_flight'::text, null::uuid;
        return;
    end;
    perform set_config('lock_timeout', saved_lock_timeout, true);
    if claimed then
        return query select 'claimed'::text, p_batch_id;
        return;
    end if;
    select * into existing from ledger.idempotency_keys k where k.idempotency_key = p_key;
    if existing.request_fingerprint = p_fingerprint and existing.operation = 'batch' then
        return query select 'replay'::text, existing.batch_id;
    else
        return query select 'mismatch'::text, null::uuid;
    end if;
end;
$$;

-- The batch's time, handed to the transfer trigger through the
-- transaction-local setting ledger.batch_at. Called once per batch attempt,
-- after the heads were read and before the insert. It takes the xid first,
-- then reads the clock: ledger.final_horizon's argument (every transaction
-- with an xid after a mark's stamps its rows after the mark) holds for the
-- batch's time as it does for clock_timestamp() in the trigger, because the
-- batch's time is never earlier than a clock read made after the xid. It is
-- also later than every involved source's latest row, so created_at stays
-- strictly increasing per source between transactions.
create function ledger.begin_batch_time(p_sources uuid[]) returns timestamptz
language plpgsql volatile as $$
declare
    batch_at timestamptz;
    latest timestamptz;
begin
    perform pg_current_xact_id();
    select max(h.created_at) into latest
      from unnest(p_sources) as s(account_id)
      cross join lateral (
            select t.created_at
              from ledger.transfers t
             where t.source_account_id = s.account_id
             order by t.source_seq desc
             limit 1) h;
    batch_at := greatest(clock_timestamp(), latest + interval '1 microsecond');
    perform set_config('ledger.batch_at', batch_at::text, true);
    return batch_at;
end;
$$;

grant execute on function ledger.claim_batch_idempotency_key(text, bytea, uuid),
    ledger.begin_batch_time(uuid[]) to ledger_app;
