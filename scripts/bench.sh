#!/usr/bin/env bash
# One benchmark run, everything side by side: the seed's algorithm (bench/baseline.py, a
# BASELINE in Python: sequential requests + pymongo) against the pipeline (ploomes-producer +
# tasks-to-milvus), on the same simulators and the same data, on two stores: mongo-java-server's
# in-memory backend (a private instance started here: the stand-in for a real MongoDB) and the
# test FerretDB (the shared instance, read-only use: a database of its own per run).
# Writes docs/BENCHMARKS.md's table to stdout and the results as JSON to --out (default
# docs/benchmarks.json). Never part of the test suite.
#
# Usage: scripts/bench.sh [--tasks N] [--clients N] [--growth "N N N"] [--stores "memory ferretdb"]
#                         [--scenarios "A B C G"] [--bin-dir DIR] [--out FILE] [--run-timeout S]
#   --run-timeout S: a pipeline run still short of its tickets after S seconds is stopped and
#   reported "incomplete" with the rate reached so far
#   A  N tagged tasks / their clients, simulators at 0 ms, no rate limit: records per second from
#      the first poll to the last ticket, baseline vs the pipeline with 1 and 4 worker instances
#   B  the same with 50 ms latency on every API call
#   C  Milvus limited to 600/min (simulator and MILVUS_RATE_PER_MIN=600), a backlog, 4 workers
#      for 60 s: requests / quota, 429s, API calls per ticket
#   G  cost growth: scenario A (1 instance) at each --growth size
#   (D idle latency and E the producers' share of the quota are not implemented yet: see
#   docs/BENCHMARKS.md "Not measured yet")
# Peak RSS and CPU seconds per 1,000 records come from /usr/bin/time -v of every process.
# Environment: KAFKA_BOOTSTRAP_SERVERS (default: the shared test Kafka from services.sh env).
set -euo pipefail
CMDLINE="scripts/bench.sh $*"
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

TASKS=10000
CLIENTS=2000
GROWTH="1000 10000 50000"
STORES="memory ferretdb"
SCENARIOS="A B C G"
BIN_DIR=$REPO_ROOT/build-bench/bin
OUT=$REPO_ROOT/docs/benchmarks.json
RUN_TIMEOUT=1800
while [ $# -gt 0 ]; do
  case $1 in
    --tasks) TASKS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --growth) GROWTH=$2; shift 2 ;;
    --stores) STORES=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --bin-dir) BIN_DIR=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --run-timeout) RUN_TIMEOUT=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (try --help)" ;;
  esac
done
for b in ploomes-producer milvus-producer tasks-to-milvus ploomes-sim milvus-sim; do
  [ -x "$BIN_DIR/$b" ] || die "$BIN_DIR/$b missing: cmake --build <dir> --target $b (or --bin-dir)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time missing (Debian package 'time')"

WORK=$CACHE_DIR/bench/run-$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$WORK"
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
STAMP=$(date +%s)
PIDS=()

# ---- tools -------------------------------------------------------------------------------------
VENV=$CACHE_DIR/bench-venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import requests, pymongo' 2>/dev/null; then
  say "creating the baseline's virtual environment (requests, pymongo from PyPI)"
  python3 -m venv "$VENV"
  # pymongo 4.10: the last release speaking wire version 8 (mongo-java-server)
  "$VENV/bin/pip" install -q 'requests==2.32.3' 'pymongo==4.10.1'
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${MEM_PORT:-}" ]; then
    PIPELINE_STATE_DIR=$WORK/services PIPELINE_MONGO_PORT=$MEM_PORT PIPELINE_MONGO_ENGINE=memory \
      "$REPO_ROOT/scripts/services.sh" stop mongo >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  eval "$("$REPO_ROOT/scripts/services.sh" env)"
