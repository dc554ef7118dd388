# syntax=docker/dockerfile:1
#
# chatd image: the web client and the Admin UI built with npm, embedded into a static Go binary that runs as a
# non-root user on distroless.
#
#   docker build -t chatd:latest --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse HEAD) .
#   docker run --rm -p 3000:3000 chatd:latest
#
# The binary is configured only by CHATD_* environment variables (see the README and
# deploy/); it runs with no arguments and serves until SIGTERM.

ARG GO_VERSION=1.26
ARG NODE_VERSION=22

# ---- web client ---------------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS web
WORKDIR /src/web
# package.json and the lock first, so the npm layer is reused while only sources change.
COPY web/package.json web/package-lock.json ./
COPY web/adminui/package.json web/adminui/package-lock.json web/adminui/.npmrc ./adminui/
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund && npm --prefix adminui ci --no-audit --no-fund
COPY web/ ./
RUN npm run build && test -n "$(ls -A dist)" && npm --prefix adminui run build && test -f adminui/dist/index.html

# ---- Go binary ----------------------------------------------------------------------------
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# The web client's and the Admin UI's files, embedded by the binary with go:embed.
COPY --from=web /src/web/dist ./web/dist
COPY --from=web /src/web/adminui/dist ./web/adminui/dist
ARG VERSION=dev
ARG COMMIT=unknown
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/chatd ./cmd/chatd

# ---- runtime ------------------------------------------------------------------------------
# Static distroless: no shell, no package manager; the nonroot tag runs as 65532:65532.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="chatd" \
      org.opencontainers.image.description="Self-hosted chat server for socket.io v4 clients" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/chatd /chatd
USER 65532:65532
ENV CHATD_LISTEN=:3000
EXPOSE 3000
# No curl in distroless: the binary checks itself (GET /healthz on its own CHATD_LISTEN port).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/chatd", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/chatd"]
