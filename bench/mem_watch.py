#!/usr/bin/env python3
"""Memory of every process of a scripts/bench.sh row, sampled. Standard library only.

  mem_watch.py OUT.json NAME=PID [NAME=PID ...]

Each PID is a /usr/bin/time process (a child of the caller) whose one child is the program
measured. Every 0.2 s, for each program found (the child of PID, looked up in /proc until it
appears), reads /proc/<child>/smaps_rollup and keeps the peaks of:
  Rss  (resident set: what /usr/bin/time -v's "Maximum resident set size" counts, shared
        library pages included),
  Pss  (proportional set: each shared page divided by the number of processes mapping it),
  USS  (Private_Clean + Private_Dirty: the pages only this process maps, what ending it frees),
  Anonymous (pages backed by no file: heap, stacks, library data the process wrote; unlike USS
        it does not depend on which other processes map the same libraries at that moment,
        and it is what one more instance of the program costs on a host).
Sampled peaks can miss a spike shorter than 0.2 s (the RSS peak from /usr/bin/time does not).
Ends when every PID has ended (gone or a zombie) or on SIGTERM, and writes
  {"NAME": {"pid": child, "samples": n, "peak_rss_kb": .., "peak_pss_kb": ..,
            "peak_uss_kb": .., "peak_anon_kb": ..}, ...}
to OUT.json (names never found: samples 0, no peaks).
"""
import json
import os
import signal
import sys
import time

INTERVAL = 0.2


def ended(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def child_of(pid):
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    return int(d)
        except (OSError, ValueError, IndexError):
            continue
    return None


def rollup(pid):
    v = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, rest = line.partition(":")
                if k in ("Rss", "Pss", "Private_Clean", "Private_Dirty", "Anonymous"):
                    v[k] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if "Rss" not in v or "Pss" not in v:
        return None
    return (v["Rss"], v["Pss"], v.get("Private_Clean", 0) + v.get("Private_Dirty", 0),
            v.get("Anonymous", 0))


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    out_path = argv[1]
    procs = {}
    for a in argv[2:]:
        name, _, pid = a.rpartition("=")
        procs[name] = {"parent": int(pid), "pid": None, "samples": 0}

    def write(*_):
        res = {}
        for name, p in procs.items():
            res[name] = {k: v for k, v in p.items() if k != "parent"}
        tmp = out_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(res, f)
        os.replace(tmp, out_path)
        sys.exit(0)

    signal.signal(signal.SIGTERM, write)
    while True:
        alive = False
        for p in procs.values():
            if ended(p["parent"]):
                continue
            alive = True
            if p["pid"] is None or ended(p["pid"]):
                c = child_of(p["parent"])
                if c is None:
                    continue
                p["pid"] = c
            r = rollup(p["pid"])
            if r is None:
                continue
            p["samples"] += 1
            for k, v in zip(("peak_rss_kb", "peak_pss_kb", "peak_uss_kb", "peak_anon_kb"), r):
                p[k] = max(p.get(k, 0), v)
        if not alive:
            write()
        time.sleep(INTERVAL)


if __name__ == "__main__":
    main(sys.argv)
