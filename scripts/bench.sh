#!/usr/bin/env bash
# One benchmark run, everything side by side: the seed's algorithm (bench/baseline.py, a
# BASELINE in Python: sequential requests + pymongo) against the pipeline (producers +
# tasks-to-milvus), on the same simulators and the same data, on two stores: mongo-java-server's
# in-memory backend (a private instance started here: the stand-in for a real MongoDB) and the
# test FerretDB (the shared instance: a database of its own per row, never stopped or reset).
# Kafka: the shared test Kafka, a topic prefix of its own per row.
# Writes the results as JSON (--out) and regenerates the generated section of --md from it
# (bench/report.py; the hand-written sections of the file are kept). Never part of the tests.
#
# Usage: scripts/bench.sh [--quick] [--stores "memory ferretdb"] [--scenarios "S A B C D E G"]
#          [--tasks N] [--clients N] [--b-tasks N] [--high-in-flight N] [--ferretdb-max N]
#          [--growth "N N N"]
#          [--c-seconds S] [--d-polls "S S"] [--d-count N] [--d-window-polls K]
#          [--e-clients "N N"] [--e-poll S] [--e-rate N] [--e-period S] [--cron-minutes M]
#          [--run-timeout S] [--bin-dir DIR] [--out FILE] [--md FILE|none]
#   Throughput rows (A, B, G) are timed by bench/sim_watch.py, which reads milvus-sim's
#   /_admin/stats every 0.1 s: records/s = tickets / (processes' start -> the reading that shows
#   the last ticket): start-up (Kafka group join, the first poll) included; beside it
#   records/s first -> last = (tickets - those of the first reading with a ticket) / (that
#   reading -> the last ticket): the steady rate, start-up left out. The baseline: its own
#   clock (baseline.py: start -> end) and the same first -> last reading.
#   S  the store's ceiling: store-bench, one store_claim + one store_complete per record (a ticket
#      worker's calls for a new record), 32 threads, 10 s: what the store alone allows
#   A  --tasks tagged tasks (10000) over --clients people (2000), simulators at 0 ms, no rate
#      limit: the baseline, the pipeline with 1 instance at MAX_IN_FLIGHT 1 and 32, and 4
#      instances at 32
#   B  the same with 50 ms latency on every API call, at --b-tasks (5000), plus 1 instance at
#      MAX_IN_FLIGHT --high-in-flight (128; the range is 1..1000): what in-flight concurrency
#      buys when each call waits. 5000: at 1,000 tasks the pipeline's ~3 s start-up was a third
#      of its 8 s; at 5,000 it is under a fifth even at the 20x target (~360 records/s, ~14 s),
#      while the baseline (~55 ms a task) takes ~4.6 min. The pipeline at MAX_IN_FLIGHT 1
#      (~60-120 ms a task) may reach --run-timeout first: then reported incomplete, with the
#      rate over the part done
#   C  Milvus limited to 600/min (simulator and MILVUS_RATE_PER_MIN=600), a backlog of
#      max(--tasks, 20 x --c-seconds) tasks (twice what the quota can drain: the workers never
#      run dry; "backlog left" in the results), 4 workers. The quota is per minute, so the
#      window is --c-seconds (60, at least 60) from the workers' FIRST Milvus call: it starts
#      at the last reading of milvus-sim's counters (every 0.05 s) without any API call and
#      ends with the reading --c-seconds later (start-up and Kafka group join, when no call
#      is made, left out). Reported: the window, requests in it / (600 x window / 60), 429s,
#      API calls per ticket with and without the client lookups, and a reading every second
#      (window_series in the JSON)
#   D  idle latency: for each --d-polls interval (5 60), ploomes-producer polling at it and one
#      worker waiting; --d-count tasks (40) created one at a time at random moments over
#      --d-window-polls intervals (4); creation -> ticket visible in milvus-sim (100 ms watcher):
#      p50, p95, max against poll + 2 s. The baseline's line is COMPUTED (cron every
#      --cron-minutes, default 10 = its look-back), not measured
#   E  the producers' share of the quota: for each --e-clients count (1000 50000) in milvus-sim
#      (Ploomes holds at most 1,000 of them: its steady cost does not depend on them),
#      ploomes-producer + milvus-producer at --e-poll (60) and MILVUS_RATE_PER_MIN --e-rate
#      (60), both simulators enforcing those quotas; requests per hour of each over whole poll
#      cycles (pass start to pass start) within --e-period (240) s: milvus-producer from its
#      first pass (each is a full scan), ploomes-producer after its first (the backfill,
#      reported apart); milvus-producer's scans against MILVUS_SCAN_QUOTA_SHARE (0.25) of
#      MILVUS_RATE_PER_MIN. The 1,000 and 50,000 rows run side by side
#   G  cost growth: scenario A, 1 instance, MAX_IN_FLIGHT 32, at each --growth size (1000 10000
#      50000; the size A ran at reuses A's row)
#   --ferretdb-max N (300): on FerretDB, A and B run at min(size, N); G and E rows above N
#      are recorded as cut for time (FerretDB v1 scans: see docs/BENCHMARKS.md)
#   The rows run one after the other, except the idle ones: D at intervals of 30 s or more
#   and E, of every store, run side by side at the end (they wait far more than they work).
#   --run-timeout S (300): a pipeline row still short of its tickets after S s is stopped and
#      reported incomplete with the rate reached so far
#   --quick: small sizes to check the script (memory store only, ~5 min): equivalent to
#      --stores memory --tasks 300 --clients 60 --b-tasks 200 --ferretdb-max 200
#      --growth "100 300" --c-seconds 60 --d-polls 3 --d-count 12 --d-window-polls 3
#      --e-clients "1000 5000" --e-poll 5 --e-rate 120 --e-period 25 --run-timeout 120
#      --md none, results in the run's work directory; later options override these
#   --out FILE: the JSON (default docs/benchmarks.json; --quick: the run's work directory)
#   --md FILE: the Markdown file whose generated section is rewritten (default
#      docs/BENCHMARKS.md; --quick: none — the section is printed on stdout either way)
# Peak RSS and CPU seconds of every process come from /usr/bin/time -v; besides, bench/mem_watch.py
# reads each process's /proc/<pid>/smaps_rollup every 0.2 s: peak PSS (shared pages divided
# among the processes mapping them) and peak USS (Private_Clean + Private_Dirty: what is the
# process's own). The targets are RSS; PSS and USS say how much of it is shared libraries.
# Environment: KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI (default: the shared test services from
# scripts/services.sh env); BENCH_ENV="NAME=value ...": extra settings for the pipeline rows;
# BENCH_NOTE="...": a sentence printed under the command (e.g. "machine otherwise idle").
set -euo pipefail
CMDLINE="scripts/bench.sh $*"
# "No rate limit" rows: the highest PLOOMES_/MILVUS_RATE_PER_MIN the binaries accept (100,000 a
# second); the shared limiter spaces grants W/N apart, so 100,000/min would cap the pipeline at
# 1,667 calls a second.
NO_LIMIT=6000000
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

