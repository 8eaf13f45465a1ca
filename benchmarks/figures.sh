#!/usr/bin/env bash
# Runs craft_bench over the configurations of issue 6 and records the figures: one JSON line
# and one latency-by-percentile file per run, a Markdown table (figures.md) and, with gnuplot,
# latency plots (latency-*.png). Figures, never pass/fail.
#
#   benchmarks/figures.sh [--seconds S] [--out DIR] [--processes]
#
# Defaults: 10 s per run after 2 s of warm-up, results in benchmarks/results/. Installs what
# is missing (gnuplot-nox for the plots) and builds craft_bench in build/ like scripts/test.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$CRAFT_ROOT"

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
seconds=10
out="$CRAFT_ROOT/benchmarks/results"
mode=()
while (($#)); do
    case "$1" in
    --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --processes) mode=(--processes); shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "figures.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

craft_section "Dependencies"
craft_ensure_packages "${CRAFT_PACKAGES[@]}" gnuplot-nox
craft_section "Build: craft_bench"
craft_configure_main_build
cmake --build build -j"$CRAFT_JOBS" --target craft_bench
mkdir -p "$out"

# name | craft_bench arguments
runs=(
    "memory-64c-256B|--log memory --clients 64 --payload 256"
    "leveldb-64c-256B|--log leveldb --clients 64 --payload 256"
    "leveldb-64c-4KiB|--log leveldb --clients 64 --payload 4096"
    "leveldb-nosync-64c-256B|--log leveldb --no-sync --clients 64 --payload 256"
    "memory-1c-256B|--log memory --clients 1 --payload 256"
    "leveldb-1c-256B|--log leveldb --clients 1 --payload 256"
)
{
    echo "| run | ops/s | p50 us | p99 us | p99.9 us | max us | CPU s | peak RSS MiB |"
    echo "|---|---|---|---|---|---|---|---|"
} >"$out/figures.md"
for run in "${runs[@]}"; do
    name=${run%|*}
    read -r -a args <<<"${run#*|}"
    craft_section "craft_bench ${mode[*]} ${args[*]} --seconds $seconds"
    build/benchmarks/craft_bench "${mode[@]}" "${args[@]}" --seconds "$seconds" --warmup 2 \
        --json --latency-file "$out/latency-$name.txt" 2>/dev/null | tee "$out/$name.json"
    python3 - "$out/$name.json" "$name" >>"$out/figures.md" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {r['ops_per_sec']:,.0f} | {r['p50_us']:,.0f} | {r['p99_us']:,.0f} | "
      f"{r['p999_us']:,.0f} | {r['max_us']:,.0f} | {r['cpu_seconds']:.1f} | {r['max_rss_mb']:.0f} |")
PY
done
cat "$out/figures.md"

# Latency by percentile (HdrHistogram's plot): x is 1/(1 - percentile) on a log scale, so
# 90 %, 99 %, 99.9 % and 99.99 % are evenly spaced and the tail is visible.
plot() {  # plot OUTPUT TITLE NAME...
    local png=$1 title=$2
    shift 2
    local series=()
    for name in "$@"; do
        series+=("'$out/latency-$name.txt' using (1/(1-\$1/100.0001)):(\$2/1000) with lines lw 2 title '$name'")
    done
    gnuplot <<GP
set terminal pngcairo size 900,520 font ",10"
set output '$png'
set title '$title'
set logscale xy
set xlabel 'percentile'
set ylabel 'latency (ms)'
set xtics ("50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000, "99.999%%" 100000)
set grid
set key top left
plot $(IFS=,; echo "${series[*]}")
GP
    echo "wrote $png"
}
plot "$out/latency-64-clients.png" "craft_bench, 3 nodes, 64 clients: latency by percentile" \
    memory-64c-256B leveldb-64c-256B leveldb-64c-4KiB leveldb-nosync-64c-256B
plot "$out/latency-1-client.png" "craft_bench, 3 nodes, 1 client: latency by percentile" \
    memory-1c-256B leveldb-1c-256B
