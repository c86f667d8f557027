# syntax=docker/dockerfile:1
# The node agent image: `cupcake-agent` (the chart runs it privileged, hostPID, with
# the host's / at /host). Build from the repository root:
#   docker build -f images/cupcake-agent.Dockerfile -t ghcr.io/ricardomolendijk/cupcake-agent:0.1.0 .
#
# The kubeadm executor runs host commands through `chroot /host ...` (coreutils) or,
# with --host-root /, `nsenter --target 1 ...` (util-linux): the runtime needs both,
# so it is Debian slim, not distroless. It runs as root: the chart grants the
# privilege (only this container is privileged). The binary needs only glibc and
# libgcc_s (no OpenSSL: the backup upload and the API client use rustls).
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM docker.io/library/rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
ENV CARGO_TERM_COLOR=never
WORKDIR /src
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
    cargo build --release --locked -p cupcake-agent --bin cupcake-agent \
 && mkdir -p /out \
 && cp target/release/cupcake-agent /out/cupcake-agent \
 && ldd /out/cupcake-agent

FROM docker.io/library/debian:${DEBIAN_RELEASE}-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends util-linux coreutils ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && command -v nsenter && command -v chroot
COPY --from=build /out/cupcake-agent /usr/local/bin/cupcake-agent
USER 0:0
ENTRYPOINT ["/usr/local/bin/cupcake-agent"]
