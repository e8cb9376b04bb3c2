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
	$(GO) test -run '^$$' -fuzz FuzzMatch -fuzztime $(FUZZTIME) ./power
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime $(FUZZTIME) ./rollout
	$(GO) test -run '^$$' -fuzz FuzzApply -fuzztime $(FUZZTIME) ./overlay
	$(GO) test -run '^$$' -fuzz FuzzCheck -fuzztime $(FUZZTIME) ./bootserver/adminauth
	$(GO) test -run '^$$' -fuzz FuzzAnnounce -fuzztime $(FUZZTIME) ./images/tracker
	$(GO) test -run '^$$' -fuzz FuzzParseCmdline -fuzztime $(FUZZTIME) ./initrd/node
	$(GO) test -run '^$$' -fuzz FuzzParseAliases -fuzztime $(FUZZTIME) ./initrd/modload
	$(GO) test -run '^$$' -fuzz FuzzParseDep -fuzztime $(FUZZTIME) ./initrd/modload
	$(GO) test -run '^$$' -fuzz FuzzGlob -fuzztime $(FUZZTIME) ./initrd/modload
	$(GO) test -run '^$$' -fuzz FuzzDecodeSuggest -fuzztime $(FUZZTIME) ./images/swarm
	$(GO) test -run '^$$' -fuzz FuzzParseSums -fuzztime $(FUZZTIME) ./images/piecestore
	$(GO) test -run '^$$' -fuzz FuzzParseHeader -fuzztime $(FUZZTIME) ./bootsign
	$(GO) test -run '^$$' -fuzz FuzzParseKey -fuzztime $(FUZZTIME) ./bootsign
	$(GO) test -run '^$$' -fuzz FuzzDecodeEvent -fuzztime $(FUZZTIME) ./nodeapi
	$(GO) test -run '^$$' -fuzz FuzzDecodeBootConfig -fuzztime $(FUZZTIME) ./nodeapi
	$(GO) test -run '^$$' -fuzz FuzzCleanName -fuzztime $(FUZZTIME) ./images/rootfs
	$(GO) test -run '^$$' -fuzz FuzzParseRequest -fuzztime $(FUZZTIME) ./bootserver/tftpd
	$(GO) test -run '^$$' -fuzz FuzzClipText -fuzztime $(FUZZTIME) ./nodes
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./boottoken

# moobi vs dnsmasq (proxy DHCP), tftpd-hpa (TFTP) and nginx (HTTP), a rack
# fetching an image by BitTorrent vs plain HTTP vs the physical bound, the
# appliance's footprint, and a VM's boot phases, on this machine, in network
# namespaces (root); see docs/benchmarks.md. As root it installs the Debian
# packages the run needs and keeps tftpd-hpa's own service off port 69 in
# the root namespace. The rack labs hold freed memory from this machine's
# hypervisor while they run (--rack-hold-memory, bench/hostmem.go): a real
# node's RAM is its own.
BENCH_OUT  ?= $(CURDIR)/bin/bench-results.md
BENCH_ARGS ?=
bench: build initrd
	@$(call APT_INSTALL,$(BENCH_PKGS))
	@if [ "$$(id -u)" = 0 ]; then \
	  if [ -d /run/systemd/system ]; then systemctl disable --now tftpd-hpa.service && systemctl mask tftpd-hpa.service; \
	  else service tftpd-hpa stop; update-rc.d tftpd-hpa disable; fi >/dev/null 2>&1 || true; \
	fi
	$(GO) run ./bench --moobi $(CURDIR)/bin/moobi --out $(BENCH_OUT) --rack-hold-memory $(BENCH_ARGS)

# The demo fetches Debian's cloud kernel with apt-get download, which needs
# the package lists.
demo: bin/moobi
	@$(call APT_INSTALL,$(DEMO_PKGS))
	@if [ "$$(id -u)" = 0 ]; then apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1 || apt-get update -qq; fi
	$(GO) run ./demo --moobi $(CURDIR)/bin/moobi --cache $(MOOBI_CACHE) --src $(CURDIR)

# The Debian packages `make demo` needs (network namespaces, dnsmasq as the
# site DHCP server, qemu with iPXE and OVMF, busybox and mksquashfs for the
# images, depmod for the kernel's modules, curl), and those `make bench`
# needs on top (the servers it compares with, perfdhcp from kea-admin). Both
# targets install them when run as root; .ci/run installs what make test
# needs, a superset of DEMO_PKGS.
DEMO_PKGS  := iproute2 dnsmasq-base qemu-system-x86 ipxe-qemu ovmf ipxe busybox-static squashfs-tools kmod curl mmdebstrap openssh-client
BENCH_PKGS := $(DEMO_PKGS) kea-admin tftpd-hpa nginx qemu-utils cpio

# $(call APT_INSTALL,PACKAGES): as root, install PACKAGES quietly (running
# apt-get update first if one is not found); as another user, nothing.
APT_INSTALL = if [ "$$(id -u)" = 0 ]; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1) >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1) >/dev/null; } || exit 1; \
	fi

clean:
	rm -rf bin
