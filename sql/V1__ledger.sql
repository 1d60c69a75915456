-- The ledger schema: an append-only transfer log from which every balance is
-- derived. Read docs/design.md first; this file says *why* at each step.
--
-- Invariants enforced here, independently of the Rust code:
--   * a transfer row is never updated, deleted or truncated away;
--   * the n-th transfer out of an account has source_seq = n, gap-free from 0
--     (primary key + trigger);
--   * amount > 0, at most the currency's decimals, at most 10^15;
--   * source <> destination, both accounts exist, share the transfer's
--     currency, and are open;
--   * a customer account's balance never goes below zero (the trigger computes
--     the source's balance after the transfer; a named CHECK rejects < 0).
--
-- Concurrency control is the primary key alone: two transfers out of one
-- account race for the same (source_account_id, source_seq); one wins, the
-- other's insert does nothing and the store retries it. There are no row
-- locks, advisory locks or foreign keys (which take KEY SHARE row locks) on
-- the write path, so transfers cannot deadlock.

create schema if not exists ledger;

-- ISO 4217 currencies. minor_units decides how many decimals an amount may
-- have. The same table lives in ledger-domain (Currency); a test checks that
-- both agree.
create table ledger.currencies (
    currency_code text primary key check (currency_code ~ '^[A-Z]{3}$'),
    numeric_code smallint not null unique check (numeric_code between 1 and 999),
    minor_units smallint not null check (minor_units between 0 and 4)
);

