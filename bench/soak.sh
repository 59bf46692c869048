#!/usr/bin/env bash
# soak.sh - a long run through the proxy with the daemon's memory sampled every second.
#
# Starts, as the calling user on free 127.0.0.1 ports with all state in a temporary directory,
# an nginx origin serving a 100-byte file and build/release/qbit-gluetun-sync in front of it
# (QBIT_ADDR=origin). Then, at the same time:
#   - wrk runs one after another, cycling through -c 1, 10, 50, 100, 200, 400 (-t1, $WRK_RUN each);
#   - a Python client opens CONNECTIONS connections over time (CHURN_RATE per second), each one
#     of: a GET with Connection: close, a keep-alive GET closed by the client, a connection
#     closed after half a request head, a connection closed without sending anything;
#   - VmRSS and the number of open descriptors of the daemon are sampled every second.
# Prints the requests done (and errors), the connections opened, and the RSS series: idle
# before the load, min/max/last after the warm-up (the first cycle of -c values, which reaches
# the highest concurrency), and after the load. wrk goes on until REQUESTS are done and at least
# two cycles have run.
# Every process is stopped by PID on exit. Figures, not a test: exits 0 unless something could
# not start, or the daemon died (exit 1).
#
# Environment: QGS_BIN (default build/release/qbit-gluetun-sync), REQUESTS (1000000),
# CONNECTIONS (10000), CHURN_RATE (200), WRK_RUN (5s), KEEP_TMP=1 to keep the directory.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
QGS_BIN="${QGS_BIN:-$REPO/build/release/qbit-gluetun-sync}"
REQUESTS="${REQUESTS:-1000000}"
CONNECTIONS="${CONNECTIONS:-10000}"
CHURN_RATE="${CHURN_RATE:-200}"
WRK_RUN="${WRK_RUN:-5s}"
WRK_CONNS=(1 10 50 100 200 400)
PY=/usr/bin/python3

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_init soak nginx wrk /usr/bin/python3
nfds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

# ---- origin nginx and ours ----
mkdir -p "$TMP/www" "$TMP/origin/logs" "$TMP/origin/tmp"
head -c 100 /dev/zero | tr '\0' 'a' >"$TMP/www/small.bin"
ORIGIN_PORT="$(free_port)"
OURS_PORT="$(free_port)"
cat >"$TMP/origin/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $TMP/origin/logs/error.log warn;
pid $TMP/origin/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/origin/tmp/body;
    proxy_temp_path $TMP/origin/tmp/proxy;
    fastcgi_temp_path $TMP/origin/tmp/fastcgi;
    uwsgi_temp_path $TMP/origin/tmp/uwsgi;
    scgi_temp_path $TMP/origin/tmp/scgi;
    keepalive_requests 100000000;
    server { listen 127.0.0.1:$ORIGIN_PORT; root $TMP/www; location / { } }
}
EOF
"$NGINX" -e "$TMP/origin/logs/startup.log" -p "$TMP/origin" -c "$TMP/origin/nginx.conf" </dev/null \
    >"$TMP/origin/logs/stdout.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$ORIGIN_PORT/small.bin"

env -i PATH="$PATH" LISTEN_ADDR=127.0.0.1 LISTEN_PORT="$OURS_PORT" ALLOWED_IPS=127.0.0.1 \
    QBIT_ADDR="http://127.0.0.1:$ORIGIN_PORT" PORT_FILE="$TMP/forwarded_port" LOG_LEVEL=warn \
    HEADER_TIMEOUT=5 ${ASAN_OPTIONS:+ASAN_OPTIONS="$ASAN_OPTIONS"} \
    "$QGS_BIN" </dev/null >"$TMP/ours.stdout" 2>"$TMP/ours.stderr" &
OURS_PID="$!"
PIDS+=("$OURS_PID")
wait_http "http://127.0.0.1:$OURS_PORT/healthz" || { sed 's/^/  ours: /' "$TMP/ours.stderr" >&2; exit 1; }
sleep 1 # settle; this is a figure, not a wait for a condition
RSS_IDLE="$(vmrss_kib "$OURS_PID")"
FDS_IDLE="$(nfds "$OURS_PID")"

# ---- RSS sampler: one line per second, "seconds_since_start rss_kib fds" ----
START_NS="$(date +%s%N)"
(
    while kill -0 "$OURS_PID" 2>/dev/null; do
        now="$(date +%s%N)"
        echo "$(((now - START_NS) / 1000000000)) $(vmrss_kib "$OURS_PID") $(nfds "$OURS_PID")"
        sleep 1
    done
) >"$TMP/rss.txt" &
SAMPLER_PID="$!"
PIDS+=("$SAMPLER_PID")

