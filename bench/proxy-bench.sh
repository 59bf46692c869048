#!/usr/bin/env bash
# proxy-bench.sh - prints throughput figures for our reverse proxy next to nginx's, on loopback.
#
# One run starts three servers on free 127.0.0.1 ports, as the calling user, all state in a
# temporary directory:
#   origin  nginx serving small.bin (100 bytes) and large.bin (1 MiB)
#   nginx   a second nginx doing proxy_pass to origin (1 worker, upstream keepalive 32)
#   ours    build/release/qbit-gluetun-sync with QBIT_ADDR=origin
# then runs `wrk -t1 -c$CONNECTIONS -d$DURATION` against direct, via nginx and via ours, for each
# file, and prints req/s and MB/s, the ratios ours/nginx and ours/direct, and our VmRSS idle
# and after the load (with its private part, and the VmRSS of a C program that only calls
# pause(), the floor any program on this glibc starts from).
# Then the same over TLS at the front door, a second nginx (`listen ... ssl`) and a second ours
# (TLS_CERT_FILE) with one self-signed P-256 certificate, both proxying to origin over plain HTTP
# with keep-alive: small and large responses on keep-alive connections, new TLS connections per
# second (every request with Connection: close, so every one is a full handshake), and the memory
# of TLS_IDLE (default 1000) idle TLS connections, each after one request, per connection.
# Every server is stopped by PID on exit. This prints figures; it is not a test and exits 0 even
# when ours answers errors (they are printed).
#
# Then small responses at 1, 50, 200 and 1000 clients at once (CLIENT_COUNTS), nginx and ours,
# with the connections each opened to origin during the run (origin's stub_status), and our
# peak VmRSS after them.
# Environment: QGS_BIN (default build/release/qbit-gluetun-sync), DURATION (default 5s),
# CONNECTIONS (default 50), CLIENT_COUNTS (default "1 50 200 1000"), NGINX_PROXY_EXTRA (directives for nginx's proxy location, default
# "proxy_buffering off;"), TLS_IDLE (default 1000), QGS_BASELINE_BIN (another build of ours,
# e.g. the commit before a change: its idle memory is printed beside ours, measured the same
# way in the same run), KEEP_TMP=1 to keep the temporary directory.
# Load generator, proxies and origin share this machine's cores: compare ratios within one run,
# never figures across runs or machines.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
QGS_BIN="${QGS_BIN:-$REPO/build/release/qbit-gluetun-sync}"
DURATION="${DURATION:-5s}"
# Extra directives for nginx's proxy location. Ours streams without buffering, so nginx streams
# too (by default it buffers responses into 8 small buffers, then temp files on disk); in trials
# here that was nginx's best setting for small responses and even with the others on 1 MiB.
NGINX_PROXY_EXTRA="${NGINX_PROXY_EXTRA:-proxy_buffering off;}"
CONNECTIONS="${CONNECTIONS:-50}"
TLS_IDLE="${TLS_IDLE:-1000}"
QGS_BASELINE_BIN="${QGS_BASELINE_BIN:-}"

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_init proxy-bench nginx wrk python3 cc openssl

# nginx_conf NAME PORT SERVER_BLOCK_BODY [HTTP_EXTRA]: writes $TMP/NAME/nginx.conf
nginx_conf() {
    local name="$1" port="$2" body="$3" extra="${4:-}" dir="$TMP/$1"
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 8192;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
    $extra
    server {
        listen 127.0.0.1:$port;  # "PORT ssl" for TLS
        $body
    }
}
EOF
}

start_nginx() {
    local name="$1" dir="$TMP/$1"
    "$NGINX" -e "$dir/logs/startup.log" -p "$dir" -c "$dir/nginx.conf" </dev/null >"$dir/logs/stdout.log" 2>&1 &
    PIDS+=("$!")
}

