# qbit-gluetun-sync: build on Debian 13 with the project's own script and make target, run from
# a distroless image of the same release (the binary links glibc dynamically, so the two glibc
# versions must match) as nonroot. The binary needs nothing but glibc.
#
#   docker build -t qbit-gluetun-sync .
#   docker buildx build --platform linux/amd64,linux/arm64 -t qbit-gluetun-sync .
#
# Nothing here names an architecture: each platform's build stage runs on that platform (under
# emulation where it is not the builder's own) and gets that architecture's packages.

FROM debian:trixie AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make clean && make build && strip --strip-all build/release/qbit-gluetun-sync

FROM gcr.io/distroless/base-debian13:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="qbit-gluetun-sync" \
      org.opencontainers.image.description="Keeps qBittorrent's listening port equal to Gluetun's forwarded port, and serves its WebUI through an allow-listed reverse proxy" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=build /src/build/release/qbit-gluetun-sync /usr/local/bin/qbit-gluetun-sync
USER nonroot
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/qbit-gluetun-sync", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/qbit-gluetun-sync"]
