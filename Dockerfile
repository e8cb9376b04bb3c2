# syntax=docker/dockerfile:1
#
# The Moobi appliance: the static `moobi` binary, the node initramfs and
# Debian's iPXE binaries, on an empty base (the binary needs no libc, shell
# or other file of a distribution).
#
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t moobi .
#   docker run -d --name moobi --restart unless-stopped --network host \
#     --cap-drop ALL --cap-add NET_BIND_SERVICE \
#     -v /etc/moobi:/etc/moobi:ro -v moobi-data:/var/lib/moobi moobi
#
# --network host: proxy DHCP binds to the boot interface by name and
# answers with broadcasts on it. NET_BIND_SERVICE is the only capability
# `moobi serve` uses (ports 67, 69, 4011 and an HTTP port below 1024);
# binding a socket to an interface needs none on Linux 5.7 and later.
# See docs/operations.md.
#
# Where no registry can be pulled from (no golang: or debian: image), build
# the inputs on the host and import them as one image holding
# /src/bin/moobi, /src/bin/node-initrd.cpio.gz and the files of Debian's ipxe
# package at their own paths, then name it for both stages below:
#
#   make build initrd
#   ... import a tarball of those files as moobi-inputs (docs/operations.md)
#   podman build --build-arg BINARIES=moobi-inputs --build-arg IPXE=moobi-inputs -t moobi .
#
# e2e/container_test.go builds and runs the image that way.

# The stage (or image) holding /src/bin/moobi and /src/bin/node-initrd.cpio.gz.
ARG BINARIES=build
# The stage (or image) holding Debian's ipxe package files.
ARG IPXE=debian-ipxe

# Build stage: the same `make` targets as CI. The Go version matches go.mod
# (the image sets GOTOOLCHAIN=local, so it must not be older).
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY . .
# The Makefile stamps the binary with $(VERSION); the build context has no .git.
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    make build initrd

# Debian's ipxe package: /usr/lib/ipxe/undionly.kpxe, snponly.efi and
# ipxe.efi (a symlink to /boot/ipxe.efi), served over TFTP.
FROM debian:bookworm-slim AS debian-ipxe
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ipxe \
 && rm -rf /var/lib/apt/lists/*

FROM ${BINARIES} AS binaries
FROM ${IPXE} AS ipxe

# Runtime stage.
FROM scratch
COPY --from=ipxe /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/snponly.efi /usr/lib/ipxe/
COPY --from=ipxe /boot/ipxe.efi /usr/lib/ipxe/ipxe.efi
COPY --from=ipxe /usr/share/doc/ipxe/copyright /usr/share/doc/ipxe/copyright
COPY --from=binaries /src/bin/moobi /usr/local/bin/moobi
# The node initramfs without a key: at each start `moobi serve --initrd-base`
# writes appliance.node_initrd from it with the appliance's boot signing key,
# so an upgraded image always serves its own node client.
COPY --from=binaries /src/bin/node-initrd.cpio.gz /usr/share/moobi/node-initrd-base.cpio.gz
VOLUME ["/var/lib/moobi", "/etc/moobi"]
WORKDIR /var/lib/moobi
# Proxy DHCP, TFTP, HTTP (appliance.http_port, default 80), BitTorrent.
EXPOSE 67/udp 4011/udp 69/udp 80/tcp 6881/tcp
ENV PATH=/usr/local/bin
ENTRYPOINT ["/usr/local/bin/moobi"]
CMD ["serve", "--config", "/etc/moobi/hosts.yaml", "--initrd-base", "/usr/share/moobi/node-initrd-base.cpio.gz"]