# ---- origin, nginx proxy, ours ----
mkdir -p "$TMP/www"
head -c 100 /dev/zero | tr '\0' 'a' >"$TMP/www/small.bin"
head -c 1048576 /dev/urandom >"$TMP/www/large.bin"

ORIGIN_PORT="$(free_port)"
NGINX_PORT="$(free_port)"
OURS_PORT="$(free_port)"

# stub_status counts the connections origin accepts: how many each proxy opened during a run.
nginx_conf origin "$ORIGIN_PORT" "root $TMP/www; location / { } location = /nginx_status { stub_status; }"
nginx_conf nginxproxy "$NGINX_PORT" \
    "location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; $NGINX_PROXY_EXTRA }" \
    "upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 32; }"
start_nginx origin
ORIGIN_PID="${PIDS[-1]}"
start_nginx nginxproxy
NGINX_PID="${PIDS[-1]}"
wait_http "http://127.0.0.1:$ORIGIN_PORT/small.bin"
wait_http "http://127.0.0.1:$NGINX_PORT/small.bin"

# start_ours NAME BIN PORT [VAR=value...]: starts a daemon in front of origin; sets LAST_PID.
start_ours() {
    local name="$1" bin="$2" port="$3"
    shift 3
    env -i PATH="$PATH" LISTEN_ADDR=127.0.0.1 LISTEN_PORT="$port" ALLOWED_IPS=127.0.0.1 \
        QBIT_ADDR="http://127.0.0.1:$ORIGIN_PORT" PORT_FILE="$TMP/forwarded_port" LOG_LEVEL=warn "$@" \
        "$bin" </dev/null >"$TMP/$name.stdout" 2>"$TMP/$name.stderr" &
    LAST_PID="$!"
    PIDS+=("$LAST_PID")
}

start_ours ours "$QGS_BIN" "$OURS_PORT" MAX_CONNECTIONS=4096
OURS_PID="$LAST_PID"
wait_http "http://127.0.0.1:$OURS_PORT/healthz" || { sed 's/^/  ours: /' "$TMP/ours.stderr" >&2; exit 1; }
if [[ -n "$QGS_BASELINE_BIN" ]]; then
    BASE_PORT="$(free_port)"
    start_ours baseline "$QGS_BASELINE_BIN" "$BASE_PORT"
    BASE_PID="$LAST_PID"
    wait_http "http://127.0.0.1:$BASE_PORT/healthz" || { sed 's/^/  baseline: /' "$TMP/baseline.stderr" >&2; exit 1; }
fi
sleep 0.5
OURS_RSS_IDLE="$(vmrss_kib "$OURS_PID")"
OURS_PRIV_IDLE="$(private_kib "$OURS_PID")"
NGINX_RSS_IDLE="$(vmrss_kib "$NGINX_PID")"
if [[ -n "$QGS_BASELINE_BIN" ]]; then
    BASE_RSS_IDLE="$(vmrss_kib "$BASE_PID")"
    BASE_PRIV_IDLE="$(private_kib "$BASE_PID")"
    kill -TERM "$BASE_PID"
fi

# ---- load ----
# run_wrk LABEL URL [WRK ARGS...]: prints nothing; sets RPS[LABEL], MBS[LABEL], ERR[LABEL]
# (with -c$CLIENTS when set, else -c$CONNECTIONS)
declare -A RPS MBS ERR
run_wrk() {
    local label="$1" url="$2" out
    shift 2
    out="$(wrk -t1 -c"${CLIENTS:-$CONNECTIONS}" -d"$DURATION" "$@" "$url" 2>&1 || true)"
    echo "$out" >"$TMP/wrk-$label.txt"
    RPS[$label]="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    MBS[$label]="$(awk '/^Transfer\/sec:/ {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", v);
        f = (u == "GB") ? 1073741824 : (u == "MB") ? 1048576 : (u == "KB") ? 1024 : 1;
        printf "%.1f", v * f / 1e6 }' <<<"$out")"
    local non2xx sock
    non2xx="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")"
    sock="$(awk '/Socket errors:/ {sub(/^ *Socket errors: */, ""); print}' <<<"$out")"
    ERR[$label]="${non2xx:+non-2xx $non2xx }${sock:+socket: $sock}"
    [[ -n "${RPS[$label]}" ]] || { RPS[$label]=0; MBS[$label]=0; ERR[$label]="wrk failed: $(tail -1 <<<"$out")"; }
}

