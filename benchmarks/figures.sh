#!/usr/bin/env bash
# Runs craft_bench over the configurations of issue 6 and records the figures: one JSON line
# and one latency-by-percentile file per run, a Markdown table (figures.md) and gnuplot latency
# plots (latency-*.png); -processes in those names with --processes. Never pass/fail.
#
#   benchmarks/figures.sh [--seconds S] [--repeat N] [--out DIR] [--processes] [--plot-only]
#
# Defaults: 10 s per run after 2 s of warm-up, each configuration run 3 times and the run
# with the median throughput kept (a shared 2-core VM varies a lot from run to run),
# results in benchmarks/results/. Installs what is missing (gnuplot-nox for the plots) and
# builds craft_bench in build/ like scripts/test. --plot-only redraws the plots of DIR.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$CRAFT_ROOT"

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
seconds=10
repeat=3
out="$CRAFT_ROOT/benchmarks/results"
mode=()
suffix=""
plot_only=0
while (($#)); do
    case "$1" in
    --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --repeat) repeat=${2:?--repeat needs a count}; shift 2 ;;
    --processes) mode=(--processes) suffix=-processes; shift ;;
    --plot-only) plot_only=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "figures.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

craft_section "Dependencies"
craft_ensure_packages "${CRAFT_PACKAGES[@]}" gnuplot-nox
# name | craft_bench arguments
runs=(
    "memory-64c-256B|--log memory --clients 64 --payload 256"
    "leveldb-64c-256B|--log leveldb --clients 64 --payload 256"
    "leveldb-64c-4KiB|--log leveldb --clients 64 --payload 4096"
    "leveldb-nosync-64c-256B|--log leveldb --no-sync --clients 64 --payload 256"
    "memory-1c-256B|--log memory --clients 1 --payload 256"
    "leveldb-1c-256B|--log leveldb --clients 1 --payload 256"
)
if ((plot_only)); then
    runs=()
else
    craft_section "Build: craft_bench"
    craft_configure_main_build
    cmake --build build -j"$CRAFT_JOBS" --target craft_bench
fi
mkdir -p "$out"

((plot_only)) || {
    echo "| run | ops/s: median (min-max) | p50 us | p99 us | p99.9 us | max us | CPU s | peak RSS MiB | machine busy / steal % |"
    echo "|---|---|---|---|---|---|---|---|---|"
} >"$out/figures$suffix.md"
for run in "${runs[@]}"; do
    name=${run%|*}$suffix
    read -r -a args <<<"${run#*|}"
    craft_section "craft_bench ${mode[*]} ${args[*]} --seconds $seconds (x$repeat)"
    for ((k = 1; k <= repeat; k++)); do
        build/benchmarks/craft_bench "${mode[@]}" "${args[@]}" --seconds "$seconds" --warmup 2 \
            --json --latency-file "$out/latency-$name.$k.txt" 2>/dev/null | tee "$out/$name.$k.json"
    done
    # Keep the run with the median throughput (and its latencies).
    median=$(python3 -c '
import json, sys
runs = sorted(sys.argv[1:], key=lambda f: json.load(open(f))["ops_per_sec"])
print(runs[len(runs) // 2].rsplit(".", 2)[-2])' "$out/$name".*.json)
    cp "$out/$name.$median.json" "$out/$name.json"
    cp "$out/latency-$name.$median.txt" "$out/latency-$name.txt"
    python3 - "$name" "$out/$name.json" "$out/$name".[0-9]*.json >>"$out/figures$suffix.md" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
all_ops = sorted(json.load(open(f))["ops_per_sec"] for f in sys.argv[3:])
print(f"| {sys.argv[1]} | {r['ops_per_sec']:,.0f} ({all_ops[0]:,.0f}-{all_ops[-1]:,.0f}) | "
      f"{r['p50_us']:,.0f} | {r['p99_us']:,.0f} | {r['p999_us']:,.0f} | {r['max_us']:,.0f} | "
      f"{r['cpu_seconds']:.1f} | {r['max_rss_mb']:.0f} | "
      + (f"{r['machine_busy_pct']:.0f} / {r['steal_pct']:.1f} |"
         if r.get('machine_busy_pct') is not None else "- |"))
PY
done
cat "$out/figures$suffix.md"
command -v gnuplot >/dev/null || { echo "no gnuplot: plots skipped"; exit 0; }

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
set terminal pngcairo size 900,520 font ",10" noenhanced
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
plot "$out/latency-64-clients$suffix.png" \
    "craft_bench${suffix:+ --processes}, 3 nodes, 64 clients: latency by percentile" \
    memory-64c-256B$suffix leveldb-64c-256B$suffix leveldb-64c-4KiB$suffix \
    leveldb-nosync-64c-256B$suffix
plot "$out/latency-1-client$suffix.png" \
    "craft_bench${suffix:+ --processes}, 3 nodes, 1 client: latency by percentile" \
    memory-1c-256B$suffix leveldb-1c-256B$suffix
