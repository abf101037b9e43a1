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
# The S3 server the s3 output is tested against (testenv/s3test); a Go
# build of about two minutes, cached under build/tools.
VERSITYGW   := $(TOOLS)/versitygw
VERSITYGW_VERSION   := v1.8.0
# The real helm for the chart's tests (charts/charttest: helm lint and helm
# template of charts/auditpipe); a Go build of a few minutes, cached under
# build/tools like versitygw. The tests take $HELM_BIN, else this one.
HELM        := $(TOOLS)/helm
HELM_VERSION        := v4.3.2
# A real Fluent Bit (5.1.1, Linux x86-64) for the plugin's tests in
# testenv/fluentbittest, unpacked once from ../shared/tools when the machine
# has it (.ci/run makes it and sets FLB_BIN). `make test` uses it when it is
# there and never needs it: without FLB_BIN those tests skip.
FLUENTBIT    := $(TOOLS)/fluent-bit
FLUENTBIT_XZ ?= ../shared/tools/fluent-bit.xz
export FLB_BIN ?= $(if $(wildcard $(FLUENTBIT)),$(abspath $(FLUENTBIT)))
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Build tags for everything make builds, tests and benchmarks (exported in
# GOFLAGS, so the binaries tests build with go build get them too; the
# Dockerfile passes the same, and cmd/auditpipe's TestBinaryLinksOnlyCalledMethods
# checks both). grpcnotrace keeps grpc (go-plugin's transport) from
# importing golang.org/x/net/trace, whose init puts html/template in reach:
# template execution calls methods by name, and then the linker keeps every
# exported method of every type in the binary. Without it the sidecar's
# code and read-only data are 37.5 MB instead of 26.1, idle RSS 5 MiB more.
BUILDTAGS   := grpcnotrace
override export GOFLAGS := $(strip $(GOFLAGS) -tags=$(BUILDTAGS))
LDFLAGS     := -X main.version=$(VERSION)

# A count, not a duration: a duration-bounded go test -fuzz (Go 1.26) can
# fail with "context deadline exceeded" and no crasher when the deadline
# races a busy worker (go.dev/issue/75804). FUZZTIME=60s works for a longer
# local session.
FUZZTIME  ?= 20000x
BENCHTIME ?= 1s
COUNT     ?= 6

.PHONY: all build plugin run test testdeps testenv race vet lint fuzz bench bench-outputs bench-kafka bench-external proto plugin-example bench-compare icount clean

all: build

build: ## build build/auditpipe
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/auditpipe ./cmd/auditpipe

run: build ## start the sidecar with examples/sidecar/local.yaml (127.0.0.1:8080, data in ./data)
	$(BIN)/auditpipe sidecar --config examples/sidecar/local.yaml

test: vet $(VERSITYGW) $(HELM) $(if $(wildcard $(FLUENTBIT_XZ)),$(FLUENTBIT)) ## unit, golden, property and real-peer tests with the race detector
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run 'TestTransformMemory' ./transformers/formats/

# Test peers that are programs, not Go packages. versitygw builds with Go;
# kcat (an independent Kafka client) comes from Debian's apt and needs root,
# so only CI, or a developer who wants that test, runs `make testdeps`;
# without kcat that one test skips (under CI=true it fails instead).
$(VERSITYGW):
	GOBIN=$(abspath $(TOOLS)) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

$(HELM):
	GOBIN=$(abspath $(TOOLS)) $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

$(FLUENTBIT): $(FLUENTBIT_XZ)
	@mkdir -p $(TOOLS)
	xz -dc $< > $@.tmp && chmod +x $@.tmp && mv $@.tmp $@

testenv: $(VERSITYGW) ## run Kafka, Elasticsearch, S3 and webhook peers on 127.0.0.1 (writes build/testenv.yaml and build/testenv.env)
	$(GO) run ./testenv/cmd/testenv --config-out $(BIN)/testenv.yaml --env-out $(BIN)/testenv.env

testdeps: $(VERSITYGW) $(HELM) ## install the external test peers (kcat and Alertmanager with apt, versitygw and helm with go install)
	@{ command -v kcat && test -x /usr/bin/prometheus-alertmanager; } >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq kcat prometheus-alertmanager >/dev/null; }
	@kcat -V | head -1
	@/usr/bin/prometheus-alertmanager --version 2>&1 | head -1

vet:
	$(GO) vet ./...

$(STATICCHECK):
	GOBIN=$(abspath $(TOOLS)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(BENCHSTAT):
	GOBIN=$(abspath $(TOOLS)) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)

lint: vet $(STATICCHECK) ## gofmt, go vet and staticcheck
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './build/*')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt -l: not formatted:"; echo "$$unformatted"; exit 1; fi
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

