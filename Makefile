# auditpipe — the two commands are `make run` and `make test`.
# Tools are installed under build/ (never by hand), so a fresh clone and CI
# need nothing but Go and the module proxy.

GO          ?= go
BIN         := build
TOOLS       := $(BIN)/tools
STATICCHECK := $(TOOLS)/staticcheck
BENCHSTAT   := $(TOOLS)/benchstat
STATICCHECK_VERSION := v0.8.2
BENCHSTAT_VERSION   := v0.0.0-20260908200009-22c9c6c9d4da
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)

FUZZTIME  ?= 5s
BENCHTIME ?= 1s
COUNT     ?= 6

.PHONY: all build run test race vet lint fuzz bench bench-compare clean

all: build

build: ## build build/auditpipe
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/auditpipe ./cmd/auditpipe

run: build ## normalize the bundled example payloads (the sidecar replaces this once it lands)
	$(BIN)/auditpipe normalize examples/payloads/*

test: vet ## unit, golden and property tests with the race detector
	$(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...

$(STATICCHECK):
	GOBIN=$(abspath $(TOOLS)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(BENCHSTAT):
	GOBIN=$(abspath $(TOOLS)) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)

lint: vet $(STATICCHECK) ## go vet + staticcheck
	$(STATICCHECK) ./...

# Every Fuzz target in the module, each for FUZZTIME (go test -fuzz takes
# one target in one package at a time).
fuzz: ## run every fuzz target for FUZZTIME
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

bench: ## transform benchmarks; results in build/bench.txt
	@mkdir -p $(BIN)
	$(GO) test -run '^$$' -bench 'Benchmark' -benchmem -benchtime $(BENCHTIME) -count $(COUNT) ./transformers/... | tee $(BIN)/bench.txt

# Compare two bench runs: make bench-compare OLD=build/old.txt NEW=build/bench.txt
bench-compare: $(BENCHSTAT)
	$(BENCHSTAT) $(OLD) $(NEW)

clean:
	rm -rf $(BIN)
