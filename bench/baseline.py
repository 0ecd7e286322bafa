#!/usr/bin/env python3
"""BASELINE — the seed's algorithm, for comparison only (not part of the pipeline).

What /work/shared/seed/ploomes-milvus-integration.pt-BR.txt describes for "Envio de Dados de
Tarefas do Ploomes para o Milvus", written as plainly as the document says it is done:
sequential `requests` calls and `pymongo`, fetch everything, compare in memory, POST one by one,
retry a 429 three times with 5-second sleeps.

  1. fetch every Ploomes contact and every task (pages of 300, one after the other);
  2. fetch every Milvus client (/cliente/busca, pages of 1,000);
  3. for each task carrying a ticket tag, created within the last TICKET_LOOKBACK_MINUTES (10):
     the contact's CPF/CNPJ -> the Milvus client -> "already sent?" in MongoDB (one find_one) ->
     POST /chamado/criar -> mark it sent (insert_one);
  4. print one JSON line: tickets, seconds, requests, 429s.

Usage: baseline.py PLOOMES_URL PLOOMES_KEY MILVUS_API_URL MILVUS_TOKEN MONGODB_URI DATABASE
"""
import datetime
import json
import re
import sys
import time

import pymongo
import requests

TICKET_TAGS = {40049716: "Instalação", 40049715: "Entrega", 40054183: "Manutenção"}
LOOKBACK_MIN = 10


def main(p_url, p_key, m_url, m_token, mongo_uri, db_name):
    t0 = time.monotonic()
    stats = {"requests": 0, "r429": 0, "tickets": 0, "skipped": 0, "failed": 0}
    ph = {"User-Key": p_key}
    mh = {"Authorization": m_token, "Content-Type": "application/json"}
    sent = pymongo.MongoClient(mongo_uri)[db_name]["enviados"]

    def get(url, headers):
        stats["requests"] += 1
        r = requests.get(url, headers=headers, timeout=60)
        r.raise_for_status()
        return r.json()

    def fetch_all(entity, extra=""):
        out, skip = [], 0
        while True:
            page = get(f"{p_url}/{entity}?$top=300&$skip={skip}{extra}", ph)["value"]
            out += page
            if not page:
                return out
            skip += len(page)

    contacts = {c["Id"]: c for c in fetch_all("Contacts")}
    tasks = fetch_all("Tasks", "&$expand=Tags")
    clients, page = {}, 1
    while True:
        lista = get(f"{m_url}/cliente/busca?status=3&pagina={page}&total_registros=1000", mh)["lista"]
        for c in lista:
            clients[c["cnpj_cpf"]] = c
        if len(lista) < 1000:
            break
        page += 1

    now = datetime.datetime.now(datetime.timezone.utc)
    for t in tasks:
        tags = [g["TagId"] for g in t.get("Tags", []) if g.get("TagId") in TICKET_TAGS]
        m = re.match(r"(.{19})(\.\d+)?(.*)$", t["CreateDate"])
        created = datetime.datetime.fromisoformat(m.group(1) + (m.group(2) or "")[:7].ljust(7, "0")
                                                  + m.group(3))
        if not tags or (now - created).total_seconds() > LOOKBACK_MIN * 60:
            stats["skipped"] += 1
            continue
        contact = contacts.get(t.get("ContactId"))
        doc = "".join(ch for ch in (contact or {}).get("Register", "") if ch.isalnum())
        client = clients.get(doc)
        if client is None or sent.find_one({"task_id": t["Id"]}) is not None:
            stats["skipped"] += 1
            continue
        body = {"cliente_id": client["token"], "chamado_assunto": t["Title"],
                "chamado_descricao": t.get("Description") or t["Title"],
                "chamado_categoria_primaria": TICKET_TAGS[tags[0]]}
        for attempt in range(1, 4):
            stats["requests"] += 1
            r = requests.post(f"{m_url}/chamado/criar", headers=mh, data=json.dumps(body),
                              timeout=60)
            if r.status_code == 429:
                stats["r429"] += 1
                if attempt < 3:
                    time.sleep(5)
                continue
            break
        if r.status_code == 200:
            sent.insert_one({"task_id": t["Id"], "chamado": r.text})
            stats["tickets"] += 1
        else:
            stats["failed"] += 1
    stats["seconds"] = round(time.monotonic() - t0, 3)
    print(json.dumps(stats))


if __name__ == "__main__":
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    main(*sys.argv[1:])
