#!/usr/bin/env python3
"""Every metric an alert rule (config/prometheus/alerts.yml) or a Grafana panel
(config/grafana/dashboards/pipeline.json) names must exist in a running binary's /metrics
(issue 11). Starts both simulators, both producers, the four workers and pipeline-status
--serve against the test's Kafka and MongoDB (own TOPIC_PREFIX and database), scrapes each
/metrics, stops them all with SIGTERM (each must exit 0), and compares.

Usage: check_metrics.py SOURCE_DIR BIN_DIR   (KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI set)
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import yaml

SRC, BIN = sys.argv[1], sys.argv[2]
PREFIXES = ("worker_", "producer_", "http_", "ratelimit_", "store_", "process_", "pipeline_")
DAEMONS = ["ploomes-producer", "milvus-producer", "clients-to-milvus", "clients-to-ploomes",
           "tasks-to-milvus", "interactions-to-milvus"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def named_metrics(expr):
    names = set()
    for tok in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if tok.startswith(PREFIXES):
            names.add(re.sub(r"_(bucket|count|sum)$", "", tok) if tok.endswith(
                ("_bucket", "_count", "_sum")) and "duration" in tok else tok)
    return names


def wanted():
    names = set()
    rules = yaml.safe_load(open(os.path.join(SRC, "config/prometheus/alerts.yml")))
    for g in rules["groups"]:
        for r in g["rules"]:
            names |= named_metrics(r["expr"])
    dash = json.load(open(os.path.join(SRC, "config/grafana/dashboards/pipeline.json")))
    for p in dash["panels"]:
        for t in p.get("targets", []):
            names |= named_metrics(t["expr"])
    return names


def scrape(port, deadline):
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return r.read().decode()
        except OSError:
            time.sleep(0.3)
    return None


def main():
    tag = f"opsm-{os.getpid()}-{int(time.time())}"
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("PLOOMES_", "MILVUS_", "TOPIC_", "TICKET"))}
    uri = os.environ["MONGODB_URI"]
    env = dict(base_env, TOPIC_PREFIX=tag + ".", TOPIC_PARTITIONS="1",
               MONGODB_URI=uri.rsplit("/", 1)[0] + "/" + tag.replace("-", "_"),
               PLOOMES_USER_KEY="opsm-ploomes-key", MILVUS_TOKEN="opsm-milvus-token",
               POLL_INTERVAL_SECONDS="5", LOG_LEVEL="warn", MILVUS_MIN_ID="0")
    procs, failures = [], []
    logdir = os.environ.get("TMPDIR", "/tmp")
    try:
        sims = {}
        for sim, flag in (("ploomes-sim", "--user-key"), ("milvus-sim", "--token")):
            p = subprocess.Popen([os.path.join(BIN, sim), "--port", "0", flag,
                                  env["PLOOMES_USER_KEY" if sim == "ploomes-sim" else "MILVUS_TOKEN"]],
                                 stdout=subprocess.PIPE, text=True)
            procs.append((sim, p))
            sims[sim] = p.stdout.readline().strip().split()[-1]
        env["PLOOMES_BASE_URL"] = sims["ploomes-sim"]
        env["MILVUS_BASE_URL"] = sims["milvus-sim"] + "/api"
        ports = {}
        for d in DAEMONS:
            ports[d] = free_port()
            log = open(os.path.join(logdir, f"{tag}-{d}.log"), "w")
            procs.append((d, subprocess.Popen([os.path.join(BIN, d)],
                                              env=dict(env, METRICS_PORT=str(ports[d])),
                                              stdout=log, stderr=log)))
        ports["pipeline-status"] = free_port()
        log = open(os.path.join(logdir, f"{tag}-pipeline-status.log"), "w")
        procs.append(("pipeline-status", subprocess.Popen(
            [os.path.join(BIN, "pipeline-status"), "--serve", str(ports["pipeline-status"]),
             "--interval", "1"], env=env, stdout=log, stderr=log)))
        have = set()
        deadline = time.time() + 120
        for name, port in ports.items():
            text = scrape(port, deadline)
            if text is None:
                failures.append(f"{name}: /metrics did not answer (log: {logdir}/{tag}-{name}.log)")
                continue
            have |= set(re.findall(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) ", text, re.M))
        missing = sorted(wanted() - have)
        for m in missing:
            failures.append(f"{m} is named by an alert rule or a dashboard panel, "
                            "but no binary exports it")
        print(f"{len(wanted())} metrics named by rules and panels; {len(have)} exported")
    finally:
        for name, p in procs:
            p.send_signal(signal.SIGTERM)
        for name, p in procs:
            try:
                rc = p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = "timeout"
            if rc != 0:
                failures.append(f"{name} exited {rc} after SIGTERM")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
