#!/usr/bin/env bash
# The long fuzz run (not part of CI): every target of fuzz/ in turn, the
# total time split evenly, each from its committed corpus plus what earlier
# long runs found (target/fuzz/long/corpus/<target>, kept between runs).
#
#   scripts/fuzz_long.sh [TOTAL_SECONDS]      # default 3600
#
# Prints per target: runs, executions per second, coverage and features at
# the start and the end, corpus size before and after, and any crash (the
# input is kept in target/fuzz/long/crashes/<target>/). A crash becomes a
# regression: fix it, then add the input to fuzz/regressions/<target>/.
# Runs one target at a time (one core); exits 1 if any target crashed.
set -uo pipefail
cd "$(dirname "$0")/.."
TOTAL=${1:-3600}
TARGETS=(manifest component token credentials sdk_router sdk_query orchestrator clusters provisioning pgo)
PER=$((TOTAL / ${#TARGETS[@]}))
[ "$PER" -ge 1 ] || { echo "TOTAL_SECONDS must be at least ${#TARGETS[@]}" >&2; exit 2; }
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
OUT=target/fuzz/long
BIN=target/fuzz/$TRIPLE/release

# The same build as tests/fuzz.rs (flags in fuzz/.cargo/config.toml).
(cd fuzz && env -u RUSTFLAGS cargo build --locked --release --bins --target "$TRIPLE" \
    --target-dir ../target/fuzz) || exit 1

count() { find "$@" -type f 2>/dev/null | wc -l; }
status=0
printf '%-13s %10s %8s %14s %14s %12s %s\n' target runs exec/s cov ft corpus crashes
for t in "${TARGETS[@]}"; do
    corpus=$OUT/corpus/$t crashes=$OUT/crashes/$t log=$OUT/$t.log
    mkdir -p "$corpus" "$crashes"
    before=$(($(count "$corpus") + $(count "fuzz/corpus/$t")))
    dict=()
    [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
    "$BIN/$t" -max_total_time="$PER" -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$crashes/" "$corpus" "fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    inited=$(grep -m1 'INITED' "$log" | grep -o 'cov: [0-9]*\|ft: [0-9]*' | awk '{print $2}' | paste -sd/)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' <<<"$last" | awk '{print $2}')
    ft=$(grep -o 'ft: [0-9]*' <<<"$last" | awk '{print $2}')
    after=$(($(count "$corpus") + $(count "fuzz/corpus/$t")))
    found=$(count "$crashes")
    printf '%-13s %10s %8s %14s %14s %12s %s\n' "$t" "${runs:-?}" "${speed:-?}" \
        "${inited%/*}→${cov:-?}" "${inited#*/}→${ft:-?}" "$before→$after" "$found"
    if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
        status=1
        echo "  $t crashed (exit $rc): $(ls "$crashes" | head -3 | sed "s|^|$crashes/|" | paste -sd' ')"
        grep -m1 -A4 'panicked at' "$log" | sed 's/^/  /'
    fi
done
exit $status
