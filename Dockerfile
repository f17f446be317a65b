# syntax=docker/dockerfile:1
# A small static image of the operator: a musl build on Alpine, run on distroless/static as
# non-root (uid 65532). Not built in this repository's CI (no container engine runs there).
#
#   docker build -t <registry>/kestra-operator:0.1.0 .
#
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-alpine AS build
# ring (TLS) compiles a little C and assembly; jemalloc (the allocator) builds with make
RUN apk add --no-cache musl-dev make
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kestra-operator --bin kestra-operator \
    && cp target/release/kestra-operator /kestra-operator

FROM gcr.io/distroless/static:nonroot
COPY --from=build /kestra-operator /kestra-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/kestra-operator", "run"]
