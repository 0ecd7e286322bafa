#!/usr/bin/env bash
# Installs what building and testing need, and is quick when everything is already there:
#   - Debian packages (libraries, cmake, kcat, a JDK and Maven for Kafka);
#   - the Apache Kafka broker's jars from Maven Central (into .cache/kafka-libs);
#   - the FerretDB program (MongoDB wire protocol on SQLite), built from the Go module proxy
#     (into .cache/bin/ferretdb-sqlite);
#   - helm, built from the Go module proxy (into .cache/bin/helm), for the chart's tests.
# Usage: scripts/deps.sh [--no-services]   (--no-services: packages only)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PACKAGES=(build-essential cmake pkg-config librdkafka-dev libcurl4-openssl-dev libcjson-dev
          libmongoc-dev libcmocka-dev libmicrohttpd-dev libssl-dev kcat curl ca-certificates
          openjdk-17-jre-headless maven docker-compose prometheus chromium clang
          libclang-rt-dev faketime libfaketime)

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  # The machine may bring its own JDK/Maven outside dpkg: accept them.
  if command -v java >/dev/null && command -v mvn >/dev/null; then
    local keep=()
    for p in "${missing[@]}"; do
      case $p in openjdk-17-jre-headless|maven) ;; *) keep+=("$p") ;; esac
    done
    missing=("${keep[@]}")
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  # needrestart (if present) would only print noise about services on a build machine.
  DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

fetch_kafka() {
  local pom=$REPO_ROOT/scripts/services/kafka/pom.xml
  local stamp
  stamp=$(files_hash "$pom")
  if [ -f "$KAFKA_LIBS/.stamp" ] && [ "$(cat "$KAFKA_LIBS/.stamp")" = "$stamp" ]; then
    return 0
  fi
  say "fetching the Kafka broker's jars from Maven Central"
  rm -rf "$KAFKA_LIBS"
  mkdir -p "$KAFKA_LIBS"
  local log=$CACHE_DIR/maven.log
  if ! mvn -q -B -Dstyle.color=never -f "$pom" \
        org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" >"$log" 2>&1; then
    cat "$log" >&2
    die "could not fetch the Kafka jars from Maven Central (log above)"
  fi
  ls "$KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null || die "Kafka jars missing after the Maven fetch"
  echo "$stamp" > "$KAFKA_LIBS/.stamp"
}

# mongo-java-server's in-memory backend (PIPELINE_MONGO_ENGINE=memory in services.sh): its jars
# from Maven Central and the small main class beside its pom, compiled by javac.
fetch_mongo_memory() {
  local src=$REPO_ROOT/scripts/services/mongo-memory
  local libs=$CACHE_DIR/mongo-memory-libs
  local stamp
  stamp=$(files_hash "$src/pom.xml" "$src/MemoryMongo.java")
  if [ -f "$libs/.stamp" ] && [ "$(cat "$libs/.stamp")" = "$stamp" ]; then
    return 0
  fi
  command -v javac >/dev/null || die "javac is needed for mongo-java-server's main class (a JDK)"
  say "fetching mongo-java-server's jars from Maven Central"
  rm -rf "$libs"
  mkdir -p "$libs"
  local log=$CACHE_DIR/maven-mongo-memory.log
  if ! mvn -q -B -Dstyle.color=never -f "$src/pom.xml" \
        org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$libs" >"$log" 2>&1; then
    cat "$log" >&2
    die "could not fetch mongo-java-server from Maven Central (log above)"
  fi
  javac -cp "$libs/*" -d "$libs" "$src/MemoryMongo.java" || die "could not compile MemoryMongo.java"
  echo "$stamp" > "$libs/.stamp"
}

build_ferretdb() {
  local src=$REPO_ROOT/scripts/services/ferretdb
  local stamp
  stamp=$(files_hash "$src/go.mod" "$src/go.sum" "$src/main.go")
  if [ -x "$FERRETDB_BIN" ] && [ -f "$FERRETDB_BIN.stamp" ] && [ "$(cat "$FERRETDB_BIN.stamp")" = "$stamp" ]; then
    return 0
  fi
  command -v go >/dev/null || [ -x /usr/local/go/bin/go ] ||
    die "Go is needed to build FerretDB (go 1.24 or newer); install it and run again"
  local gobin
  gobin=$(command -v go || echo /usr/local/go/bin/go)
  say "building FerretDB (SQLite backend) from the Go module proxy (first time: about a minute)"
  mkdir -p "$(dirname "$FERRETDB_BIN")"
  (cd "$src" && GOFLAGS=-mod=mod "$gobin" build -trimpath -o "$FERRETDB_BIN" .)
  echo "$stamp" > "$FERRETDB_BIN.stamp"
}

# helm for tests/deploy (helm lint / helm template of deploy/helm); no cluster is needed.
HELM_MODULE=helm.sh/helm/v4
HELM_VERSION=v4.3.2
HELM_BIN=$CACHE_DIR/bin/helm

build_helm() {
  local stamp
  stamp=$(printf '%s@%s\n' "$HELM_MODULE" "$HELM_VERSION" | sha256sum | cut -c1-16)
  if [ -x "$HELM_BIN" ] && [ -f "$HELM_BIN.stamp" ] && [ "$(cat "$HELM_BIN.stamp")" = "$stamp" ]; then
    return 0
  fi
  local gobin
  gobin=$(command -v go || echo /usr/local/go/bin/go)
  [ -x "$gobin" ] || die "Go is needed to build helm (go 1.24 or newer); install it and run again"
  say "building helm $HELM_VERSION from the Go module proxy (first time: a few minutes)"
  mkdir -p "$(dirname "$HELM_BIN")"
  local tmp
  tmp=$(mktemp -d)
  GOBIN=$tmp "$gobin" install -trimpath \
    -ldflags "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    "$HELM_MODULE/cmd/helm@$HELM_VERSION" || { rm -rf "$tmp"; die "could not build helm"; }
  mv "$tmp/helm" "$HELM_BIN"
  rm -rf "$tmp"
  echo "$stamp" > "$HELM_BIN.stamp"
}

install_packages
if [ "${1:-}" != "--no-services" ]; then
  fetch_kafka
  fetch_mongo_memory
  build_ferretdb
  build_helm
fi
