#!/bin/sh
# install-deps.sh - installs the Debian 12 packages this project builds, tests and demos with.
# Does nothing when everything is already there; needs root (or sudo) only to install.
set -eu

# Build: compiler, pkg-config and the libraries (libuv and jansson are linked statically,
# llhttp is compiled from Debian's C sources). Tests: cmocka, Python's pytest and requests,
# a real qBittorrent, clang-format, iproute2 for network namespaces, wrk and nginx for the
# benchmarks, chromium (driven by playwright-core from npm) for the browser test, curl.
PACKAGES="build-essential pkg-config libuv1-dev node-llhttp libjansson-dev libcmocka-dev
python3 python3-pytest python3-requests qbittorrent-nox clang-format iproute2 procps
wrk nginx-light chromium curl ca-certificates"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# Node.js and npm may come from elsewhere (nodesource); only install Debian's when absent.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

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
