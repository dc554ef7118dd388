# chatd's everyday commands. `make run` and `make test` are the two commands
# the README opens with; .ci/run calls `make test` with the race detector on.

GO      ?= go
NPM     ?= npm
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: run test web build gotest e2e fuzz bench

## run: build the web client, then run one chatd on :3000 (in-memory, no Redis)
run: web
	$(GO) run ./cmd/chatd

## build: a static chatd binary with the web client inside
build: web
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o chatd ./cmd/chatd

## web: install the web client's npm packages and bundle it into web/dist
web:
	$(NPM) --prefix web ci --no-audit --no-fund --loglevel=error
	$(NPM) --prefix web run build

## test: every test: go vet, Go tests and the web client's unit tests, then the
## end-to-end tests, all with the race detector
test: web gotest e2e

gotest: web
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 8m ./...
	$(NPM) --prefix web test

## e2e: the end-to-end tests (real chatd binaries built with the race
## detector, official socket.io-client, the AWS SDK, nginx, Chromium)
e2e: web
	$(NPM) --prefix e2e ci --no-audit --no-fund --loglevel=error
	$(GO) build -race -o e2e/.bin/chatd ./cmd/chatd
	CHATD_BIN=$(CURDIR)/e2e/.bin/chatd $(NPM) --prefix e2e test

## fuzz: fuzz the event payload decoders for a minute
fuzz:
	$(GO) test ./server -run '^$$' -fuzz FuzzDecode -fuzztime 60s

## bench: chatd against Node's socket.io, every scenario (about 15 minutes; see bench/RESULTS.md)
bench:
	bench/compare.sh
