#!/usr/bin/env python3
"""Benchmark data for the two simulators (scripts/bench.sh).

  gen_data.py DIR TASKS CLIENTS [CONTACTS]
                                  writes DIR/ploomes.json and DIR/milvus.json: CLIENTS people
                                  with valid CPFs, TASKS tasks tagged with a ticket tag spread
                                  over them, and a Milvus desk that already knows every client
                                  (so every task can become a ticket at once). CONTACTS (default
                                  CLIENTS, at most CLIENTS): how many of the people Ploomes
                                  holds (scenario E seeds Milvus alone at 50,000 clients; tasks
                                  then point only at the first CONTACTS people).
Deterministic; the record shapes come from scripts/demo_data.py.
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import demo_data as dd  # noqa: E402


def token(n):
    """A unique 6-character token (base 36 of n), like the ones Milvus hands out."""
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out.rjust(6, "0")


def main(outdir, ntasks, nclients, ncontacts=None):
    ncontacts = nclients if ncontacts is None else max(1, min(ncontacts, nclients))
    rng = random.Random(13)
    contacts, clients, tasks, seen = [], [], [], set()
    for i in range(nclients):
        while True:
            c, doc = dd.person(rng, 100000 + i)
            if doc not in seen:
                break
        seen.add(doc)
        contacts.append(c)
        mc = dd.milvus_client(rng, 500000 + i, doc, c["Name"])
        # a token of its own: a seed without one makes milvus-sim draw one and check it
        # against every client (quadratic: minutes at 50,000 clients)
        mc["token"] = token(500000 + i)
        clients.append(mc)
    for t in range(ntasks):
        tasks.append(dd.task(rng, 1000000 + t, 100000 + t % ncontacts, tagged=True))
    contacts = contacts[:ncontacts]
    ploomes = {
        "States": [{"Id": s[0], "Name": s[1], "Short": s[2], "CountryId": 76} for s in dd.STATES],
        "Cities": [{"Id": c[0], "Name": c[1], "StateId": c[2], "CountryId": 76} for c in dd.CITIES],
        "Tags": [{"Id": t[0], "Name": t[1], "EntityId": 12} for t in dd.TICKET_TAGS + [dd.OTHER_TAG]],
        "Contacts": contacts, "Tasks": tasks, "InteractionRecords": []}
    os.makedirs(outdir, exist_ok=True)
    for name, data in (("ploomes.json", ploomes), ("milvus.json", {"clientes": clients})):
        with open(os.path.join(outdir, name), "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
         int(sys.argv[4]) if len(sys.argv) == 5 else None)
