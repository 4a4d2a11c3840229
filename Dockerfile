# syntax=docker/dockerfile:1
# kconn: a release build on Debian bookworm, and a slim runtime image that carries what librdkafka loads at
# run time: OpenSSL, Cyrus SASL with its GSSAPI plugin, libcurl (the OIDC token flow of SASL/OAUTHBEARER),
# the MIT Kerberos libraries and kinit (librdkafka and kconn's KerberosTicket check run it). tests/dockerfile.rs checks this list against the binary.
#
#   docker build -t <registry>/kconn:0.1.0 .
#   docker run --rm <registry>/kconn:0.1.0 check --offline -f /examples

ARG RUST_VERSION=1.89
FROM rust:${RUST_VERSION}-slim-bookworm AS build
# librdkafka is built from source by rdkafka-sys, against the system's SSL, SASL, curl, zlib and zstd.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ make pkg-config perl libssl-dev libsasl2-dev \
      zlib1g-dev libzstd-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY vendor vendor
COPY src src
COPY benches benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin kconn \
 && install -m 0755 target/release/kconn /usr/local/bin/kconn

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      libssl3 \
      libsasl2-2 \
      libsasl2-modules \
      libsasl2-modules-gssapi-mit \
      libgssapi-krb5-2 \
      libkrb5-3 \
      krb5-user \
      zlib1g \
      libzstd1 \
      libcurl4 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 kconn \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --shell /usr/sbin/nologin kconn
COPY --from=build /usr/local/bin/kconn /usr/local/bin/kconn
COPY examples /examples
# Keytabs, ticket caches and key files go to TMPDIR (the chart mounts an in-memory emptyDir there; the
# root filesystem is read-only).
ENV TMPDIR=/tmp
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kconn"]
CMD ["run"]
