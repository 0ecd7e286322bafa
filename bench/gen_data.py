#!/usr/bin/env python3
"""Benchmark data for the two simulators (scripts/bench.sh).

  gen_data.py DIR TASKS CLIENTS   writes DIR/ploomes.json and DIR/milvus.json: CLIENTS people
                                  with valid CPFs, TASKS tasks tagged with a ticket tag spread
                                  over them, and a Milvus desk that already knows every client
                                  (so every task can become a ticket at once).
Deterministic; the record shapes come from scripts/demo_data.py.
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import demo_data as dd  # noqa: E402


def main(outdir, ntasks, nclients):
    rng = random.Random(13)
    contacts, clients, tasks, seen = [], [], [], set()
    for i in range(nclients):
        while True:
            c, doc = dd.person(rng, 100000 + i)
            if doc not in seen:
                break
        seen.add(doc)
        contacts.append(c)
        clients.append(dd.milvus_client(rng, 500000 + i, doc, c["Name"]))
    for t in range(ntasks):
        tasks.append(dd.task(rng, 1000000 + t, 100000 + t % nclients, tagged=True))
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
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