TASKS=10000
CLIENTS=2000
B_TASKS=5000
HIGH_MIF=128
FERRET_MAX=300
GROWTH="1000 10000 50000"
STORES="memory ferretdb"
SCENARIOS="S A B C D E G"
C_SECONDS=60
D_POLLS="5 60"
D_COUNT=40
D_WINDOW_POLLS=4
D_CLIENTS=50
E_CLIENTS="1000 50000"
E_POLL=60
E_RATE=60
E_PERIOD=240
E_CONTACTS=1000
CRON_MIN=10
RUN_TIMEOUT=300
BIN_DIR=$REPO_ROOT/build-bench/bin
OUT=$REPO_ROOT/docs/benchmarks.json
MD=$REPO_ROOT/docs/BENCHMARKS.md
QUICK=0
for a in "$@"; do if [ "$a" = --quick ]; then QUICK=1; fi; done
if [ $QUICK = 1 ]; then
  STORES=memory; TASKS=300; CLIENTS=60; B_TASKS=200; FERRET_MAX=200; GROWTH="100 300"
  C_SECONDS=60; D_POLLS=3; D_COUNT=12; D_WINDOW_POLLS=3; E_CLIENTS="1000 5000"; E_POLL=5
  E_RATE=120; E_PERIOD=25; RUN_TIMEOUT=120; OUT=""; MD=none
fi
while [ $# -gt 0 ]; do
  case $1 in
    --quick) shift ;;
    --tasks) TASKS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --b-tasks) B_TASKS=$2; shift 2 ;;
    --high-in-flight) HIGH_MIF=$2; shift 2 ;;
    --ferretdb-max) FERRET_MAX=$2; shift 2 ;;
    --growth) GROWTH=$2; shift 2 ;;
    --stores) STORES=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --c-seconds) C_SECONDS=$2; shift 2 ;;
    --d-polls) D_POLLS=$2; shift 2 ;;
    --d-count) D_COUNT=$2; shift 2 ;;
    --d-window-polls) D_WINDOW_POLLS=$2; shift 2 ;;
    --e-clients) E_CLIENTS=$2; shift 2 ;;
    --e-poll) E_POLL=$2; shift 2 ;;
    --e-rate) E_RATE=$2; shift 2 ;;
    --e-period) E_PERIOD=$2; shift 2 ;;
    --cron-minutes) CRON_MIN=$2; shift 2 ;;
    --bin-dir) BIN_DIR=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --md) MD=$2; shift 2 ;;
    --run-timeout) RUN_TIMEOUT=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (try --help)" ;;
  esac
done
for v in TASKS CLIENTS B_TASKS HIGH_MIF FERRET_MAX C_SECONDS D_COUNT D_WINDOW_POLLS E_POLL E_RATE \
         E_PERIOD CRON_MIN RUN_TIMEOUT; do
  case ${!v} in ''|*[!0-9]*) die "$v must be a whole number (got '${!v}')" ;; esac
done
for n in $GROWTH $D_POLLS $E_CLIENTS; do
  case $n in ''|*[!0-9]*) die "sizes and intervals must be whole numbers (got '$n')" ;; esac