# ---- connection churn ----
"$PY" - "$OURS_PORT" "$CONNECTIONS" "$CHURN_RATE" >"$TMP/churn.txt" 2>&1 <<'EOF' &
import socket, sys, time
port, total, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
host = b"127.0.0.1:%d" % port
ok = errors = 0
t0 = time.monotonic()
for i in range(total):
    # Pacing: connection i opens at t0 + i / rate.
    delay = t0 + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    kind = i % 4
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            if kind == 0:
                s.sendall(b"GET /small.bin HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
            elif kind == 1:
                s.sendall(b"GET /small.bin HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
            elif kind == 2:
                s.sendall(b"GET /small.bin HTTP/1.1\r\nHo")
                ok += 1
                continue
            else:
                ok += 1
                continue
            data = b""
            while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + 100:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            if data.startswith(b"HTTP/1.1 200 "):
                ok += 1
            else:
                errors += 1
    except OSError:
        errors += 1
print(f"churn: {total} connections in {time.monotonic() - t0:.1f} s, {ok} as planned, {errors} errors")
EOF
CHURN_PID="$!"
PIDS+=("$CHURN_PID")

# ---- wrk until REQUESTS ----
TOTAL=0
RUNS=0
WRK_CONN_TOTAL=0
NON2XX=0
SOCKERR=""
WARMUP_END=""
i=0
# At least two full cycles of -c values: the first is the warm-up (it reaches the highest
# concurrency, so the allocator's high-water mark), the rest must stay flat.
while ((TOTAL < REQUESTS || RUNS < 2 * ${#WRK_CONNS[@]})); do
    c="${WRK_CONNS[$((i % ${#WRK_CONNS[@]}))]}"
    i=$((i + 1))
    out="$(wrk -t1 -c"$c" -d"$WRK_RUN" "http://127.0.0.1:$OURS_PORT/small.bin" 2>&1 || true)"
    echo "$out" >>"$TMP/wrk.txt"
    n="$(awk '/requests in/ {print $1}' <<<"$out")"
    [[ -n "$n" ]] || { echo "soak: wrk failed: $(tail -2 <<<"$out")" >&2; break; }
    TOTAL=$((TOTAL + n))
    RUNS=$((RUNS + 1))
    WRK_CONN_TOTAL=$((WRK_CONN_TOTAL + c))
    e="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")"
    NON2XX=$((NON2XX + ${e:-0}))
    s="$(awk '/Socket errors:/ {sub(/^ *Socket errors: */, ""); print}' <<<"$out")"
    [[ -z "$s" ]] || SOCKERR="$SOCKERR [-c$c: $s]"
    if [[ -z "$WARMUP_END" ]] && ((RUNS == ${#WRK_CONNS[@]})); then
        WARMUP_END="$((($(date +%s%N) - START_NS) / 1000000000))"
    fi
    kill -0 "$OURS_PID" 2>/dev/null || { echo "soak: the daemon died" >&2; break; }
    printf '\r  %d requests, %d wrk runs' "$TOTAL" "$RUNS" >&2
done
echo >&2

# Let the churn finish (it is paced and bounded), then the daemon go idle.
for _ in $(seq 600); do
    kill -0 "$CHURN_PID" 2>/dev/null || break
    sleep 0.5
done
wait "$CHURN_PID" 2>/dev/null || true
sleep 2
ALIVE=1
kill -0 "$OURS_PID" 2>/dev/null || ALIVE=0
RSS_AFTER="$(vmrss_kib "$OURS_PID" || echo gone)"
FDS_AFTER="$(nfds "$OURS_PID" || echo gone)"
# Pooled upstream connections are dropped within 7 s of going idle: then the descriptor count
# must be back where it started (at most 10 s, polled).
FDS_SETTLED="$FDS_AFTER"
for _ in $(seq 20); do
    FDS_SETTLED="$(nfds "$OURS_PID" || echo gone)"
    [[ "$FDS_SETTLED" == gone ]] || ((FDS_SETTLED > FDS_IDLE)) || break
    sleep 0.5
done
HEALTH="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OURS_PORT/small.bin" 2>/dev/null || echo none)"
kill -TERM "$SAMPLER_PID" 2>/dev/null || true
ELAPSED="$((($(date +%s%N) - START_NS) / 1000000000))"

# ---- report ----
echo "soak: $(basename "$QGS_BIN") in front of nginx, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), ${ELAPSED} s"
echo "  requests: $TOTAL by wrk in $RUNS runs of $WRK_RUN (-c cycling ${WRK_CONNS[*]}), non-2xx $NON2XX${SOCKERR:+, socket errors:$SOCKERR}"
echo "  connections: $(cat "$TMP/churn.txt") ; wrk opened $WRK_CONN_TOTAL"
awk -v warm="$WARMUP_END" -v idle="$RSS_IDLE" -v after="$RSS_AFTER" '
    { n++; if ($2 == "") next; all[n] = $2; if (peak == "" || $2 > peak) peak = $2
      if ($1 >= warm) { m++; if (mn == "" || $2 < mn) mn = $2; if (mx == "" || $2 > mx) mx = $2; last = $2
                        if (first == "") first = $2 }
      if ($3 > fdmax) fdmax = $3 }
    END {
      printf "  VmRSS KiB: idle %s; after warm-up (from %d s, %d samples): first %s min %s max %s last %s (max-min %d); peak %s; idle after load %s\n",
             idle, warm, m, first, mn, mx, last, mx - mn, peak, after
      printf "  open descriptors: max %d during the run\n", fdmax
    }' "$TMP/rss.txt"
echo "  VmRSS series, every 5 s (s:KiB): $(awk 'NR % 5 == 1 && $2 != "" {printf "%s:%s ", $1, $2}' "$TMP/rss.txt")"
echo "  descriptors: idle $FDS_IDLE, right after the load $FDS_AFTER (pooled upstream connections), settled $FDS_SETTLED; GET after the run: $HEALTH"
if [[ -s "$TMP/ours.stderr" ]]; then
    echo "  daemon stderr (last 5 lines):"
    tail -5 "$TMP/ours.stderr" | sed 's/^/    /'
fi
cp "$TMP/rss.txt" "${SOAK_RSS_OUT:-/dev/null}" 2>/dev/null || true
[[ "$ALIVE" == 1 ]] || { echo "soak: the daemon is gone" >&2; exit 1; }
