# The two commands a fresh machine needs are `make demo` and `make test` (see README.md).
GO      ?= go
PKGS    ?= ./...
FUZZTIME ?= 60s
# VERSION is stamped into both programs and gossiped to the other appliances (appliance get members).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION) -X github.com/xdpsvc/lb/appliance/daemon.version=$(VERSION)

.PHONY: all deps build test bench compare fuzz lint demo clean

all: build

# deps: install the Debian packages the tests and the demo use (nftables, ethtool, tcpdump) when root.
deps:
	@./scripts/deps.sh

# build: compile every package and the two programs into bin/, stamped with VERSION (git describe).
build:
	$(GO) build $(PKGS)
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/appliance ./appliance
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/bench ./bench

# test: vet, then every test with the race detector; privileged lab tests run when root and skip otherwise.
test: deps
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

# bench: the micro-benchmarks of the fast path, with allocations reported.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# compare: the side-by-side benchmark of BENCHMARKS.md (appliance vs kube-proxy-style nftables vs the
# AF_XDP ceiling), as root; writes bench/results/.
compare: deps build
	./bin/bench compare --appliance bin/appliance --rounds 5 --duration 3s --profile --out bench/results

# fuzz: run every fuzz target for FUZZTIME each (default 60s).
fuzz:
	@./scripts/fuzz.sh $(FUZZTIME)

# lint: formatting and vet must be clean.
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)

# demo: bring up the lab, run the appliance on it, show all three Service types answering, tear down.
demo: deps build
	./scripts/demo.sh

# clean: remove built programs and any lab namespaces a crashed run left behind.
clean:
	rm -rf bin/