insert into ledger.currencies (currency_code, numeric_code, minor_units) values
    ('AED', 784, 2), ('AFN', 971, 2), ('ALL', 8, 2), ('AMD', 51, 2), ('AOA', 973, 2),
    ('ARS', 32, 2), ('AUD', 36, 2), ('AWG', 533, 2), ('AZN', 944, 2), ('BAM', 977, 2),
    ('BBD', 52, 2), ('BDT', 50, 2), ('BGN', 975, 2), ('BHD', 48, 3), ('BIF', 108, 0),
    ('BMD', 60, 2), ('BND', 96, 2), ('BOB', 68, 2), ('BRL', 986, 2), ('BSD', 44, 2),
    ('BTN', 64, 2), ('BWP', 72, 2), ('BYN', 933, 2), ('BZD', 84, 2), ('CAD', 124, 2),
    ('CDF', 976, 2), ('CHF', 756, 2), ('CLF', 990, 4), ('CLP', 152, 0), ('CNY', 156, 2),
    ('COP', 170, 2), ('CRC', 188, 2), ('CUP', 192, 2), ('CVE', 132, 2), ('CZK', 203, 2),
    ('DJF', 262, 0), ('DKK', 208, 2), ('DOP', 214, 2), ('DZD', 12, 2), ('EGP', 818, 2),
    ('ERN', 232, 2), ('ETB', 230, 2), ('EUR', 978, 2), ('FJD', 242, 2), ('FKP', 238, 2),
    ('GBP', 826, 2), ('GEL', 981, 2), ('GHS', 936, 2), ('GIP', 292, 2), ('GMD', 270, 2),
    ('GNF', 324, 0), ('GTQ', 320, 2), ('GYD', 328, 2), ('HKD', 344, 2), ('HNL', 340, 2),
    ('HTG', 332, 2), ('HUF', 348, 2), ('IDR', 360, 2), ('ILS', 376, 2), ('INR', 356, 2),
    ('IQD', 368, 3), ('IRR', 364, 2), ('ISK', 352, 0), ('JMD', 388, 2), ('JOD', 400, 3),
    ('JPY', 392, 0), ('KES', 404, 2), ('KGS', 417, 2), ('KHR', 116, 2), ('KMF', 174, 0),
    ('KPW', 408, 2), ('KRW', 410, 0), ('KWD', 414, 3), ('KYD', 136, 2), ('KZT', 398, 2),
    ('LAK', 418, 2), ('LBP', 422, 2), ('LKR', 144, 2), ('LRD', 430, 2), ('LSL', 426, 2),
    ('LYD', 434, 3), ('MAD', 504, 2), ('MDL', 498, 2), ('MGA', 969, 2), ('MKD', 807, 2),
    ('MMK', 104, 2), ('MNT', 496, 2), ('MOP', 446, 2), ('MRU', 929, 2), ('MUR', 480, 2),
    ('MVR', 462, 2), ('MWK', 454, 2), ('MXN', 484, 2), ('MYR', 458, 2), ('MZN', 943, 2),
    ('NAD', 516, 2), ('NGN', 566, 2), ('NIO', 558, 2), ('NOK', 578, 2), ('NPR', 524, 2),
    ('NZD', 554, 2), ('OMR', 512, 3), ('PAB', 590, 2), ('PEN', 604, 2), ('PGK', 598, 2),
    ('PHP', 608, 2), ('PKR', 586, 2), ('PLN', 985, 2), ('PYG', 600, 0), ('QAR', 634, 2),
    ('RON', 946, 2), ('RSD', 941, 2), ('RUB', 643, 2), ('RWF', 646, 0), ('SAR', 682, 2),
    ('SBD', 90, 2), ('SCR', 690, 2), ('SDG', 938, 2), ('SEK', 752, 2), ('SGD', 702, 2),
    ('SHP', 654, 2), ('SLE', 925, 2), ('SOS', 706, 2), ('SRD', 968, 2), ('SSP', 728, 2),
    ('STN', 930, 2), ('SVC', 222, 2), ('SYP', 760, 2), ('SZL', 748, 2), ('THB', 764, 2),
    ('TJS', 972, 2), ('TMT', 934, 2), ('TND', 788, 3), ('TOP', 776, 2), ('TRY', 949, 2),
    ('TTD', 780, 2), ('TWD', 901, 2), ('TZS', 834, 2), ('UAH', 980, 2), ('UGX', 800, 0),
    ('USD', 840, 2), ('UYI', 940, 0), ('UYU', 858, 2), ('UYW', 927, 4), ('UZS', 860, 2),
    ('VED', 926, 2), ('VES', 928, 2), ('VND', 704, 0), ('VUV', 548, 0), ('WST', 882, 2),
    ('XAF', 950, 0), ('XCD', 951, 2), ('XCG', 532, 2), ('XOF', 952, 0), ('XPF', 953, 0),
    ('YER', 886, 2), ('ZAR', 710, 2), ('ZMW', 967, 2), ('ZWG', 924, 2);

-- Accounts. There is deliberately no balance column: balances are derived
-- from ledger.transfers. The only mutable columns are the two that record a
-- close (see ledger.guard_account_update).
create table ledger.accounts (
    account_id uuid primary key,
    currency_code text not null references ledger.currencies (currency_code),
    -- The system account of a currency is where deposits come from and
    -- withdrawals go; the only account allowed a negative balance. Its id is
    -- the ISO numeric code read as hex digits (…-000000000840 for USD), so the
    -- range below 0x1000 is reserved for system accounts.
    is_system boolean not null default false,
    created_at timestamptz not null default clock_timestamp(),
    -- A close in progress (see ledger.close_state): closing_xid is the xid of
    -- the transaction that will finish the close, closing_at when it started.
    -- The mark is in effect only while that transaction runs (and for good
    -- once it commits): a close that fails, times out or whose client goes
    -- away ends its transaction, and the mark is dead at once, without
    -- anyone having to clear it. Each attempt owns its mark.
    closing_at timestamptz,
    closing_xid xid8,
    -- Set by the closing transaction itself, in the same commit that makes
    -- the close take effect (the balance was zero once no transaction that
    -- could still move money was in flight).
    closed_at timestamptz,
    metadata jsonb,
    constraint accounts_system_id_range
        check (is_system = (account_id < '00000000-0000-0000-0000-000000001000'::uuid)),
    constraint accounts_closed_after_closing
        check (closed_at is null or (closing_at is not null and closed_at >= closing_at)),
    constraint accounts_system_never_closes
        check (not is_system or (closing_at is null and closing_xid is null)),
    constraint accounts_closing_marked_whole check ((closing_at is null) = (closing_xid is null)),
    constraint accounts_metadata_is_object
        check (metadata is null or jsonb_typeof(metadata) = 'object')
);

