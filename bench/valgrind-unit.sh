#!/usr/bin/env bash
# valgrind-unit.sh - runs every unit test program under valgrind's memcheck and prints a summary.
#
# Each build/$VARIANT/tests/test_* runs under
#   valgrind --leak-check=full --error-exitcode=1 --errors-for-leak-kinds=definite,indirect
# with its own log in a temporary directory. A program fails when valgrind reports an error or a
# definite or indirect leak, or when the tests in it fail. Prints one line per program (errors,
# leak summary, exit status) and exits 1 if any failed. The unit programs are built first
# (`make unit-build`) unless SKIP_BUILD=1. Needs the release variant: the asan one cannot run
# under valgrind.
#
# Environment: VARIANT (release), SKIP_BUILD=1, KEEP_TMP=1 to keep the valgrind logs.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VARIANT="${VARIANT:-release}"
[[ "$VARIANT" != asan ]] || { echo "valgrind-unit: the asan build cannot run under valgrind" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind-unit: valgrind not found (apt-get install valgrind)" >&2; exit 2; }

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    make -C "$REPO" --no-print-directory VARIANT="$VARIANT" unit-build >/dev/null
fi
shopt -s nullglob
PROGS=("$REPO/build/$VARIANT/tests/"test_*)
((${#PROGS[@]} > 0)) || { echo "valgrind-unit: no unit test programs in build/$VARIANT/tests" >&2; exit 2; }

TMP="$(mktemp -d /tmp/valgrind-unit.XXXXXX)"
cleanup() { if [[ "${KEEP_TMP:-0}" == 1 ]]; then echo "kept $TMP"; else rm -rf "$TMP"; fi; }
trap cleanup EXIT

failed=0
printf '%-16s %5s %6s  %-48s %s\n' program tests errors "leaked bytes (definite/indirect/possible/reachable)" result
for prog in "${PROGS[@]}"; do
    name="$(basename "$prog")"
    log="$TMP/$name.valgrind"
    set +e
    valgrind --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=definite,indirect \
        --error-exitcode=1 --track-origins=yes --log-file="$log" "$prog" >"$TMP/$name.out" 2>&1
    rc=$?
    set -e
    errors="$(awk '/ERROR SUMMARY:/ {print $4}' "$log" | tail -1)"
    leak() { awk -v k="$1" '$0 ~ k":" {gsub(",", "", $4); print $4}' "$log" | tail -1; }
    leaks="$(leak "definitely lost") / $(leak "indirectly lost") / $(leak "possibly lost") / $(leak "still reachable")"
    [[ "$leaks" != " /  /  / " ]] || leaks="none: all heap blocks freed"
    tests="$(awk '/test\(s\) run/ {print $2}' "$TMP/$name.out" | tail -1)"
    if ((rc == 0)); then
        result=ok
    else
        result="FAILED (exit $rc)"
        failed=1
    fi
    printf '%-16s %5s %6s  %-48s %s\n' "$name" "${tests:-?}" "${errors:-?}" "$leaks" "$result"
    if ((rc != 0)); then
        grep -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|.*definitely lost|.*indirectly lost)' "$log" \
            | head -10 | sed 's/^/    /'
        tail -5 "$TMP/$name.out" | sed 's/^/    out: /'
    fi
done
if ((failed)); then
    echo "valgrind-unit: FAILED"
    exit 1
fi
echo "valgrind-unit: all ${#PROGS[@]} unit programs clean under valgrind"
