# herald for Cloud Run (docs/cloud-run.md): a stripped release binary on a distroless base that
# has glibc, libgcc and CA certificates and nothing else (no shell, no package manager).
#   docker build -t herald .
#   docker run -p 8080:8080 -e HERALD_WEBHOOK_SECRET=... herald

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies in a layer of their own, rebuilt only when Cargo.toml or Cargo.lock change: build
# them against placeholder sources, then forget what was built of herald itself.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/report.rs \
 && cargo build --release --locked --bin herald \
 && rm -rf src benches target/release/herald target/release/deps/herald-* \
           target/release/deps/libherald-* target/release/.fingerprint/herald-*
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
RUN cargo build --release --locked --bin herald \
 && strip target/release/herald

# distroless/cc: glibc and CA certificates (rustls verifies Google's and GitHub's certificates
# against them). Time zones are compiled into herald (jiff bundles the database).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/herald /usr/local/bin/herald
# A numeric user, so Kubernetes-style runtimes can check it is not root without a passwd file.
USER 65532:65532
WORKDIR /home/nonroot
# Cloud Run sets PORT (8080 by default) and K_SERVICE, which switches logs to Cloud Logging JSON.
ENV PORT=8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/herald"]
CMD ["serve"]