# One core (-cpu 1), as the figures in the README are stated. The COUNT
# rounds run every benchmark once each, interleaved, so that the machine's
# slow spells spread over all of them instead of sinking one.
bench: ## transform benchmarks on one core; results in build/bench.txt
	@mkdir -p $(BIN)
	@rm -f $(BIN)/bench.txt
	@for i in $$(seq $(COUNT)); do \
	  $(GO) test -run '^$$' -bench 'Transform|Decode|EncodeEvent' -benchmem -cpu 1 -benchtime $(BENCHTIME) -count 1 ./eventjson ./transformers/formats/ | tee -a $(BIN)/bench.txt; \
	done
	@$(MAKE) -s $(BENCHSTAT) && $(BENCHSTAT) $(BIN)/bench.txt

# The outputs: each encoder alone and each output writing to its testenv
# peer (in the same process, so Write figures include the peer's work).
bench-outputs: $(VERSITYGW) ## output and encoder benchmarks on one core; results in build/bench-outputs.txt
	@mkdir -p $(BIN)
	@rm -f $(BIN)/bench-outputs.txt
	@for i in $$(seq $(COUNT)); do \
	  $(GO) test -run '^$$' -bench 'Encode|AppendStructured|Write' -benchmem -cpu 1 -benchtime $(BENCHTIME) -count 1 ./eventjson ./outputs/... | tee -a $(BIN)/bench-outputs.txt; \
	done
	@$(MAKE) -s $(BENCHSTAT) && $(BENCHSTAT) $(BIN)/bench-outputs.txt

# The Kafka source: messages/s from kfake into the queue for one sidecar
# and for two in one group, all in one process sharing the machine's
# cores. benchstat prints the median of COUNT runs of each and the change
# from one instance to two.
bench-kafka: ## Kafka source throughput, one vs two instances; results in build/bench-kafka.txt
	@mkdir -p $(BIN)
	$(GO) test -run '^$$' -bench 'KafkaSource' -benchtime 1x -count $(COUNT) ./sidecar/ | tee $(BIN)/bench-kafka.txt
	@$(MAKE) -s $(BENCHSTAT) && $(BENCHSTAT) -col /instances $(BIN)/bench-kafka.txt

plugin: ## build the Fluent Bit output plugin: build/out_auditpipe.so (load with fluent-bit -e, or a plugins file)
	$(GO) build -trimpath -buildmode=c-shared -ldflags '$(LDFLAGS)' -o $(BIN)/out_auditpipe.so ./plugin

proto: ## regenerate transformers/external/proto (protoc via apt if missing; Go plugins under build/tools)
	GO=$(GO) transformers/external/proto/gen.sh

bench-external: ## external transformer vs the same function in-process, host on one core
	$(GO) test -run '^$$' -bench 'External|InProcess' -benchmem -cpu 1 -count $(COUNT) ./transformers/external/

plugin-example: ## build the example external transformer into build/github-audit-plugin
	$(GO) build -o $(BIN)/github-audit-plugin ./examples/transformer-plugin

# Compare two bench runs: make bench-compare OLD=build/old.txt NEW=build/bench.txt
bench-compare: $(BENCHSTAT)
	$(BENCHSTAT) $(OLD) $(NEW)

# Instructions per transform, which unlike time do not drift with the
# machine: callgrind runs the workload 1000 and 3000 times and the difference
# is divided by 2000. Needs valgrind. Under valgrind SHA-256 runs its AVX2
# code, not SHA-NI, so hashing counts more than it costs on the machine.
# Go's preemption signals crash valgrind 3.19, hence asyncpreemptoff.
ICOUNT_FILE   ?= transformers/formats/testdata/bench/spacelift.wire.json
ICOUNT_FORMAT ?= spacelift
icount:
	@mkdir -p $(BIN)
	$(GO) test -c -o $(BIN)/formats.test ./transformers/formats/
	@for n in 1000 3000; do \
	  ICOUNT_N=$$n ICOUNT_FILE=$(abspath $(ICOUNT_FILE)) ICOUNT_FORMAT=$(ICOUNT_FORMAT) GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1 \
	  valgrind --tool=callgrind --callgrind-out-file=$(BIN)/callgrind.$$n $(BIN)/formats.test -test.run '^$$' -test.bench InstructionCount -test.benchtime 1x 2>&1 \
	  | sed -n 's/.*Collected : //p' > $(BIN)/icount.$$n; done
	@echo "$(ICOUNT_FORMAT) $(ICOUNT_FILE): $$(( ($$(cat $(BIN)/icount.3000) - $$(cat $(BIN)/icount.1000)) / 2000 )) instructions per transform"

# Instructions the sidecar process executes per request, end to end
# (net/http, transform, fsync'd queue, Kafka delivery), for each source:
# loadgen runs it under callgrind for 1000 and 3000 requests from 64
# clients. Wall-clock figures drift on a shared machine; these do not
# (two runs agree within 0.3 %). Needs valgrind.
icount-sidecar: build
	@for s in spacelift alertmanager app; do \
	  $(GO) run ./testenv/cmd/loadgen --sidecar $(BIN)/auditpipe --source $$s --icount --requests 1000 | tail -1; done

clean:
	rm -rf $(BIN)
