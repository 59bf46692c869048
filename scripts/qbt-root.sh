#!/bin/sh
# qbt-root.sh - a small Debian root holding the newest qbittorrent-nox Debian ships (sid's), so
# that the end-to-end suite runs against it next to the host's own qBittorrent.
#
# Usage: qbt-root.sh [--rebuild]
#
# Built once with debootstrap (trixie, minbase) plus sid's qbittorrent-nox, kept outside the
# checkout and reused by every later run until rebuilt with --rebuild (or by deleting the
# directory). Where it lives: $QGS_CACHE_DIR, default ${XDG_CACHE_HOME:-$HOME/.cache}/qbit-gluetun-sync,
# subdirectory qbt-sid/:
#   root/      the Debian root (the suite runs qbittorrent-nox in it, chrooted in a private
#              mount namespace, on the host's loopback)
#   version    qbittorrent-nox's version, written last: the root is complete when it exists
#   failed     why the last build did not give a root (the apt error), when it did not
# sid moves daily and a package can be uninstallable there for days: that is not a failure of
# this script (exit 0, "failed" says why) and the suite skips the tests that need the root,
# printing the reason. Exit 1 only for a usage error. Needs root (debootstrap, chroot).
set -eu

CACHE=${QGS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qbit-gluetun-sync}
DIR=$CACHE/qbt-sid
BASE_SUITE=trixie
SUITE=sid

case "${1:-}" in
"") ;;
--rebuild) rm -rf "$DIR" ;;
*)
    echo "usage: $0 [--rebuild]" >&2
    exit 1
    ;;
esac

if [ -f "$DIR/version" ] && [ -x "$DIR/root/usr/bin/qbittorrent-nox" ]; then
    echo "qbt-root: qbittorrent-nox $(cat "$DIR/version") in $DIR/root (cached; $0 --rebuild rebuilds it)"
    exit 0
fi

mkdir -p "$DIR"
rm -f "$DIR/failed"
fail() {
    printf '%s\n' "$*" > "$DIR/failed"
    echo "qbt-root: no qBittorrent root: $*" >&2
    echo "qbt-root: the tests that need it are skipped; other tests still run" >&2
    exit 0
}

[ "$(id -u)" -eq 0 ] || fail "building the root needs root (debootstrap, chroot); run as root or with sudo"
for tool in debootstrap unshare chroot; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed (scripts/install-deps.sh installs it)"
done

# The mirror this machine's apt already uses for its own release, so the root comes from the same place.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
mirror=${QGS_DEBIAN_MIRROR:-$(apt-get indextargets --format '$(SITE) $(RELEASE)' 2>/dev/null |
    awk -v c="$codename" '$2 == c { print $1; exit }')}
mirror=${mirror:-http://deb.debian.org/debian}

# Runs a command chrooted in the root being built, with /proc and /dev, in a private mount namespace
# (nothing stays mounted when it ends).
in_root() {
    unshare -m --propagation private -- sh -c '
        r=$1; shift
        mount --bind /proc "$r/proc" && mount --rbind /dev "$r/dev" || exit 1
        exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"
    ' sh "$BUILD" "$@"
}

start=$(date +%s)
BUILD=$DIR/build
log=$DIR/build.log
: > "$log"
# A finished debootstrap is kept when a later step fails, so a retry only redoes the apt part.
if [ ! -f "$BUILD/.debootstrap-done" ]; then
    rm -rf "$BUILD"
    echo "qbt-root: debootstrap $BASE_SUITE from $mirror into $BUILD (a few minutes, once)"
    if ! debootstrap --variant=minbase "$BASE_SUITE" "$BUILD" "$mirror" >> "$log" 2>&1; then
        fail "debootstrap $BASE_SUITE from $mirror failed: $(grep -E '^(E|W):' "$log" | tail -n 3 | tr '\n' ' ')(log: $log)"
    fi
    touch "$BUILD/.debootstrap-done"
fi
cp /etc/resolv.conf "$BUILD/etc/resolv.conf" 2>/dev/null || true
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$BUILD/etc/ssl/certs" && cp /etc/ssl/certs/ca-certificates.crt "$BUILD/etc/ssl/certs/"
fi
# sid's Release file is valid for a week only; a mirror that lags (or a snapshot) serves an expired
# one, which apt refuses. For a throwaway test root, an old sid is still a newer qBittorrent.
printf 'deb %s %s main\ndeb [check-valid-until=no] %s %s main\n' "$mirror" "$BASE_SUITE" "$mirror" "$SUITE" \
    > "$BUILD/etc/apt/sources.list"
rm -f "$BUILD"/etc/apt/sources.list.d/*

echo "qbt-root: installing qbittorrent-nox from $SUITE"
if ! in_root apt-get update -q >> "$log" 2>&1; then
    fail "apt-get update in the root failed: $(grep -E '^(E|W):' "$log" | tail -n 3 | tr '\n' ' ')(log: $log)"
fi
if ! in_root apt-get install -y -q --no-install-recommends -t "$SUITE" qbittorrent-nox >> "$log" 2>&1; then
    fail "$SUITE's qbittorrent-nox cannot be installed now: $(grep -E '^(E|W):|Depends:|but .* is to be installed' "$log" |
        tail -n 4 | tr -s ' ' | tr '\n' ' ')(log: $log)"
fi
in_root apt-get clean >> "$log" 2>&1 || true
version=$(in_root qbittorrent-nox --version 2>> "$log" | sed -n 's/^qBittorrent v\([0-9][0-9.]*\).*/\1/p')
[ -n "$version" ] || fail "qbittorrent-nox in the root does not run: $(tail -n 3 "$log" | tr '\n' ' ')(log: $log)"

rm -rf "$DIR/root"
rm -f "$BUILD/.debootstrap-done"
mv "$BUILD" "$DIR/root"
echo "$version" > "$DIR/version"
echo "qbt-root: qbittorrent-nox $version in $DIR/root, built in $(($(date +%s) - start)) s"
