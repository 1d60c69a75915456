# syntax=docker/dockerfile:1
#
# Multi-stage build of the ledger service and its load generator.
#
#   docker build --target ledger -t ledger .        the service (default target)
#   docker build --target load   -t ledger-load .   the goose load generator
#
# Both binaries come out of one builder stage, so building the second target
# reuses the first's compilation. The migrations in sql/ are embedded into the
# `ledger` binary at compile time; the runtime images hold only the binaries.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
COPY . .
# .git is not in the build context: pass the commit for ledger_build_info,
# e.g. `docker build --build-arg LEDGER_GIT_SHA=$(git rev-parse --short=12 HEAD) .`
ARG LEDGER_GIT_SHA=
ENV LEDGER_GIT_SHA=${LEDGER_GIT_SHA}
# The caches keep the crates.io downloads and the target dir between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ledger-server --bin ledger -p ledger-load --bin ledger-load \
    && install -D -m 0755 target/release/ledger /out/ledger \
    && install -D -m 0755 target/release/ledger-load /out/ledger-load

FROM debian:${DEBIAN_RELEASE}-slim AS runtime-base
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ledger \
    && useradd --system --uid 10001 --gid ledger --home-dir /nonexistent --shell /usr/sbin/nologin ledger \
    # Where the first start keeps the admin API key (a volume in compose).
    && install -d -o ledger -g ledger -m 0700 /keys
USER ledger:ledger

FROM runtime-base AS load
COPY --from=builder /out/ledger-load /usr/local/bin/ledger-load
ENTRYPOINT ["ledger-load"]

# Last, so that a plain `docker build .` builds the service.
FROM runtime-base AS ledger
COPY --from=builder /out/ledger /usr/local/bin/ledger
ENV LEDGER_LISTEN_ADDR=0.0.0.0:8080 \
    LEDGER_LOG_FORMAT=json \
    RUST_LOG=info
EXPOSE 8080
# SIGTERM (docker stop) makes the server finish in-flight requests, then exit.
STOPSIGNAL SIGTERM
ENTRYPOINT ["ledger"]
CMD ["serve"]