-- One system account per currency, at most.
create unique index accounts_one_system_per_currency
    on ledger.accounts (currency_code) where is_system;

-- A closer waits for the transactions that may have read an account before
-- its mark; other closers' own transactions are not among them (they insert
-- no transfers) and are recognised by their mark.
create index accounts_closing_xid_idx on ledger.accounts (closing_xid) where closing_xid is not null;

-- Whether an account is 'open', 'closing' (a close attempt's transaction is
-- still running: transfers are refused with a retryable error) or 'closed'.
-- Derived from the attempt's transaction status rather than stored, so that
-- no intermediate state can outlive the attempt: an aborted attempt (error,
-- timeout, client gone, process killed) leaves the account open. A committed
-- attempt counts as closed even to a reader whose snapshot predates its
-- commit, which a transfer must not slip past. pg_xact_status is NULL only
-- for transactions so old that every snapshot sees their outcome in the row.
--
-- Declared volatile, which it is (pg_xact_status is): PostgreSQL inlines a
-- SQL function into the calling query only when its body is no more volatile
-- than its label, and a stable label here made every transfer run it through
-- the function executor twice: 35 µs of a 110 µs insert, and half of the
-- write path's head read (measured; docs/design.md, "The write path").
create function ledger.close_state(p_closed_at timestamptz, p_closing_xid xid8) returns text
language sql volatile as $$
    select case
        when p_closed_at is not null then 'closed'
        when p_closing_xid is null then 'open'
        else case pg_xact_status(p_closing_xid)
            when 'in progress' then 'closing'
            when 'committed' then 'closed'
            else 'open'
        end
    end
$$;

-- The transfer log. One row per operation (opening balance, deposit,
-- withdrawal, transfer), never changed once written.
create table ledger.transfers (
    source_account_id uuid not null,
    -- The n-th transfer out of the source has source_seq = n. The primary key
    -- makes concurrent transfers out of one account race for the same number.
    source_seq bigint not null check (source_seq >= 0),
    transfer_id uuid not null,
    destination_account_id uuid not null,
    currency_code text not null,
    amount numeric not null,
    -- Sum of the amounts of rows 0..source_seq out of the source. Rows out of
    -- one account are totally ordered, so each carries the running total and
    -- the source's outgoing total is one index probe, at any point in time.
    source_outgoing_total numeric not null,
    -- The source's balance as the ledger computed it when it applied the
    -- transfer: the figure the overdraft rule was checked against. (There is
    -- no destination balance: computing it cost the insert two more index
    -- scans, and nothing relied on it; see docs/design.md.)
    source_balance_after numeric not null,
    source_is_system boolean not null,
    -- Set by the trigger to clock_timestamp() after the transaction's xid is
    -- assigned, and strictly increasing per source (see ledger.final_horizon).
    created_at timestamptz not null,
    metadata jsonb,
    -- sha256(row_hash of row source_seq - 1 (32 zero bytes for row 0) ||
    -- canonical encoding of this row): each source's rows form a hash chain,
    -- ordered by the sequence, so no global lock is needed. `ledger verify`
    -- recomputes every chain; see docs/design.md "Verifiable journal".
    row_hash bytea not null check (length(row_hash) = 32),
    constraint transfers_pkey primary key (source_account_id, source_seq),
    constraint transfers_transfer_id_key unique (transfer_id),
    constraint transfers_amount_positive check (amount > 0),
    constraint transfers_amount_ceiling check (amount <= 1000000000000000),
    constraint transfers_distinct_accounts check (source_account_id <> destination_account_id),
    constraint transfers_running_total check (source_outgoing_total >= amount),
    constraint transfers_no_overdraft check (source_is_system or source_balance_after >= 0),
    constraint transfers_metadata_is_object
        check (metadata is null or jsonb_typeof(metadata) = 'object')
) with (fillfactor = 100); -- rows are never updated: pack pages full