for size in small large; do
    run_wrk "direct-$size" "http://127.0.0.1:$ORIGIN_PORT/$size.bin"
    run_wrk "nginx-$size" "http://127.0.0.1:$NGINX_PORT/$size.bin"
    run_wrk "ours-$size" "http://127.0.0.1:$OURS_PORT/$size.bin"
done

OURS_RSS_AFTER="$(vmrss_kib "$OURS_PID" 2>/dev/null || echo gone)"
OURS_PRIV_AFTER="$(private_kib "$OURS_PID" 2>/dev/null || echo gone)"
NGINX_RSS_AFTER="$(vmrss_kib "$NGINX_PID" 2>/dev/null || echo gone)"

# ---- clients: 1 to 1000 at once, small responses ----
# The connections origin accepted during each run are the ones that proxy opened (the status
# request itself is one more, taken off).
accepts() { curl -s "http://127.0.0.1:$ORIGIN_PORT/nginx_status" | awk 'NR == 3 { print $1 }'; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
declare -A OPENED
CLIENT_COUNTS="${CLIENT_COUNTS:-1 50 200 1000}"
for n in $CLIENT_COUNTS; do
    for via in nginx ours; do
        port="$NGINX_PORT"
        [[ "$via" == ours ]] && port="$OURS_PORT"
        before="$(accepts)"
        CLIENTS="$n" run_wrk "c$n-$via" "http://127.0.0.1:$port/small.bin"
        OPENED[c$n-$via]=$(($(accepts) - before - 1))
    done
done
OURS_HWM="$(awk '/^VmHWM:/ {print $2}' "/proc/$OURS_PID/status" 2>/dev/null || echo gone)"

# ---- TLS at the front door ----
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$TMP/tls.key" -out "$TMP/tls.crt" 2>/dev/null
NGINX_TLS_PORT="$(free_port)"
OURS_TLS_PORT="$(free_port)"
nginx_conf nginxtls "$NGINX_TLS_PORT ssl" \
    "ssl_certificate $TMP/tls.crt; ssl_certificate_key $TMP/tls.key; ssl_protocols TLSv1.2 TLSv1.3;
     location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; $NGINX_PROXY_EXTRA }" \
    "upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 32; }"
start_nginx nginxtls
NGINX_TLS_PID="${PIDS[-1]}"
start_ours ourstls "$QGS_BIN" "$OURS_TLS_PORT" TLS_CERT_FILE="$TMP/tls.crt" TLS_KEY_FILE="$TMP/tls.key" \
    MAX_CONNECTIONS=$((TLS_IDLE + 100))
OURS_TLS_PID="$LAST_PID"
wait_http "https://127.0.0.1:$NGINX_TLS_PORT/small.bin"
wait_http "https://127.0.0.1:$OURS_TLS_PORT/healthz" || { sed 's/^/  ours tls: /' "$TMP/ourstls.stderr" >&2; exit 1; }
sleep 0.5
OURS_TLS_RSS_IDLE="$(vmrss_kib "$OURS_TLS_PID")"
OURS_TLS_PRIV_IDLE="$(private_kib "$OURS_TLS_PID")"

for size in small large; do
    run_wrk "nginx-tls-$size" "https://127.0.0.1:$NGINX_TLS_PORT/$size.bin"
    run_wrk "ours-tls-$size" "https://127.0.0.1:$OURS_TLS_PORT/$size.bin"
