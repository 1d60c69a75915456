-- A final horizon per node: each node's xids only order that node's
-- transactions, and its clock stamps its own rows (see docs/scaling.md).
-- Run on each worker directly, node-local: not a distributed object.
set citus.enable_ddl_propagation = off;
create table if not exists public.horizon_marks (
    marker_xid xid8 primary key,
    marked_at timestamptz not null);
create or replace function public.advance_horizon() returns timestamptz
language plpgsql as $f$
declare
    marked timestamptz;
    horizon timestamptz;
begin
    marked := clock_timestamp();
    insert into public.horizon_marks values (pg_current_xact_id(), marked);
    select m.marked_at into horizon from public.horizon_marks m
     where m.marker_xid < pg_snapshot_xmin(pg_current_snapshot())
     order by m.marked_at desc limit 1;
    delete from public.horizon_marks where marked_at < horizon;
    return coalesce(horizon, '-infinity');
end $f$;
