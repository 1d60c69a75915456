-- API keys (issue 15): who may call the service, with which scope, over
-- which accounts, and who made each write.
--
-- A key is a random 256-bit secret the client sends as
-- `Authorization: Bearer lk_<64 hex digits>`. Only its SHA-256 is stored:
-- a leaked table gives nobody a working key. The secret is a uniform 256-bit
-- value, so a fast hash is enough (a slow password hash protects guessable
-- secrets; nothing here is guessable). `prefix` (the first 12 characters of
-- the key) is shown in listings and logs to tell keys apart, and is how a
-- presented key is found; the hash is then compared in constant time.
--
-- Like everything else in the ledger, keys are immutable rows: a revocation
-- is a row of its own, never an update, so "which keys were valid at time t"
-- stays answerable.
create table ledger.api_keys (
    key_id uuid primary key,
    prefix text not null check (prefix ~ '^lk_[0-9a-f]{9}$'),
    secret_sha256 bytea not null unique check (octet_length(secret_sha256) = 32),
    -- read < write < treasury < admin, each including the ones before it;
    -- metrics may only scrape /metrics.
    scope text not null check (scope in ('read', 'write', 'treasury', 'admin', 'metrics')),
    -- null: every account; otherwise the only accounts the key may read and
    -- move money out of.
    accounts uuid[] check (accounts is null or cardinality(accounts) between 1 and 1000),
    name text check (length(name) <= 200),
    created_at timestamptz not null default clock_timestamp(),
    -- The admin key that created it; null when made with `ledger keys create`.
    created_by uuid
);
create index api_keys_prefix_idx on ledger.api_keys (prefix);

create table ledger.api_key_revocations (
    key_id uuid primary key references ledger.api_keys (key_id),
    revoked_at timestamptz not null default clock_timestamp(),
    revoked_by uuid
);

-- Keys and revocations are immutable rows (see above): no update, delete or
-- truncate, whoever asks (ledger.make_append_only, V4).
call ledger.make_append_only('ledger.api_keys');
call ledger.make_append_only('ledger.api_key_revocations');

grant select, insert on ledger.api_keys, ledger.api_key_revocations to ledger_app;

-- Every write records the key that made it, in the write's own row, so it is
-- as immutable as the row (null: written with authentication off, or before
-- keys existed). Not part of a row's hash: the journal proves what moved,
-- and the author is a fact about the request, recorded beside it.
alter table ledger.transfers add column created_by uuid;
alter table ledger.accounts add column opened_by uuid;
-- A close is a write too: set once, in the same statement as closed_at.
alter table ledger.accounts add column closed_by uuid;
grant update (closed_by) on ledger.accounts to ledger_app;
alter table ledger.batches add column created_by uuid;

-- Idempotency keys are scoped per API key: the store records
-- `<api key id>:<client key>`, so one client can neither block nor probe
-- another's keys. A client key is up to 255 characters, a UUID and a colon
-- add 37.
alter table ledger.idempotency_keys drop constraint idempotency_keys_idempotency_key_check;
alter table ledger.idempotency_keys add constraint idempotency_keys_idempotency_key_check
    check (length(idempotency_key) between 1 and 292);