done
run_wrk nginx-tls-new "https://127.0.0.1:$NGINX_TLS_PORT/small.bin" -H "Connection: close"
run_wrk ours-tls-new "https://127.0.0.1:$OURS_TLS_PORT/small.bin" -H "Connection: close"

# idle_tls PID PORT: opens TLS_IDLE TLS connections to PORT (one request on each, then idle) and
# prints the VmRSS and private growth of PID they cost, in KiB: "vmrss private".
idle_tls() {
    /usr/bin/python3 - "$1" "$2" "$TLS_IDLE" <<'PYEOF'
import resource, socket, ssl, sys, time
pid, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 64)), hard))
def mem():
    rss = int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:")).split()[1])
    priv = sum(int(l.split()[1]) for l in open(f"/proc/{pid}/smaps_rollup") if l.startswith("Private_"))
    return rss, priv
ctx = ssl._create_unverified_context()
before = mem()
conns = []
for _ in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    s.sendall(b"GET /small.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    got = b""
    while not got.endswith(b"a" * 100):
        got += s.recv(4096)
    conns.append(s)
time.sleep(0.5)
after = mem()
print(after[0] - before[0], after[1] - before[1])
for s in conns:
    s.close()
PYEOF
}
read -r OURS_IDLE_RSS OURS_IDLE_PRIV < <(idle_tls "$OURS_TLS_PID" "$OURS_TLS_PORT")
read -r NGINX_IDLE_RSS NGINX_IDLE_PRIV < <(idle_tls "$NGINX_TLS_PID" "$NGINX_TLS_PORT")

# ---- report ----
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "proxy-bench: wrk -t1 -c$CONNECTIONS -d$DURATION on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "  nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), ours $("$QGS_BIN" --version 2>/dev/null | head -1 || echo '?')"
echo "  nginx proxy: 1 worker, upstream keepalive 32, proxy_http_version 1.1, $NGINX_PROXY_EXTRA"
echo
printf '%-8s %-10s %12s %10s  %s\n' file via req/s MB/s errors
for size in small large; do
    for via in direct nginx ours; do
        l="$via-$size"
        printf '%-8s %-10s %12s %10s  %s\n' "$size" "$via" "${RPS[$l]}" "${MBS[$l]}" "${ERR[$l]:-}"
    done
done
echo
for size in small large; do
    printf '%-6s ours/nginx-proxy: req/s %s, MB/s %s;  ours/direct: req/s %s, MB/s %s\n' "$size" \
        "$(ratio "${RPS[ours-$size]}" "${RPS[nginx-$size]}")" "$(ratio "${MBS[ours-$size]}" "${MBS[nginx-$size]}")" \
        "$(ratio "${RPS[ours-$size]}" "${RPS[direct-$size]}")" "$(ratio "${MBS[ours-$size]}" "${MBS[direct-$size]}")"
done
echo
echo "clients at once (small, wrk -t1 -cN); opened: connections the proxy opened to origin during the run" \
    "(ours: UPSTREAM_MAX_CONNECTIONS=$(env -i "$QGS_BIN" --check-config 2>/dev/null | sed -n 's/^UPSTREAM_MAX_CONNECTIONS=//p'))"
printf '%-8s %12s %8s %12s %8s %12s  %s\n' clients nginx-req/s opened ours-req/s opened ours/nginx errors
for n in $CLIENT_COUNTS; do
    printf '%-8s %12s %8s %12s %8s %12s  %s\n' "$n" "${RPS[c$n-nginx]}" "${OPENED[c$n-nginx]}" "${RPS[c$n-ours]}" \
        "${OPENED[c$n-ours]}" "$(ratio "${RPS[c$n-ours]}" "${RPS[c$n-nginx]}")" "${ERR[c$n-ours]:-}${ERR[c$n-nginx]:+ nginx: ${ERR[c$n-nginx]}}"
