# The image the manifests in deploy/ name: sshfleet on a minimal, non-root runtime.
#   docker build -t registry.example.internal/sshfleet:0.1.0 .
#
# Stage 1 builds the release binary with the locked dependencies (rustls, bundled SQLite:
# nothing to link at run time but glibc). Stage 2 is distroless: no shell, no package
# manager, user 65532.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
COPY benches ./benches
COPY tests ./tests
COPY inputs ./inputs
RUN cargo build --release --locked --bin sshfleet \
 && install -m 0755 target/release/sshfleet /sshfleet

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /sshfleet /usr/local/bin/sshfleet
USER 65532:65532
WORKDIR /reports
ENTRYPOINT ["/usr/local/bin/sshfleet"]
CMD ["--help"]
