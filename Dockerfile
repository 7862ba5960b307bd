# syntax=docker/dockerfile:1
# The image the Helm chart and docker-compose.yml run: every EcoEco binary, stripped, on
# Debian slim, as a non-root user.
#
#   docker build -t ghcr.io/ecoeco/backend:dev .
#   docker run --rm -p 8081-8083:8081-8083 -e DATABASE_URL=... ghcr.io/ecoeco/backend:dev
#
# Dependencies are compiled in their own layer (cargo-chef): a change to the project's code
# rebuilds only the workspace crates.

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
# make: the jemalloc allocator (tikv-jemalloc-sys) builds with its own configure and make.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
# cargo-chef is built once and cached with this layer.
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /src
# Release builds without debug info, stripped (the workspace profile keeps line tables for
# local backtraces). Same settings for `cook` and `build`, so the cooked layer is reused.
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=true \
    CARGO_TERM_COLOR=never

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
# The dependencies of the five shipped binaries; invalidated only by Cargo.toml/Cargo.lock.
RUN cargo chef cook --release --locked --recipe-path recipe.json \
      -p command-api -p query-api -p workers -p ecoeco
COPY . .
RUN cargo build --release --locked -p command-api -p query-api -p workers -p ecoeco \
 && mkdir -p /out \
 && cp target/release/command-api target/release/query-api target/release/workers \
       target/release/ecoctl target/release/ecoeco /out/

FROM debian:bookworm-slim AS runtime
# ca-certificates: TLS to PostgreSQL, RabbitMQ, SMTP and the OAuth/Kakao APIs.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 ecoeco \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin ecoeco \
 && mkdir -p /var/lib/ecoeco/objects \
 && chown 65532:65532 /var/lib/ecoeco/objects
COPY --from=build /out/ /usr/local/bin/
COPY ops/docker/healthcheck /usr/local/bin/healthcheck
# `ecoeco` (the default command) serves command-api on BIND_ADDR and query-api and the workers'
# ops routes on the next two ports. The chart and compose set BIND_ADDR per process.
ENV BIND_ADDR=0.0.0.0:8081 \
    LOG_FORMAT=json \
    STORAGE_URL=file:/var/lib/ecoeco/objects
EXPOSE 8081 8082 8083
USER 65532:65532
# GET /health on BIND_ADDR's port (liveness: the process serves HTTP). Kubernetes ignores it
# and uses the chart's probes.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/healthcheck"]
CMD ["/usr/local/bin/ecoeco"]
