#!/usr/bin/env bash
# Fault-injection soak (issue 12): the whole pipeline — both producers, every worker, two
# instances of each ticket worker — against the two simulators, which receive a steady stream
# of new Ploomes and Milvus records (tests/soak/soak_data.py), while a fault schedule drawn from
# the seed injects: SIGKILL + restart of a random producer or worker, a Kafka restart, a MongoDB
# restart, simulator faults (503 burst, 429 with and without Retry-After, latency spike, an
# outage longer than the retry budget, short pages). Then it drains, replays the DLQ's transient
# letters, drains again and checks the invariants against the simulators' state
# (tests/soak/soak_check.py): every source record delivered exactly once, or skipped with a
# reason, or (invalid data only) dead-lettered; no duplicate client or ticket at either target;
# no process died except those killed; no sanitizer report. Prints a table; exits 1 on any
# violation.
#
# Usage: scripts/soak.sh [--minutes N] [--seed S] [--bin-dir DIR] [--keep]
#   --minutes N   length of the fault phase (default 2; the drain and checks add 1-3 minutes)
#   --seed S      fault schedule and data (default: from the clock; printed to rerun)
#   --bin-dir DIR the binaries (default build/bin; an ASan build makes the sanitizer check bite)
#   --keep        keep the run's Kafka/MongoDB data (default: deleted; logs are always kept)
# It runs its OWN Kafka and MongoDB (services.sh with its own PIPELINE_STATE_DIR and free ports,
# never 19092/27027) because it restarts them. Logs: .cache/soak/<stamp>-<seed>/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

MINUTES=2
SEED=""
BIN_DIR=$REPO_ROOT/build/bin
KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) MINUTES=${2:?--minutes needs a number}; shift 2 ;;
    --seed) SEED=${2:?--seed needs a number}; shift 2 ;;
    --bin-dir) BIN_DIR=${2:?--bin-dir needs a folder}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (try --help)" ;;
  esac
done
case $MINUTES in ''|*[!0-9]*|0) die "--minutes needs a whole number >= 1" ;; esac
[ -n "$SEED" ] || SEED=$(( $(date +%s) % 100000 ))
case $SEED in *[!0-9]*) die "--seed needs a whole number" ;; esac
BIN_DIR=$(cd "$BIN_DIR" 2>/dev/null && pwd) || die "--bin-dir: no such folder"

PRODUCERS=(ploomes-producer milvus-producer)
WORKERS=(clients-to-milvus clients-to-ploomes tasks-to-milvus interactions-to-milvus)
missing=()
for b in "${PRODUCERS[@]}" "${WORKERS[@]}" pipeline-dlq ploomes-sim milvus-sim; do
  [ -x "$BIN_DIR/$b" ] || missing+=("$b")
