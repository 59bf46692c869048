#!/bin/sh
# install-deps.sh - installs the Debian packages this project builds, tests and demos with, on
# Debian 12 (bookworm) or 13 (trixie).
# Usage: install-deps.sh [build|all|arm64]   (default all). Does nothing when everything is
# already there; needs root (or sudo) only to install.
#
# Where the releases name a package differently, the list says "a|b" and apt is asked which of
# them this release has (the first with an installable candidate wins); nothing here knows
# release names. A name ending in "?" is installed where apt has it and skipped elsewhere.
#
# arm64 is the cross-build check (make arm64-check): it adds the arm64 architecture to dpkg, so
# it runs only when asked for (CI does), never from `make test`.
set -eu

# Build: compiler, make, pkg-config and the libraries, linked statically. llhttp is a library
# package from Debian 13 on (libllhttp-dev); Debian 12 ships its C sources in node-llhttp, which
# the build compiles. OpenSSL's headers (libssl-dev, which brings libssl3 or libssl3t64) for TLS:
# the daemon loads libssl when TLS is configured. This is all the image build needs.
BUILD_PACKAGES="build-essential make pkg-config libuv1-dev libjansson-dev libllhttp-dev|node-llhttp libssl-dev"
# Everything else: cmocka, Python's pytest, requests and yaml, a real qBittorrent, clang-format
# at the one major version the sources are formatted with (make format-check), clang with its
# sanitizer and libFuzzer runtime (fuzz/), valgrind (bench/), iproute2 and util-linux for
# namespaces, debootstrap for the second qBittorrent's root (scripts/qbt-root.sh), wrk and nginx
# for the benchmarks, chromium (driven by playwright-core from npm) for the browser test, curl,
# systemd for `systemd-analyze verify` of the unit file, openssl to make the TLS tests' certificates,
# busybox for the wget that Gluetun's image has (the hook test).
TEST_PACKAGES="libcmocka-dev python3 python3-pytest python3-requests python3-yaml qbittorrent-nox openssl
clang-format-19? clang libclang-rt-dev iproute2 util-linux procps debootstrap wrk nginx-light|nginx chromium
curl ca-certificates systemd valgrind busybox"
# The arm64 cross-build: cross compiler, the libraries for arm64 (dpkg multiarch) and qemu to run
# what was built.
ARM64_PACKAGES="crossbuild-essential-arm64 libuv1-dev:arm64 libjansson-dev:arm64 libcmocka-dev:arm64 libssl-dev:arm64
libllhttp-dev:arm64|node-llhttp qemu-user-static file python3 python3-pytest python3-requests"

what=${1:-all}
case "$what" in
build) PACKAGES="$BUILD_PACKAGES" ;;
all) PACKAGES="$BUILD_PACKAGES $TEST_PACKAGES" ;;
arm64) PACKAGES="$BUILD_PACKAGES $ARM64_PACKAGES" ;;
*)
    echo "usage: $0 [build|all|arm64]" >&2
    exit 2
    ;;
esac

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    SUDO="none"
fi
export DEBIAN_FRONTEND=noninteractive

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
# True when apt can install the package (it has a candidate version for it).
available() {
    apt-cache policy "$1" 2>/dev/null | grep -q '^  Candidate: [^(]'
}

updated=no
update() {
    [ "$updated" = no ] || return 0
    updated=yes
    if [ "$SUDO" = none ]; then
        echo "install-deps: not root and no sudo; as root run: apt-get update && $0 $what" >&2
        exit 1
    fi
    $SUDO apt-get update -qq
}

if [ "$what" = arm64 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    [ "$SUDO" != none ] || { echo "install-deps: as root run: dpkg --add-architecture arm64" >&2; exit 1; }
    echo "install-deps: adding the arm64 architecture to dpkg (cross-build check)"
    $SUDO dpkg --add-architecture arm64
    update
fi

# Resolves each entry to the package to install, or nothing when it is already satisfied.
missing=""
for entry in $PACKAGES; do
    optional=no
    case "$entry" in *\?) optional=yes entry=${entry%\?} ;; esac
    alternatives=$(echo "$entry" | tr '|' ' ')
    satisfied=no
    for p in $alternatives; do
        if installed "$p"; then satisfied=yes; break; fi
    done
    [ "$satisfied" = no ] || continue
    pick=""
    for attempt in 1 2; do
        for p in $alternatives; do
            if available "$p"; then pick=$p; break; fi
        done
        # apt's lists may be missing or old (a fresh machine has none): refresh once and ask again.
        [ -z "$pick" ] && [ "$attempt" = 1 ] && [ "$updated" = no ] && update && continue
        break
    done
    if [ -n "$pick" ]; then
        missing="$missing $pick"
    elif [ "$optional" = yes ]; then
        echo "install-deps: $entry is not in this release's archive; going on without it"
    else
        echo "install-deps: apt has none of: $alternatives" >&2
        exit 1
    fi
done
# Node.js and npm (browser test) may come from elsewhere (nodesource); only install Debian's when absent.
if [ "$what" = all ]; then
    command -v node >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi

if [ -z "$missing" ]; then
    exit 0
fi

echo "install-deps: installing:$missing"
if [ "$SUDO" = none ]; then
    echo "install-deps: not root and no sudo; as root run: apt-get install -y$missing" >&2
    exit 1
fi
update
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
