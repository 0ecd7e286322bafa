# Shared by the scripts in this folder: paths, ports and small helpers. Sourced, never run.
# shellcheck shell=bash
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${PIPELINE_CACHE_DIR:-$REPO_ROOT/.cache}
STATE_DIR=${PIPELINE_STATE_DIR:-$CACHE_DIR/services}
KAFKA_LIBS=$CACHE_DIR/kafka-libs
FERRETDB_BIN=$CACHE_DIR/bin/ferretdb-sqlite
KAFKA_PORT=${PIPELINE_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${PIPELINE_KAFKA_CONTROLLER_PORT:-19093}
MONGO_PORT=${PIPELINE_MONGO_PORT:-27027}
KAFKA_ADDR=127.0.0.1:$KAFKA_PORT
MONGO_URI_BASE=mongodb://127.0.0.1:$MONGO_PORT

say() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Content hash of files, to tell whether a cached build is stale.
files_hash() { cat "$@" | sha256sum | cut -c1-16; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