done
[ ${#missing[@]} -eq 0 ] ||
  die "missing in $BIN_DIR: ${missing[*]} (build them: cmake --build <dir> --target ${missing[*]})"
for tool in curl python3 kcat; do
  command -v "$tool" >/dev/null || die "$tool is needed (scripts/deps.sh)"
done

RUN=$CACHE_DIR/soak/$(date +%Y%m%d-%H%M%S)-$SEED
mkdir -p "$RUN/logs" "$RUN/seeds"
: >"$RUN/faults.log"; : >"$RUN/killed"; : >"$RUN/exits"; : >"$RUN/replays"
RANDOM=$SEED # the fault schedule below draws only from bash's seeded RANDOM
export PYTHONDONTWRITEBYTECODE=1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- its own Kafka and MongoDB -----------------------------------------------------------------
export PIPELINE_STATE_DIR=$RUN/services
export PIPELINE_KAFKA_PORT=$(free_port)
export PIPELINE_KAFKA_CONTROLLER_PORT=$(free_port)
export PIPELINE_MONGO_PORT=$(free_port)
for p in "$PIPELINE_KAFKA_PORT" "$PIPELINE_KAFKA_CONTROLLER_PORT" "$PIPELINE_MONGO_PORT"; do
  case $p in 19092|19093|27027) die "refusing the shared services' port $p" ;; esac
done
services() { "$REPO_ROOT/scripts/services.sh" "$@"; }

declare -A PID=()      # name -> pid
declare -A CMD=()      # name -> binary
EXPECT_END=0           # set while stopping: exits are then expected
SIM_PIDS=()
services_up=0

cleanup() {
  trap - INT TERM EXIT
  for name in "${!PID[@]}"; do
    kill -KILL "${PID[$name]}" 2>/dev/null || true
  done
  for pid in "${SIM_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  if [ "$services_up" = 1 ]; then
    if [ "$KEEP" = 1 ]; then services stop >/dev/null 2>&1 || true
    else services reset >/dev/null 2>&1 || true; fi
  fi
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

say "run $RUN (seed $SEED, $MINUTES min of faults); own Kafka 127.0.0.1:$PIPELINE_KAFKA_PORT, MongoDB 127.0.0.1:$PIPELINE_MONGO_PORT"
services start >"$RUN/services.log" 2>&1 || { cat "$RUN/services.log" >&2; die "services.sh start failed"; }
services_up=1
eval "$(services env)"
export KAFKA_BOOTSTRAP_SERVERS MONGODB_URI="${MONGODB_URI%/*}/soak"

# ---- simulators with the demo account -----------------------------------------------------------
python3 "$REPO_ROOT/tests/soak/soak_data.py" write "$RUN/seeds"
PLOOMES_PORT=$(free_port); MILVUS_PORT=$(free_port)
export PLOOMES_USER_KEY=soak-ploomes-key MILVUS_TOKEN=soak-milvus-token
export PLOOMES_BASE_URL=http://127.0.0.1:$PLOOMES_PORT MILVUS_BASE_URL=http://127.0.0.1:$MILVUS_PORT/api
PLOOMES_URL=$PLOOMES_BASE_URL
MILVUS_URL=http://127.0.0.1:$MILVUS_PORT
"$BIN_DIR/ploomes-sim" --port "$PLOOMES_PORT" --user-key "$PLOOMES_USER_KEY" \
  --state "$RUN/seeds/ploomes.json" >>"$RUN/logs/ploomes-sim.log" 2>&1 &
SIM_PIDS+=($!)
"$BIN_DIR/milvus-sim" --port "$MILVUS_PORT" --token "$MILVUS_TOKEN" \
  --state "$RUN/seeds/milvus.json" >>"$RUN/logs/milvus-sim.log" 2>&1 &
SIM_PIDS+=($!)
for port in "$PLOOMES_PORT" "$MILVUS_PORT"; do
  for _ in $(seq 100); do port_open "$port" && break; sleep 0.1; done
  port_open "$port" || die "a simulator did not start (logs: $RUN/logs)"
done

faults() { # url json
  curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary "$2" "$1/_admin/faults"
}
# Quotas high enough for the stream (the 429 fault lowers them for a while).
BASE_FAULTS='{"rate_limit_per_min":100000,"retry_after":true,"latency_ms":0,"error_burst":0,"short_pages":false,"down":false}'
faults "$PLOOMES_URL" "$BASE_FAULTS" && faults "$MILVUS_URL" "$BASE_FAULTS" ||
  die "the simulators refused the baseline faults"
faults "$PLOOMES_URL" "{\"seed\":$SEED}" && faults "$MILVUS_URL" "{\"seed\":$SEED}" || die "seed refused"

# ---- the pipeline ------------------------------------------------------------------------------
TICKET_TAGS="40049716=Instalação,40049715=Entrega,40054183=Manutenção"
export TOPIC_PREFIX="soak-$SEED." TOPIC_PARTITIONS=3 TICKET_TAGS
export SYNC_SINCE=2024-01-01T00:00:00-03:00 TICKETS_SINCE=2024-01-01T00:00:00-03:00
export POLL_INTERVAL_SECONDS=3 MILVUS_MIN_ID=0 MILVUS_SCAN_QUOTA_SHARE=1 PLOOMES_SCAN_QUOTA_SHARE=0.5
export PLOOMES_RATE_PER_MIN=3000 MILVUS_RATE_PER_MIN=3000
export MAX_ATTEMPTS=3 RETRY_BASE_MS=200 RETRY_MAX_MS=1500 HTTP_TIMEOUT_MS=8000
export PRODUCER_LEASE_SECONDS=10 CLAIM_LEASE_SECONDS=20 LOG_LEVEL=debug DRY_RUN=0
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export LSAN_OPTIONS=suppressions=$REPO_ROOT/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cat >"$RUN/env" <<EOF
PLOOMES_URL=$PLOOMES_URL
MILVUS_URL=$MILVUS_URL
TICKET_TAG_IDS=40049716,40049715,40054183
MILVUS_MIN_ID=$MILVUS_MIN_ID
EOF

start() { # name (binary = name without @N)
  local name=$1 bin=${1%@*}
  CMD[$name]=$bin
  printf '\n# soak: start %s at %s\n' "$name" "$(date -u +%FT%TZ)" >>"$RUN/logs/$name.log"
  "$BIN_DIR/$bin" >>"$RUN/logs/$name.log" 2>&1 &
  PID[$name]=$!
}
NAMES=(ploomes-producer milvus-producer clients-to-milvus clients-to-ploomes
       tasks-to-milvus@1 tasks-to-milvus@2 interactions-to-milvus@1 interactions-to-milvus@2)
for n in "${NAMES[@]}"; do start "$n"; done

# An unexpected exit is recorded (a violation in the check) and the process started again.
watch_procs() {
  for name in "${!PID[@]}"; do
    local pid=${PID[$name]}
    if ! kill -0 "$pid" 2>/dev/null; then
      local rc=0
      wait "$pid" 2>/dev/null || rc=$?
      if grep -q "^$name $pid\$" "$RUN/killed"; then continue; fi
      echo "$name $pid $rc unexpected" >>"$RUN/exits"
      say "UNEXPECTED: $name (pid $pid) exited $rc; restarting it (log: $RUN/logs/$name.log)"
      start "$name"
    fi
  done
}

tick=0
seed_step() {
  tick=$((tick + 1))
  local p="$RUN/seeds/p-$(printf %05d $tick).json"
  python3 "$REPO_ROOT/tests/soak/soak_data.py" tick "$tick" >"$p.tmp"
  if curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary "@$p.tmp" \
       "$PLOOMES_URL/_admin/seed"; then mv "$p.tmp" "$p"; else rm -f "$p.tmp"; say "seed $tick refused by ploomes-sim"; fi
  if [ $((tick % 2)) = 0 ]; then
    local m="$RUN/seeds/m-$(printf %05d $tick).json"
    python3 "$REPO_ROOT/tests/soak/soak_data.py" milvus-tick "$tick" >"$m.tmp"
    if curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary "@$m.tmp" \
         "$MILVUS_URL/_admin/seed"; then mv "$m.tmp" "$m"; else rm -f "$m.tmp"; say "seed $tick refused by milvus-sim"; fi
  fi
}

fault_log() { echo "$(date +%s) $*" >>"$RUN/faults.log"; say "fault: $*"; }
# (no $(...) around RANDOM: a subshell's draw would not advance the parent's sequence)
pick_sim() { if [ $((RANDOM % 2)) = 0 ]; then SIM_URL=$PLOOMES_URL; else SIM_URL=$MILVUS_URL; fi; }
sim_name() { [ "$1" = "$PLOOMES_URL" ] && echo ploomes || echo milvus; }

restart_service() { # kafka|ferretdb
  local pidfile=$PIPELINE_STATE_DIR/$1/pid pid
  pid=$(cat "$pidfile" 2>/dev/null) || { say "no pid file for $1"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  sleep 2 # a short outage the clients must ride out
  services start >>"$RUN/services.log" 2>&1 || die "services.sh could not restart $1"
}

# A timed fault: applied now, undone by `undo` at `undo_at`.
UNDO_URL=""; UNDO_JSON=""; UNDO_AT=0
inject() { # kind
  local url
  case $1 in
    kill)
      local victims=("${!PID[@]}")
      local v=${victims[$((RANDOM % ${#victims[@]}))]}
      local pid=${PID[$v]}
      fault_log kill "$v"
      echo "$v $pid" >>"$RUN/killed"
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      start "$v" ;;
    kafka_restart) fault_log kafka_restart; restart_service kafka ;;
    mongodb_restart) fault_log mongodb_restart; restart_service ferretdb ;;
    burst_503)
      pick_sim; url=$SIM_URL; fault_log burst_503 "$(sim_name "$url")"
      faults "$url" '{"error_burst":8,"error_status":503}' ;;
    rate_429_retry_after|rate_429_no_retry_after)
      pick_sim; url=$SIM_URL; fault_log "$1" "$(sim_name "$url")"
      local ra=true; [ "$1" = rate_429_no_retry_after ] && ra=false
      faults "$url" "{\"rate_limit_per_min\":20,\"retry_after\":$ra}"
      UNDO_URL=$url; UNDO_JSON='{"rate_limit_per_min":100000,"retry_after":true}'; UNDO_AT=$((SECONDS + 10)) ;;
    latency)
      pick_sim; url=$SIM_URL; fault_log latency "$(sim_name "$url")"
      faults "$url" '{"latency_ms":2500}'
      UNDO_URL=$url; UNDO_JSON='{"latency_ms":0}'; UNDO_AT=$((SECONDS + 10)) ;;
    outage) # longer than the retry budget (3 attempts, <= 1.5 s apart): letters to replay
      fault_log outage milvus 20s
      faults "$MILVUS_URL" '{"down_for_ms":20000}' ;;
    short_pages)
      pick_sim; url=$SIM_URL; fault_log short_pages "$(sim_name "$url")"
      faults "$url" '{"short_pages":true}'
      UNDO_URL=$url; UNDO_JSON='{"short_pages":false}'; UNDO_AT=$((SECONDS + 15)) ;;
  esac
}
undo_due() {
  if [ -n "$UNDO_URL" ] && [ $SECONDS -ge $UNDO_AT ]; then
    faults "$UNDO_URL" "$UNDO_JSON" || say "could not undo a fault"
    UNDO_URL=""
  fi
}