-- Outgoing rows by time: the source's outgoing total as of any timestamp, and
-- the outgoing half of an account's history. Ties in created_at are the rows
-- of one batch out of one source; source_seq orders them.
create index transfers_source_created_at_idx
    on ledger.transfers (source_account_id, created_at, source_seq);

-- Incoming rows by time: the incoming tail after a checkpoint, as-of reads,
-- and the incoming half of an account's history.
create index transfers_destination_created_at_idx
    on ledger.transfers (destination_account_id, created_at) include (amount);

-- Incoming totals cannot be chained like outgoing ones: transfers into one
-- account come from many sources concurrently and must not serialize. So the
-- incoming total is a checkpoint plus the few rows after it. A checkpoint
-- says: every transfer into account_id with created_at < through sums to
-- incoming_total. It is only taken at a final horizon (no transaction that
-- could still add such a row is in flight), so it never becomes wrong.
-- Checkpoints are append-only; two concurrent writers may record the same
-- one twice, which is harmless, and avoids a unique key that would make them
-- wait on each other.
create table ledger.incoming_checkpoints (
    account_id uuid not null,
    through timestamptz not null,
    incoming_total numeric not null check (incoming_total >= 0),
    created_at timestamptz not null default clock_timestamp()
);

create index incoming_checkpoints_account_through_idx
    on ledger.incoming_checkpoints (account_id, through);

-- Horizon marks make point-in-time reads final. A mark (marked_at, xid) is
-- written by ledger.advance_horizon(): it reads the clock first, then takes an
-- xid. Every transaction with a later xid got it after marked_at, and so
-- stamps its rows later than marked_at (the transfer trigger takes its xid
-- before reading the clock). Once every xid before the mark's has finished
-- (pg_snapshot_xmin has passed it), the set of rows with created_at <
-- marked_at can never change again: marked_at is a final horizon.
create table ledger.horizon_marks (
    marker_xid xid8 primary key,
    marked_at timestamptz not null
);

create index horizon_marks_marked_at_idx on ledger.horizon_marks (marked_at);

-- Idempotency keys, recorded in the same transaction as the write they
-- protect: a write that failed leaves no key behind, a committed one always
-- does.
create table ledger.idempotency_keys (
    idempotency_key text primary key
        check (length(idempotency_key) between 1 and 255),
    request_fingerprint bytea not null check (length(request_fingerprint) = 32),
    operation text not null
        check (operation in ('open_account', 'close_account', 'transfer', 'deposit', 'withdrawal')),
    account_id uuid,
    transfer_id uuid,
    created_at timestamptz not null default clock_timestamp()
);

---------------------------------------------------------------------------
-- Balances, derived. All are O(log n) in the size of the history: a few
-- index probes plus the rows after the latest checkpoint, which the
-- transfer trigger keeps short.
---------------------------------------------------------------------------

-- The latest final horizon: transfers with created_at before it can no
-- longer appear, so reads as of an earlier time never change.
--
-- The read functions below are PL/pgSQL rather than SQL on purpose: their
-- bodies have subqueries, so PostgreSQL cannot inline them as SQL functions
-- and would plan them again on every call; PL/pgSQL caches the plans per
-- session. (Measured with pgbench: the transfer head read went from 5.3k to
-- 11.2k per second.)
create function ledger.final_horizon() returns timestamptz
language plpgsql stable as $$
declare
    horizon timestamptz;
begin
    select m.marked_at into horizon
      from ledger.horizon_marks m
     where m.marker_xid < pg_snapshot_xmin(pg_current_snapshot())
     order by m.marked_at desc
     limit 1;
    return coalesce(horizon, '-infinity');
end;
$$;

