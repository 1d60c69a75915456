-- Atomic multi-leg batches (POST /batches): many transfers, out of many
-- sources, applied in one transaction, all or nothing, and atomic in time:
-- every row of a batch carries the same created_at, so an as-of read, a
-- history page, a statement or a digest sees all of a batch or none of it.
--
-- What this relaxes: created_at per source was strictly increasing; it is
-- now strictly increasing between transactions and *equal* between the rows
-- of one batch out of one source. Everything that ordered a source's rows by
-- created_at alone now breaks ties by source_seq (see balance_at below, the
-- digest's chain heads in ledger-store, and `ledger verify`'s time_order
-- check, which became non-decreasing). See docs/design.md, "Batches".

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

-- Outgoing rows by time, ties (the rows of one batch) broken by sequence
-- number: the as-of outgoing total below reads the last row at or before a
-- time, which among equal times is the one with the highest source_seq.
create index transfers_source_created_at_seq_idx
    on ledger.transfers (source_account_id, created_at, source_seq);
drop index ledger.transfers_source_created_at_idx;

-- As in V1, with the outgoing total's tie-break (created_at is no longer
-- unique per source).
create or replace function ledger.balance_at(p_account_id uuid, p_at timestamptz) returns numeric
language plpgsql stable as $$
declare
    checkpoint_through timestamptz;
    checkpoint_total numeric;
    incoming_tail numeric;
    outgoing numeric;
begin
    select c.through, c.incoming_total into checkpoint_through, checkpoint_total
      from ledger.incoming_checkpoints c
     where c.account_id = p_account_id
       and c.through <= p_at
     order by c.through desc
     limit 1;
    select sum(t.amount) into incoming_tail
      from ledger.transfers t
     where t.destination_account_id = p_account_id
       and t.created_at >= coalesce(checkpoint_through, '-infinity')
       and t.created_at <= p_at;
    select t.source_outgoing_total into outgoing
      from ledger.transfers t
     where t.source_account_id = p_account_id
       and t.created_at <= p_at
     order by t.created_at desc, t.source_seq desc
     limit 1;
    return coalesce(checkpoint_total, 0) + coalesce(incoming_tail, 0) - coalesce(outgoing, 0);
end;
$$;

-- As in V1, except for created_at: inside a batch (ledger.batch_at set by
-- ledger.begin_batch_time in this transaction) every row takes the batch's
-- time, refused by name if it would go back before the source's previous
-- row; otherwise the clock, strictly after the previous row, as before.
create or replace function ledger.apply_transfer() returns trigger
language plpgsql as $$
declare
    source_currency text;
    source_is_system boolean;
    source_state text;
    destination_currency text;
    destination_state text;
    scale_allowed smallint;
    previous_created_at timestamptz := '-infinity';
    previous_outgoing_total numeric := 0;
    previous_hash bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
    batch_at timestamptz;
