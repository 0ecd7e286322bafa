#!/usr/bin/env bash
# The README's test command: installs what it needs, builds with AddressSanitizer and
# UndefinedBehaviorSanitizer, starts real Kafka and FerretDB, and a second MongoDB store
# (mongo-java-server's in-memory backend, the stand-in for a real MongoDB, on its own port and
# state dir) for the `*_memory` tests, runs every test, stops the services it started (also on
# failure or Ctrl-C) and exits with ctest's status.
# Usage: scripts/test.sh [ctest arguments...]   e.g. scripts/test.sh -L unit
# Environment: BUILD_DIR (default build-asan), SANITIZE (default ON), CTEST_PARALLEL (default cores + 1),
# PIPELINE_MONGO_MEMORY_PORT (the memory store's port, default 27028; its data and pid file live
# under $PIPELINE_STATE_DIR/memory-store).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

BUILD_DIR=${BUILD_DIR:-$REPO_ROOT/build-asan}
SANITIZE=${SANITIZE:-ON}

t0=$SECONDS
"$REPO_ROOT/scripts/deps.sh"
say "dependencies ready in $((SECONDS - t0))s"

t1=$SECONDS
cmake -S "$REPO_ROOT" -B "$BUILD_DIR" -DSANITIZE="$SANITIZE" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
say "build ready in $((SECONDS - t1))s"

# The second MongoDB store: services.sh with the memory engine, its own port and state dir.
MEMORY_PORT=${PIPELINE_MONGO_MEMORY_PORT:-27028}
memory_store() {
  PIPELINE_MONGO_ENGINE=memory PIPELINE_MONGO_PORT=$MEMORY_PORT \
    PIPELINE_STATE_DIR=$STATE_DIR/memory-store "$REPO_ROOT/scripts/services.sh" "$@"
}

# libmongoc keeps its counters in /dev/shm/mongoc-<pid> (libfaketime: faketime_shm_<pid> and
# sem.faketime_sem_<pid>) and removes them only on a clean exit, and the tests SIGKILL processes
# on purpose: remove ours whose process is gone, so runs do not pile them up. A leftover also
# makes a later process that reuses the pid print libmongoc's "Falling back to malloc for
# counters" outside our log format.
sweep_stale_shm() {
  local f pid
  for f in /dev/shm/mongoc-* /dev/shm/faketime_shm_* /dev/shm/sem.faketime_sem_*; do
    [ -O "$f" ] || continue
    pid=${f##*[-_]}
    case $pid in '' | *[!0-9]*) continue ;; esac
    kill -0 "$pid" 2>/dev/null || rm -f "$f"
  done
}

started_here=0
memory_started_here=0
cleanup() {
  sweep_stale_shm
  if [ "$memory_started_here" = 1 ]; then
    memory_store stop mongo || true
  fi
  if [ "$started_here" = 1 ]; then
    "$REPO_ROOT/scripts/services.sh" stop || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! "$REPO_ROOT/scripts/services.sh" status >/dev/null 2>&1; then
  started_here=1
fi
if ! memory_store status mongo >/dev/null 2>&1; then
  port_open "$MEMORY_PORT" &&
    die "port $MEMORY_PORT is taken by another program (set PIPELINE_MONGO_MEMORY_PORT)"
  memory_started_here=1
fi
"$REPO_ROOT/scripts/services.sh" start >/dev/null
eval "$("$REPO_ROOT/scripts/services.sh" env)"
memory_uri=$(memory_store start mongo | sed -n 's/^MONGODB_URI=//p')
[ -n "$memory_uri" ] || die "the memory store did not report its URI"
# read by the *_memory tests (CMakeLists.txt) in place of MONGODB_URI
export MONGODB_URI_MEMORY=$memory_uri

t2=$SECONDS
rc=0
# One more test than cores: most integration tests spend their time waiting (consumer-group
# joins, simulator latency, the rate limiter's spacing), not computing.
(cd "$BUILD_DIR" && ctest --output-on-failure -j"${CTEST_PARALLEL:-$(( $(nproc) + 1 ))}" "$@") || rc=$?
# Full runs only (no ctest filter given), alone after the parallel tests: a short fuzz smoke of
# every libFuzzer target (clang build in build-fuzz/), then the short fault-injection soak, which
# starts, restarts and deletes its own Kafka and MongoDB (never the shared ones above).
if [ $# -eq 0 ]; then
  t3=$SECONDS
  "$REPO_ROOT/fuzz/run.sh" --seconds "${FUZZ_SECONDS:-8}" || { say "fuzz smoke failed"; rc=1; }
  say "fuzz smoke finished in $((SECONDS - t3))s"
  t4=$SECONDS
  "$REPO_ROOT/scripts/soak.sh" --minutes "${SOAK_MINUTES:-2}" --seed "${SOAK_SEED:-4242}" \
    --bin-dir "$BUILD_DIR/bin" || { say "soak failed"; rc=1; }
  say "soak finished in $((SECONDS - t4))s"
fi
say "tests finished in $((SECONDS - t2))s (total $((SECONDS - t0))s), ctest exit $rc"
exit $rc
