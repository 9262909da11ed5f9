# herald for Cloud Run: a static-ish release binary on a small Debian base.
# docker build -t herald . && docker run -p 8080:8080 -e HERALD_WEBHOOK_SECRET=... herald
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
RUN cargo build --release --locked --bin herald

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/herald /usr/local/bin/herald
# Cloud Run sets PORT; logs switch to Cloud Logging JSON because it sets K_SERVICE.
ENV PORT=8080
USER nobody
WORKDIR /tmp
ENTRYPOINT ["herald"]
CMD ["serve"]