# The schedule: every kind once, in an order drawn from the seed, then random kinds.
KINDS=(kill kafka_restart mongodb_restart burst_503 rate_429_retry_after rate_429_no_retry_after
       latency outage short_pages)
SCHEDULE=("${KINDS[@]}")
for ((i = ${#SCHEDULE[@]} - 1; i > 0; i--)); do
  j=$((RANDOM % (i + 1))); t=${SCHEDULE[$i]}; SCHEDULE[$i]=${SCHEDULE[$j]}; SCHEDULE[$j]=$t
done
PHASE=$((MINUTES * 60))
SLOT=$(( (PHASE - 10) / ${#KINDS[@]} ))
[ $SLOT -ge 12 ] || SLOT=12
[ $SLOT -le 30 ] || SLOT=30 # long runs: more faults, not longer gaps
while [ $((${#SCHEDULE[@]} * SLOT)) -lt $((PHASE - 10)) ]; do
  r=$((RANDOM % 3)); [ $r = 0 ] && SCHEDULE+=(kill) || SCHEDULE+=("${KINDS[$((RANDOM % ${#KINDS[@]}))]}")
done
say "fault schedule (every ${SLOT}s): ${SCHEDULE[*]}"

# ---- fault phase -------------------------------------------------------------------------------
t0=$SECONDS
next_seed=$t0
next_fault=$((t0 + 10))
fi_=0
# The phase lasts --minutes, and longer when needed until every kind was injected once.
while [ $((SECONDS - t0)) -lt $PHASE ] || [ $fi_ -lt ${#KINDS[@]} ]; do
  watch_procs
  undo_due
  if [ $SECONDS -ge $next_seed ]; then seed_step; next_seed=$((SECONDS + 4)); fi
  if [ $SECONDS -ge $next_fault ] && [ $fi_ -lt ${#SCHEDULE[@]} ]; then
    [ -z "$UNDO_URL" ] || { UNDO_AT=0; undo_due; }
    inject "${SCHEDULE[$fi_]}"
    fi_=$((fi_ + 1))
    next_fault=$((SECONDS + SLOT))
    [ $((SECONDS - t0)) -lt $PHASE ] || next_fault=$((SECONDS + 8)) # overtime: the rest, quickly
  fi
  sleep 1
done
UNDO_AT=0; undo_due
faults "$PLOOMES_URL" "$BASE_FAULTS" && faults "$MILVUS_URL" "$BASE_FAULTS" || die "could not clear the faults"
say "fault phase over: $tick seed steps, $(wc -l <"$RUN/faults.log") faults; draining"

dlq_refresh() {
  "$BIN_DIR/pipeline-dlq" list --json >"$RUN/dlq.json.tmp" 2>>"$RUN/logs/pipeline-dlq.log" &&
    mv "$RUN/dlq.json.tmp" "$RUN/dlq.json"
}
drain() { # timeout-seconds [--after-replay]: until every record is accounted for, twice in a row
  local deadline=$((SECONDS + $1)) zero=0 pending
  while [ $SECONDS -lt $deadline ]; do
    watch_procs
    dlq_refresh || true
    pending=$(python3 "$REPO_ROOT/tests/soak/soak_check.py" pending "$RUN" ${2:-} 2>>"$RUN/check.log" || echo "?")
    if [ "$pending" = 0 ]; then zero=$((zero + 1)); [ $zero -ge 2 ] && return 0; else zero=0; fi
    say "drain: $pending records not yet accounted for"
    sleep 5
  done
  return 1
}
drain 240 || say "drain: timed out (the check will name what is missing)"

# ---- replay the transient dead letters (the outage's), then drain again -------------------------
dlq_refresh || die "pipeline-dlq list failed (log: $RUN/logs/pipeline-dlq.log)"
classes=$(python3 - "$RUN/dlq.json" <<'EOF'
import json, re, sys
d = json.load(open(sys.argv[1]))
if isinstance(d, dict):
    d = next((v for v in d.values() if isinstance(v, list)), [])
t = re.compile(r"^(HttpStatus(5\d\d|408|425|429)|Curl.*|AmbiguousCreate|ResponseTooLarge)$")
print(" ".join(sorted({l.get("error_class", "") for l in d if t.match(l.get("error_class", ""))})))
EOF
)
# the check waits, after the replay, until every replayed record was handled again after this
date -u +%Y-%m-%dT%H:%M:%S.%3NZ >"$RUN/replay_at"
for c in $classes; do
  say "replaying dead letters of class $c"
  "$BIN_DIR/pipeline-dlq" replay --error-class "$c" --json >>"$RUN/replays" 2>>"$RUN/logs/pipeline-dlq.log" ||
    say "replay of $c failed (log: $RUN/logs/pipeline-dlq.log)"
  echo >>"$RUN/replays"
done
[ -z "$classes" ] || drain 180 --after-replay || say "drain after replay: timed out"
dlq_refresh || true

# ---- stop: SIGTERM, every process must exit 0 --------------------------------------------------
# A process that does not stop is a hang: its threads' stacks are the evidence (gdb, when there).
stacks() { # pid
  if command -v gdb >/dev/null; then
    timeout 60 gdb -p "$1" -batch -nx -ex 'set pagination off' -ex 'thread apply all bt' </dev/null
  elif command -v eu-stack >/dev/null; then
    timeout 60 eu-stack -p "$1"
  else
    echo "no gdb or eu-stack: no stacks"
  fi
}
for name in "${!PID[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null || true; done
for name in "${!PID[@]}"; do
  pid=${PID[$name]}; rc=0
  for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name did not stop in 60 s: its stacks in $RUN/stacks-$name.txt, then SIGKILL"
    stacks "$pid" >"$RUN/stacks-$name.txt" 2>&1 || true
    kill -KILL "$pid"
  fi
  wait "$pid" 2>/dev/null || rc=$?
  echo "$name $pid $rc expected" >>"$RUN/exits"
  unset "PID[$name]"
done

set +e
python3 "$REPO_ROOT/tests/soak/soak_check.py" final "$RUN"
rc=$?
set -e
echo "command: scripts/soak.sh --minutes $MINUTES --seed $SEED   logs: $RUN"
exit $rc