done
[ "$TASKS" -ge 1 ] && [ "$CLIENTS" -ge 1 ] || die "--tasks and --clients must be >= 1"
[ "$HIGH_MIF" -ge 1 ] && [ "$HIGH_MIF" -le 1000 ] || die "--high-in-flight must be 1..1000 (MAX_IN_FLIGHT's range)"
for b in ploomes-producer milvus-producer tasks-to-milvus ploomes-sim milvus-sim; do
  [ -x "$BIN_DIR/$b" ] || die "$BIN_DIR/$b missing: cmake --build <dir> --target $b (or --bin-dir)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time missing (Debian package 'time')"

WORK=$CACHE_DIR/bench/run-$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$WORK"
[ -n "$OUT" ] || OUT=$WORK/benchmarks.json
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
STAMP=$(date +%s)
START_UTC=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
PIDS=()
say "work directory $WORK"

# ---- tools -------------------------------------------------------------------------------------
VENV=$CACHE_DIR/bench-venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import requests, pymongo' 2>/dev/null; then
  say "creating the baseline's virtual environment (requests, pymongo from PyPI)"
  python3 -m venv "$VENV"
  # pymongo 4.10: the last release speaking wire version 8 (mongo-java-server)
  "$VENV/bin/pip" install -q 'requests==2.32.3' 'pymongo==4.10.1'
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# waits up to $2 seconds for the child $1 to end (it is then a zombie or gone)
ended_within() {
  local s _
  for _ in $(seq $(( $2 * 10 ))); do
    s=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
    case $s in Z*) return 0 ;; esac
    sleep 0.1
  done
  return 1
}
kill_list() { # pids...: TERM each, KILL what is still running 30 s later, wait for each
  local p            # (only this script's own children: never reused while not waited for)
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do
    ended_within "$p" 30 || { say "pid $p ignored SIGTERM for 30 s: SIGKILL"; kill -KILL "$p" 2>/dev/null || true; }
    wait "$p" 2>/dev/null || true
  done
}
# the shared FerretDB keeps nothing of a run: its databases (bench_<stamp>_*) are dropped
drop_shared_dbs() {
  case " $STORES " in *" ferretdb "*) ;; *) return 0 ;; esac
  "$VENV/bin/python" - "$SHARED_MONGO" "bench_${STAMP}_" <<'EOF' || say "could not drop the run's databases on $SHARED_MONGO"
import sys
import pymongo
c = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=10000)
for name in c.list_database_names():
    if name.startswith(sys.argv[2]):
        c.drop_database(name)
EOF
}
cleanup() {
  kill_list "${PIDS[@]}"
  if [ -n "${SHARED_MONGO:-}" ]; then drop_shared_dbs; fi
  if [ -n "${MEM_PORT:-}" ]; then
    PIPELINE_STATE_DIR=$WORK/services PIPELINE_MONGO_PORT=$MEM_PORT PIPELINE_MONGO_ENGINE=memory \
      "$REPO_ROOT/scripts/services.sh" stop mongo >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ] || [ -z "${MONGODB_URI:-}" ]; then
  eval "$("$REPO_ROOT/scripts/services.sh" env)"
