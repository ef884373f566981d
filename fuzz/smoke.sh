#!/usr/bin/env bash
# A short fuzz smoke run for CI: every decoder target, well under a minute of fuzzing
# (plus the first build of the fuzz crate).
#
#   fuzz/smoke.sh                       # libFuzzer-free replay: corpus + 300k mutated inputs per target
#   FUZZ_ENGINE=libfuzzer fuzz/smoke.sh # cargo-fuzz, 10 s per target (needs `cargo install cargo-fuzz`;
#                                       # works on stable through RUSTC_BOOTSTRAP=1)
#
# Exits non-zero on the first crash; the crashing input is printed (replay) or saved
# under fuzz/artifacts/ (libFuzzer).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
targets=(line line_only netstring int_prefixed)

if [[ "${FUZZ_ENGINE:-replay}" == "libfuzzer" ]]; then
    export RUSTC_BOOTSTRAP=1
    for t in "${targets[@]}"; do
        scratch="$(mktemp -d)"
        # New inputs go to the scratch directory; the committed corpus stays as it is.
        cargo fuzz run --features libfuzzer -O -s none "$t" "$scratch" "corpus/$t" -- \
            -max_total_time=10 -max_len=4096
        rm -rf "$scratch"
    done
else
    cargo run --release --quiet --bin replay -- --iters "${FUZZ_ITERS:-300000}" "${targets[@]}"
fi
