# chatd's everyday commands. `make run` and `make test` are the two commands
# the README opens with; .ci/run calls `make test` with the race detector on.

GO      ?= go
NPM     ?= npm
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: run test check lint-install vuln web webtest build gotest e2e fuzz bench

# GOLANGCI_LINT is golangci-lint v2; .ci/run installs the pinned version
# (GOLANGCI_LINT_VERSION) with `go install` when it is missing.
GOLANGCI_LINT         ?= $(shell command -v golangci-lint 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/golangci-lint)
GOLANGCI_LINT_VERSION ?= v2.15.0

## run: build the web client, then run one chatd on 127.0.0.1:3000 (in memory, no Redis)
run: web
	$(GO) run ./cmd/chatd

## build: a static chatd binary with the web client inside
build: web
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o chatd ./cmd/chatd

## web: install the web client's npm packages and bundle it into web/dist,
## and copy the socket.io Admin UI into web/adminui/dist
web:
	$(NPM) --prefix web ci --no-audit --no-fund --loglevel=error
	$(NPM) --prefix web run build
	$(NPM) --prefix web/adminui ci --no-audit --no-fund --loglevel=error
	$(NPM) --prefix web/adminui run build

## test: every test: the checks, the web client and Admin UI builds (so that
## the Go tests check the embedded files too), Go tests with the race
## detector, the web client's unit tests, then the end-to-end tests
test: check web gotest webtest e2e

## check: gofmt, go vet and golangci-lint (.golangci.yml) on the whole tree;
## installs golangci-lint at the pinned version when it is missing
check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@test -x "$(GOLANGCI_LINT)" || $(MAKE) --no-print-directory lint-install
	$(GOLANGCI_LINT) run ./...

## lint-install: golangci-lint at the pinned version, into GOPATH/bin
lint-install:
	$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

## vuln: govulncheck against the Go vulnerability database (needs network
## access to vuln.go.dev, so it is not part of check)
vuln:
	$(GO) run golang.org/x/vuln/cmd/govulncheck@latest ./...

## gotest: the Go tests with the race detector; they need no npm (the web
## client's page is embedded when web/dist was built, a placeholder otherwise)
gotest:
	$(GO) test -race -count=1 -timeout 8m ./...

## webtest: the web client's unit tests
webtest:
	$(NPM) --prefix web ci --no-audit --no-fund --loglevel=error
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
