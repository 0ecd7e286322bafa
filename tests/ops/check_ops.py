#!/usr/bin/env python3
"""Static checks of what docker-compose, Prometheus and Grafana are given (issue 11): the compose
file is valid for Debian's docker-compose, Prometheus' config and rules pass promtool, every
binary a compose service runs is one the build produces, and every variable a service sets is
one its binary reads (it is listed by the binary's --help, or is a KAFKA_ passthrough).

Also: the README's table of environment variables (between the env-table markers) is exactly
what the binaries' --help say (names, defaults, and which binaries read each).

Usage: check_ops.py SOURCE_DIR BIN_DIR   (exit 0 = every check passed; each failure is printed)
       check_ops.py SOURCE_DIR BIN_DIR --env-table   (prints the table for the README)
"""
import os
import re
import subprocess
import sys

import yaml

SRC, BIN = sys.argv[1], sys.argv[2]
failures = []
BINARIES = ["ploomes-producer", "milvus-producer", "clients-to-milvus", "clients-to-ploomes",
            "tasks-to-milvus", "interactions-to-milvus", "pipeline-dlq", "pipeline-status"]


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def run(cmd, env=None):
    p = subprocess.run(cmd, cwd=SRC, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    return p.returncode, p.stdout


def help_env(binary):
    """{NAME: default or ''} from the Environment section of a binary's --help."""
    p = subprocess.run([os.path.join(BIN, binary), "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    out, section = {}, False
    for line in p.stdout.splitlines():
        if line.startswith("Environment:"):
            section = True
            continue
        if section and line and not line.startswith("  "):
            break
        m = re.match(r"^  ([A-Z][A-Z0-9_]+)\s+(.*)$", line) if section else None
        if m:
            d = re.search(r"\[default (.*)\]\s*$", m.group(2))
            out[m.group(1)] = (d.group(1) if d else "", m.group(2))
    return out


def env_table():
    rows = {}
    for b in BINARIES:
        if not os.access(os.path.join(BIN, b), os.X_OK):
            fail(f"{b} is not built: the environment table needs its --help")
            continue
        for name, (default, text) in help_env(b).items():
            r = rows.setdefault(name, {"default": default, "text": text, "bins": []})
            r["bins"].append(b)
    lines = ["| variable | default | read by | meaning |", "|---|---|---|---|"]
    for name in sorted(rows):
        r = rows[name]
        text = re.sub(r"\s*\[default .*\]\s*$", "", r["text"]).replace("|", "\\|")
        bins = "all" if len(r["bins"]) == len(BINARIES) else ", ".join(r["bins"])
        default = f"`{r['default']}`" if r["default"] else ""
        lines.append(f"| `{name}` | {default} | {bins} | {text} |")
    return "\n".join(lines)


if len(sys.argv) > 3 and sys.argv[3] == "--env-table":
    print(env_table())
    sys.exit(1 if failures else 0)

readme = open(os.path.join(SRC, "README.md"), encoding="utf-8").read()
m = re.search(r"<!-- env-table:start -->\n(.*?)\n<!-- env-table:end -->", readme, re.S)
if not m:
    fail("README.md has no env-table markers")
elif m.group(1).strip() != env_table().strip():
    fail("README.md's environment table differs from the binaries' --help: regenerate it with "
         "tests/ops/check_ops.py SRC BIN --env-table")

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
