# dyplsq: make demo, make test, make chaos, make bench.
GO ?= go
WITH_REDIS = ./.ci/with-redis

.PHONY: all build bins vet lint test chaos bench demo demo-ui fmt

all: build

build:
	$(GO) build ./...

## bins: the commands (worker, enqueue, dyplsim, demo, bench) into bin/
bins:
	$(GO) build -o bin/ ./cmd/...

## demo: the whole pipeline on a throwaway Redis, then everything stops.
demo: bins
	./bin/demo

## demo-ui: the same, and everything keeps running with the UI until Ctrl-C.
demo-ui: bins
	./bin/demo --keep

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi

## lint: golangci-lint (the version pinned here, installed into .bin/ with
## go install on first use) with .golangci.yml, with and without the chaos tag.
GOLANGCI_LINT_VERSION = v2.15.0
GOLANGCI_LINT = $(CURDIR)/.bin/golangci-lint-$(GOLANGCI_LINT_VERSION)

$(GOLANGCI_LINT):
	GOBIN=$(CURDIR)/.bin $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(CURDIR)/.bin/golangci-lint $@

lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...
	$(GOLANGCI_LINT) run --build-tags chaos ./...

## test: vet, lint and every unit and integration test with the race
## detector, against a real Redis (REDIS_URL, or a throwaway redis-server).
test: vet lint
	$(WITH_REDIS) $(GO) test -race -count=1 -timeout 9m ./...

## chaos: the longer suites (crashes, outages, Cluster, fuzzing, browser).
TEST_ARTIFACTS ?= $(or $(TMPDIR),/tmp)/dyplsq-test-artifacts
export TEST_ARTIFACTS

chaos:
	@mkdir -p $(TEST_ARTIFACTS)
	$(WITH_REDIS) $(GO) test -race -count=1 -timeout 30m -tags chaos -run 'Chaos' -skip 'TestChaosChecker$$' ./...
	@# The fault-injection checker's 200 schedules run without the race
	@# detector (four times the rate); its broken-fence proof runs above.
	$(WITH_REDIS) $(GO) test -count=1 -timeout 40m -tags chaos -run 'TestChaosChecker$$' ./worker/
	$(GO) test -run '^$$' -fuzz '^FuzzMask$$' -fuzztime 20s ./mask/
	$(GO) test -run '^$$' -fuzz '^FuzzReadFile$$' -fuzztime 20s ./enqueuecli/
	$(GO) test -run '^$$' -fuzz '^FuzzExportRoundTrip$$' -fuzztime 15s ./enqueuecli/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 15s ./tasks/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeOnePass$$' -fuzztime 10s ./tasks/
	$(GO) test -run '^$$' -fuzz '^FuzzRecord$$' -fuzztime 15s ./deadletter/
	$(GO) test -run '^$$' -fuzz '^FuzzMaskJSON$$' -fuzztime 15s ./monitor/
	$(GO) test -run '^$$' -fuzz '^FuzzRPCSignature$$' -fuzztime 15s ./dyplsim/
	$(GO) test -run '^$$' -fuzz '^FuzzACS3Signature$$' -fuzztime 15s ./dyplsim/

## bench: benchmarks beside bare asynq on a private Redis; see BENCHMARKS.md.
bench:
	$(GO) run ./cmd/bench

fmt:
	gofmt -w $$(git ls-files '*.go')
