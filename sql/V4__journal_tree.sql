-- The journal tree (issue 16): one append-only RFC 6962 Merkle tree over
-- every transfer row, so that a proof is O(log n) whatever happened since,
-- and two digests can be proven consistent (the later extends the earlier).
-- See docs/design.md, "Verifiable journal".
--
-- Order: (created_at, source_account_id, source_seq). Once a time t is
-- final (ledger.final_horizon), the set of rows with created_at < t never
-- changes, and every later row sorts after them: so the tree of the rows
-- before t is a prefix of the tree of the rows before any later final time.
-- Rows are appended in that order by the journal sequencer (ledger-store,
-- journal.rs), off the write path: the insert trigger of ledger.transfers is
-- unchanged, and nothing here makes writers wait for each other.
--
-- Leaf i = sha256(0x00 || row_hash of the i-th row); interior nodes are
-- sha256(0x01 || left || right). row_hash already commits to the row's
-- canonical encoding and to its source's chain.

-- Makes a table append-only, as V1 does by hand for the log: no UPDATE or
-- DELETE (a row trigger, <table>_append_only, the constraint name
-- ledger.reject_change() raises and the store maps) and no TRUNCATE (a
-- statement trigger, <table>_no_truncate: a row trigger never sees one).
-- One place for the pair, so no new immutable table gets one without the
-- other. Run by migrations only.
create procedure ledger.make_append_only(p_table regclass)
language plpgsql as $$
declare
    table_name name := (select c.relname from pg_catalog.pg_class c where c.oid = p_table);
begin
    execute format('create trigger %I before update or delete on %s'
                   ' for each row execute function ledger.reject_change()',
                   table_name || '_append_only', p_table);
    execute format('create trigger %I before truncate on %s'
                   ' for each statement execute function ledger.reject_change()',
                   table_name || '_no_truncate', p_table);
end;
$$;

revoke all on procedure ledger.make_append_only(regclass) from public;

-- The sequencer reads the rows after its last leaf by time. A btree on
-- created_at would cost every insert one more index entry; a BRIN index
-- costs an insert next to nothing (only a summarized range is ever touched,
-- and the newest range is not summarized yet) and rows arrive in close to
-- created_at order, so a range of 16 pages (~600 rows) is a tight summary.
-- autosummarize queues the summary of each range once the next one starts,
-- so the unsummarized tail, which every such scan reads whole, stays short.
create index transfers_created_at_brin
    on ledger.transfers using brin (created_at)
    with (pages_per_range = 16, autosummarize = on);

-- Leaf leaf_index of the tree is the row (source_account_id, source_seq).
-- Append-only. Two sequencers (two service instances, or a digest request
-- catching the tree up beside the background task) compute the same leaves
-- for the same indices; the primary key lets one insert them, and the other
-- fails on the key and starts again from the new last leaf. No locks.
create table ledger.journal_leaves (
    leaf_index bigint primary key check (leaf_index >= 0),
    source_account_id uuid not null,
    source_seq bigint not null,
    -- The row's created_at, copied: a digest "as of t" is the tree of the
    -- leaves with created_at < t, found by the index below.
    created_at timestamptz not null,
    -- sha256(0x00 || row_hash), kept so that a proof reads leaf hashes in
    -- one index range, and so that `ledger verify` can tell which row no
    -- longer matches the tree.
    leaf_hash bytea not null check (length(leaf_hash) = 32),
    -- A row is in the tree once; its leaf is found from its key.
    constraint journal_leaves_row_key unique (source_account_id, source_seq)
);

create index journal_leaves_created_at_idx on ledger.journal_leaves (created_at, leaf_index);

-- The hash of every complete aligned subtree of 2^level leaves, level >= 6
-- (ledger_domain::journal::STORED_LEVEL): leaves node_index * 2^level up to
-- (node_index + 1) * 2^level - 1. A subtree never changes once complete, so
-- any root, audit path or consistency proof is O(log n) stored nodes plus
-- fewer than 2 * 64 leaves. One node per 32 leaves on average.
create table ledger.journal_nodes (
    level smallint not null check (level between 6 and 62),
    node_index bigint not null check (node_index >= 0),
    hash bytea not null check (length(hash) = 32),
    constraint journal_nodes_pkey primary key (level, node_index)
);

