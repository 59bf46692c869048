# lib.sh - what the bench scripts share: tool checks, a temporary directory, stopping every
# process they started by PID on exit, free loopback ports and waiting for a URL.
# Source it, then call bench_init NAME TOOL... ; add each started PID to PIDS.

bench_init() {
    BENCH_NAME="$1"
    shift
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$BENCH_NAME: $tool not found (apt-get install nginx-light wrk)" >&2; exit 1; }
    done
    [[ -x "$QGS_BIN" ]] || { echo "$BENCH_NAME: $QGS_BIN not built (run make)" >&2; exit 1; }
    NGINX="$(command -v nginx)"
    TMP="$(mktemp -d "/tmp/$BENCH_NAME.XXXXXX")"
    PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then
        echo "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_http URL: until it answers 200, at most 10 s (an https:// URL's certificate is not checked).
wait_http() {
    local url="$1" i
    for i in $(seq 100); do
        if /usr/bin/python3 - "$url" <<'PYEOF' 2>/dev/null; then return 0; fi
import ssl, sys, urllib.request
ctx = ssl._create_unverified_context()
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=1, context=ctx).status == 200 else 1)
PYEOF
        sleep 0.1
    done
    echo "$BENCH_NAME: $url did not answer 200 within 10 s" >&2
    return 1
}

vmrss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
# Private_Clean + Private_Dirty: the pages no other process shares (what the
# process really adds; VmRSS also counts the shared glibc pages it maps).
private_kib() { awk '/^Private_(Clean|Dirty):/ {n += $2} END {print n}' "/proc/$1/smaps_rollup" 2>/dev/null; }
