#!/usr/bin/env python3
"""The clock of scripts/bench.sh's throughput rows: watches milvus-sim's counters. Standard
library only.

  sim_watch.py MILVUS_SIM T0 tickets N TIMEOUT_S [STOP_FILE]
      A, B, G and the baseline rows. Reads GET MILVUS_SIM/_admin/stats every 0.1 s until
      milvus-sim has created N tickets (POST /api/chamado/criar answered 200), TIMEOUT_S have
      passed since T0, or STOP_FILE exists (the baseline ended), then reads it once more.
  sim_watch.py MILVUS_SIM T0 window S TIMEOUT_S
      C. Reads the counters every 0.05 s until the first API call (any /api/ path) shows, then
      measures a window of S seconds that starts at the last reading WITHOUT any API call (at
      most 0.05 s before the first call: the window holds every call, from the first on) and
      ends with the reading taken S s later; a reading every second in between (the series, to
      show that the workers never ran dry). TIMEOUT_S: how long to wait for the first call.

T0 = the processes' start (seconds since the epoch, e.g. `date +%s.%N`, taken just before the
first process started). Times below are seconds after T0.

Prints one JSON object:
  end_s, tickets, calls (every /api/ request milvus-sim answered), r429, paths
  ({"METHOD /api/...": {"status": count}}), reason ("done", "timeout", "stopped", "window");
  tickets mode: first_ticket_s and first_ticket_count (the first reading with a ticket: the
  steady rate is (tickets - first_ticket_count) / (end_s - first_ticket_s), the start-up
  left out); first_call_s (the first reading with an API call);
  window mode: window_start_s (the last reading without a call), window_s, first_call_s,
  series [[s, calls, tickets, r429], ...] (s after the window's start, one a second).
Exit status 0 even on timeout (the reason says so); 1 when milvus-sim does not answer.
"""
import json
import os
import sys
import time
import urllib.request


def read(sim):
    """-> (tickets, calls, r429, paths) from milvus-sim's /_admin/stats."""
    with urllib.request.urlopen(sim + "/_admin/stats", timeout=30) as r:
        rows = json.load(r)["requests"]
    tickets = calls = r429 = 0
    paths = {}
    for x in rows:
        if not x["path"].startswith("/api/"):
            continue
        calls += x["count"]
        if x["status"] == 429:
            r429 += x["count"]
        if x["path"] == "/api/chamado/criar" and x["status"] == 200:
            tickets += x["count"]
        k = (x.get("method", "") + " " + x["path"]).strip()
        st = paths.setdefault(k, {})
        st[str(x["status"])] = st.get(str(x["status"]), 0) + x["count"]
    return tickets, calls, r429, paths


def result(t0, now, snap, reason, **extra):
    tickets, calls, r429, paths = snap
    out = {"end_s": round(now - t0, 3), "tickets": tickets, "calls": calls, "r429": r429,
           "paths": paths, "reason": reason}
    out.update(extra)
    return out


def watch_tickets(sim, t0, n, timeout, stop_file):
    # a reading reflects the counters at some moment between `before` and `after`: the first
    # ticket's reading is dated `before` (every later ticket happened after it), the end
    # `after` (every counted ticket happened before it): the rates can only be understated
    first_ticket = first_call = None
    while True:
        before = time.time()
        snap = read(sim)
        after = time.time()
        if first_call is None and snap[1] > 0:
            first_call = round(before - t0, 3)
        if first_ticket is None and snap[0] > 0:
            first_ticket = (round(before - t0, 3), snap[0])
        reason = None
        if snap[0] >= n:
            reason = "done"
        elif stop_file and os.path.exists(stop_file):
            snap, reason = read(sim), "stopped"
            after = time.time()
        elif after - t0 >= timeout:
            reason = "timeout"
        if reason:
            return result(t0, after, snap, reason, first_call_s=first_call,
                          first_ticket_s=first_ticket[0] if first_ticket else None,
                          first_ticket_count=first_ticket[1] if first_ticket else None)
        time.sleep(0.1)


def watch_window(sim, t0, seconds, timeout):
    # the window starts at the moment a reading WITHOUT any call began (no call before it)
    # and ends when the last reading is back (every counted call happened before): a window
    # at least as long as the span of the calls it counts (T0 if the first reading has one)
    last_zero = t0
    while True:
        before = time.time()
        snap = read(sim)
        if snap[1] > 0:
            break
        last_zero = before
        if time.time() - t0 >= timeout:
            return result(t0, time.time(), snap, "timeout")
        time.sleep(0.05)
    first_call = before
    start = last_zero
    end = start + seconds
    series = [[round(time.time() - start, 3), snap[1], snap[0], snap[2]]]
    nxt = start + 1.0
    while nxt < end - 0.5:
        time.sleep(max(0.0, nxt - time.time()))
        s = read(sim)
        series.append([round(time.time() - start, 3), s[1], s[0], s[2]])
        nxt += 1.0
    time.sleep(max(0.0, end - time.time()))
    snap = read(sim)
    now = time.time()
    series.append([round(now - start, 3), snap[1], snap[0], snap[2]])
    return result(t0, now, snap, "window", window_start_s=round(start - t0, 3),
                  first_call_s=round(first_call - t0, 3), window_s=round(now - start, 3),
                  series=series)


def main(argv):
    if len(argv) < 6 or argv[3] not in ("tickets", "window"):
        sys.exit(__doc__)
    sim, t0, mode = argv[1], float(argv[2]), argv[3]
    try:
        if mode == "tickets":
            out = watch_tickets(sim, t0, int(argv[4]), float(argv[5]),
                                argv[6] if len(argv) > 6 else "")
        else:
            out = watch_window(sim, t0, float(argv[4]), float(argv[5]))
    except OSError as e:
        print(json.dumps({"error": f"milvus-sim: {e}"}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
