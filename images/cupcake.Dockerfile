# syntax=docker/dockerfile:1
# The reconciler image: `cupcake` (cupcake run, plan, status, ...).
# Build from the repository root:
#   docker build -f images/cupcake.Dockerfile -t ghcr.io/ricardomolendijk/cupcake:0.1.0 .
#
# Not static: git2's https transport links the system OpenSSL (libgit2 has no
# rustls backend), so the binary needs glibc + libssl3/libcrypto3. zlib and
# libssh2 are linked in statically (LIBZ_SYS_STATIC, libssh2-sys vendored). The
# runtime is distroless "cc" of the same Debian release as the builder (it ships
# glibc, libgcc_s, libssl3, ca-certificates, tzdata), as user nonroot (65532).
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM docker.io/library/rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
ENV LIBZ_SYS_STATIC=1 CARGO_TERM_COLOR=never
WORKDIR /src
# The whole workspace: every member's manifest must be there for cargo to load it,
# and the binary compiles in policies/ and schemas/ (include_str!).
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY api api
COPY core core
COPY reconciler reconciler
COPY agent agent
COPY xtask xtask
COPY tests/e2e tests/e2e
COPY policies policies
COPY schemas schemas
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p cupcake-reconciler --bin cupcake \
 && mkdir -p /out \
 && cp target/release/cupcake /out/cupcake \
 && ldd /out/cupcake

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/cupcake /usr/local/bin/cupcake
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cupcake"]
CMD ["run"]
