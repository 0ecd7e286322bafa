#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -DFUZZ=ON) and fuzzes each one for a few seconds, starting
# from its committed seed corpus fuzz/corpus/<name> (new inputs go to a scratch folder, so the
# repository's corpus stays small; add an interesting one by hand).
# Usage: fuzz/run.sh [--seconds N] [--build-dir DIR] [--only NAME]
#   --seconds N     fuzzing time per target (default 25; five targets = about 2 minutes)
#   --build-dir DIR where to build (default build-fuzz)
# Exits non-zero when clang is missing (scripts/deps.sh installs it), the build fails, or a
# target crashes, leaks or trips a sanitizer; the input that did it is printed and kept in the
# scratch folder. Make it a regression input: copy it into fuzz/regress/<name>/ (replayed by the
# ctest test fuzz/<name> of a -DFUZZ=ON build) and fix the code.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER=25
BUILD_DIR=$REPO_ROOT/build-fuzz
ONLY=""
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) SECONDS_PER=${2:?}; shift 2 ;;
    --build-dir) BUILD_DIR=${2:?}; shift 2 ;;
    --only) ONLY=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz/run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case $SECONDS_PER in ''|*[!0-9]*) echo "fuzz/run.sh: --seconds needs a whole number" >&2; exit 2 ;; esac
say() { printf 'fuzz/run.sh: %s\n' "$*" >&2; }
command -v clang >/dev/null ||
  { say "error: clang is missing (Debian packages clang and libclang-rt-dev; scripts/deps.sh installs them)"; exit 1; }

mkdir -p "$BUILD_DIR"
cmake -S "$REPO_ROOT" -B "$BUILD_DIR" -DFUZZ=ON -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD_DIR/fuzz-cmake.log" 2>&1 ||
  { cat "$BUILD_DIR/fuzz-cmake.log" >&2; say "error: cmake failed"; exit 1; }
targets=()
for src in "$REPO_ROOT"/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c); name=${name#fuzz_}
  [ -z "$ONLY" ] || [ "$ONLY" = "$name" ] || continue
  targets+=("$name")
done
[ ${#targets[@]} -gt 0 ] || { say "error: no target named '$ONLY'"; exit 2; }
cmake --build "$BUILD_DIR" -j"${FUZZ_JOBS:-2}" --target "${targets[@]/#/fuzz-}" >"$BUILD_DIR/fuzz-build.log" 2>&1 ||
  { tail -40 "$BUILD_DIR/fuzz-build.log" >&2; say "error: the build failed (log: $BUILD_DIR/fuzz-build.log)"; exit 1; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/fuzz.XXXXXX")
failed=0
printf '%-10s %10s %8s %8s %s\n' TARGET RUNS COV CORPUS RESULT
for name in "${targets[@]}"; do
  mkdir -p "$scratch/$name"
  inputs=("$REPO_ROOT/fuzz/corpus/$name")
  [ -d "$REPO_ROOT/fuzz/regress/$name" ] && inputs+=("$REPO_ROOT/fuzz/regress/$name")
  log=$scratch/$name.log
  rc=0
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$BUILD_DIR/fuzz/fuzz-$name" -max_total_time="$SECONDS_PER" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$scratch/$name-" \
    "$scratch/$name" "${inputs[@]}" >"$log" 2>&1 || rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || echo "?")
  corp=$(find "$scratch/$name" -type f | wc -l)
  if [ $rc -eq 0 ]; then
    printf '%-10s %10s %8s %8s %s\n' "$name" "${runs:-?}" "${cov:-?}" "$corp" ok
  else
    failed=1
    printf '%-10s %10s %8s %8s %s\n' "$name" "${runs:-?}" "${cov:-?}" "$corp" "FAILED (exit $rc)"
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -10 >&2 || true
    say "log: $log"
  fi
done
if [ $failed -ne 0 ]; then
  say "a fuzz target failed; inputs and logs in $scratch"
  exit 1
fi
rm -rf "$scratch"
