# One image for every binary of the pipeline (producers, workers, tools, simulators).
# Build: docker build -t ploomes-milvus-sync .   Run one: docker run --rm ploomes-milvus-sync clients-to-milvus --help
#
# Stage 1 builds with Debian 12's libraries (the versions the tests run against);
# stage 2 carries only the runtime libraries, curl for the healthchecks, and a non-root user.
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config librdkafka-dev libcurl4-openssl-dev libcjson-dev \
      libmongoc-dev libcmocka-dev libmicrohttpd-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY common ./common
COPY producers ./producers
COPY workers ./workers
COPY tools ./tools
COPY sim ./sim
COPY tests ./tests
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build -j"$(nproc)" \
 && cmake --install build --prefix /out

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libcurl4 libcjson1 libmongoc-1.0-0 libbson-1.0-0 libmicrohttpd12 libssl3 \
      ca-certificates curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin pipeline
COPY --from=build /out/bin/ /usr/local/bin/
COPY config/demo/ /usr/share/pipeline/demo/
USER 10001:10001
# tini reaps children and forwards SIGTERM, so every binary gets its clean shutdown.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["ploomes-producer", "--help"]
