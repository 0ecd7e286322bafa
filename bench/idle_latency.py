#!/usr/bin/env python3
"""Scenario D of scripts/bench.sh: latency from a task's creation in ploomes-sim to its ticket in
milvus-sim, with the pipeline idle (ploomes-producer polling at its interval, tasks-to-milvus
waiting). Standard library only (runs on the system python3).

  idle_latency.py PLOOMES_URL USER_KEY MILVUS_URL CONTACT_IDS COUNT WINDOW_S SEED TIMEOUT_S

  1. a watcher thread reads milvus-sim's GET /_admin/state every 100 ms and notes, in ms, the
     first moment each ticket whose subject starts with "BENCH-D " is visible;
  2. warm-up: one task is created and its ticket awaited (the pipeline is up and caught up;
     not counted);
  3. COUNT tagged tasks are created one at a time through ploomes-sim's API (POST /Tasks, each
     on one of CONTACT_IDS, comma-separated) at COUNT moments drawn uniformly at random
     (random.Random(SEED)) over WINDOW_S seconds, so creations fall at every phase of the poll;
     a task's creation moment is when ploomes-sim answered its POST;
  4. waits until every ticket is visible or TIMEOUT_S after the last creation.

Prints one JSON object: latencies_ms (per task, creation order; null = never seen), p50_ms,
p95_ms, max_ms (nearest-rank, over the tasks seen), seen, missing, warmup_ms,
resolution_ms (the watcher's period).
"""
import json
import math
import random
import sys
import threading
import time
import urllib.request

WATCH_PERIOD_S = 0.1
TAGS = [40049716, 40049715, 40054183]
PREFIX = "BENCH-D "


def now_ms():
    return time.time() * 1000.0


class Watcher(threading.Thread):
    def __init__(self, milvus_url):
        super().__init__(daemon=True)
        self.url = milvus_url + "/_admin/state"
        self.seen = {}  # subject -> first ms visible
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors = 0

    def run(self):
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=10) as r:
                    state = json.load(r)
                t = now_ms()
                with self.lock:
                    for c in state.get("chamados", []):
                        s = c.get("assunto") or c.get("chamado_assunto") or ""
                        if s.startswith(PREFIX) and s not in self.seen:
                            self.seen[s] = t
            except (OSError, ValueError):
                self.errors += 1
            self.stop.wait(WATCH_PERIOD_S)

    def first_seen(self, subject):
        with self.lock:
            return self.seen.get(subject)


def create_task(p_url, key, subject, contact_id, tag):
    body = {"Title": subject, "ContactId": contact_id,
            "Description": "Benchmark D: created while the pipeline is idle.",
            "DateTime": "2026-12-04T09:00:00-03:00", "Tags": [{"TagId": tag}]}
    req = urllib.request.Request(p_url + "/Tasks", data=json.dumps(body).encode(), method="POST",
                                 headers={"User-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()
    return now_ms()


def nearest_rank(sorted_vals, p):
    if not sorted_vals:
        return None
    return sorted_vals[max(0, math.ceil(p / 100.0 * len(sorted_vals)) - 1)]


def wait_seen(w, subjects, deadline):
    while time.monotonic() < deadline:
        if all(w.first_seen(s) is not None for s in subjects):
            return True
        time.sleep(WATCH_PERIOD_S)
    return False


def main(p_url, key, m_url, contacts, count, window_s, seed, timeout_s):
    contact_ids = [int(c) for c in contacts.split(",") if c]
    count, window_s, timeout_s = int(count), float(window_s), float(timeout_s)
    rng = random.Random(int(seed))
    run = int(time.time())
    w = Watcher(m_url)
    w.start()

    warm = f"{PREFIX}{run} warmup"
    t_w = create_task(p_url, key, warm, contact_ids[0], TAGS[0])
    if not wait_seen(w, [warm], time.monotonic() + timeout_s):
        w.stop.set()
        print(json.dumps({"error": f"warm-up ticket not seen within {timeout_s:.0f} s"}))
        return 1
    warmup_ms = round(w.first_seen(warm) - t_w)

    moments = sorted(rng.uniform(0, window_s) for _ in range(count))
    start = time.monotonic()
    created = []  # (subject, created_ms)
    for i, at in enumerate(moments):
        delay = start + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # the schedule itself: tasks at random moments
        subject = f"{PREFIX}{run} #{i + 1}"
        created.append((subject, create_task(p_url, key, subject, contact_ids[i % len(contact_ids)],
                                             TAGS[i % len(TAGS)])))
    wait_seen(w, [s for s, _ in created], time.monotonic() + timeout_s)
    w.stop.set()
    lat = []
    for s, t in created:
        f = w.first_seen(s)
        lat.append(None if f is None else round(f - t))
    ok = sorted(x for x in lat if x is not None)
    print(json.dumps({"latencies_ms": lat, "seen": len(ok), "missing": len(lat) - len(ok),
                      "p50_ms": nearest_rank(ok, 50), "p95_ms": nearest_rank(ok, 95),
                      "max_ms": ok[-1] if ok else None, "warmup_ms": warmup_ms,
                      "window_s": window_s, "resolution_ms": int(WATCH_PERIOD_S * 1000),
                      "watch_errors": w.errors}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 9:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
