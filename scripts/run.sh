#!/usr/bin/env bash
# The main job: installs what is missing, builds, starts local Kafka and MongoDB (FerretDB), and
# runs the whole pipeline — both producers and all four workers, plus pipeline-status's page —
# with a live status on the terminal until Ctrl-C, which stops everything this script started
# and nothing else.
#
# Without credentials it is a demo: both API simulators start with a small realistic account
# (scripts/demo_data.py), and new tagged tasks, new contacts and new Milvus clients keep
# appearing every few seconds, so tickets and clients arrive while you watch.
# With PLOOMES_USER_KEY and MILVUS_TOKEN set it talks to the REAL APIs (say so loudly; try
# DRY_RUN=1 first: workers then log what they would send and write nothing).
#
# Usage: scripts/run.sh [--demo-seconds N] [--bin-dir DIR] [--no-deps]
#   --demo-seconds N  run N seconds unattended, print a summary, exit 0 when the demo data reached
#                     the Milvus simulator (used by the tests)
#   --bin-dir DIR     use binaries already built in DIR (skip the build)
#   --no-deps         skip scripts/deps.sh (everything is installed already)
# Environment: every variable of config/pipeline.env (see the README); KAFKA_BOOTSTRAP_SERVERS and
# MONGODB_URI point at your own Kafka and MongoDB instead of the local ones.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

DEMO_SECONDS=0
BIN_DIR=""
DEPS=1
while [ $# -gt 0 ]; do
  case $1 in
    --demo-seconds) DEMO_SECONDS=${2:?--demo-seconds needs a number}; shift 2 ;;
    --bin-dir) BIN_DIR=${2:?--bin-dir needs a folder}; shift 2 ;;
    --no-deps) DEPS=0; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (try --help)" ;;
  esac
done
case $DEMO_SECONDS in ''|*[!0-9]*) die "--demo-seconds needs a whole number of seconds" ;; esac

RUN_DIR=$CACHE_DIR/run/$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$RUN_DIR"
PIDS=()
NAMES=()
started_services=0

stop_all() {
  trap - INT TERM EXIT
  if [ ${#PIDS[@]} -gt 0 ]; then
    say "stopping ${#PIDS[@]} processes (SIGTERM; they finish their record, flush and commit)"
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    local deadline=$((SECONDS + 40))
    for pid in "${PIDS[@]}"; do
      while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
  fi
  if [ "$started_services" = 1 ]; then
    "$REPO_ROOT/scripts/services.sh" stop >/dev/null || true
  fi
  say "logs: $RUN_DIR"
}
trap 'stop_all; exit 130' INT TERM
trap stop_all EXIT

# ---- install and build ----------------------------------------------------------------------
if [ "$DEPS" = 1 ]; then
  "$REPO_ROOT/scripts/deps.sh"
fi
if [ -z "$BIN_DIR" ]; then
  say "building (Release) into build/"
  cmake -S "$REPO_ROOT" -B "$REPO_ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$REPO_ROOT/build" -j"$(nproc)" >"$RUN_DIR/build.log" 2>&1 ||
    { tail -30 "$RUN_DIR/build.log" >&2; die "the build failed (log: $RUN_DIR/build.log)"; }
  BIN_DIR=$REPO_ROOT/build/bin
fi
for b in ploomes-producer milvus-producer clients-to-milvus clients-to-ploomes tasks-to-milvus \
         interactions-to-milvus pipeline-status ploomes-sim milvus-sim; do
  [ -x "$BIN_DIR/$b" ] || die "$BIN_DIR/$b is missing (build first or fix --bin-dir)"
done

# ---- Kafka and MongoDB ------------------------------------------------------------------------
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ] || [ -z "${MONGODB_URI:-}" ]; then
  if ! "$REPO_ROOT/scripts/services.sh" status >/dev/null 2>&1; then
    started_services=1
  fi
  "$REPO_ROOT/scripts/services.sh" start >/dev/null
  eval "$("$REPO_ROOT/scripts/services.sh" env)"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # name binary args...
  local name=$1; shift
  "$@" >>"$RUN_DIR/$name.log" 2>&1 &
  PIDS+=($!)
  NAMES+=("$name")
  echo "$! $name" >>"$RUN_DIR/pids" # what this run started (and stops), for tests and humans
}

