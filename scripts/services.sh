#!/usr/bin/env bash
# Starts, stops and reports the real test services, without Docker:
#   - Apache Kafka 4.1 (KRaft, one node) on 127.0.0.1:$PIPELINE_KAFKA_PORT (19092), jars from
#     Maven Central run on the machine's JDK;
#   - FerretDB 1.24 (MongoDB wire protocol, SQLite backend) on 127.0.0.1:$PIPELINE_MONGO_PORT (27027),
#     or, with PIPELINE_MONGO_ENGINE=memory, mongo-java-server 1.47.0's in-memory backend on the
#     same port (jars from Maven Central, scripts/services/mongo-memory; data lost on stop): the
#     stand-in for a real MongoDB in benchmarks (FerretDB v1 scans). Default: ferretdb.
# Data, logs and pid files live under $PIPELINE_STATE_DIR (default .cache/services).
# Usage: scripts/services.sh start|stop|status|env|reset [mongo]
#   start  idempotent; waits until both answer; prints the two addresses
#          (`start mongo` / `stop mongo`: the MongoDB engine only, e.g. a private memory store
#          beside the shared Kafka for a benchmark)
#   stop   ends exactly the processes this script started (pid files)
#   status exit 0 when both answer (`status mongo`: the MongoDB engine only)
#   env    prints `export` lines for KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI
#   reset  stop, then delete the services' data
# Nothing is exported globally: scripts/test.sh sets the variables for the tests.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

KAFKA_DIR=$STATE_DIR/kafka
MONGO_ENGINE=${PIPELINE_MONGO_ENGINE:-ferretdb}
case $MONGO_ENGINE in
  ferretdb) MONGO_DIR=$STATE_DIR/ferretdb ;;
  memory) MONGO_DIR=$STATE_DIR/mongo-memory ;;
  *) die "PIPELINE_MONGO_ENGINE=$MONGO_ENGINE: expected ferretdb or memory" ;;
esac
MONGO_MEMORY_LIBS=$CACHE_DIR/mongo-memory-libs
START_TIMEOUT=${PIPELINE_SERVICE_TIMEOUT:-120}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

kafka_answers() { kcat -b "$KAFKA_ADDR" -L -m 5 >/dev/null 2>&1; }

wait_for() { # check-command...
  local deadline=$((SECONDS + START_TIMEOUT))
  until "$@"; do
    if [ $SECONDS -ge $deadline ]; then
      return 1
    fi
    sleep 0.5
  done
}

write_kafka_config() {
  mkdir -p "$KAFKA_DIR/data"
  cat > "$KAFKA_DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.segment.bytes=16777216
PROPS
  cat > "$KAFKA_DIR/log4j2.properties" <<PROPS
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $KAFKA_DIR/broker.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
PROPS
}

start_kafka() {
  if pid_alive "$KAFKA_DIR/pid" && kafka_answers; then
    return 0
  fi
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another program (set PIPELINE_KAFKA_PORT)"
  [ -d "$KAFKA_LIBS" ] || die "Kafka jars missing: run scripts/deps.sh first"
  write_kafka_config
  local java_opts=(-Xms256m -Xmx768m -XX:+UseSerialGC -Djava.awt.headless=true
                   "-Dlog4j2.configurationFile=$KAFKA_DIR/log4j2.properties")
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    java "${java_opts[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
      -t pipeline-test-cluster-0001 -c "$KAFKA_DIR/server.properties" --ignore-formatted \
      >"$KAFKA_DIR/format.log" 2>&1 || { cat "$KAFKA_DIR/format.log" >&2; die "Kafka storage format failed"; }
  fi
  nohup java "${java_opts[@]}" -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
    >"$KAFKA_DIR/stdout.log" 2>&1 &
  echo $! > "$KAFKA_DIR/pid"
}

# The port the engine of $MONGO_DIR was started on (a file beside its pid; without one, from
# before this file existed: $MONGO_PORT). A live pid on another port is not this store.
mongo_started_port() { cat "$MONGO_DIR/port" 2>/dev/null || echo "$MONGO_PORT"; }
mongo_up() {
  pid_alive "$MONGO_DIR/pid" && [ "$(mongo_started_port)" = "$MONGO_PORT" ] && port_open "$MONGO_PORT"
}

