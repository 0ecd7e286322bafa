#!/usr/bin/env python3
"""Scenario E of scripts/bench.sh: the producers' share of the quota. Standard library only.

  quota_share.py PLOOMES_SIM MILVUS_SIM PLOOMES_LOG MILVUS_LOG PERIOD_S FIRST_PASS_TIMEOUT_S

ploomes-producer and milvus-producer are running (LOG_LEVEL=info) against their own
simulators, nothing else talks to them, so every API request a simulator counts
(GET /_admin/stats, /_admin paths excluded) is that producer's. A pass's end is its
`event=pass_done` log line; its start is that line's time less its elapsed_ms. The simulator's
counters are read the moment a pass_done line appears (the producer is waiting then, so they
are still: c_i = the requests of passes 1..i).

The rate is measured over WHOLE poll cycles, from the start of pass k0 to the start of a later
pass e (a cycle = a scan + the wait the producer chose before the next one; this is what
MILVUS_SCAN_QUOTA_SHARE bounds: "the next pass waits at least pages x 60 s / (rate x share)
minus the scan's own duration"), requests = c_(e-1) - c_(k0-1), e the last pass started within
PERIOD_S of pass k0's start (at least k0 + 1). milvus-producer: k0 = 1 (every pass is a full
scan, the first one included); ploomes-producer: k0 = 2 (its first pass is the backfill,
reported apart as first_pass_requests / first_pass_s). Stops once PERIOD_S have passed since
pass k0 started and pass k0 + 1 has ended (or after FIRST_PASS_TIMEOUT_S + PERIOD_S without
that: the result then names the error).

Prints one JSON object: {"ploomes": {...}, "milvus": {...}}, each with passes,
first_pass_requests, first_pass_s, cycles, window_s, requests, requests_per_min,
requests_per_hour (extrapolated), r429 (429s over the whole run) and, for milvus, the last
effective poll interval the producer logged (event=poll_interval effective_s=...), if any.
"""
import datetime
import json
import re
import sys
import time
import urllib.request


def counts(sim):
    with urllib.request.urlopen(sim + "/_admin/stats", timeout=30) as r:
        rows = json.load(r)["requests"]
    api = sum(x["count"] for x in rows if not x["path"].startswith("/_admin"))
    r429 = sum(x["count"] for x in rows if x["status"] == 429)
    return api, r429


PASS_RE = re.compile(r"^time=(\S+) .*event=pass_done source=(\w+) .*elapsed_ms=(\d+)")


def stamp(text):
    # time=2026-12-03T10:37:00.828Z
    d = datetime.datetime.strptime(text.rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
    return d.replace(tzinfo=datetime.timezone.utc).timestamp()


def passes_done(log, source):
    """[(start epoch s, end epoch s)] of the passes logged so far."""
    out = []
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = PASS_RE.match(line)
                if m and m.group(2) == source:
                    end = stamp(m.group(1))
                    out.append((end - int(m.group(3)) / 1000.0, end))
    except (OSError, ValueError):
        pass
    return out


def effective_s(log):
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            found = re.findall(r"event=poll_interval .*?effective_s=(\d+)", f.read())
        return int(found[-1]) if found else None
    except OSError:
        return None


class Track:
    def __init__(self, name, sim, log, k0):
        self.name, self.sim, self.log, self.k0 = name, sim, log, k0
        self.t_start = time.time()
        self.passes = []  # (start, end) epoch s
        self.counts = [0]  # counts[i] = requests after pass i

    def poll(self):
        p = passes_done(self.log, self.name)
        if len(p) > len(self.passes):
            api, _ = counts(self.sim)
            # passes that ended between two polls share one reading (a poll interval is
            # far longer than 0.2 s, so this does not happen in practice)
            self.counts += [api] * (len(p) - len(self.passes))
            self.passes = p

    def done(self, period_s):
        k0 = self.k0
        return (len(self.passes) >= k0 + 1
                and time.time() - self.passes[k0 - 1][0] >= period_s)

    def result(self, period_s):
        out = {"passes": len(self.passes)}
        _, r429 = counts(self.sim)
        out["r429"] = r429
        if self.passes:
            out["first_pass_requests"] = self.counts[1]
            out["first_pass_s"] = round(self.passes[0][1] - self.t_start, 1)
        k0 = self.k0
        if len(self.passes) < k0 + 1:
            out["error"] = f"fewer than {k0 + 1} passes ended"
            return out
        s0 = self.passes[k0 - 1][0]
        e = max([i for i in range(k0 + 1, len(self.passes) + 1)
                 if self.passes[i - 1][0] - s0 <= period_s] or [k0 + 1])
        window = self.passes[e - 1][0] - s0
        req = self.counts[e - 1] - self.counts[k0 - 1]
        out.update({"from_pass": k0, "cycles": e - k0, "window_s": round(window, 1),
                    "requests": req,
                    "requests_per_min": round(req / window * 60, 2) if window > 0 else None,
                    "requests_per_hour": round(req / window * 3600) if window > 0 else None})
        if self.name == "milvus":
            out["effective_interval_s"] = effective_s(self.log)
        return out


def main(p_sim, m_sim, p_log, m_log, period_s, timeout_s):
    period_s, timeout_s = float(period_s), float(timeout_s)
    tracks = [Track("ploomes", p_sim, p_log, 2), Track("milvus", m_sim, m_log, 1)]
    start = time.monotonic()
    while True:
        for t in tracks:
            t.poll()
        if all(t.done(period_s) for t in tracks):
            break
        if (any(len(t.passes) < t.k0 + 1 for t in tracks)
                and time.monotonic() - start > timeout_s + period_s):
            break
        time.sleep(0.2)
    print(json.dumps({t.name: t.result(period_s) for t in tracks}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
