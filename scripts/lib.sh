# shellcheck shell=bash
# Shared by scripts/test, scripts/format and scripts/demo; sourced, never run.

CRAFT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CRAFT_JOBS="${CRAFT_JOBS:-$(nproc 2>/dev/null || echo 2)}"

# Debian packages craft's build, tests and scripts need (used by the scripts sourcing this).
# shellcheck disable=SC2034
CRAFT_PACKAGES=(build-essential cmake libasio-dev libcereal-dev libleveldb-dev libsnappy-dev
    doctest-dev libcli11-dev libbenchmark-dev clang-format
    nlohmann-json3-dev libcpp-httplib-dev pkgconf redis-tools)

# Prints a section header with the wall-clock time and the seconds since the script started.
craft_section() {
    printf '\n==== %s [%s, %ds in] ====\n' "$*" "$(date +%H:%M:%S)" "$SECONDS"
}

craft_package_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

# Installs whichever of the given Debian packages are missing; silent when none are.
craft_ensure_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "note: not a Debian system; make sure these (or equivalents) are installed: $*" >&2
        return 0
    fi
    local missing=() pkg
    for pkg in "$@"; do
        if [[ "$pkg" == build-essential ]]; then
            # A compiler and make are what matter; g++ alone (plus make) is enough.
            craft_package_installed build-essential ||
                { craft_package_installed g++ && craft_package_installed make; } ||
                missing+=(build-essential)
        elif ! craft_package_installed "$pkg"; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]} == 0)) && return 0

    craft_section "Installing missing packages: ${missing[*]}"
    local as_root=()
    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1; then
            as_root=(sudo)
        else
            echo "error: installing ${missing[*]} needs root (run as root or install sudo)" >&2
            return 1
        fi
    fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Configures the main build tree (build/) the same way for every script, so they share it.
# Debug information is line tables only (-g1): backtraces, sanitizer reports and perf keep
# function, file and line, and the build takes about a fifth less time than with -g (5.2 against
# 6.6 minutes for build/ on the 2-core VM), which keeps scripts/test within its 30 minutes.
CRAFT_DEBUG_INFO="-g1"
craft_configure_main_build() {
    cmake -S "$CRAFT_ROOT" -B "$CRAFT_ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 $CRAFT_DEBUG_INFO -DNDEBUG" \
        -DCRAFT_SANITIZE= -DCRAFT_SIM_SEEDS="${CRAFT_SIM_SEEDS:-10000}"
}

# Prints, NUL-separated, the C++ sources clang-format owns: tracked or new (not ignored) *.hpp and
# *.cpp files under include/, tests/, examples/ and benchmarks/.
craft_format_files() {
    local dirs=(include tests examples benchmarks)
    (
        cd "$CRAFT_ROOT" || exit
        if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
            local specs=() dir
            for dir in "${dirs[@]}"; do
                specs+=("$dir/*.hpp" "$dir/*.cpp")
            done
            git ls-files -z --cached --others --exclude-standard -- "${specs[@]}" |
                while IFS= read -r -d '' file; do
                    # Skip files deleted from the work tree but still in the index.
                    if [[ -f "$file" ]]; then
                        printf '%s\0' "$file"
                    fi
                done
        else
            local existing=() dir
            for dir in "${dirs[@]}"; do
                [[ -d "$dir" ]] && existing+=("$dir")
            done
            ((${#existing[@]} == 0)) ||
                find "${existing[@]}" -type f \( -name '*.hpp' -o -name '*.cpp' \) -print0
        fi
    )
}