fi
SHARED_MONGO=${MONGODB_URI:-mongodb://127.0.0.1:27027/pipeline}
SHARED_MONGO=${SHARED_MONGO%/*}
# the private memory store: started here, in this shell (store_base runs in subshells), once
MEM_PORT=""
case " $STORES " in
  *" memory "*)
    MEM_PORT=$(free_port)
    PIPELINE_STATE_DIR=$WORK/services PIPELINE_MONGO_PORT=$MEM_PORT PIPELINE_MONGO_ENGINE=memory \
      "$REPO_ROOT/scripts/services.sh" start mongo >/dev/null ;;
esac
store_base() { # store -> mongodb://host:port
  case $1 in
    memory) echo "mongodb://127.0.0.1:$MEM_PORT" ;;
    ferretdb) echo "$SHARED_MONGO" ;;
    *) die "unknown store $1" ;;
  esac
}

# ---- simulators ----------------------------------------------------------------------------------
SIM_P=""; SIM_M=""; SIM_PIDS=()
sims_start() { # datadir
  local log
  for kind in ploomes milvus; do
    log=$WORK/$kind-sim-$RANDOM.log
    if [ $kind = ploomes ]; then
      "$BIN_DIR/ploomes-sim" --port 0 --user-key bench-key --state "$1/ploomes.json" >"$log" 2>&1 &
    else
      "$BIN_DIR/milvus-sim" --port 0 --token bench-token --state "$1/milvus.json" >"$log" 2>&1 &
    fi
    SIM_PIDS+=($!)
    PIDS+=($!)
    for _ in $(seq 300); do grep -q '^listening on ' "$log" 2>/dev/null && break; sleep 0.1; done
    local url; url=$(sed -n 's/^listening on //p' "$log" | head -1)
    [ -n "$url" ] || die "$kind-sim did not start ($log)"
    if [ $kind = ploomes ]; then SIM_P=$url; else SIM_M=$url; fi
  done
}
sims_stop() {
  for p in "${SIM_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  SIM_PIDS=()
}
faults() { # url json
  curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' --data "$2" "$1/_admin/faults"
}
# milvus-sim's request counts: "<tickets created> <all API calls> <429s>"
milvus_counts() {
  curl -fsS "$SIM_M/_admin/stats" | python3 -c '
import json, sys
d = json.load(sys.stdin)["requests"]
t = sum(r["count"] for r in d if r["path"] == "/api/chamado/criar" and r["status"] == 200)
a = sum(r["count"] for r in d if r["path"].startswith("/api/"))
q = sum(r["count"] for r in d if r["status"] == 429)
print(t, a, q)'
}
ploomes_calls() {
  curl -fsS "$SIM_P/_admin/stats" | python3 -c '
import json, sys
print(sum(r["count"] for r in json.load(sys.stdin)["requests"] if not r["path"].startswith("/_admin")))'
}

data_dir() { # tasks clients
  local d=$WORK/data-$1-$2
  [ -f "$d/ploomes.json" ] || python3 "$REPO_ROOT/bench/gen_data.py" "$d" "$1" "$2"
  echo "$d"
}

record() { # json object
  echo "$1" >>"$RESULTS"
}

# ---- one pipeline run ------------------------------------------------------------------------------
# /usr/bin/time -v summary of a finished process: "<peak rss kB> <cpu seconds>"
time_summary() {
  awk -F': ' '/Maximum resident set size/ {r=$2} /User time/ {u=$2} /System time/ {s=$2}
              END {printf "%d %.2f\n", r, u + s}' "$1"
}

PIPE_PIDS=(); PIPE_NAMES=()
pipe_start() { # name binary [env...]
  local name=$1 bin=$2; shift 2
  env "$@" /usr/bin/time -v -o "$RUN/$name.time" "$BIN_DIR/$bin" >"$RUN/$name.log" 2>&1 &
  PIPE_PIDS+=($!)
  PIPE_NAMES+=("$name")
  PIDS+=($!)
}
pipe_stop() {
  # SIGTERM the program, not /usr/bin/time (its parent), which then writes its summary
  local c
  for p in "${PIPE_PIDS[@]}"; do
    for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do kill -TERM "$c" 2>/dev/null || true; done
  done
  for p in "${PIPE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIPE_PIDS=(); PIPE_NAMES=()
}

# wait until milvus-sim created n tickets or timeout s; echoes the seconds waited (or -1)
wait_tickets() { # n timeout
  local t0=$SECONDS
  while :; do
    local c; c=$(milvus_counts | cut -d' ' -f1)
    [ "$c" -ge "$1" ] && { echo $((SECONDS - t0)); return 0; }
    [ $((SECONDS - t0)) -ge "$2" ] && { echo -1; return 0; }
    sleep 0.5
  done
}

# run_pipeline scenario store tasks clients instances latency_ms [milvus_rate] [duration] [in_flight]
run_pipeline() {
  local sc=$1 store=$2 tasks=$3 clients=$4 inst=$5 lat=$6 mrate=${7:-100000} dur=${8:-0} mif=${9:-32}
  local id="$sc-$store-$tasks-$inst-$mif"
  RUN=$WORK/$id
  mkdir -p "$RUN"
  sims_start "$(data_dir "$tasks" "$clients")"
  faults "$SIM_P" "{\"rate_limit_per_min\":0,\"latency_ms\":$lat}"
  if [ "$mrate" -ge 100000 ]; then
    faults "$SIM_M" "{\"rate_limit_per_min\":0,\"latency_ms\":$lat}"
  else
    faults "$SIM_M" "{\"rate_limit_per_min\":$mrate,\"latency_ms\":$lat}"
  fi
  local base; base=$(store_base "$store")
  local common=(KAFKA_BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP_SERVERS"
    MONGODB_URI="$base/bench_${STAMP}_${id//-/_}" TOPIC_PREFIX="bench-$STAMP-$id."
    TOPIC_PARTITIONS=8 PLOOMES_BASE_URL="$SIM_P" PLOOMES_USER_KEY=bench-key
    MILVUS_BASE_URL="$SIM_M/api" MILVUS_TOKEN=bench-token POLL_INTERVAL_SECONDS=5
    PLOOMES_RATE_PER_MIN=100000 MILVUS_RATE_PER_MIN="$mrate" MILVUS_MIN_ID=0
    RETRY_BASE_MS=500 RETRY_MAX_MS=5000 LOG_LEVEL=warn MAX_IN_FLIGHT="$mif")
  # BENCH_ENV="NAME=value ...": extra settings for the pipeline's processes (e.g. MAX_IN_FLIGHT=1)
  # shellcheck disable=SC2206
  [ -n "${BENCH_ENV:-}" ] && common+=($BENCH_ENV)
  local t0; t0=$(date +%s.%N)
  pipe_start ploomes-producer ploomes-producer "${common[@]}" PLOOMES_ENTITIES=contacts,tasks
  for i in $(seq "$inst"); do
    pipe_start "tasks-to-milvus-$i" tasks-to-milvus "${common[@]}"
  done
  local waited
  if [ "$dur" -gt 0 ]; then
    sleep "$dur"; waited=$dur
  else
    waited=$(wait_tickets "$tasks" "$RUN_TIMEOUT")
  fi
  local t1; t1=$(date +%s.%N)
  read -r tickets calls r429 < <(milvus_counts)
  pipe_stop
  sims_stop
  local procs="" name
  for f in "$RUN"/*.time; do
    name=$(basename "$f" .time)
    read -r rss cpu < <(time_summary "$f")
    procs+="${procs:+,}{\"process\":\"$name\",\"peak_rss_kb\":$rss,\"cpu_s\":$cpu}"
  done
  record "$(python3 -c '
import json, sys
sc, store, tasks, inst, lat, mrate, dur, t0, t1, tickets, calls, r429, waited, mif = sys.argv[1:15]
el = float(t1) - float(t0)
print(json.dumps({"scenario": sc, "store": store, "system": "pipeline", "instances": int(inst),
  "max_in_flight": int(mif),
  "tasks": int(tasks), "latency_ms": int(lat), "milvus_rate_per_min": int(mrate),
  "seconds": round(el, 2), "complete": waited != "-1", "tickets": int(tickets),
  "records_per_s": round(int(tickets) / el, 1) if el > 0 else None,
  "milvus_calls": int(calls), "milvus_429": int(r429),
  "calls_per_ticket": round(int(calls) / int(tickets), 3) if int(tickets) else None,
  "processes": json.loads("[" + sys.argv[15] + "]")}))' \
    "$sc" "$store" "$tasks" "$inst" "$lat" "$mrate" "$dur" "$t0" "$t1" "$tickets" "$calls" "$r429" "$waited" "$mif" "$procs")"
  say "$(tail -1 "$RESULTS" | cut -c1-220)"
}

# run_baseline scenario store tasks clients latency_ms
run_baseline() {
  local sc=$1 store=$2 tasks=$3 clients=$4 lat=$5
  local id="$sc-$store-$tasks-baseline"
  RUN=$WORK/$id
  mkdir -p "$RUN"
  sims_start "$(data_dir "$tasks" "$clients")"
  faults "$SIM_P" "{\"rate_limit_per_min\":0,\"latency_ms\":$lat}"
  faults "$SIM_M" "{\"rate_limit_per_min\":0,\"latency_ms\":$lat}"
  local base; base=$(store_base "$store")
  /usr/bin/time -v -o "$RUN/baseline.time" "$VENV/bin/python" "$REPO_ROOT/bench/baseline.py" \
    "$SIM_P" bench-key "$SIM_M/api" bench-token "$base" "bench_${STAMP}_${id//-/_}" \
    >"$RUN/baseline.out" 2>"$RUN/baseline.log" || say "baseline failed: $RUN/baseline.log"
  read -r tickets calls r429 < <(milvus_counts)
  sims_stop
  read -r rss cpu < <(time_summary "$RUN/baseline.time")
  record "$(python3 -c '
import json, sys
sc, store, tasks, lat, out, tickets, calls, rss, cpu = sys.argv[1:10]
o = json.loads(open(out).read() or "{}") if out else {}
el = o.get("seconds") or 0
print(json.dumps({"scenario": sc, "store": store, "system": "baseline (seed algorithm, Python)",
  "instances": 1, "tasks": int(tasks), "latency_ms": int(lat), "seconds": el,
  "complete": int(tickets) >= int(tasks), "tickets": int(tickets),
  "records_per_s": round(int(tickets) / el, 1) if el else None, "milvus_calls": int(calls),
  "calls_per_ticket": round(int(calls) / int(tickets), 3) if int(tickets) else None,
  "processes": [{"process": "baseline.py", "peak_rss_kb": int(rss), "cpu_s": float(cpu)}]}))' \
    "$sc" "$store" "$tasks" "$lat" "$RUN/baseline.out" "$tickets" "$calls" "$rss" "$cpu")"
  say "$(tail -1 "$RESULTS" | cut -c1-220)"
}

# ---- scenarios ----------------------------------------------------------------------------------------
has() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }
for store in $STORES; do
  if has A; then
    run_baseline A "$store" "$TASKS" "$CLIENTS" 0
    run_pipeline A "$store" "$TASKS" "$CLIENTS" 1 0 100000 0 1
    run_pipeline A "$store" "$TASKS" "$CLIENTS" 1 0
    run_pipeline A "$store" "$TASKS" "$CLIENTS" 4 0
  fi
  if has B; then
    run_baseline B "$store" "$TASKS" "$CLIENTS" 50
    run_pipeline B "$store" "$TASKS" "$CLIENTS" 1 50 100000 0 1
    run_pipeline B "$store" "$TASKS" "$CLIENTS" 1 50
    run_pipeline B "$store" "$TASKS" "$CLIENTS" 4 50
  fi
  if has C; then
    run_pipeline C "$store" "$TASKS" "$CLIENTS" 4 0 600 60
  fi
  if has G; then
    for n in $GROWTH; do
      run_pipeline G "$store" "$n" "$(( n / 5 > 0 ? n / 5 : 1 ))" 1 0
    done
  fi
done

# ---- the report ---------------------------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
python3 "$REPO_ROOT/bench/report.py" "$RESULTS" "$OUT" "$CMDLINE"
