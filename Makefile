# Moobi: `make test` runs everything CI runs; `make demo` boots a small rack.
GO         ?= go
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
CACHE      ?= $(CURDIR)/.cache
export CGO_ENABLED = 0
export MOOBI_CACHE = $(CACHE)/lab

# Tests that need root and qemu skip when run by a normal user, and fail
# instead of skipping when run as root (as CI does).
ROOT_TESTS := $(shell [ "$$(id -u)" = 0 ] && echo 1)

.PHONY: build initrd test vet fuzz demo clean bench

build: bin/moobi

# The node initramfs (u-root; /init is the node client), built from this tree,
# without a boot signing key: add the appliance's with
# `moobi initrd build --config hosts.yaml --base bin/node-initrd.cpio.gz`.
initrd: bin/node-initrd.cpio.gz

bin/moobi: $(shell find . -name '*.go' -not -path './.cache/*') go.mod go.sum
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $@ ./appliance

bin/node-initrd.cpio.gz: bin/moobi
	bin/moobi initrd build --base-only --out bin/node-initrd.cpio.gz --src .

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

test: vet build initrd
	MOOBI_REQUIRE_ROOT_TESTS=$(ROOT_TESTS) MOOBI_BIN=$(CURDIR)/bin/moobi \
	  $(GO) test -count=1 -timeout 75m ./...

# Short fuzzing campaigns over every parser (the seed corpora also run in `make test`).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecide -fuzztime $(FUZZTIME) ./bootserver/proxydhcp
	$(GO) test -run '^$$' -fuzz FuzzDecide -fuzztime $(FUZZTIME) ./bootserver/fulldhcp
	$(GO) test -run '^$$' -fuzz FuzzParseLeases -fuzztime $(FUZZTIME) ./bootserver/fulldhcp
	$(GO) test -run '^$$' -fuzz FuzzCleanName -fuzztime $(FUZZTIME) ./bootserver/fileroot
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./inventory
	$(GO) test -run '^$$' -fuzz FuzzParseBMC -fuzztime $(FUZZTIME) ./inventory
	$(GO) test -run '^$$' -fuzz FuzzAnnounce -fuzztime $(FUZZTIME) ./images/tracker
	$(GO) test -run '^$$' -fuzz FuzzParseCmdline -fuzztime $(FUZZTIME) ./initrd/node
	$(GO) test -run '^$$' -fuzz FuzzDecodeSuggest -fuzztime $(FUZZTIME) ./images/swarm
	$(GO) test -run '^$$' -fuzz FuzzParseHeader -fuzztime $(FUZZTIME) ./bootsign
	$(GO) test -run '^$$' -fuzz FuzzParseKey -fuzztime $(FUZZTIME) ./bootsign
	$(GO) test -run '^$$' -fuzz FuzzDecodeEvent -fuzztime $(FUZZTIME) ./nodeapi
	$(GO) test -run '^$$' -fuzz FuzzDecodeBootConfig -fuzztime $(FUZZTIME) ./nodeapi
	$(GO) test -run '^$$' -fuzz FuzzParseRequest -fuzztime $(FUZZTIME) ./bootserver/tftpd
	$(GO) test -run '^$$' -fuzz FuzzClipText -fuzztime $(FUZZTIME) ./nodes

# moobi vs dnsmasq (proxy DHCP), tftpd-hpa (TFTP) and nginx (HTTP), a rack
# fetching an image by BitTorrent vs plain HTTP vs the physical bound, the
# appliance's footprint, and a VM's boot phases, on this machine, in network
# namespaces (root); see docs/benchmarks.md. As root it installs the Debian
# packages the run needs and keeps tftpd-hpa's own service off port 69 in
# the root namespace.
BENCH_OUT  ?= $(CURDIR)/bin/bench-results.md
BENCH_ARGS ?=
bench: build initrd
	@if [ "$$(id -u)" = 0 ]; then \
	  pkgs="iproute2 kea-admin dnsmasq-base tftpd-hpa nginx ipxe squashfs-tools curl qemu-system-x86 ipxe-qemu ovmf qemu-utils kmod cpio busybox-static"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null; } || exit 1; \
	  if [ -d /run/systemd/system ]; then systemctl disable --now tftpd-hpa.service && systemctl mask tftpd-hpa.service; \
	  else service tftpd-hpa stop; update-rc.d tftpd-hpa disable; fi >/dev/null 2>&1 || true; \
	fi
	$(GO) run ./bench --moobi $(CURDIR)/bin/moobi --out $(BENCH_OUT) $(BENCH_ARGS)

demo: bin/moobi
	$(GO) run ./demo --moobi $(CURDIR)/bin/moobi --cache $(MOOBI_CACHE) --src $(CURDIR)

clean:
	rm -rf bin