done
echo "ours peak VmRSS (VmHWM) after the runs up to ${CLIENT_COUNTS##* } clients: $OURS_HWM KiB"
echo
echo "TLS at the front door (both proxy to origin over plain HTTP; one self-signed P-256 certificate):"
printf '%-8s %-10s %12s %10s  %s\n' file via req/s MB/s errors
for size in small large; do
    for via in nginx ours; do
        l="$via-tls-$size"
        printf '%-8s %-10s %12s %10s  %s\n' "$size" "$via" "${RPS[$l]}" "${MBS[$l]}" "${ERR[$l]:-}"
    done
done
for via in nginx ours; do
    printf '%-8s %-10s %12s %10s  %s\n' "new-conn" "$via" "${RPS[$via-tls-new]}" "${MBS[$via-tls-new]}" "${ERR[$via-tls-new]:-}"
done
for size in small large; do
    printf '%-6s TLS ours/nginx: req/s %s, MB/s %s\n' "$size" \
        "$(ratio "${RPS[ours-tls-$size]}" "${RPS[nginx-tls-$size]}")" "$(ratio "${MBS[ours-tls-$size]}" "${MBS[nginx-tls-$size]}")"
done
printf 'new TLS connections/s (Connection: close) ours/nginx: %s\n' "$(ratio "${RPS[ours-tls-new]}" "${RPS[nginx-tls-new]}")"
per() { awk -v a="$1" -v n="$TLS_IDLE" 'BEGIN { printf "%.1f", a / n }'; }
echo "$TLS_IDLE idle TLS connections: ours +$OURS_IDLE_RSS KiB VmRSS, +$OURS_IDLE_PRIV KiB private" \
    "($(per "$OURS_IDLE_PRIV") KiB each); nginx +$NGINX_IDLE_RSS KiB VmRSS, +$NGINX_IDLE_PRIV KiB private" \
    "($(per "$NGINX_IDLE_PRIV") KiB each)"
echo "ours with TLS configured, idle: VmRSS $OURS_TLS_RSS_IDLE KiB (private $OURS_TLS_PRIV_IDLE KiB)"
echo
echo "ours  VmRSS: idle $OURS_RSS_IDLE KiB, after load $OURS_RSS_AFTER KiB" \
    "(private: $OURS_PRIV_IDLE and $OURS_PRIV_AFTER KiB)"
if [[ -n "$QGS_BASELINE_BIN" ]]; then
    echo "baseline VmRSS: idle $BASE_RSS_IDLE KiB (private $BASE_PRIV_IDLE KiB): $QGS_BASELINE_BIN;" \
        "ours - baseline: VmRSS $((OURS_RSS_IDLE - BASE_RSS_IDLE)) KiB, private $((OURS_PRIV_IDLE - BASE_PRIV_IDLE)) KiB"
fi
echo "nginx VmRSS: idle $NGINX_RSS_IDLE KiB, after load $NGINX_RSS_AFTER KiB (proxy, 1 worker, no master)"
# The floor any program linked against this glibc starts from: one that only
# calls pause() still maps ld.so and libc (and the kernel maps 64 KiB around
# each page touched, so VmRSS counts more of libc than is used).
printf '#include <unistd.h>\nint main(void) { pause(); }\n' | cc -O2 -x c -o "$TMP/pause" -
"$TMP/pause" &
PAUSE_PID="$!"
PIDS+=("$PAUSE_PID")
for _ in $(seq 100); do # measured once it is asleep in pause() (not still the forked shell)
    [[ "$(readlink "/proc/$PAUSE_PID/exe")" == "$TMP/pause" ]] && grep -q '^State:.*S' "/proc/$PAUSE_PID/status" && break
    sleep 0.02
done
echo "pause VmRSS: $(vmrss_kib "$PAUSE_PID") KiB (a C program that only calls pause(): the floor on this glibc)"
for name in ours ourstls; do
    if [[ -s "$TMP/$name.stderr" ]]; then
        echo
        echo "$name stderr (last 5 lines):"
        tail -5 "$TMP/$name.stderr" | sed 's/^/  /'
    fi
done
