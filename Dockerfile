# syntax=docker/dockerfile:1
#
# Solo in a container: build with the Rust toolchain, run `solo serve` on a
# slim Debian. The daemon needs root, a writable cgroup tree and extra
# capabilities; see docs/operations.md#docker for the `docker run` flags.
#
#   docker build -t solo .
#   docker run -d --name solo --privileged --stop-timeout 60 -v solo-state:/var/lib/solo solo

# ---------------------------------------------------------------- build
FROM rust:bookworm AS build
WORKDIR /src
# Sources only (see .dockerignore); build.rs compiles the proto with protox,
# so no protoc is needed, and the bundled SQLite uses the image's gcc.
# rust-toolchain.toml asks for the stable channel (with rustfmt and clippy);
# rustup fetches it on first use if the image's toolchain is not named so.
COPY . .
# libseccomp-dev: the profiles' seccomp filters are compiled with libseccomp.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libseccomp-dev \
 && rm -rf /var/lib/apt/lists/*
# The static build (glibc, libseccomp and libgcc linked in; see
# scripts/build-static). Cache the registry and target dir between builds;
# copy the binary out of the cache mount so the next stage can use it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    SOLO_SKIP_SETUP=1 scripts/build-static --locked \
 && install -D -m 0755 target/static/solo /out/solo

# -------------------------------------------------------------- runtime
FROM debian:bookworm-slim
# python3 so script artifacts with `--interpreter python3` run (sh is in
# the base image); the binary is static, so no libseccomp2. Versions come
# from the Debian release; pinning them would break the build at every
# security update.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/solo /usr/local/bin/solo
# State (database, artifacts, service logs) outlives the container.
VOLUME ["/var/lib/solo"]
# Runs as root on purpose: solo serve creates a cgroup per service and
# switches each service to its own uid. It sets umask 077 itself, so the
# database and logs stay private (the state dir is traversable by service
# uids). The exec form keeps solo serve as PID 1, so it receives SIGTERM
# from `docker stop` and stops its services gracefully; arguments given to
# `docker run` are appended to `solo serve`.
ENTRYPOINT ["/usr/local/bin/solo", "serve"]
CMD []
