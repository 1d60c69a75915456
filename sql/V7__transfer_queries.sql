-- Finding transfers (issue 14): `GET /transfers` newest first, filtered by
-- account, currency, time and metadata, and `GET /accounts?metadata[…]=`.
-- Every filter shape is served by an index, never by a scan of the log
-- (plans on a 1M-row fixture: bench/transfer-queries.sql, docs/design.md
-- "Finding transfers").
--
-- An account's transfers need nothing new: the two per-account indexes of
-- V1 (source, created_at …) and (destination, created_at …) serve both
-- halves, as they serve the history.

-- The whole log, newest first: the unfiltered list, and the time window.
-- transfer_id breaks ties in created_at (the rows of one batch share it) so
-- that a cursor (created_at, transfer_id) is one index position.
create index transfers_created_at_idx
    on ledger.transfers (created_at, transfer_id);

-- One currency's transfers, newest first. Without it a rare currency would
-- be found by walking the whole log's time index past every other one.
create index transfers_currency_created_at_idx
    on ledger.transfers (currency_code, created_at, transfer_id);

-- Metadata equality (`metadata @> '{"order_id": "A-17"}'`). jsonb_path_ops
-- indexes one hash per path-and-value, which is exactly containment, and is
-- smaller and cheaper to insert into than the default jsonb_ops (which also
-- indexes every key for `?`, which we never ask). Partial: rows without
-- metadata (most deposits and transfers in practice) cost the insert nothing.
create index transfers_metadata_idx
    on ledger.transfers using gin (metadata jsonb_path_ops)
    where metadata is not null;

-- The same for accounts: `GET /accounts?metadata[customer]=…`.
create index accounts_metadata_idx
    on ledger.accounts using gin (metadata jsonb_path_ops)
    where metadata is not null;
