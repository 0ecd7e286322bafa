#!/usr/bin/env python3
"""Static checks of the Helm chart deploy/helm/ploomes-milvus-sync (issue 15), without a cluster:
`helm lint` and `helm template` with the default values, with every feature on, and with each
account file of deploy/helm/examples/; then, on the rendered manifests:

  - every image is the one the Dockerfile builds (its `docker build -t NAME`), tagged with the
    pipeline's version (CMakeLists.txt project VERSION);
  - every binary a container runs is built, and every env name a container sets is one that
    binary reads: listed by its --help (KAFKA_* passthrough accepted), and a NAME_FILE is
    proven read by running the binary with it (--print-config must say "file");
  - conversely, every non-empty setting of the ConfigMap that a binary lists is passed to it;
  - ConfigMap references exist; secrets only as *_FILE from the existing Secret's mounted keys;
  - every --flag a container passes is listed by its binary's --help;
  - probes: liveness /healthz, readiness /readyz, on the port METRICS_PORT (or --serve) opens;
  - non-root, read-only root filesystem, no privilege escalation, capabilities drop ALL,
    resources set;
  - producers: 2 replicas, an update that never runs a third pod (maxSurge 0 / maxUnavailable 1)
    or Recreate; a PodDisruptionBudget per worker;
  - each KEDA ScaledObject targets a worker Deployment, its consumer group and topic are the
    worker's (TOPIC_PREFIX + name [+ .dry-run], TOPIC_PREFIX + the topic in workers/*.c),
    1 <= min <= max <= TOPIC_PARTITIONS; without KEDA, fixed replicas and no ScaledObject;
  - the PrometheusRule equals config/prometheus/alerts.yml and the dashboard ConfigMap equals
    config/grafana/dashboards/pipeline.json (also from the packaged chart: the symlinks in
    files/ are followed by `helm package`);
  - secrets: values that try to carry one (config.PLOOMES_USER_KEY, a KAFKA_*PASSWORD
    passthrough, a MONGODB_URI with a password) are refused, and the fake value appears
    nowhere in the output; no Secret object is ever rendered;
  - values.yaml's config mirrors config/pipeline.env (every variable but secrets and examples
    of passthroughs).

Usage: check_chart.py SOURCE_DIR BIN_DIR HELM   (exit 0 = every check passed; failures printed)
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

SRC, BIN, HELM = sys.argv[1], sys.argv[2], sys.argv[3]
CHART = os.path.join(SRC, "deploy/helm/ploomes-milvus-sync")
EXAMPLES = os.path.join(SRC, "deploy/helm/examples")
failures = []
tmp = None  # helm's home and the packaged chart, removed by finish()
SECRET_NAMES = {"PLOOMES_USER_KEY", "MILVUS_TOKEN", "MONGODB_PASSWORD", "KAFKA_SASL_PASSWORD",
                "MONGODB_URI"}
BINARIES = ["ploomes-producer", "milvus-producer", "clients-to-milvus", "clients-to-ploomes",
            "tasks-to-milvus", "interactions-to-milvus", "pipeline-status", "pipeline-dlq"]


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg, flush=True)


def run(cmd, env=None):
    p = subprocess.run(cmd, cwd=SRC, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    return p.returncode, p.stdout, p.stderr


def finish():
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"check_chart: {len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if not os.access(HELM, os.X_OK):
    fail(f"helm not found at {HELM}: run scripts/deps.sh (builds it from the Go module proxy)")
    finish()

if not os.path.isfile(os.path.join(CHART, "Chart.yaml")):
    fail(f"no chart at {CHART}")
    finish()

# ---- the binaries and what they read ---------------------------------------------------------
missing = [b for b in BINARIES if not os.access(os.path.join(BIN, b), os.X_OK)]
for b in missing:
    fail(f"binary {b} is not built in {BIN}: the chart runs it, so its variables cannot be "
         f"checked (build it: cmake --build <dir> --target {b})")

help_cache = {}


def help_of(binary):
    if binary not in help_cache:
        path = os.path.join(BIN, binary)
        if not os.access(path, os.X_OK):
            help_cache[binary] = None
        else:
            rc, out, err = run([path, "--help"])
            help_cache[binary] = out + err if rc == 0 else None
            if rc != 0:
                fail(f"{binary} --help exited {rc}")
    return help_cache[binary]


def table_vars(text):
    """Variables of the --help 'Environment:' table (two-space indent, NAME, spaces)."""
    names = set()
    in_env = False
    for line in text.splitlines():
        if line.startswith("Environment:"):
            in_env = True
            continue
        if in_env and line and not line.startswith(" "):
            in_env = False
        m = re.match(r"^  ([A-Z][A-Z0-9_]+)\s", line) if in_env else None
        if m:
            names.add(m.group(1))
    return names


file_cache = {}


def reads_file_variant(binary, name):
    """True when `binary` takes NAME from NAME_FILE: run it with only that and --print-config."""
    key = (binary, name)
    if key in file_cache:
        return file_cache[key]
    base = name[:-len("_FILE")]
    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        f.write("fake-" + base.lower())
        path = f.name
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "MONGODB_URI": "mongodb://127.0.0.1:1/x",
           name: path}
    if base == "MONGODB_PASSWORD":
        env["MONGODB_URI"] = "mongodb://user@127.0.0.1:1/x"
    rc, out, err = run([os.path.join(BIN, binary), "--print-config"], env)
    os.unlink(path)
    ok = re.search(rf"^{re.escape(base)}=\S*\s+#\s*file\b", out + err, re.M) is not None
    if "fake-" + base.lower() in out + err:
        fail(f"{binary} --print-config printed the content of {name}")
    file_cache[key] = ok
    return ok


def is_read(binary, name):
    text = help_of(binary)
    if text is None:
        return True  # reported once as missing
    if name.startswith("KAFKA_") and name != "KAFKA_BOOTSTRAP_SERVERS" and \
            not name.endswith("_FILE"):
        return True
    if name.endswith("_FILE"):
        return reads_file_variant(binary, name)
    return re.search(rf"\b{re.escape(name)}\b", text) is not None


# ---- sources of truth ------------------------------------------------------------------------
dockerfile = open(os.path.join(SRC, "Dockerfile"), encoding="utf-8").read()
m = re.search(r"docker build -t ([\w./-]+)", dockerfile)
IMAGE_NAME = m.group(1) if m else None
if not IMAGE_NAME:
    fail("Dockerfile: no `docker build -t NAME` line to take the image name from")
m = re.search(r"project\(\S+\s+VERSION\s+([\d.]+)", open(os.path.join(SRC, "CMakeLists.txt")).read())
VERSION = m.group(1)

WORKER_TOPICS = {}
workers_dir = os.path.join(SRC, "workers")
for fn in sorted(os.listdir(workers_dir)):
    if fn.endswith(".c"):
        text = open(os.path.join(workers_dir, fn), encoding="utf-8").read()
        for wm in re.finditer(r'\.name\s*=\s*"([a-z-]+)",\s*\.topic\s*=\s*"([a-z.]+)"', text):
            WORKER_TOPICS[wm.group(1)] = wm.group(2)
for w in ["clients-to-milvus", "clients-to-ploomes", "tasks-to-milvus", "interactions-to-milvus"]:
    if w not in WORKER_TOPICS:
        fail(f"workers/*.c: no handler named {w} with its .topic (cannot check its ScaledObject)")

ALERTS = yaml.safe_load(open(os.path.join(SRC, "config/prometheus/alerts.yml"), encoding="utf-8"))
DASHBOARD = json.load(open(os.path.join(SRC, "config/grafana/dashboards/pipeline.json"),
                           encoding="utf-8"))

# ---- values.yaml mirrors config/pipeline.env -------------------------------------------------
values = yaml.safe_load(open(os.path.join(CHART, "values.yaml"), encoding="utf-8"))
env_vars = set()
for line in open(os.path.join(SRC, "config/pipeline.env"), encoding="utf-8"):
    lm = re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=", line.strip())
    if lm:
        env_vars.add(lm.group(1))
passthrough_examples = {v for v in env_vars if v.startswith("KAFKA_") and
                        v not in ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_MAX_MESSAGE_BYTES")}
for v in sorted(env_vars - passthrough_examples - SECRET_NAMES - {"METRICS_PORT"}):
    if v.endswith("_FILE"):
        continue
    if v not in values["config"]:
        fail(f"values.yaml config lacks {v}, which config/pipeline.env sets")
for v in sorted(values["config"]):
    if v not in env_vars:
        fail(f"values.yaml config.{v} is not a variable of config/pipeline.env")
    elif not any(h and re.search(rf"\b{v}\b", h) for h in map(help_of, BINARIES)):
        fail(f"values.yaml config.{v}: no binary's --help lists it")


# ---- helm ------------------------------------------------------------------------------------
def helm(*args):
    rc, out, err = run([HELM, *args], dict(os.environ, HELM_CACHE_HOME=tmp, HELM_CONFIG_HOME=tmp,
                                          HELM_DATA_HOME=tmp))
    return rc, out, err


tmp = tempfile.mkdtemp(prefix="check-chart-")
examples = sorted(os.path.join(EXAMPLES, f) for f in os.listdir(EXAMPLES) if f.endswith(".yaml"))
if len(examples) < 2:
    fail(f"{EXAMPLES}: expected at least two account values files")
ALL_ON = ["--set", "keda.enabled=true", "--set", "metrics.serviceMonitor.enabled=true",
          "--set", "metrics.prometheusRule.enabled=true"]
variants = [("defaults", [])] + [("all features", ALL_ON)] + \
    [(os.path.basename(e), ["-f", e]) for e in examples]

for name, args in variants:
    rc, out, err = helm("lint", "--strict", CHART, *args)
    if rc != 0:
        fail(f"helm lint --strict ({name}): {out.strip()} {err.strip()}")


class StrictLoader(yaml.SafeLoader):
    """Refuses a mapping with a key twice (PyYAML keeps the last; the API server may not)."""


def _no_duplicates(loader, node, deep=False):
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    dups = sorted({str(k) for k in keys if keys.count(k) > 1})
    if dups:
        raise yaml.constructor.ConstructorError(None, None, f"duplicate keys {dups}",
                                                node.start_mark)
    return loader.construct_mapping(node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def objects(text):
    try:
        return [d for d in yaml.load_all(text, Loader=StrictLoader) if d]
    except yaml.YAMLError as e:
        fail(f"rendered manifests are not clean YAML: {e}")
        return [d for d in yaml.safe_load_all(text) if d]


def containers_of(obj):
    spec = obj["spec"]["template"]["spec"]
    return spec, spec.get("containers", []) + spec.get("initContainers", [])


def check_render(name, docs, vals):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    if "Secret" in by_kind:
        fail(f"{name}: the chart renders a Secret (keys come from an existing Secret only)")
    cms = {c["metadata"]["name"]: c.get("data") or {} for c in by_kind.get("ConfigMap", [])}
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    existing_secret = vals.get("secrets", {}).get("existingSecret") or \
        values["secrets"]["existingSecret"]
    settings = None
    binaries = {}
    for dname, dep in deployments.items():
        spec, conts = containers_of(dep)
        psc = spec.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True or psc.get("runAsUser", 0) == 0:
            fail(f"{name}: {dname}: pod must run as non-root (runAsNonRoot, runAsUser != 0)")
        if len(conts) != 1:
            fail(f"{name}: {dname}: expected one container, got {len(conts)}")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in conts:
            where = f"{name}: {dname}/{c['name']}"
            img = c.get("image", "")
            repo, _, tag = img.rpartition(":")
            if repo.rsplit("/", 1)[-1] != IMAGE_NAME or tag != VERSION:
                fail(f"{where}: image {img} is not the Dockerfile's {IMAGE_NAME}:{VERSION}")
            argv = (c.get("command") or []) + (c.get("args") or [])
            binary = argv[0] if argv else ""
            binaries[dname] = binary
            if binary not in BINARIES:
                fail(f"{where}: runs '{binary}', not a binary of the pipeline")
                continue
            for flag in [a for a in argv[1:] if a.startswith("--")]:
                if help_of(binary) is not None and flag not in help_of(binary):
                    fail(f"{where}: passes {flag}, which {binary} --help does not list")
            sc = c.get("securityContext") or {}
            if sc.get("readOnlyRootFilesystem") is not True:
                fail(f"{where}: root filesystem is not read-only")
            if sc.get("allowPrivilegeEscalation") is not False:
                fail(f"{where}: allowPrivilegeEscalation must be false")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                fail(f"{where}: capabilities must drop ALL")
            if sc.get("runAsUser", psc.get("runAsUser", 0)) == 0:
                fail(f"{where}: runs as root")
            res = c.get("resources") or {}
            if not (res.get("requests") or {}).get("memory") or \
                    not (res.get("limits") or {}).get("memory"):
                fail(f"{where}: memory request and limit must be set")
            # environment
            env = {}
            for e in c.get("env", []):
                n = e["name"]
                if n in env:
                    fail(f"{where}: sets {n} twice")
                if "value" in e:
                    env[n] = e["value"]
                elif "configMapKeyRef" in e.get("valueFrom", {}):
                    ref = e["valueFrom"]["configMapKeyRef"]
                    data = cms.get(ref["name"])
                    if data is None or ref["key"] not in data:
                        fail(f"{where}: {n} refers to ConfigMap {ref['name']} key {ref['key']}, "
                             "which the chart does not render")
                        env[n] = ""
                    else:
                        env[n] = data[ref["key"]]
                        settings = data
                else:
                    fail(f"{where}: {n} comes from {list(e.get('valueFrom', {}))}: expected a "
                         "value or the ConfigMap (secrets only as *_FILE)")
                    env[n] = ""
            for ef in c.get("envFrom", []):
                fail(f"{where}: envFrom passes variables wholesale; list each one its binary reads")
            for n in sorted(env):
                if n in SECRET_NAMES - {"MONGODB_URI"}:
                    fail(f"{where}: secret {n} set as a plain variable; expected {n}_FILE")
                if not is_read(binary, n):
                    fail(f"{where}: sets {n}, which {binary} does not read (--help / --print-config)")
            # secrets: *_FILE must point into a mounted key of the existing Secret
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            for n, val in env.items():
                if not n.endswith("_FILE"):
                    continue
                d, _, f = val.rpartition("/")
                vm = mounts.get(d)
                vol = volumes.get(vm["name"]) if vm else None
                sec = (vol or {}).get("secret")
                if not sec or sec.get("secretName") != existing_secret or \
                        f not in [i["path"] for i in sec.get("items", [])]:
                    fail(f"{where}: {n}={val} is not a mounted key of Secret {existing_secret}")
            # completeness: a setting the binary lists must reach it
            text = help_of(binary)
            if text is not None and settings is not None:
                for k, v in settings.items():
                    if v != "" and k in table_vars(text) and k not in env:
                        fail(f"{where}: {binary} reads {k} (set to {v!r} in the ConfigMap) but "
                             "the container does not get it")
            # probes on the metrics port
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            if binary == "pipeline-status":
                want = int(argv[argv.index("--serve") + 1]) if "--serve" in argv else None
                if "--bind" not in argv or argv[argv.index("--bind") + 1] != "0.0.0.0":
                    fail(f"{where}: pipeline-status must --bind 0.0.0.0 to be probed")
            else:
                want = int(env["METRICS_PORT"]) if env.get("METRICS_PORT") else None
            if not want:
                fail(f"{where}: no metrics port (METRICS_PORT / --serve): probes cannot work")
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                hg = (c.get(probe) or {}).get("httpGet")
                if not hg:
                    fail(f"{where}: no {probe} httpGet")
                    continue
                port = hg.get("port")
                port = ports.get(port) if isinstance(port, str) else port
                if hg.get("path") != path or port != want:
                    fail(f"{where}: {probe} is {hg.get('path')} on {port}; expected {path} on "
                         f"the metrics port {want}")
    settings = settings or {}
    prefix = settings.get("TOPIC_PREFIX", "")
    partitions = int(settings.get("TOPIC_PARTITIONS") or 6)
    dry = settings.get("DRY_RUN", "0") == "1"

    def deps_running(b):
        return [d for d, x in binaries.items() if x == b]

    for b in ("ploomes-producer", "milvus-producer"):
        for dname in deps_running(b):
            dep = deployments[dname]
            strat = dep["spec"].get("strategy") or {}
            ru = strat.get("rollingUpdate") or {}
            if dep["spec"].get("replicas") != 2:
                fail(f"{name}: {dname}: producers run 2 replicas (active + standby)")
            if not (strat.get("type") == "Recreate" or
                    (strat.get("type") == "RollingUpdate" and ru.get("maxSurge") == 0 and
                     ru.get("maxUnavailable") == 1)):
                fail(f"{name}: {dname}: update strategy {strat} may run a third producer")
    pdb_sel = [p["spec"]["selector"]["matchLabels"] for p in by_kind.get("PodDisruptionBudget", [])]
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in by_kind.get("ScaledObject", [])}
    keda = bool(vals.get("keda", {}).get("enabled"))
    for w in WORKER_TOPICS:
        for dname in deps_running(w):
            dep = deployments[dname]
            labels = dep["spec"]["template"]["metadata"]["labels"]
            if not any(all(labels.get(k) == v for k, v in s.items()) for s in pdb_sel):
                fail(f"{name}: {dname}: no PodDisruptionBudget selects its pods")
            so = scaled.pop(dname, None)
            if not keda:
                if so:
                    fail(f"{name}: {dname}: ScaledObject rendered with keda.enabled=false")
                if not isinstance(dep["spec"].get("replicas"), int):
                    fail(f"{name}: {dname}: without KEDA the worker needs fixed replicas")
                continue
            if not so:
                fail(f"{name}: {dname}: keda.enabled=true but no ScaledObject targets it")
                continue
            if "replicas" in dep["spec"]:
                fail(f"{name}: {dname}: sets replicas while KEDA scales it (upgrades would fight)")
            trig = [t for t in so["spec"]["triggers"] if t["type"] == "kafka"]
            if len(trig) != 1:
                fail(f"{name}: {dname}: expected one kafka trigger")
                continue
            md = trig[0]["metadata"]
            group = prefix + w + (".dry-run" if dry else "")
            if md.get("consumerGroup") != group:
                fail(f"{name}: {dname}: ScaledObject group {md.get('consumerGroup')!r}, the "
                     f"worker's is {group!r}")
            if md.get("topic") != prefix + WORKER_TOPICS[w]:
                fail(f"{name}: {dname}: ScaledObject topic {md.get('topic')!r}, the worker "
                     f"reads {prefix + WORKER_TOPICS[w]!r}")
            if md.get("bootstrapServers") != settings.get("KAFKA_BOOTSTRAP_SERVERS"):
                fail(f"{name}: {dname}: ScaledObject brokers differ from KAFKA_BOOTSTRAP_SERVERS")
            if not str(md.get("lagThreshold", "")).isdigit():
                fail(f"{name}: {dname}: lagThreshold missing")
            lo, hi = so["spec"].get("minReplicaCount"), so["spec"].get("maxReplicaCount")
            if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi <= partitions):
                fail(f"{name}: {dname}: replicas {lo}..{hi} not within 1..{partitions} partitions")
    for stray in scaled:
        fail(f"{name}: ScaledObject targets {stray}, which is not a worker Deployment")
    for r in by_kind.get("PrometheusRule", []):
        if r["spec"] != ALERTS:
            fail(f"{name}: PrometheusRule differs from config/prometheus/alerts.yml")
    if vals.get("metrics", {}).get("prometheusRule", {}).get("enabled") and \
            not by_kind.get("PrometheusRule"):
        fail(f"{name}: prometheusRule enabled but not rendered")
    dash = [c for c in by_kind.get("ConfigMap", [])
            if (c["metadata"].get("labels") or {}).get("grafana_dashboard")]
    if not dash:
        fail(f"{name}: no dashboard ConfigMap with the grafana_dashboard label")
    for c in dash:
        for k, v in (c.get("data") or {}).items():
            if json.loads(v) != DASHBOARD:
                fail(f"{name}: dashboard {k} differs from config/grafana/dashboards/pipeline.json")
    services = by_kind.get("Service", [])
    for sm in by_kind.get("ServiceMonitor", []):
        sel = sm["spec"]["selector"]["matchLabels"]
        hit = [s for s in services
               if all((s["metadata"].get("labels") or {}).get(k) == v for k, v in sel.items())]
        if len(hit) < len(deployments):
            fail(f"{name}: ServiceMonitor selects {len(hit)} Services for {len(deployments)} "
                 "Deployments")
        for s in hit:
            if "metrics" not in [p.get("name") for p in s["spec"]["ports"]]:
                fail(f"{name}: Service {s['metadata']['name']} has no 'metrics' port")
    return by_kind


def values_of(args):
    merged = {}
    for i, a in enumerate(args):
        if a == "-f":
            merged = yaml.safe_load(open(args[i + 1], encoding="utf-8")) or {}
    for i, a in enumerate(args):
        if a == "--set":
            k, v = args[i + 1].split("=", 1)
            node = merged
            parts = k.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = v == "true" if v in ("true", "false") else v
    return merged


renders = {}
for name, args in variants:
    rc, out, err = helm("template", "rel", CHART, *args)
    if rc != 0:
        fail(f"helm template ({name}): {err.strip()}")
        continue
    renders[name] = out
    check_render(name, objects(out), values_of(args))
print(f"rendered {len(renders)} variants: " +
      ", ".join(f"{n} ({len(objects(o))} objects)" for n, o in renders.items()))

# the packaged chart carries the alert rules and dashboard (symlinks followed)
rc, out, err = helm("package", CHART, "-d", tmp)
pkgs = [os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".tgz")]
if rc != 0 or not pkgs:
    fail(f"helm package: {out.strip()} {err.strip()}")
else:
    rc, out, err = helm("template", "rel", pkgs[0], *ALL_ON)
    if rc != 0:
        fail(f"helm template of the package: {err.strip()}")
    else:
        kinds = check_render("packaged chart", objects(out), values_of(ALL_ON))
        if not kinds.get("PrometheusRule"):
            fail("packaged chart: no PrometheusRule (files/alerts.yml not packaged?)")

# secrets offered through values are refused and never echoed
FAKE = "FAKE-SECRET-3e1f9a"
attempts = [
    ["--set", f"config.PLOOMES_USER_KEY={FAKE}"],
    ["--set", f"config.MILVUS_TOKEN={FAKE}"],
    ["--set", f"kafkaProperties.KAFKA_SASL_PASSWORD={FAKE}"],
    ["--set", f"config.MONGODB_URI=mongodb://pipeline:{FAKE}@mongo:27017/acme"],
]
for a in attempts:
    rc, out, err = helm("template", "rel", CHART, *a)
    if rc == 0:
        fail(f"helm template {' '.join(a)}: accepted a secret in values")
    if FAKE in out or FAKE in err:
        fail(f"helm template {' '.join(a)}: the secret value appears in the output")
for name, out in renders.items():
    for probe in ("sandbox-ploomes-key", "sandbox-milvus-token"):
        if probe in out:
            fail(f"{name}: a sandbox secret value appears in the rendered output")

finish()
