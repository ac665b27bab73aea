# Multi-stage build of the banksync binary (server, CLI and simulator in one).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p banksync && strip target/release/banksync

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 banksync
WORKDIR /app
COPY --from=build /src/target/release/banksync /usr/local/bin/banksync
COPY config ./config
COPY migrations ./migrations
COPY crates/saltedge-sim/keys ./crates/saltedge-sim/keys
USER banksync
ENTRYPOINT ["banksync"]