begin
    -- The sequence race is only sound when each statement sees what
    -- committed before it.
    if current_setting('transaction_isolation') <> 'read committed' then
        raise exception 'ledger writes must run at read committed isolation'
            using errcode = 'feature_not_supported';
    end if;

    -- Take the xid first: ledger.final_horizon relies on created_at being
    -- read after it, and a close (ledger.accounts.closing_xid) relies on the
    -- account rows below being read after it.
    perform pg_current_xact_id();

    -- Both accounts and the currency's scale in one read (it was three). The
    -- scale is a scalar subquery, not a join: the cached generic plan of a
    -- join hashed the whole currency table on every insert (20 µs).
    select s.currency_code, s.is_system, ledger.close_state(s.closed_at, s.closing_xid),
           (select c.minor_units from ledger.currencies c where c.currency_code = s.currency_code),
           d.currency_code, ledger.close_state(d.closed_at, d.closing_xid)
      into source_currency, source_is_system, source_state,
           scale_allowed, destination_currency, destination_state
      from ledger.accounts s
      left join ledger.accounts d on d.account_id = new.destination_account_id
     where s.account_id = new.source_account_id;
    if not found then
        raise exception 'source account % does not exist', new.source_account_id
            using errcode = 'foreign_key_violation', constraint = 'transfers_source_account_id_fkey';
    end if;
    if destination_currency is null then
        raise exception 'destination account % does not exist', new.destination_account_id
            using errcode = 'foreign_key_violation', constraint = 'transfers_destination_account_id_fkey';
    end if;

    if source_currency <> new.currency_code or destination_currency <> new.currency_code then
        raise exception 'transfer in % between % and % accounts', new.currency_code,
                source_currency, destination_currency
            using errcode = 'check_violation', constraint = 'transfers_currency_match';
    end if;
    case source_state
        when 'closed' then
            raise exception 'source account % is closed', new.source_account_id
                using errcode = 'check_violation', constraint = 'transfers_source_open';
        when 'closing' then
            raise exception 'source account % is being closed', new.source_account_id
                using errcode = 'check_violation', constraint = 'transfers_source_not_closing';
        else null;
    end case;
    case destination_state
        when 'closed' then
            raise exception 'destination account % is closed', new.destination_account_id
                using errcode = 'check_violation', constraint = 'transfers_destination_open';
        when 'closing' then
            raise exception 'destination account % is being closed', new.destination_account_id
                using errcode = 'check_violation', constraint = 'transfers_destination_not_closing';
        else null;
    end case;

    if scale(trim_scale(new.amount)) > scale_allowed then
        raise exception '% amounts have at most % decimals', new.currency_code, scale_allowed
            using errcode = 'check_violation', constraint = 'transfers_amount_scale';
    end if;
    new.amount := round(new.amount, scale_allowed);

    if new.source_seq > 0 then
        select t.created_at, t.source_outgoing_total, t.row_hash
          into previous_created_at, previous_outgoing_total, previous_hash
          from ledger.transfers t
         where t.source_account_id = new.source_account_id
           and t.source_seq = new.source_seq - 1;
        if not found then
            raise exception 'transfer % out of % skips a sequence number', new.source_seq,
                    new.source_account_id
                using errcode = 'check_violation', constraint = 'transfers_sequence_contiguous';
        end if;
    end if;

    -- Server-assigned, whatever the client sent.
    -- ('' once the setting was defined in this session: a transaction-local
    -- value is reset, not removed, at the end of its transaction.)
    batch_at := nullif(current_setting('ledger.batch_at', true), '')::timestamptz;
    if batch_at is null then
        new.created_at := greatest(clock_timestamp(), previous_created_at + interval '1 microsecond');
    else
        if batch_at < previous_created_at then
            raise exception 'batch time % is before the previous transfer out of %', batch_at,
                    new.source_account_id
                using errcode = 'check_violation', constraint = 'transfers_batch_time_order';
        end if;
        new.created_at := batch_at;
    end if;
    new.source_outgoing_total := previous_outgoing_total + new.amount;
    new.source_is_system := source_is_system;
    new.source_balance_after :=
        ledger.incoming_total_maintained(new.source_account_id) - new.source_outgoing_total;
    -- An account that only receives needs its incoming checkpoints kept up
    -- too, or its balance reads would scan an ever longer tail. One insert
    -- in eight does it for its destination, picked by the transfer id's last
    -- byte (random in UUIDv4 and v7 alike, so no pattern of payouts can dodge
    -- it): tails stay near 64 rows while the insert path pays an eighth of
    -- a tail scan instead of a whole one.
    if get_byte(uuid_send(new.transfer_id), 15) < 32 then
        perform ledger.incoming_total_maintained(new.destination_account_id);
    end if;
    new.row_hash := sha256(previous_hash || convert_to(ledger.transfer_encoding(new), 'UTF8'));
    return new;
end;
$$;

grant execute on function ledger.claim_batch_idempotency_key(text, bytea, uuid),
    ledger.begin_batch_time(uuid[]) to ledger_app;