start_mongo() {
  if mongo_up; then
    return 0
  fi
  if pid_alive "$MONGO_DIR/pid" && [ "$(mongo_started_port)" != "$MONGO_PORT" ]; then
    die "$MONGO_ENGINE of $MONGO_DIR runs on port $(mongo_started_port) (pid $(cat "$MONGO_DIR/pid")), not $MONGO_PORT: stop it first or set PIPELINE_STATE_DIR"
  fi
  port_open "$MONGO_PORT" && die "port $MONGO_PORT is taken by another program (set PIPELINE_MONGO_PORT)"
  if [ "$MONGO_ENGINE" = memory ]; then
    [ -f "$MONGO_MEMORY_LIBS/MemoryMongo.class" ] ||
      die "mongo-java-server missing: run scripts/deps.sh first"
    mkdir -p "$MONGO_DIR"
    nohup java -Xss512k -Xmx${PIPELINE_MONGO_MEMORY_HEAP:-1g} -cp "$MONGO_MEMORY_LIBS/*:$MONGO_MEMORY_LIBS" \
      MemoryMongo "$MONGO_PORT" >"$MONGO_DIR/ferretdb.log" 2>&1 &
    echo $! > "$MONGO_DIR/pid"
    echo "$MONGO_PORT" > "$MONGO_DIR/port"
    return 0
  fi
  [ -x "$FERRETDB_BIN" ] || die "FerretDB missing: run scripts/deps.sh first"
  mkdir -p "$MONGO_DIR/data"
  nohup "$FERRETDB_BIN" -listen "127.0.0.1:$MONGO_PORT" -dir "$MONGO_DIR/data" \
    >"$MONGO_DIR/ferretdb.log" 2>&1 &
  echo $! > "$MONGO_DIR/pid"
  echo "$MONGO_PORT" > "$MONGO_DIR/port"
}

stop_one() { # dir name
  local pidfile=$1/pid
  if pid_alive "$pidfile"; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
    say "stopped $2 (pid $pid)"
  fi
  rm -f "$pidfile"
}

print_env() {
  echo "export KAFKA_BOOTSTRAP_SERVERS=$KAFKA_ADDR"
  echo "export MONGODB_URI=$MONGO_URI_BASE/pipeline"
}

case ${1:-} in
  start)
    mkdir -p "$STATE_DIR"
    t0=$SECONDS
    start_mongo
    [ "${2:-}" = mongo ] || start_kafka
    wait_for port_open "$MONGO_PORT" ||
      { tail -20 "$MONGO_DIR/ferretdb.log" >&2; die "$MONGO_ENGINE did not answer within ${START_TIMEOUT}s"; }
    [ "${2:-}" = mongo ] || wait_for kafka_answers ||
      { tail -30 "$KAFKA_DIR/broker.log" "$KAFKA_DIR/stdout.log" >&2 || true;
        die "Kafka did not answer within ${START_TIMEOUT}s"; }
    say "services ready in $((SECONDS - t0))s"
    [ "${2:-}" = mongo ] || echo "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_ADDR"
    echo "MONGODB_URI=$MONGO_URI_BASE/pipeline"
    ;;
  stop)
    [ "${2:-}" = mongo ] || stop_one "$KAFKA_DIR" kafka
    stop_one "$MONGO_DIR" "$MONGO_ENGINE"
    rm -f "$MONGO_DIR/port"
    ;;
  status)
    rc=0
    if [ "${2:-}" != mongo ]; then
      if pid_alive "$KAFKA_DIR/pid" && kafka_answers; then echo "kafka: up ($KAFKA_ADDR, pid $(cat "$KAFKA_DIR/pid"))"
      else echo "kafka: down"; rc=1; fi
    fi
    if mongo_up; then echo "$MONGO_ENGINE: up ($MONGO_URI_BASE, pid $(cat "$MONGO_DIR/pid"))"
    else echo "$MONGO_ENGINE: down"; rc=1; fi
    [ -d "$STATE_DIR" ] && echo "disk: $(du -sh "$STATE_DIR" | cut -f1) in $STATE_DIR"
    exit $rc
    ;;
  env) print_env ;;
  reset)
    "$0" stop
    rm -rf "$KAFKA_DIR" "$MONGO_DIR"
    ;;
  *)
    echo "usage: $0 start|stop|status|env|reset [mongo]" >&2
    exit 2
    ;;
esac
