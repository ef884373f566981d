# Shared by the benchmark scripts in benches/peers/ (chat_bus, haproxy_hop, one_process,
# udp_compare): each sets BENCH to its name and sources this file.
#
# Sets ROOT (the repository), TARGET (cargo's target directory), OUT (the directory for
# logs and reports: $OUT, or a fresh temporary one), LOADGEN and WEFT (the release
# binaries). Defines:
#   log MESSAGE           a line on stderr, prefixed with the script's name
#   build_release [ARGS]  cargo build --release of loadgen (ARGS: extra targets of the
#                         loadgen package, such as --example NAME) and weft, unless
#                         SKIP_BUILD is set
#   cpu_ticks PID         user + system clock ticks of a process (0 once it is gone)
#   rss_kib PID           its resident memory in KiB
#   seconds T             a duration such as 500ms or 2s, in seconds

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$(mktemp -d "/tmp/weft-$BENCH.XXXXXX")}
mkdir -p "$OUT"
LOADGEN=$TARGET/release/loadgen
WEFT=$TARGET/release/weft

log() { echo "$BENCH: $*" >&2; }

build_release() {
    [[ -n "${SKIP_BUILD:-}" ]] && return 0
    log "building loadgen and weft (release)"
    (cd "$ROOT" && cargo build --release -q -p loadgen --bin loadgen "$@" && cargo build --release -q --bin weft) >&2
}

cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) }
    read -r -a f <<<"$stat"
    echo $((f[11] + f[12]))
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

seconds() { python3 -c "import sys; v=sys.argv[1]; print(float(v[:-2])/1000 if v.endswith('ms') else float(v.rstrip('s')))" "$1"; }
