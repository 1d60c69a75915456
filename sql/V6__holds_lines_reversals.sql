-- Holds (two-phase transfers), overdraft lines and reversals (issue 14).
-- docs/design.md, "Holds, lines and reversals", gives the argument; this file
-- says why at each step.
--
-- The one idea: ledger.transfers stays the one sequence of every write out of
-- a source. A hold's placement and an overdraft-line change are rows of that
-- sequence that move no money (amount = 0); a capture and a reversal are
-- money movements linked to what they settle or undo. So a hold, a capture,
-- a reversal, a line change and a transfer out of one account race for the
-- same (source_account_id, source_seq), like two transfers always did: one
-- wins, the other is decided again against the new head. No locks, and the
-- trigger checks every rule against a head that cannot move under it.
--
-- What the source can still spend, its *available* balance, is
--     balance - held + overdraft_limit
-- where held is the sum of its pending holds (placed, not captured, voided or
-- expired). Every row out of a customer account keeps it >= 0: the check
-- transfers_no_overdraft is rewritten below to say so.

-- Which write a row records. 'transfer' covers deposits and withdrawals (a
-- transfer out of or into the currency's system account), as before.
alter table ledger.transfers
    add column kind text not null default 'transfer'
        constraint transfers_kind_known
        check (kind in ('transfer', 'hold', 'capture', 'reversal', 'overdraft_change'));

-- The source's overdraft line in force from this row on. Carried forward from
-- the previous row by the trigger; set only by an 'overdraft_change' row.
alter table ledger.transfers add column source_overdraft_limit numeric not null default 0
    constraint transfers_overdraft_limit_non_negative check (source_overdraft_limit >= 0);
-- The source's pending holds right after this row, as the trigger computed
-- them: the other figure, with source_balance_after and the line, that the
-- no-overdraft check was made against.
alter table ledger.transfers add column source_held_after numeric not null default 0
    constraint transfers_held_non_negative check (source_held_after >= 0);
-- A hold: how much it reserves, and until when (exclusive).
alter table ledger.transfers add column held_amount numeric;
alter table ledger.transfers add column hold_expires_at timestamptz;
-- A capture: the hold (its transfer_id) it settles.
alter table ledger.transfers add column hold_id uuid;
-- A reversal: the transfer it undoes (in part or whole).
alter table ledger.transfers add column reverses_transfer_id uuid;

alter table ledger.transfers add constraint transfers_kind_shape check (
    case kind
        when 'transfer' then held_amount is null and hold_expires_at is null
                         and hold_id is null and reverses_transfer_id is null
        when 'hold' then amount = 0 and held_amount > 0 and held_amount <= 1000000000000000
                     and hold_expires_at is not null and hold_id is null
                     and reverses_transfer_id is null
        when 'capture' then held_amount is null and hold_expires_at is null
                        and hold_id is not null and reverses_transfer_id is null
        when 'reversal' then held_amount is null and hold_expires_at is null
                         and hold_id is null and reverses_transfer_id is not null
        when 'overdraft_change' then amount = 0 and held_amount is null
                                 and hold_expires_at is null and hold_id is null
                                 and reverses_transfer_id is null
    end);

-- Rows that move no money carry amount 0; every other row a positive amount.
alter table ledger.transfers drop constraint transfers_amount_positive;
alter table ledger.transfers add constraint transfers_amount_positive
    check (amount > 0 or kind in ('hold', 'overdraft_change')) not valid;
alter table ledger.transfers validate constraint transfers_amount_positive;

-- The rule, with lines and holds: what a customer account can still spend
-- never goes below zero. (Was: source_balance_after >= 0; with no line and
-- no holds, the same.)
alter table ledger.transfers drop constraint transfers_no_overdraft;
alter table ledger.transfers add constraint transfers_no_overdraft
    check (source_is_system
           or source_balance_after - source_held_after + source_overdraft_limit >= 0) not valid;
alter table ledger.transfers validate constraint transfers_no_overdraft;

-- A hold's expiry is after its placement (the trigger sets created_at).
alter table ledger.transfers add constraint transfers_hold_expires_after_placement
    check (hold_expires_at is null or hold_expires_at > created_at);

-- The holds out of an account that may still be pending at a time: placed,
-- and expiring after it. Partial: rows that are not holds cost it nothing.
create index transfers_source_holds_idx
    on ledger.transfers (source_account_id, hold_expires_at)
    include (held_amount, created_at)
    where kind = 'hold';
-- The expiry task's queue: every hold by expiry.
create index transfers_hold_expiry_idx
    on ledger.transfers (hold_expires_at) where kind = 'hold';
-- What has been reversed of a transfer (the reversals are all out of its
-- destination, so they are in one sequence: a trigger reading them sees
-- every earlier one).
create index transfers_reverses_idx
    on ledger.transfers (reverses_transfer_id) include (amount, created_at)
    where reverses_transfer_id is not null;

-- An account may be opened with a line; later changes are rows in its
-- sequence ('overdraft_change'). This is the line before its first row.
alter table ledger.accounts add column overdraft_limit numeric not null default 0
    constraint accounts_overdraft_limit_non_negative check (overdraft_limit >= 0);

-- How a hold ended: exactly one row per hold, decided by the primary key.
-- Capture, void and expiry all insert here; whichever commits first wins,
-- the others fail on hold_resolutions_pkey (a unique key, not a lock). A
-- capture inserts its transfer row and this row in one transaction.
create table ledger.hold_resolutions (
    hold_id uuid primary key,
    outcome text not null check (outcome in ('captured', 'voided', 'expired')),
    -- Set by the trigger: a capture's is its transfer's created_at (so an
    -- as-of read sees the capture's money and the hold's release at the same
    -- instant); a void's or an expiry's the clock after the xid is taken,
    -- like a transfer's (ledger.final_horizon relies on it).
    resolved_at timestamptz not null,
    capture_transfer_id uuid unique,
    captured_amount numeric,
    created_by uuid,
    constraint hold_resolutions_capture_shape check (
        (outcome = 'captured') = (capture_transfer_id is not null and captured_amount > 0))
);
call ledger.make_append_only('ledger.hold_resolutions');
grant select, insert on ledger.hold_resolutions to ledger_app;

-- A hold's resolution names a hold; a capture's, its capture row of that
-- hold; it is stamped as described above.
create function ledger.apply_hold_resolution() returns trigger
language plpgsql as $$
declare
    hold ledger.transfers%rowtype;
    capture ledger.transfers%rowtype;
begin
    perform pg_current_xact_id();
    select * into hold from ledger.transfers t where t.transfer_id = new.hold_id;
    if not found or hold.kind <> 'hold' then
        raise exception 'hold % does not exist', new.hold_id
            using errcode = 'foreign_key_violation', constraint = 'hold_resolutions_hold_id_fkey';
    end if;
    if new.outcome = 'captured' then
        select * into capture from ledger.transfers t where t.transfer_id = new.capture_transfer_id;
        if not found or capture.kind <> 'capture' or capture.hold_id <> new.hold_id
           or capture.amount <> new.captured_amount then
            raise exception 'capture % does not settle hold %', new.capture_transfer_id, new.hold_id
                using errcode = 'check_violation', constraint = 'hold_resolutions_capture_matches';
        end if;
        new.resolved_at := capture.created_at;
    else
        new.resolved_at := clock_timestamp();
        if new.outcome = 'expired' and new.resolved_at < hold.hold_expires_at then
            raise exception 'hold % has not expired', new.hold_id
                using errcode = 'check_violation', constraint = 'hold_resolutions_expiry_due';
        end if;
        if new.outcome = 'voided' and new.resolved_at >= hold.hold_expires_at then
            raise exception 'hold % has expired', new.hold_id
                using errcode = 'check_violation', constraint = 'hold_resolutions_hold_pending';
        end if;
    end if;
    return new;
end;
$$;

create trigger hold_resolutions_apply
    before insert on ledger.hold_resolutions
    for each row execute function ledger.apply_hold_resolution();

-- The pending holds out of an account at p_at: placed at or before it,
-- expiring after it, not resolved at or before it. p_except (a hold being
-- captured) is left out. Reads only holds expiring after p_at: a bounded
-- set (at most the longest timeout's worth of holds).
create function ledger.held_at(p_account_id uuid, p_at timestamptz, p_except uuid default null)
returns numeric
language plpgsql stable as $$
declare
    total numeric;
begin
    select sum(h.held_amount) into total
      from ledger.transfers h
     where h.kind = 'hold'
       and h.source_account_id = p_account_id
       and h.hold_expires_at > p_at
       and h.created_at <= p_at
       and h.transfer_id is distinct from p_except
       and not exists (select 1 from ledger.hold_resolutions r
                        where r.hold_id = h.transfer_id and r.resolved_at <= p_at);
    return coalesce(total, 0);
end;
$$;

-- The line in force at p_at: the latest row out of the account at or before
-- it carries it; before any row, the line the account was opened with.
create function ledger.overdraft_limit_at(p_account_id uuid, p_at timestamptz) returns numeric
language plpgsql stable as $$
declare
    line numeric;
begin
    select t.source_overdraft_limit into line
      from ledger.transfers t
     where t.source_account_id = p_account_id
       and t.created_at <= p_at
     order by t.created_at desc, t.source_seq desc
     limit 1;
    if not found then
        select a.overdraft_limit into line from ledger.accounts a where a.account_id = p_account_id;
    end if;
    return coalesce(line, 0);
end;
$$;

-- The current line: on the latest row, or the opening line.
create function ledger.overdraft_limit(p_account_id uuid) returns numeric
language plpgsql stable as $$
declare
    line numeric;
begin
    select t.source_overdraft_limit into line
      from ledger.transfers t
     where t.source_account_id = p_account_id
     order by t.source_seq desc
     limit 1;
    if not found then
        select a.overdraft_limit into line from ledger.accounts a where a.account_id = p_account_id;
    end if;
    return coalesce(line, 0);
end;
$$;

-- What a row's hash covers. A row that v2 describes completely (a plain
-- transfer, no line, no holds) keeps the v2 text, so every earlier row's
-- hash stays valid; any other row is hashed as v3, which adds the kind, the
-- line, the held figure and the links. ledger-domain rebuilds both.
create or replace function ledger.transfer_encoding(t ledger.transfers) returns text
language sql stable as $$
    select case
        when t.kind = 'transfer' and t.source_overdraft_limit = 0 and t.source_held_after = 0
        then concat_ws('|',
            'ledger-transfer-v2',
            t.transfer_id::text,
            t.source_account_id::text,
            t.source_seq::text,
            t.destination_account_id::text,
            t.currency_code,
            t.amount::text,
            (extract(epoch from t.created_at) * 1000000)::bigint::text,
            t.source_outgoing_total::text,
            t.source_balance_after::text,
            coalesce(t.metadata::text, ''))
        else concat_ws('|',
            'ledger-transfer-v3',
            t.transfer_id::text,
            t.source_account_id::text,
            t.source_seq::text,
            t.destination_account_id::text,
            t.currency_code,
            t.amount::text,
            (extract(epoch from t.created_at) * 1000000)::bigint::text,
            t.source_outgoing_total::text,
            t.source_balance_after::text,
            t.kind,
            t.source_overdraft_limit::text,
            t.source_held_after::text,
            coalesce(t.held_amount::text, ''),
            coalesce((extract(epoch from t.hold_expires_at) * 1000000)::bigint::text, ''),
            coalesce(t.hold_id::text, ''),
            coalesce(t.reverses_transfer_id::text, ''),
            coalesce(t.metadata::text, ''))
    end
$$;

-- The insert trigger of V1, with the rules of this file. Each failure
-- carries a constraint name that the store maps to a domain error.
create or replace function ledger.apply_transfer() returns trigger
language plpgsql as $$
declare
    source_currency text;
    source_is_system boolean;
    source_state text;
    source_opening_line numeric;
    destination_currency text;
    destination_state text;
    scale_allowed smallint;
    previous_created_at timestamptz := '-infinity';
    previous_outgoing_total numeric := 0;
    previous_line numeric;
    previous_held numeric := 0;
    previous_hash bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
    batch_at timestamptz;
    hold ledger.transfers%rowtype;
    original ledger.transfers%rowtype;
    reversed numeric;
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

    select s.currency_code, s.is_system, ledger.close_state(s.closed_at, s.closing_xid),
           s.overdraft_limit,
           (select c.minor_units from ledger.currencies c where c.currency_code = s.currency_code),
           d.currency_code, ledger.close_state(d.closed_at, d.closing_xid)
      into source_currency, source_is_system, source_state, source_opening_line,
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

    if scale(trim_scale(new.amount)) > scale_allowed
       or scale(trim_scale(coalesce(new.held_amount, 0))) > scale_allowed
       or scale(trim_scale(new.source_overdraft_limit)) > scale_allowed then
        raise exception '% amounts have at most % decimals', new.currency_code, scale_allowed
            using errcode = 'check_violation', constraint = 'transfers_amount_scale';
    end if;
    new.amount := round(new.amount, scale_allowed);
    new.held_amount := round(new.held_amount, scale_allowed);

    if new.source_seq > 0 then
        select t.created_at, t.source_outgoing_total, t.row_hash, t.source_overdraft_limit,
               t.source_held_after
          into previous_created_at, previous_outgoing_total, previous_hash, previous_line,
               previous_held
          from ledger.transfers t
         where t.source_account_id = new.source_account_id
           and t.source_seq = new.source_seq - 1;
        if not found then
            raise exception 'transfer % out of % skips a sequence number', new.source_seq,
                    new.source_account_id
                using errcode = 'check_violation', constraint = 'transfers_sequence_contiguous';
        end if;
    end if;

    -- Server-assigned, whatever the client sent (see V1 and V3).
    batch_at := nullif(current_setting('ledger.batch_at', true), '')::timestamptz;
    if batch_at is null then
        new.created_at := greatest(clock_timestamp(), previous_created_at + interval '1 microsecond');
    elsif batch_at < previous_created_at then
        raise exception 'batch time % is before the previous transfer out of %', batch_at,
                new.source_account_id
            using errcode = 'check_violation', constraint = 'transfers_batch_time_order';
    else
        new.created_at := batch_at;
    end if;

    -- The line: a change sets it, every other row carries it on.
    if new.kind <> 'overdraft_change' then
        new.source_overdraft_limit := coalesce(previous_line, source_opening_line, 0);
    elsif source_is_system then
        raise exception 'the system account % has no overdraft line', new.source_account_id
            using errcode = 'check_violation', constraint = 'transfers_kind_shape';
    end if;

    if new.kind = 'capture' then
        -- The hold must be this source's, to this destination, still pending
        -- by the clock, and cover the amount. Resolved-ness is decided by the
        -- capture's own row in ledger.hold_resolutions (a unique key).
        select * into hold from ledger.transfers t where t.transfer_id = new.hold_id;
        if not found or hold.kind <> 'hold' or hold.source_account_id <> new.source_account_id
           or hold.destination_account_id <> new.destination_account_id then
            raise exception 'hold % does not exist for this source and destination', new.hold_id
                using errcode = 'foreign_key_violation', constraint = 'transfers_hold_id_fkey';
        end if;
        if new.created_at >= hold.hold_expires_at then
            raise exception 'hold % expired at %', new.hold_id, hold.hold_expires_at
                using errcode = 'check_violation', constraint = 'transfers_hold_pending';
        end if;
        if new.amount > hold.held_amount then
            raise exception 'capture of % exceeds hold % of %', new.amount, new.hold_id,
                    hold.held_amount
                using errcode = 'check_violation', constraint = 'transfers_capture_within_hold';
        end if;
    elsif new.kind = 'reversal' then
        -- Back from the original's destination to its source, at most what
        -- is not reversed yet. Every reversal of it is out of this same
        -- source, so the sum below sees each earlier one (the sequence).
        select * into original from ledger.transfers t where t.transfer_id = new.reverses_transfer_id;
        if not found or original.kind not in ('transfer', 'capture')
           or original.destination_account_id <> new.source_account_id
           or original.source_account_id <> new.destination_account_id then
            raise exception 'transfer % cannot be reversed by this row', new.reverses_transfer_id
                using errcode = 'foreign_key_violation', constraint = 'transfers_reverses_transfer_id_fkey';
        end if;
        select coalesce(sum(t.amount), 0) into reversed
          from ledger.transfers t
         where t.reverses_transfer_id = new.reverses_transfer_id;
        if reversed + new.amount > original.amount then
            raise exception 'reversals of % would exceed its %', new.reverses_transfer_id,
                    original.amount
                using errcode = 'check_violation', constraint = 'transfers_reversal_within_original';
        end if;
    end if;

    new.source_outgoing_total := previous_outgoing_total + new.amount;
    new.source_is_system := source_is_system;
    new.source_balance_after :=
        ledger.incoming_total_maintained(new.source_account_id) - new.source_outgoing_total;
    -- Pending holds after this row: the holds pending at its time (a capture
    -- leaves out the hold it settles), plus the hold it places. Only a row
    -- of this sequence places a hold, and nothing but a row of it raises the
    -- figure: when the previous row left none pending, none is (skipping the
    -- lookup keeps a plain transfer's insert as cheap as before V6).
    if source_is_system then
        new.source_held_after := 0;
    elsif previous_held = 0 and new.kind <> 'capture' then
        new.source_held_after := case when new.kind = 'hold' then new.held_amount else 0 end;
    else
        new.source_held_after :=
            ledger.held_at(new.source_account_id, new.created_at,
                           case when new.kind = 'capture' then new.hold_id end)
            + case when new.kind = 'hold' then new.held_amount else 0 end;
    end if;
    if get_byte(uuid_send(new.transfer_id), 15) < 32 then
        perform ledger.incoming_total_maintained(new.destination_account_id);
    end if;
    new.row_hash := sha256(previous_hash || convert_to(ledger.transfer_encoding(new), 'UTF8'));
    return new;
end;
$$;

-- An account's opening line is as immutable as its currency.
create or replace function ledger.guard_account_update() returns trigger
language plpgsql as $$
begin
    if (new.account_id, new.currency_code, new.is_system, new.created_at, new.metadata,
        new.overdraft_limit)
       is distinct from
       (old.account_id, old.currency_code, old.is_system, old.created_at, old.metadata,
        old.overdraft_limit)
       or old.closed_at is not null then
        raise exception 'account % is immutable except for closing it', old.account_id
            using errcode = 'insufficient_privilege', constraint = 'accounts_append_only';
    end if;
    return new;
end;
$$;

-- Idempotency keys cover the new writes; a void records its hold in
-- transfer_id, a line change its account.
alter table ledger.idempotency_keys drop constraint idempotency_keys_operation_check;
alter table ledger.idempotency_keys add constraint idempotency_keys_operation_check
    check (operation in ('open_account', 'close_account', 'transfer', 'deposit', 'withdrawal',
                         'batch', 'hold', 'capture', 'void', 'reversal', 'overdraft_change'));

grant execute on all functions in schema ledger to ledger_app;