-- Writes a horizon mark and forgets the marks it supersedes. Must run in a
-- transaction of its own (autocommit): an xid taken before the clock read
-- would break the argument above. The service calls it every
-- LEDGER_HORIZON_INTERVAL_MS.
create function ledger.advance_horizon() returns timestamptz
language plpgsql volatile as $$
declare
    marked timestamptz;
    horizon timestamptz;
begin
    if pg_current_xact_id_if_assigned() is not null then
        raise exception 'ledger.advance_horizon() must run in a transaction of its own'
            using errcode = 'active_sql_transaction';
    end if;
    marked := clock_timestamp();
    insert into ledger.horizon_marks (marker_xid, marked_at)
    values (pg_current_xact_id(), marked);
    horizon := ledger.final_horizon();
    delete from ledger.horizon_marks where marked_at < horizon;
    return horizon;
end;
$$;

-- Total ever sent by an account: the running total on its latest row.
create function ledger.outgoing_total(p_account_id uuid) returns numeric
language plpgsql stable as $$
declare
    total numeric;
begin
    select t.source_outgoing_total into total
      from ledger.transfers t
     where t.source_account_id = p_account_id
     order by t.source_seq desc
     limit 1;
    return coalesce(total, 0);
end;
$$;

-- Total ever received by an account: latest checkpoint + rows after it.
create function ledger.incoming_total(p_account_id uuid) returns numeric
language plpgsql stable as $$
declare
    checkpoint_through timestamptz;
    checkpoint_total numeric;
    tail numeric;
begin
    select c.through, c.incoming_total into checkpoint_through, checkpoint_total
      from ledger.incoming_checkpoints c
     where c.account_id = p_account_id
     order by c.through desc
     limit 1;
    select sum(t.amount) into tail
      from ledger.transfers t
     where t.destination_account_id = p_account_id
       and t.created_at >= coalesce(checkpoint_through, '-infinity');
    return coalesce(checkpoint_total, 0) + coalesce(tail, 0);
end;
$$;

-- The current balance of an account (0 for an unknown id).
create function ledger.balance(p_account_id uuid) returns numeric
language plpgsql stable as $$
begin
    return ledger.incoming_total(p_account_id) - ledger.outgoing_total(p_account_id);
end;
$$;

