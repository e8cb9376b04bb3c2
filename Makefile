# Moobi: `make test` runs everything CI runs; `make demo` boots a small rack.
GO         ?= go
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
CACHE      ?= $(CURDIR)/.cache
export CGO_ENABLED = 0
export MOOBI_CACHE = $(CACHE)/lab

# Tests that need root and qemu skip when run by a normal user, and fail
# instead of skipping when run as root (as CI does).
ROOT_TESTS := $(shell [ "$$(id -u)" = 0 ] && echo 1)

.PHONY: build test vet fuzz demo clean

build: bin/moobi

bin/moobi: $(shell find . -name '*.go' -not -path './.cache/*') go.mod go.sum
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $@ ./appliance

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

test: vet bin/moobi
	MOOBI_REQUIRE_ROOT_TESTS=$(ROOT_TESTS) MOOBI_BIN=$(CURDIR)/bin/moobi \
	  $(GO) test -count=1 -timeout 75m ./...

# Short fuzzing campaigns over every parser (the seed corpora also run in `make test`).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecide -fuzztime $(FUZZTIME) ./bootserver/proxydhcp
	$(GO) test -run '^$$' -fuzz FuzzCleanName -fuzztime $(FUZZTIME) ./bootserver/fileroot
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./inventory
	$(GO) test -run '^$$' -fuzz FuzzAnnounce -fuzztime $(FUZZTIME) ./images/tracker
	$(GO) test -run '^$$' -fuzz FuzzParseCmdline -fuzztime $(FUZZTIME) ./initrd/node

demo: bin/moobi
	$(GO) run ./demo --moobi $(CURDIR)/bin/moobi --cache $(MOOBI_CACHE) --src $(CURDIR)

clean:
	rm -rf bin
