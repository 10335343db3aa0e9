# syntax=docker/dockerfile:1
# polo-exporter: multi-stage build, small runtime image, non-root user.
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
ARG POLO_EXPORTER_REVISION=unknown
ENV POLO_EXPORTER_REVISION=${POLO_EXPORTER_REVISION}
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
RUN cargo build --release --locked --bin polo-exporter

FROM debian:bookworm-20241111-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin polo
COPY --from=build /src/target/release/polo-exporter /usr/local/bin/polo-exporter
USER 10001:10001
EXPOSE 9820
ENTRYPOINT ["/usr/local/bin/polo-exporter"]
CMD ["--config.file=/etc/polo-exporter/polo-exporter.yml"]
