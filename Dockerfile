# The ferrocd image. Build: docker build -t ferrocd .
# Stage 1 compiles the workspace's binaries; stage 2 is a small runtime image
# running them as a non-root user.
FROM rust:1.90-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
 && mkdir -p /out \
 && find target/release -maxdepth 1 -type f -executable -name 'ferrocd*' -exec cp {} /out/ \;

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/ferrocd --create-home ferrocd
COPY --from=build /out/ /usr/local/bin/
USER 10001
WORKDIR /var/lib/ferrocd
EXPOSE 2379 2380
ENTRYPOINT ["/usr/local/bin/ferrocd"]
