#!/usr/bin/env python3
"""Turns scripts/bench.sh's results (one JSON object a line) into OUT (a JSON document with the
machine and the command) and a Markdown table on stdout (pasted into docs/BENCHMARKS.md).

Usage: report.py RESULTS.jsonl OUT.json COMMAND
"""
import json
import os
import platform
import sys


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024} MiB"
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(),
            "loadavg_at_end": open("/proc/loadavg").read().split()[:3]}


def main(results, out, command):
    rows = [json.loads(l) for l in open(results) if l.strip()]
    m = machine()
    with open(out, "w") as f:
        json.dump({"machine": m, "command": command, "results": rows}, f, indent=1)
    print(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, Linux {m['kernel']}; "
          f"load average at the end {' '.join(m['loadavg_at_end'])}.  ")
    print(f"Command: `{command}`\n")
    print("| scenario | store | system | inst | in flight | tasks | latency ms | s | tickets | records/s "
          "| Milvus calls/ticket | 429s | peak RSS per process (MB) | CPU s / 1,000 records |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        procs = r.get("processes", [])
        rss = ", ".join(f"{p['process']} {p['peak_rss_kb'] / 1024:.1f}" for p in procs)
        n = max(r.get("tickets") or 0, 1)
        cpu = ", ".join(f"{p['process']} {p['cpu_s'] * 1000 / n:.2f}" for p in procs)
        print(f"| {r['scenario']} | {r['store']} | {r['system']} | {r['instances']} | {r.get('max_in_flight', 1)} | {r['tasks']} "
              f"| {r['latency_ms']} | {r['seconds']} | {r['tickets']}{'' if r.get('complete') else ' (incomplete)'} "
              f"| {r.get('records_per_s')} | {r.get('calls_per_ticket')} | {r.get('milvus_429', 0)} "
              f"| {rss} | {cpu} |")
    # ratios against the baseline of the same scenario and store
    print()
    for r in rows:
        if r["system"] != "pipeline" or r["scenario"] not in ("A", "B"):
            continue
        base = [b for b in rows if b["scenario"] == r["scenario"] and b["store"] == r["store"]
                and b["system"] != "pipeline"]
        if base and base[0].get("records_per_s") and r.get("records_per_s"):
            print(f"- {r['scenario']} / {r['store']} / {r['instances']} instance(s), "
                  f"MAX_IN_FLIGHT {r.get('max_in_flight')}: "
                  f"{r['records_per_s'] / base[0]['records_per_s']:.1f}x the baseline")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
