#!/bin/sh
# install-deps.sh - installs the Debian 12 packages this project builds, tests and demos with.
# Usage: install-deps.sh [build|all]   (default all). Does nothing when everything is already
# there; needs root (or sudo) only to install.
set -eu

# Build: compiler, make, pkg-config and the libraries (libuv and jansson are linked
# statically, llhttp is compiled from Debian's C sources). This is all the image build needs.
BUILD_PACKAGES="build-essential make pkg-config libuv1-dev node-llhttp libjansson-dev"
# Everything else: cmocka, Python's pytest, requests and yaml, a real qBittorrent,
# clang-format, clang with its sanitizer and libFuzzer runtime (fuzz/), valgrind (bench/),
# iproute2 and util-linux for namespaces, wrk and nginx for the benchmarks,
# chromium (driven by playwright-core from npm) for the browser test, curl, systemd for
# `systemd-analyze verify` of the unit file.
TEST_PACKAGES="libcmocka-dev python3 python3-pytest python3-requests python3-yaml qbittorrent-nox
clang-format clang libclang-rt-14-dev iproute2 util-linux procps wrk nginx-light chromium curl ca-certificates
systemd valgrind"

case "${1:-all}" in
build) PACKAGES="$BUILD_PACKAGES" ;;
all) PACKAGES="$BUILD_PACKAGES $TEST_PACKAGES" ;;
*)
    echo "usage: $0 [build|all]" >&2
    exit 2
    ;;
esac

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# Node.js and npm (browser test) may come from elsewhere (nodesource); only install Debian's when absent.
if [ "${1:-all}" = all ]; then
    command -v node >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi

if [ -z "$missing" ]; then
    exit 0
fi

echo "install-deps: installing:$missing"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-deps: not root and no sudo; as root run: apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