-- The balance of an account including every transfer with created_at <=
-- p_at. Final (never changes again) when p_at < ledger.final_horizon().
create function ledger.balance_at(p_account_id uuid, p_at timestamptz) returns numeric
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
    -- Ties are the rows of one batch out of this source (they share the
    -- batch's created_at): the last of them carries the running total.
    select t.source_outgoing_total into outgoing
      from ledger.transfers t
     where t.source_account_id = p_account_id
       and t.created_at <= p_at
     order by t.created_at desc, t.source_seq desc
     limit 1;
    return coalesce(checkpoint_total, 0) + coalesce(incoming_tail, 0) - coalesce(outgoing, 0);
end;
$$;

-- Current balances of every account: the source of truth, derived.
create view ledger.account_balances as
select a.account_id, a.currency_code, a.is_system, ledger.balance(a.account_id) as balance
  from ledger.accounts a;

-- Incoming total for the write path: like ledger.incoming_total, and when
-- the tail after the latest checkpoint has grown past 64 rows, records a new
-- checkpoint at the final horizon. This is what keeps every balance read
-- short, whatever the history's size.
create function ledger.incoming_total_maintained(p_account_id uuid) returns numeric
language plpgsql volatile as $$
declare
    checkpoint_through timestamptz := '-infinity';
    checkpoint_total numeric := 0;
    tail_total numeric;
    tail_rows bigint;
    horizon timestamptz;
    settled numeric;
begin
    select c.through, c.incoming_total into checkpoint_through, checkpoint_total
      from ledger.incoming_checkpoints c
     where c.account_id = p_account_id
     order by c.through desc
     limit 1;
    if not found then
        checkpoint_through := '-infinity';
        checkpoint_total := 0;
    end if;

    select coalesce(sum(t.amount), 0), count(*) into tail_total, tail_rows
      from ledger.transfers t
     where t.destination_account_id = p_account_id
       and t.created_at >= checkpoint_through;

    if tail_rows > 64 then
        horizon := ledger.final_horizon();
        if horizon > checkpoint_through then
            select coalesce(sum(t.amount), 0) into settled
              from ledger.transfers t
             where t.destination_account_id = p_account_id
               and t.created_at >= checkpoint_through
               and t.created_at < horizon;
            insert into ledger.incoming_checkpoints (account_id, through, incoming_total)
            select p_account_id, horizon, checkpoint_total + settled
             where not exists (
                   select 1 from ledger.incoming_checkpoints c
                    where c.account_id = p_account_id and c.through >= horizon);
        end if;
    end if;

    return checkpoint_total + tail_total;
end;
$$;

---------------------------------------------------------------------------
-- The write path.
---------------------------------------------------------------------------

-- The canonical encoding of a transfer row, hashed into its source's chain.
-- Every field has one textual form whatever the session settings: numbers as
-- numeric text at their stored scale, time as microseconds since the epoch,
-- metadata as jsonb's own text. Metadata comes last, so a '|' inside it
-- cannot shift another field. ledger-store's verify rebuilds the same string.
-- Stable, not immutable: concat_ws and the casts to text are stable, and
-- only a function labelled no stricter than its body is inlined.
create function ledger.transfer_encoding(t ledger.transfers) returns text
language sql stable as $$
    select concat_ws('|',
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
$$;

-- Fills in and checks everything about a new transfer that depends on other
-- rows. Each failure carries a constraint name that the store maps to a
-- domain error (never the message text).
create function ledger.apply_transfer() returns trigger
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

    -- Server-assigned, whatever the client sent. Inside a batch
    -- (ledger.batch_at, set by ledger.begin_batch_time in this transaction;
    -- see sql/V3__batches.sql) every row takes the batch's one time, refused
    -- by name if that would go back before the source's previous row;
    -- otherwise the clock, strictly after the previous row. ('' once the
    -- setting was defined in this session: a transaction-local value is
    -- reset, not removed, when its transaction ends.)
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

create trigger transfers_apply
    before insert on ledger.transfers
    for each row execute function ledger.apply_transfer();

-- Append-only, enforced by the database: no UPDATE, DELETE or TRUNCATE on the
-- log (or on what is derived from it), whoever asks.
create function ledger.reject_change() returns trigger
language plpgsql as $$
begin
    raise exception '% is append-only: % is not allowed', tg_table_name, tg_op
        using errcode = 'insufficient_privilege', constraint = tg_table_name || '_append_only';
end;
$$;

create trigger transfers_append_only
    before update or delete on ledger.transfers
    for each row execute function ledger.reject_change();
create trigger transfers_no_truncate
    before truncate on ledger.transfers
    for each statement execute function ledger.reject_change();

create trigger incoming_checkpoints_append_only
    before update or delete on ledger.incoming_checkpoints
    for each row execute function ledger.reject_change();
create trigger incoming_checkpoints_no_truncate
    before truncate on ledger.incoming_checkpoints
    for each statement execute function ledger.reject_change();

create trigger idempotency_keys_append_only
    before update or delete on ledger.idempotency_keys
    for each row execute function ledger.reject_change();
create trigger idempotency_keys_no_truncate
    before truncate on ledger.idempotency_keys
    for each statement execute function ledger.reject_change();

create trigger accounts_no_delete
    before delete on ledger.accounts
    for each row execute function ledger.reject_change();
create trigger accounts_no_truncate
    before truncate on ledger.accounts
    for each statement execute function ledger.reject_change();

-- An account's identity, currency, kind and metadata never change; only a
-- close may mark it (closing_at, closing_xid) and set closed_at, and a
-- closed account never changes again.
create function ledger.guard_account_update() returns trigger
language plpgsql as $$
begin
    if (new.account_id, new.currency_code, new.is_system, new.created_at, new.metadata)
       is distinct from
       (old.account_id, old.currency_code, old.is_system, old.created_at, old.metadata)
       or old.closed_at is not null then
        raise exception 'account % is immutable except for closing it', old.account_id
            using errcode = 'insufficient_privilege', constraint = 'accounts_append_only';
    end if;
    return new;
end;
$$;

create trigger accounts_guard_update
    before update on ledger.accounts
    for each row execute function ledger.guard_account_update();

-- The system account of a currency, created on first use.
create function ledger.ensure_system_account(p_currency_code text) returns uuid
language sql volatile as $$
    insert into ledger.accounts (account_id, currency_code, is_system)
    select ('00000000-0000-0000-0000-' || lpad(c.numeric_code::text, 12, '0'))::uuid,
           c.currency_code, true
      from ledger.currencies c
     where c.currency_code = p_currency_code
    -- No conflict target: two first deposits racing may collide on the
    -- primary key or on accounts_one_system_per_currency; either way the
    -- account exists.
    on conflict do nothing;
    select ('00000000-0000-0000-0000-' || lpad(c.numeric_code::text, 12, '0'))::uuid
      from ledger.currencies c
     where c.currency_code = p_currency_code;
$$;

-- Privileges: the service should connect as a role that is a member of
-- ledger_app. It may read everything and insert into the log, and nothing
-- else; updating the log is impossible both by privilege and by trigger.
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'ledger_app') then
        create role ledger_app nologin;
    end if;
end;
$$;

revoke all on all tables in schema ledger from public;
grant usage on schema ledger to ledger_app;
grant select on all tables in schema ledger to ledger_app;
grant insert on ledger.transfers, ledger.incoming_checkpoints, ledger.idempotency_keys,
    ledger.horizon_marks to ledger_app;
grant insert, update (closing_at, closing_xid, closed_at) on ledger.accounts to ledger_app;
grant delete on ledger.horizon_marks to ledger_app;

-- Claims an idempotency key for a write, in the write's own transaction.
-- Outcomes: 'claimed' (go ahead; the key commits with the write), 'replay'
-- (the same request committed before: return its result), 'mismatch' (the key
-- was used for a different request), 'in_flight' (another transaction holding
-- the key has not finished within 100 ms). The wait is bounded with a local
-- lock_timeout that is restored at once, so the rest of the write keeps the
-- session's setting.
create function ledger.claim_idempotency_key(
    p_key text, p_fingerprint bytea, p_operation text, p_account_id uuid, p_transfer_id uuid)
returns table (outcome text, account_id uuid, transfer_id uuid)
language plpgsql volatile as $$
declare
    saved_lock_timeout text := current_setting('lock_timeout');
    claimed boolean;
    existing ledger.idempotency_keys%rowtype;
begin
    perform set_config('lock_timeout', '100ms', true);
    begin
        insert into ledger.idempotency_keys
            (idempotency_key, request_fingerprint, operation, account_id, transfer_id)
        values (p_key, p_fingerprint, p_operation, p_account_id, p_transfer_id)
        on conflict on constraint idempotency_keys_pkey do nothing;
        claimed := found;
    exception when lock_not_available then
        perform set_config('lock_timeout', saved_lock_timeout, true);
        return query select 'in_flight'::text, null::uuid, null::uuid;
        return;
    end;
    perform set_config('lock_timeout', saved_lock_timeout, true);
    if claimed then
        return query select 'claimed'::text, p_account_id, p_transfer_id;
        return;
    end if;
    select * into existing from ledger.idempotency_keys k where k.idempotency_key = p_key;
    if existing.request_fingerprint = p_fingerprint then
        return query select 'replay'::text, existing.account_id, existing.transfer_id;
    else
        return query select 'mismatch'::text, null::uuid, null::uuid;
    end if;
end;
$$;

grant execute on all functions in schema ledger to ledger_app;
