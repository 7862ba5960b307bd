# The image the Helm chart runs: every binary on a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bins && \
    cp target/release/command-api target/release/query-api target/release/workers target/release/ecoctl target/release/ecoeco /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/command-api /usr/local/bin/query-api /usr/local/bin/workers /usr/local/bin/ecoctl /usr/local/bin/ecoeco /usr/local/bin/
USER 65534
CMD ["/usr/local/bin/ecoeco"]
