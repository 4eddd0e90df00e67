#!/usr/bin/env bash
# Soak runs of the fuzz targets (cargo-fuzz, libFuzzer) for longer than the
# test suite's bounded smoke run (src/fuzzing/tests.rs).
#
#   benches/fuzz.sh                 # every target, SECONDS_ each (default 300)
#   benches/fuzz.sh core            # one target: screening, dialogs or core
#   SECONDS_=60 benches/fuzz.sh dialogs
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Each target starts from its committed seeds (fuzz/seeds/TARGET) and
# grows its working corpus in fuzz/corpus/TARGET (not committed); a crash
# is kept in fuzz/artifacts/TARGET/ and replays with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...
# Nothing is sent anywhere: the core target reads the core's output in
# process, and every address it generates is on 127.0.0.0/8.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_=${SECONDS_:-300}
targets=("$@")
((${#targets[@]})) || targets=(screening dialogs core)

cargo +nightly fuzz --version >/dev/null 2>&1 || {
  echo "cargo-fuzz missing: cargo install cargo-fuzz (and rustup toolchain install nightly)" >&2
  exit 1
}
echo "building the fuzz targets (cargo +nightly fuzz build)"
cargo +nightly fuzz build

status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  log=$(mktemp)
  cmd=(cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" --
       -max_total_time="$SECONDS_" -max_len=4096
       -print_final_stats=1)
  echo "== $t: ${cmd[*]}"
  started=$(date +%s)
  if "${cmd[@]}" >"$log" 2>&1; then result=ok; else result=FAILED; status=1; fi
  took=$(( $(date +%s) - started ))
  runs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s+=$2} END {print s+0}')
  cov=$(grep -ho 'cov: [0-9]*' "$log" | tail -1)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  echo "   $result in ${took}s: ${runs} inputs, ${cov:-cov: ?}, corpus ${corpus} files"
  if [ "$result" = FAILED ]; then
    grep -h -A30 'panicked\|ERROR: libFuzzer' "$log" | head -40
    ls "fuzz/artifacts/$t" 2>/dev/null | sed 's/^/   kept: /'
  fi
  rm -f "$log"
done
exit $status
