#!/usr/bin/env python3
"""Static checks of what docker-compose, Prometheus and Grafana are given (issue 11): the compose
file is valid for Debian's docker-compose, Prometheus' config and rules pass promtool, every
binary a compose service runs is one the build produces, and every variable a service sets is
one its binary reads (it is listed by the binary's --help, or is a KAFKA_ passthrough).

Usage: check_ops.py SOURCE_DIR BIN_DIR   (exit 0 = every check passed; each failure is printed)
"""
import os
import subprocess
import sys

import yaml

SRC, BIN = sys.argv[1], sys.argv[2]
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def run(cmd, env=None):
    p = subprocess.run(cmd, cwd=SRC, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    return p.returncode, p.stdout


env = dict(os.environ, COMPOSE_PROFILES="sandbox,ui,monitoring,tools")
# Variables of the developer's shell must not leak into the check.
for k in list(env):
    if k.startswith(("PLOOMES_", "MILVUS_", "KAFKA_", "MONGODB_", "TOPIC_")):
        del env[k]

rc, out = run(["docker-compose", "-f", "docker-compose.yml", "config", "-q"], env)
if rc != 0:
    fail("docker-compose config -q: " + out.strip())
rc, out = run(["promtool", "check", "config", "config/prometheus/prometheus.yml"])
if rc != 0:
    fail("promtool check config: " + out.strip())
rc, out = run(["promtool", "check", "rules", "config/prometheus/alerts.yml"])
if rc != 0:
    fail("promtool check rules: " + out.strip())

rc, out = run(["docker-compose", "-f", "docker-compose.yml", "config"], env)
if rc != 0:
    fail("docker-compose config: " + out.strip())
    sys.exit(1)
compose = yaml.safe_load(out)


def env_file_vars(path):
    names = []
    with open(os.path.join(SRC, path), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                names.append(line.split("=", 1)[0])
    return names


raw = yaml.safe_load(open(os.path.join(SRC, "docker-compose.yml"), encoding="utf-8"))
help_cache = {}


def help_of(binary):
    if binary not in help_cache:
        rc, out = run([os.path.join(BIN, binary), "--help"])
        help_cache[binary] = out if rc == 0 else ""
        if rc != 0:
            fail(f"{binary} --help exited {rc}")
    return help_cache[binary]


def is_read(var, text):
    # KAFKA_* other than the broker list pass through to librdkafka (validated by the binary).
    return (var.startswith("KAFKA_") and var != "KAFKA_BOOTSTRAP_SERVERS") or var in text


checked = 0
shared_files = set()
ours = []
for name, svc in compose["services"].items():
    if svc.get("image") != "ploomes-milvus-sync:local":
        continue
    cmd = svc.get("command") or []
    if isinstance(cmd, str):
        cmd = cmd.split()
    binary = cmd[0] if cmd else ""
    if not os.access(os.path.join(BIN, binary), os.X_OK):
        fail(f"service {name}: runs '{binary}', which the build does not produce")
        continue
    ours.append(binary)
    shared_files.update(raw["services"][name].get("env_file") or [])
    # A service's own `environment:` must be read by that very binary (the simulators take
    # flags, not variables, so they set none).
    for var in sorted((raw["services"][name].get("environment") or {}).keys()):
        checked += 1
        if not is_read(var, help_of(binary)):
            fail(f"service {name} sets {var}, which {binary} --help does not list")

# The env files are shared by every pipeline service: each variable must be read by at least one.
all_help = "\n".join(help_of(b) for b in set(ours))
for ef in sorted(shared_files):
    for var in env_file_vars(ef):
        checked += 1
        if not is_read(var, all_help):
            fail(f"{ef} sets {var}, which no binary's --help lists")

print(f"checked {len(compose['services'])} services, {checked} variables; "
      f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
