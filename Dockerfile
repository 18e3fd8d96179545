# The gpu-slicer controller image: `docker build -t <registry>/gpu-slicer:0.1.0 .`
#
# Stage 1 builds the release binary with the locked dependencies; stage 2 is Debian
# bookworm-slim (glibc and libgcc_s, which the binary links; TLS is rustls on ring, so no
# OpenSSL) with only the CA certificates added (the AWS client trusts the system's roots),
# running as the non-root user 65532 that the Helm chart's securityContext expects.
# Any glibc base with CA certificates works as RUNTIME_IMAGE (a distroless "cc" image,
# say, from your registry mirror).

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /build
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

# Dependencies first, in their own layer: only Cargo.toml and Cargo.lock, with stub
# targets for every target the manifest names (cargo checks their paths), so this layer is
# rebuilt only when the dependencies change. Then the stub crate's own artifacts are
# deleted, so that the real sources are rebuilt whatever their mtimes.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && for b in planner controller live; do echo 'fn main() {}' > "benches/$b.rs"; done \
    && cargo build --release --locked --bin gpu-slicer \
    && rm -rf src benches \
    && rm -rf target/release/.fingerprint/gpu-slicer-* \
              target/release/deps/gpu_slicer-* target/release/deps/libgpu_slicer-* \
              target/release/gpu-slicer target/release/gpu-slicer.d

# The sources (see .dockerignore) and the real build. The installed copy is stripped: the
# release profile keeps line tables (`debug = "line-tables-only"`) for profiling the
# benches, which the image has no use for, and the prebuilt std brings its own debug info.
# `--strip-all` also drops the symbol table, so a backtrace (RUST_BACKTRACE=1) shows no
# function names; a panic's message still names its file and line. To keep the names,
# build with `--build-arg STRIP_FLAGS=--strip-debug`. Stripped, the binary is 28.6 MB
# (322.7 MB before; 2026-12-07); the image is the runtime base plus that, not measured
# here (no Docker daemon or registry where this was written).
ARG STRIP_FLAGS=--strip-all
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin gpu-slicer \
    && install -D -m 0755 target/release/gpu-slicer /out/gpu-slicer \
    && strip ${STRIP_FLAGS} /out/gpu-slicer \
    && /out/gpu-slicer --version

FROM ${RUNTIME_IMAGE}
RUN if command -v apt-get >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi
LABEL org.opencontainers.image.title="gpu-slicer" \
      org.opencontainers.image.description="Capacity planning for NVIDIA GPU time-slicing with Karpenter on EKS" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/gpu-slicer /gpu-slicer
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/gpu-slicer"]
CMD ["run"]