fi
SHARED_MONGO=${MONGODB_URI:-mongodb://127.0.0.1:27027/pipeline}
SHARED_MONGO=${SHARED_MONGO%/*}
# the private memory store: started here, in this shell (rows may run in subshells), once
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
  local log kind
  for kind in ploomes milvus; do
    log=$WORK/$kind-sim-$BASHPID-$RANDOM.log
    if [ $kind = ploomes ]; then
      "$BIN_DIR/ploomes-sim" --port 0 --user-key bench-key --state "$1/ploomes.json" >"$log" 2>&1 &
    else
      "$BIN_DIR/milvus-sim" --port 0 --token bench-token --state "$1/milvus.json" >"$log" 2>&1 &
    fi
    SIM_PIDS+=($!)
    PIDS+=($!)
    local _
    for _ in $(seq 1200); do grep -q '^listening on ' "$log" 2>/dev/null && break; sleep 0.1; done
    local url; url=$(sed -n 's/^listening on //p' "$log" | head -1)
    [ -n "$url" ] || die "$kind-sim did not start ($log)"
    if [ $kind = ploomes ]; then SIM_P=$url; else SIM_M=$url; fi
  done
}
sims_stop() {
  kill_list "${SIM_PIDS[@]}"
  SIM_PIDS=()
}
faults() { # url json
  curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' --data "$2" "$1/_admin/faults"
}
data_dir() { # tasks clients [ploomes contacts]
  local d=$WORK/data-$1-$2-${3:-all}
  # generated once per size (rows running in parallel use sizes of their own)
  [ -f "$d/milvus.json" ] || python3 "$REPO_ROOT/bench/gen_data.py" "$d" "$@" >&2
  echo "$d"
}
clients_for() { # tasks -> clients in A's proportion (at least 1)
  local c=$(( $1 * CLIENTS / TASKS ))
  echo $(( c > 0 ? c : 1 ))
}
min() { echo $(( $1 < $2 ? $1 : $2 )); }

record() { # json object
  echo "$1" >>"$RESULTS"
}
skipped() { # scenario store size reason
  record "$(python3 -c 'import json, sys; print(json.dumps({"scenario": sys.argv[1],
    "store": sys.argv[2], "size": int(sys.argv[3]), "skipped": sys.argv[4]}))' "$@")"
  say "skipped: $*"
}

# ---- one pipeline run ------------------------------------------------------------------------------
# /usr/bin/time -v summary of a finished process: "<peak rss kB> <cpu seconds>"
time_summary() {
  awk -F': ' '/Maximum resident set size/ {r=$2} /User time/ {u=$2} /System time/ {s=$2}
              END {printf "%d %.2f\n", r, u + s}' "$1"
}
# every process of $RUN as a JSON array body: {"process","peak_rss_kb","cpu_s"} from
# /usr/bin/time -v, and from the samples of bench/mem_watch.py ($RUN/mem.json), when there are
# any: "sampled_peak_rss_kb", "peak_pss_kb", "peak_uss_kb", "peak_anon_kb", "mem_samples"
processes_json() {
  local procs="" f name rss cpu
  for f in "$RUN"/*.time; do
    [ -f "$f" ] || continue
    name=$(basename "$f" .time)
    read -r rss cpu < <(time_summary "$f")
    procs+="${procs:+,}$(python3 -c '
import json, sys
name, rss, cpu, mem = sys.argv[1:5]
p = {"process": name, "peak_rss_kb": int(rss or 0), "cpu_s": float(cpu or 0)}
try:
    m = json.load(open(mem)).get(name) or {}
except (OSError, ValueError):
    m = {}
if m.get("samples"):
    p.update(sampled_peak_rss_kb=m["peak_rss_kb"], peak_pss_kb=m["peak_pss_kb"],
             peak_uss_kb=m["peak_uss_kb"], peak_anon_kb=m.get("peak_anon_kb"),
             mem_samples=m["samples"])
print(json.dumps(p))' "$name" "$rss" "$cpu" "$RUN/mem.json")"
  done
  echo "$procs"
}
# bench/mem_watch.py over the row's processes (started under /usr/bin/time: NAME=PID ...),
# until they end; mem_wait after they were stopped
MEM_PID=""
mem_start() {
  python3 "$REPO_ROOT/bench/mem_watch.py" "$RUN/mem.json" "$@" 2>"$RUN/mem_watch.log" &
  MEM_PID=$!
  PIDS+=($!)
}
mem_wait() {
  [ -n "$MEM_PID" ] || return 0
  ended_within "$MEM_PID" 10 || kill -TERM "$MEM_PID" 2>/dev/null || true
  wait "$MEM_PID" 2>/dev/null || say "mem_watch.py failed: $RUN/mem_watch.log"
  MEM_PID=""
}

PIPE_PIDS=(); PIPE_NAMES=()
pipe_start() { # name binary [env...]
  local name=$1 bin=$2; shift 2
  env "$@" /usr/bin/time -v -o "$RUN/$name.time" "$BIN_DIR/$bin" >"$RUN/$name.log" 2>&1 &
  PIPE_PIDS+=($!)
  PIPE_NAMES+=("$name=$!")
  PIDS+=($!)
}
pipe_mem_start() { mem_start "${PIPE_NAMES[@]}"; }
pipe_stop() {
  # SIGTERM the program, not /usr/bin/time (its parent), which then writes its summary
  local p c
  for p in "${PIPE_PIDS[@]}"; do
    for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do kill -TERM "$c" 2>/dev/null || true; done
  done
  for p in "${PIPE_PIDS[@]}"; do
    if ! ended_within "$p" 60; then
      say "a pipeline process under time pid $p ignored SIGTERM for 60 s: SIGKILL"
      for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do kill -KILL "$c" 2>/dev/null || true; done
    fi
    wait "$p" 2>/dev/null || true
  done
  PIPE_PIDS=(); PIPE_NAMES=()
  mem_wait
}
# the settings every pipeline process of a row gets: pipeline_env row-id store
pipeline_env() {
  local id=$1 base; base=$(store_base "$2")
  PENV=(KAFKA_BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP_SERVERS"
    MONGODB_URI="$base/bench_${STAMP}_${id//-/_}" TOPIC_PREFIX="bench-$STAMP-$id."
    TOPIC_PARTITIONS=8 PLOOMES_BASE_URL="$SIM_P" PLOOMES_USER_KEY=bench-key
    MILVUS_BASE_URL="$SIM_M/api" MILVUS_TOKEN=bench-token POLL_INTERVAL_SECONDS=5
    PLOOMES_RATE_PER_MIN=$NO_LIMIT MILVUS_RATE_PER_MIN=$NO_LIMIT MILVUS_MIN_ID=0
    RETRY_BASE_MS=500 RETRY_MAX_MS=5000 LOG_LEVEL=warn)
}

# run_pipeline scenario store tasks clients instances latency_ms [milvus_rate] [window] [in_flight]
# window > 0 (C): bench/sim_watch.py's window of that many seconds from the first Milvus call;
# otherwise until milvus-sim created every ticket or --run-timeout
run_pipeline() {
  local sc=$1 store=$2 tasks=$3 clients=$4 inst=$5 lat=$6 mrate=${7:-$NO_LIMIT} win=${8:-0} mif=${9:-32}
  local id="$sc-$store-$tasks-$inst-$mif"
  RUN=$WORK/$id
  mkdir -p "$RUN"
  sims_start "$(data_dir "$tasks" "$clients")"
  faults "$SIM_P" "{\"rate_limit_per_min\":0,\"latency_ms\":$lat}"
  if [ "$mrate" -ge "$NO_LIMIT" ]; then
    faults "$SIM_M" "{\"rate_limit_per_min\":0,\"latency_ms\":$lat}"
  else
    faults "$SIM_M" "{\"rate_limit_per_min\":$mrate,\"latency_ms\":$lat}"
  fi
  pipeline_env "$id" "$store"
  PENV+=(MILVUS_RATE_PER_MIN="$mrate" MAX_IN_FLIGHT="$mif")
  # shellcheck disable=SC2206
  [ -n "${BENCH_ENV:-}" ] && PENV+=($BENCH_ENV)
  local t0; t0=$(date +%s.%N)
  pipe_start ploomes-producer ploomes-producer "${PENV[@]}" PLOOMES_ENTITIES=contacts,tasks
  local i
  for i in $(seq "$inst"); do
    pipe_start "tasks-to-milvus-$i" tasks-to-milvus "${PENV[@]}"
  done
  pipe_mem_start
  if [ "$win" -gt 0 ]; then
    python3 "$REPO_ROOT/bench/sim_watch.py" "$SIM_M" "$t0" window "$win" "$RUN_TIMEOUT" \
      >"$RUN/watch.json" 2>"$RUN/watch.log" || say "sim_watch.py failed: $RUN/watch.log"
  else
    python3 "$REPO_ROOT/bench/sim_watch.py" "$SIM_M" "$t0" tickets "$tasks" "$RUN_TIMEOUT" \
      >"$RUN/watch.json" 2>"$RUN/watch.log" || say "sim_watch.py failed: $RUN/watch.log"
  fi
  pipe_stop
  sims_stop
  record "$(python3 - "$sc" "$store" "$tasks" "$clients" "$inst" "$lat" "$mrate" "$win" "$mif" \
    "$RUN/watch.json" "$(processes_json)" <<'EOF'
import json, sys
sc, store, tasks, clients, inst, lat, mrate, win, mif, watch = sys.argv[1:11]
try:
    w = json.loads(open(watch).read() or "{}")
except (OSError, ValueError):
    w = {}
if "end_s" not in w:
    w = {"error": w.get("error", "no result from sim_watch.py"), "end_s": 0, "tickets": 0,
         "calls": 0, "r429": 0, "paths": {}, "reason": "error"}
el, tickets, calls = w["end_s"], w["tickets"], w["calls"]
r = {"scenario": sc, "store": store, "system": "pipeline", "instances": int(inst),
     "max_in_flight": int(mif), "tasks": int(tasks), "clients": int(clients),
     "latency_ms": int(lat), "milvus_rate_per_min": int(mrate),
     "seconds": round(el, 2), "complete": w["reason"] in ("done", "window"), "tickets": tickets,
     "records_per_s": round(tickets / el, 1) if el > 0 else None,
     "milvus_calls": calls, "milvus_429": w["r429"],
     "calls_per_ticket": round(calls / tickets, 3) if tickets else None,
     "first_call_s": w.get("first_call_s"), "watch_end": w["reason"],
     "processes": json.loads("[" + sys.argv[11] + "]"), "milvus_paths": w["paths"]}
if w.get("error"):
    r["error"] = w["error"]
if w.get("first_ticket_s") is not None:
    # the steady rate: from the first reading with a ticket to the last ticket
    span = el - w["first_ticket_s"]
    r["first_ticket_s"], r["first_ticket_count"] = w["first_ticket_s"], w["first_ticket_count"]
    r["records_per_s_first_to_last"] = (round((tickets - w["first_ticket_count"]) / span, 1)
                                        if span > 0 and tickets > w["first_ticket_count"] else None)
if int(win) > 0 and w["reason"] == "window":
    # C: the window starts at the first Milvus call (the last reading without one)
    ws = w["window_s"]
    r.update(window_start_s=w["window_start_s"], window_s=ws,
             quota_used=round(calls / (int(mrate) * ws / 60.0), 3),
             backlog_left=int(tasks) - tickets, window_series=w["series"])
    r["seconds"] = ws
    r["records_per_s"] = round(tickets / ws, 1) if ws > 0 else None
    r["seconds_from_start"] = round(el, 2)
print(json.dumps(r))
EOF
)"
  say "$(tail -1 "$RESULTS" | cut -c1-200)"
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
  local t0; t0=$(date +%s.%N)
  # the same clock as the pipeline rows beside its own: sim_watch.py until the baseline ends
  python3 "$REPO_ROOT/bench/sim_watch.py" "$SIM_M" "$t0" tickets "$tasks" 100000 \
    "$RUN/baseline.ended" >"$RUN/watch.json" 2>"$RUN/watch.log" &
  local watch=$!
  PIDS+=($!)
  /usr/bin/time -v -o "$RUN/baseline.py.time" "$VENV/bin/python" "$REPO_ROOT/bench/baseline.py" \
    "$SIM_P" bench-key "$SIM_M/api" bench-token "$base" "bench_${STAMP}_${id//-/_}" \
    >"$RUN/baseline.out" 2>"$RUN/baseline.log" &
  local bl=$!
  PIDS+=($!)
  mem_start "baseline.py=$bl"
  wait "$bl" || say "baseline failed: $RUN/baseline.log"
  touch "$RUN/baseline.ended"
  wait "$watch" || say "sim_watch.py failed: $RUN/watch.log"
  mem_wait
  sims_stop
  record "$(python3 - "$sc" "$store" "$tasks" "$clients" "$lat" "$RUN/baseline.out" \
    "$RUN/watch.json" "$(processes_json)" <<'EOF'
import json, sys
sc, store, tasks, clients, lat, out, watch = sys.argv[1:8]
def load(path):
    try:
        return json.loads(open(path).read() or "{}")
    except (OSError, ValueError):
        return {}
o, w = load(out), load(watch)
el = o.get("seconds") or 0
tickets, calls = w.get("tickets", 0), w.get("calls", 0)
r = {"scenario": sc, "store": store, "system": "baseline (seed algorithm, Python)",
     "instances": 1, "max_in_flight": 1, "tasks": int(tasks), "clients": int(clients),
     "latency_ms": int(lat), "seconds": el,
     "complete": tickets >= int(tasks), "tickets": tickets,
     "records_per_s": round(tickets / el, 1) if el else None, "milvus_calls": calls,
     "milvus_429": w.get("r429", 0),
     "calls_per_ticket": round(calls / tickets, 3) if tickets else None,
     "first_call_s": w.get("first_call_s"), "watch_end": w.get("reason"),
     "processes": json.loads("[" + sys.argv[8] + "]"), "milvus_paths": w.get("paths", {})}
if w.get("error"):
    r["error"] = w["error"]
if w.get("first_ticket_s") is not None and "end_s" in w:
    span = w["end_s"] - w["first_ticket_s"]
    r["first_ticket_s"], r["first_ticket_count"] = w["first_ticket_s"], w["first_ticket_count"]
    r["records_per_s_first_to_last"] = (round((tickets - w["first_ticket_count"]) / span, 1)
                                        if span > 0 and tickets > w["first_ticket_count"] else None)
print(json.dumps(r))
EOF
)"
  say "$(tail -1 "$RESULTS" | cut -c1-200)"
}

# G at the size A ran at: A's own row (1 instance, MAX_IN_FLIGHT 32), not a second run
reuse_a_row() { # store tasks
  python3 - "$RESULTS" "$1" "$2" <<'EOF' || return 1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
a = [r for r in rows if r.get("scenario") == "A" and r.get("store") == sys.argv[2]
     and r.get("system") == "pipeline" and r.get("instances") == 1
     and r.get("max_in_flight") == 32 and r.get("tasks") == int(sys.argv[3])]
if not a:
    sys.exit(1)
g = dict(a[-1], scenario="G", same_run_as="A")
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(g) + "\n")
EOF
}

# ---- D: idle latency ------------------------------------------------------------------------------
# run_idle_latency store poll_seconds
run_idle_latency() {
  local store=$1 poll=$2
  local id="D-$store-$poll"
  RUN=$WORK/$id
  mkdir -p "$RUN"
  sims_start "$(data_dir 0 "$D_CLIENTS")"
  faults "$SIM_P" '{"rate_limit_per_min":0,"latency_ms":0}'
  faults "$SIM_M" '{"rate_limit_per_min":0,"latency_ms":0}'
  pipeline_env "$id" "$store"
  PENV+=(POLL_INTERVAL_SECONDS="$poll")
  # shellcheck disable=SC2206
  [ -n "${BENCH_ENV:-}" ] && PENV+=($BENCH_ENV)
  pipe_start ploomes-producer ploomes-producer "${PENV[@]}" PLOOMES_ENTITIES=contacts,tasks
  pipe_start tasks-to-milvus-1 tasks-to-milvus "${PENV[@]}"
  pipe_mem_start
  local contacts window
  contacts=$(python3 -c "print(','.join(str(100000 + i) for i in range($D_CLIENTS)))")
  window=$(( poll * D_WINDOW_POLLS ))
  python3 "$REPO_ROOT/bench/idle_latency.py" "$SIM_P" bench-key "$SIM_M" "$contacts" \
    "$D_COUNT" "$window" 13 $(( poll * 3 + 120 )) >"$RUN/latency.json" 2>"$RUN/latency.log" \
    || say "idle_latency.py failed: $RUN/latency.log"
  pipe_stop
  sims_stop
  record "$(python3 -c '
import json, sys
store, poll, count, path = sys.argv[1:5]
try:
  o = json.loads(open(path).read() or "{}")
except (OSError, ValueError):
  o = {"error": "no result (see latency.log)"}
r = {"scenario": "D", "store": store, "system": "pipeline", "instances": 1,
  "poll_interval_s": int(poll), "tasks": int(count), "target_ms": int(poll) * 1000 + 2000,
  "processes": json.loads("[" + sys.argv[5] + "]")}
r.update(o)
print(json.dumps(r))' "$store" "$poll" "$D_COUNT" "$RUN/latency.json" "$(processes_json)")"
  say "$(tail -1 "$RESULTS" | cut -c1-200)"
}

# ---- E: the producers' share of the quota ------------------------------------------------------------
# run_quota_share store clients
run_quota_share() {
  local store=$1 clients=$2
  local id="E-$store-$clients"
  RUN=$WORK/$id
  mkdir -p "$RUN"
  local contacts; contacts=$(min "$clients" "$E_CONTACTS")
  sims_start "$(data_dir 0 "$clients" "$contacts")"
  faults "$SIM_P" '{"rate_limit_per_min":120,"latency_ms":0}'
  faults "$SIM_M" "{\"rate_limit_per_min\":$E_RATE,\"latency_ms\":0}"
  pipeline_env "$id" "$store"
  # the defaults for the quota (PLOOMES_RATE_PER_MIN 100, the scan shares), the run's poll
  # interval and Milvus rate; every Ploomes entity
  PENV+=(POLL_INTERVAL_SECONDS="$E_POLL" MILVUS_RATE_PER_MIN="$E_RATE" PLOOMES_RATE_PER_MIN=100
         LOG_LEVEL=info)
  # shellcheck disable=SC2206
  [ -n "${BENCH_ENV:-}" ] && PENV+=($BENCH_ENV)
  pipe_start ploomes-producer ploomes-producer "${PENV[@]}"
  pipe_start milvus-producer milvus-producer "${PENV[@]}"
  pipe_mem_start
  python3 "$REPO_ROOT/bench/quota_share.py" "$SIM_P" "$SIM_M" "$RUN/ploomes-producer.log" \
    "$RUN/milvus-producer.log" "$E_PERIOD" "$RUN_TIMEOUT" >"$RUN/share.json" 2>"$RUN/share.log" \
    || say "quota_share.py failed: $RUN/share.log"
  pipe_stop
  sims_stop
  local share=0.25
  for kv in ${BENCH_ENV:-}; do
    case $kv in MILVUS_SCAN_QUOTA_SHARE=*) share=${kv#*=} ;; esac
  done
  record "$(python3 -c '
import json, sys
store, clients, contacts, poll, rate, period, share, path = sys.argv[1:9]
try:
  o = json.loads(open(path).read() or "{}")
except (OSError, ValueError):
  o = {"error": "no result (see share.log)"}
r = {"scenario": "E", "store": store, "clients": int(clients), "ploomes_contacts": int(contacts),
  "poll_interval_s": int(poll), "milvus_rate_per_min": int(rate), "period_s": int(period),
  "milvus_scan_quota_share": float(share), "producers": o,
  "processes": json.loads("[" + sys.argv[9] + "]")}
m = o.get("milvus", {}) if isinstance(o, dict) else {}
if m.get("requests_per_min") is not None:
  r["milvus_share_used"] = round(m["requests_per_min"] / int(rate), 3)
  r["within_share"] = m["requests_per_min"] <= float(share) * int(rate) * 1.02
print(json.dumps(r))' "$store" "$clients" "$contacts" "$E_POLL" "$E_RATE" "$E_PERIOD" "$share" \
    "$RUN/share.json" "$(processes_json)")"
  say "$(tail -1 "$RESULTS" | cut -c1-200)"
}

# a row in a subshell of its own, run beside others (D at long intervals and E are idle
# pipelines: they wait far more than they work); its processes are stopped with it
in_background() {
  (
    PIDS=(); SIM_PIDS=(); PIPE_PIDS=(); PIPE_NAMES=(); MEM_PID=""
    trap 'kill_list "${PIDS[@]}"' EXIT
    trap 'exit 143' INT TERM
    "$@"
  ) &
  BG_PIDS+=($!)
  PIDS+=($!)
}

# S: the store's own ceiling for a ticket worker: store-bench (bench/store_bench_main.c), one
# claim + one complete per record, 32 threads, 10 s, in a database of its own
run_store_ceiling() { # store
  local out
  if ! out=$("$BIN_DIR/store-bench" --uri "$(store_base "$1")/bench_${STAMP}_store" \
        --threads 32 --seconds 10 2>"$WORK/store-bench-$1.log"); then
    say "store-bench failed on $1: $WORK/store-bench-$1.log"
    return 0
  fi
  record "$(python3 -c 'import json, sys; r = json.loads(sys.argv[2]); r.update(scenario="S",
    store=sys.argv[1]); print(json.dumps(r))' "$1" "$out")"
  say "$(tail -1 "$RESULTS" | cut -c1-200)"
}

# ---- scenarios ----------------------------------------------------------------------------------------
has() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }
T_START=$SECONDS
for store in $STORES; do
  a_tasks=$TASKS; b_tasks=$B_TASKS
  if [ "$store" = ferretdb ]; then a_tasks=$(min "$a_tasks" "$FERRET_MAX"); b_tasks=$(min "$b_tasks" "$FERRET_MAX"); fi
  if has S; then run_store_ceiling "$store"; fi
  if has A; then
    c=$(clients_for "$a_tasks")
    run_baseline A "$store" "$a_tasks" "$c" 0
    run_pipeline A "$store" "$a_tasks" "$c" 1 0 "$NO_LIMIT" 0 1
    run_pipeline A "$store" "$a_tasks" "$c" 1 0
    run_pipeline A "$store" "$a_tasks" "$c" 4 0
  fi
  if has B; then
    c=$(clients_for "$b_tasks")
    run_baseline B "$store" "$b_tasks" "$c" 50
    run_pipeline B "$store" "$b_tasks" "$c" 1 50 "$NO_LIMIT" 0 1
    run_pipeline B "$store" "$b_tasks" "$c" 1 50
    if [ "$HIGH_MIF" -ne 32 ]; then run_pipeline B "$store" "$b_tasks" "$c" 1 50 "$NO_LIMIT" 0 "$HIGH_MIF"; fi
    run_pipeline B "$store" "$b_tasks" "$c" 4 50
  fi
  if has C; then
    c_tasks=$(( TASKS > 20 * C_SECONDS ? TASKS : 20 * C_SECONDS ))
    run_pipeline C "$store" "$c_tasks" "$(clients_for "$c_tasks")" 4 0 600 "$C_SECONDS"
  fi
  if has G; then
    for n in $GROWTH; do
      if [ "$store" = ferretdb ] && [ "$n" -gt "$FERRET_MAX" ]; then
        skipped G "$store" "$n" "cut for time: FerretDB rows run up to --ferretdb-max $FERRET_MAX"
      elif ! reuse_a_row "$store" "$n"; then
        run_pipeline G "$store" "$n" "$(clients_for "$n")" 1 0
      fi
    done
  fi
  # D at short intervals: alone (their latency is the measurement)
  if has D; then
    for p in $D_POLLS; do
      if [ "$p" -lt 30 ]; then run_idle_latency "$store" "$p"; fi
    done
  fi
done
# the idle rows of every store side by side: D at long intervals and E
BG_PIDS=()
if has D; then data_dir 0 "$D_CLIENTS" >/dev/null; fi # generated before rows run side by side
if has E; then for n in $E_CLIENTS; do data_dir 0 "$n" "$(min "$n" "$E_CONTACTS")" >/dev/null; done; fi
for store in $STORES; do
  if has D; then
    for p in $D_POLLS; do
      if [ "$p" -ge 30 ]; then in_background run_idle_latency "$store" "$p"; fi
    done
  fi
  if has E; then
    for n in $E_CLIENTS; do
      if [ "$store" = ferretdb ] && [ "$n" -gt "$FERRET_MAX" ]; then
        skipped E "$store" "$n" "cut for time: FerretDB rows run up to --ferretdb-max $FERRET_MAX"
      else
        in_background run_quota_share "$store" "$n"
      fi
    done
  fi
done
for p in "${BG_PIDS[@]}"; do wait "$p" || say "a background row failed (exit $?)"; done
ELAPSED=$((SECONDS - T_START))
say "all rows done in ${ELAPSED} s"

# ---- the report ---------------------------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
SIZES=$(python3 -c 'import json, sys; k = sys.argv[1::2]; v = sys.argv[2::2]; print(json.dumps(dict(zip(k, v))))' \
  stores "$STORES" scenarios "$SCENARIOS" tasks "$TASKS" clients "$CLIENTS" b_tasks "$B_TASKS" \
  high_in_flight "$HIGH_MIF" ferretdb_max "$FERRET_MAX" growth "$GROWTH" c_seconds "$C_SECONDS" d_polls "$D_POLLS" \
  d_count "$D_COUNT" d_window_polls "$D_WINDOW_POLLS" d_clients "$D_CLIENTS" \
  e_clients "$E_CLIENTS" e_poll "$E_POLL" e_rate "$E_RATE" e_period "$E_PERIOD" \
  e_ploomes_contacts "$E_CONTACTS" cron_minutes "$CRON_MIN" run_timeout "$RUN_TIMEOUT" \
  quick "$QUICK" bench_env "${BENCH_ENV:-}")
md_args=()
[ "$MD" = none ] || md_args=(--md "$MD")
python3 "$REPO_ROOT/bench/report.py" --results "$RESULTS" --out "$OUT" --command "$CMDLINE" \
  --sizes "$SIZES" --started "$START_UTC" --load-start "$LOAD_START" --elapsed "$ELAPSED" \
  --note "${BENCH_NOTE:-}" "${md_args[@]}"
say "results: $OUT${md_args:+, ${MD}}"