# ---- the two APIs: real, or the simulators with demo data -------------------------------------
DEMO=1
if [ -n "${PLOOMES_USER_KEY:-}${PLOOMES_USER_KEY_FILE:-}" ] && [ -n "${MILVUS_TOKEN:-}${MILVUS_TOKEN_FILE:-}" ]; then
  DEMO=0
  cat >&2 <<EOF

  *****************************************************************************************
  *  REAL CREDENTIALS: this run reads ${PLOOMES_BASE_URL:-https://api2.ploomes.com}
  *  and ${MILVUS_BASE_URL:-https://apiintegracao.milvus.com.br/api}, and CREATES clients and tickets
  *  there${DRY_RUN:+ — except that DRY_RUN=$DRY_RUN is set: workers only log what they would send}.
  *  For a first look, stop now (Ctrl-C) and run again with DRY_RUN=1.
  *****************************************************************************************

EOF
  [ "$DEMO_SECONDS" -gt 0 ] && die "--demo-seconds is for the demo; unset the credentials"
else
  [ -n "${PLOOMES_USER_KEY:-}${MILVUS_TOKEN:-}" ] &&
    say "only one of PLOOMES_USER_KEY / MILVUS_TOKEN is set: running the demo with simulators"
  python3 "$REPO_ROOT/scripts/demo_data.py" write "$RUN_DIR/demo"
  PLOOMES_PORT=$(free_port); MILVUS_PORT=$(free_port)
  export PLOOMES_USER_KEY=demo-ploomes-key MILVUS_TOKEN=demo-milvus-token
  export PLOOMES_BASE_URL=http://127.0.0.1:$PLOOMES_PORT
  export MILVUS_BASE_URL=http://127.0.0.1:$MILVUS_PORT/api
  start ploomes-sim "$BIN_DIR/ploomes-sim" --port "$PLOOMES_PORT" --user-key "$PLOOMES_USER_KEY" \
        --state "$RUN_DIR/demo/ploomes.json"
  start milvus-sim "$BIN_DIR/milvus-sim" --port "$MILVUS_PORT" --token "$MILVUS_TOKEN" \
        --state "$RUN_DIR/demo/milvus.json"
  for port in "$PLOOMES_PORT" "$MILVUS_PORT"; do
    for _ in $(seq 100); do port_open "$port" && break; sleep 0.1; done
    port_open "$port" || die "a simulator did not start (logs: $RUN_DIR)"
    # A lively demo: the simulated accounts allow 6,000 requests a minute (the real ones:
    # Ploomes 120, Milvus unknown); the pipeline's shared limits below stay under that.
    curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' \
      --data '{"rate_limit_per_min":6000}' "http://127.0.0.1:$port/_admin/faults" ||
      die "a simulator refused its demo settings (logs: $RUN_DIR)"
  done
  # A fresh account each demo: its own topics and database, quick polls, every Milvus client.
  stamp=$(date +%s)
  export TOPIC_PREFIX=${TOPIC_PREFIX:-demo-$stamp.}
  MONGODB_URI="${MONGODB_URI%/*}/demo_$stamp"
  export MONGODB_URI
  export POLL_INTERVAL_SECONDS=${POLL_INTERVAL_SECONDS:-5}
  export MILVUS_MIN_ID=${MILVUS_MIN_ID:-0}
  export PLOOMES_RATE_PER_MIN=${PLOOMES_RATE_PER_MIN:-600} MILVUS_RATE_PER_MIN=${MILVUS_RATE_PER_MIN:-600}
  export MAX_ATTEMPTS=${MAX_ATTEMPTS:-3} RETRY_BASE_MS=${RETRY_BASE_MS:-500} RETRY_MAX_MS=${RETRY_MAX_MS:-5000}
  say "demo: ploomes-sim on $PLOOMES_BASE_URL, milvus-sim on $MILVUS_BASE_URL (demo data: $RUN_DIR/demo)"
fi
export KAFKA_BOOTSTRAP_SERVERS MONGODB_URI

# ---- the pipeline ----------------------------------------------------------------------------
declare -A PORT
for name in ploomes-producer milvus-producer clients-to-milvus clients-to-ploomes \
            tasks-to-milvus interactions-to-milvus; do
  PORT[$name]=$(free_port)
  METRICS_PORT=${PORT[$name]} start "$name" "$BIN_DIR/$name"
done
STATUS_PORT=${STATUS_PORT:-$(free_port)}
scrape=""
for w in clients-to-milvus clients-to-ploomes tasks-to-milvus interactions-to-milvus; do
  scrape+="${scrape:+,}http://127.0.0.1:${PORT[$w]}/metrics"
done
# The page may replay dead letters; the token is this run's own, printed below.
STATUS_REPLAY_TOKEN=${STATUS_REPLAY_TOKEN:-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}
STATUS_SCRAPE_URLS=$scrape STATUS_REPLAY_TOKEN=$STATUS_REPLAY_TOKEN \
  start pipeline-status "$BIN_DIR/pipeline-status" --serve "$STATUS_PORT" --interval 5 --allow-replay
say "status page: http://127.0.0.1:$STATUS_PORT/  (replay token: $STATUS_REPLAY_TOKEN)   logs: $RUN_DIR"

# ---- the live demo: the account keeps changing ----------------------------------------------
admin_seed() { # base-url json
  curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary "$2" "$1/_admin/seed"
}
tick=0
demo_step() {
  [ "$DEMO" = 1 ] || return 0
  tick=$((tick + 1))
  admin_seed "$PLOOMES_BASE_URL" "$(python3 "$REPO_ROOT/scripts/demo_data.py" tick "$tick")" ||
    say "demo: the Ploomes simulator did not take new records"
  if [ $((tick % 4)) = 0 ]; then
    admin_seed "${MILVUS_BASE_URL%/api}" "$(python3 "$REPO_ROOT/scripts/demo_data.py" milvus-tick "$tick")" ||
      say "demo: the Milvus simulator did not take new records"
  fi
}

# ---- live status --------------------------------------------------------------------------------
metric_sum() { # text name [label-filter-regex]
  printf '%s\n' "$1" | awk -v n="$2" -v f="${3:-}" '
    $0 ~ "^" n "[{ ]" && (f == "" || $0 ~ f) { s += $NF } END { printf "%d", s }'
}
metric_max() {
  printf '%s\n' "$1" | awk -v n="$2" '$0 ~ "^" n "[{ ]" && $NF > m { m = $NF } END { printf "%d", m }'
}
draw() {
  local now; now=$(date +%s)
  local out
  out=$(printf '%-24s %8s %9s %8s %6s %6s %6s\n' WORKER READ DELIVERED SKIPPED DEDUP DEAD LAG)
  for w in clients-to-milvus clients-to-ploomes tasks-to-milvus interactions-to-milvus; do
    local m; m=$(curl -fsS --max-time 2 "http://127.0.0.1:${PORT[$w]}/metrics" 2>/dev/null || true)
    out+=$(printf '\n%-24s %8s %9s %8s %6s %6s %6s' "$w" "$(metric_sum "$m" worker_records_total)" \
      "$(metric_sum "$m" worker_records_total 'outcome="delivered"')" \
      "$(metric_sum "$m" worker_records_total 'outcome="skipped"')" \
      "$(metric_sum "$m" worker_records_total 'outcome="dedup_hit"')" \
      "$(metric_sum "$m" worker_records_total 'outcome="dead_lettered"')" \
      "$(metric_sum "$m" worker_consumer_lag)")
  done
  out+=$(printf '\n\n%-24s %10s %12s' PRODUCER PUBLISHED 'LAST POLL')
  for p in ploomes-producer milvus-producer; do
    local m; m=$(curl -fsS --max-time 2 "http://127.0.0.1:${PORT[$p]}/metrics" 2>/dev/null || true)
    local last; last=$(metric_max "$m" producer_last_success_timestamp_seconds)
    local age="never"; [ "$last" -gt 0 ] && age="$((now - last))s ago"
    out+=$(printf '\n%-24s %10s %12s' "$p" "$(metric_sum "$m" producer_records_published_total)" "$age")
  done
  if [ "$DEMO" = 1 ]; then
    local tickets clients
    tickets=$(curl -fsS --max-time 2 "${MILVUS_BASE_URL%/api}/_admin/state" 2>/dev/null |
              python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d.get("chamados",[])), len(d.get("clientes",[])))' 2>/dev/null || echo "? ?")
    out+=$(printf '\n\nmilvus-sim now holds: %s tickets, %s clients' ${tickets})
  fi
  if [ -t 1 ]; then printf '\033[H\033[2J'; fi
  printf 'Ploomes ⇄ Milvus pipeline (TOPIC_PREFIX "%s")  Ctrl-C stops everything\n' "${TOPIC_PREFIX:-}"
  printf 'status page: http://127.0.0.1:%s/   logs: %s\n\n%s\n' "$STATUS_PORT" "$RUN_DIR" "$out"
}

deadline=$((SECONDS + DEMO_SECONDS))
while :; do
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      wait "${PIDS[$i]}" && rc=0 || rc=$?
      say "${NAMES[$i]} exited ($rc); its log: $RUN_DIR/${NAMES[$i]}.log"
      tail -5 "$RUN_DIR/${NAMES[$i]}.log" >&2 || true
      exit 1
    fi
  done
  demo_step
  [ "$DEMO_SECONDS" -gt 0 ] || draw
  if [ "$DEMO_SECONDS" -gt 0 ] && [ $SECONDS -ge $deadline ]; then
    break
  fi
  sleep 5
done

# ---- unattended demo: summary ---------------------------------------------------------------
draw
tickets=$(curl -fsS "${MILVUS_BASE_URL%/api}/_admin/state" |
          python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("chamados",[])))')
contacts=$(curl -fsS -H "User-Key: $PLOOMES_USER_KEY" "$PLOOMES_BASE_URL/_admin/state" |
           python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("Contacts",[])))')
printf '\ndemo summary: %s tickets in milvus-sim, %s contacts in ploomes-sim\n' "$tickets" "$contacts"
[ "$tickets" -gt 0 ] || die "no ticket reached the Milvus simulator in $DEMO_SECONDS s"
exit 0