-- The database checks the sequencer's leaves too (each invariant twice):
-- indices follow the last leaf with no gap, the order is strictly
-- increasing, each leaf is the hash of its row, and every row is final. Set
-- based, once per statement: a few µs per leaf, off the write path.
create function ledger.check_journal_leaves() returns trigger
language plpgsql as $$
declare
    first_new bigint;
    last_new bigint;
    new_count bigint;
    expected_first bigint;
begin
    select min(leaf_index), max(leaf_index), count(*) into first_new, last_new, new_count
      from new_leaves;
    if new_count = 0 then
        return null;
    end if;
    select coalesce(max(l.leaf_index) + 1, 0) into expected_first
      from ledger.journal_leaves l where l.leaf_index < first_new;
    if first_new <> expected_first or last_new - first_new + 1 <> new_count then
        raise exception 'journal leaves % to % do not follow the last leaf %', first_new,
                last_new, expected_first - 1
            using errcode = 'check_violation', constraint = 'journal_leaves_contiguous';
    end if;
    if exists (
        select 1
          from (select l.created_at, l.source_account_id, l.source_seq,
                       lag(row(l.created_at, l.source_account_id, l.source_seq))
                           over (order by l.leaf_index) as previous
                  from ledger.journal_leaves l
                 where l.leaf_index between first_new - 1 and last_new) ordered
         where ordered.previous is not null
           and row(ordered.created_at, ordered.source_account_id, ordered.source_seq)
               <= ordered.previous) then
        raise exception 'journal leaves % to % are not in (created_at, source, seq) order',
                first_new, last_new
            using errcode = 'check_violation', constraint = 'journal_leaves_order';
    end if;
    if exists (
        select 1
          from new_leaves l
          left join ledger.transfers t
            on t.source_account_id = l.source_account_id and t.source_seq = l.source_seq
         where t.row_hash is null
            or t.created_at <> l.created_at
            or l.leaf_hash <> sha256('\x00'::bytea || t.row_hash)) then
        raise exception 'a journal leaf between % and % is not the hash of its row', first_new,
                last_new
            using errcode = 'check_violation', constraint = 'journal_leaves_row_hash';
    end if;
    if (select max(l.created_at) from new_leaves l) >= ledger.final_horizon() then
        raise exception 'journal leaves % to % include a row that is not final', first_new,
                last_new
            using errcode = 'check_violation', constraint = 'journal_leaves_final';
    end if;
    return null;
end;
$$;

create trigger journal_leaves_check
    after insert on ledger.journal_leaves
    referencing new table as new_leaves
    for each statement execute function ledger.check_journal_leaves();

-- Leaves and nodes are append-only, like the log they prove: a changed leaf
-- or node would make every proof through it a lie.
call ledger.make_append_only('ledger.journal_leaves');
call ledger.make_append_only('ledger.journal_nodes');

grant select, insert on ledger.journal_leaves, ledger.journal_nodes to ledger_app;
grant execute on function ledger.check_journal_leaves() to ledger_app;

-- Summarizes the BRIN index's complete page ranges from p_from_block on,
-- and returns the block to start from next time. The journal sequencer
-- calls it on every tick, so its scans of "the rows after the last leaf"
-- read only the newest, unsummarized range, instead of every range that
-- autosummarize (run by autovacuum, about once a minute) has not reached.
-- Never the last, partial range: once summarized, every insert into it
-- would widen its summary, one write to one index page shared by every
-- writer. Security definer: summarizing takes the index owner's rights.
create function ledger.summarize_journal_index(p_from_block bigint) returns bigint
language plpgsql volatile security definer set search_path = pg_catalog as $$
declare
    pages_per_range constant bigint := 16;
    blocks bigint := pg_relation_size('ledger.transfers')
                     / current_setting('block_size')::bigint;
    block bigint := greatest(p_from_block, 0) - greatest(p_from_block, 0) % pages_per_range;
begin
    while block + pages_per_range <= blocks loop
        perform brin_summarize_range('ledger.transfers_created_at_brin'::regclass, block);
        block := block + pages_per_range;
    end loop;
    return block;
end;
$$;

revoke all on function ledger.summarize_journal_index(bigint) from public;
grant execute on function ledger.summarize_journal_index(bigint) to ledger_app;
