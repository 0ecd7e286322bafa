#!/usr/bin/env python3
"""Demo data for the two simulators (scripts/run.sh, docker-compose's sandbox).

  demo_data.py write DIR        writes DIR/ploomes.json and DIR/milvus.json (the simulators'
                                --state seeds): a small realistic account — companies and people
                                with valid CPF/CNPJ (one 2026 alphanumeric CNPJ, masked and bare
                                forms), cities and states, the seed's ticket tags, tagged and
                                untagged tasks and interaction records, and a Milvus desk that
                                already knows some of the clients.
  demo_data.py tick N           prints one /_admin/seed body for Ploomes (stdout) — what happens
                                in the account during the N-th few seconds of a live demo: a new
                                tagged task, now and then a new contact or an edited one.
  demo_data.py milvus-tick N    the same for Milvus: now and then a client registered at the desk.

Deterministic (seeded by N), so a run can be reproduced. No record carries a CreateDate or
LastUpdateDate: the simulators stamp them when they load them, so the demo's tasks are always
recent enough to become tickets (TICKETS_SINCE = first start - TICKET_LOOKBACK_MINUTES).
"""
import json
import os
import random
import sys

ID_RESERVE = 900000000  # see write(): ids the simulators assign start above it
TICKET_TAGS = [(40049716, "INSTALAÇÃO"), (40049715, "ENTREGA"), (40054183, "MANUTENÇÃO")]
OTHER_TAG = (40000001, "VIP")
STATES = [(1, "São Paulo", "SP"), (2, "Rio de Janeiro", "RJ"), (3, "Minas Gerais", "MG")]
CITIES = [(100, "São Paulo", 1), (101, "Campinas", 1), (102, "Rio de Janeiro", 2),
          (103, "Belo Horizonte", 3)]
FIRST = ["Ana", "Bruno", "Carla", "Diego", "Elisa", "Fábio", "Gabriela", "Hugo", "Íris", "João",
         "Larissa", "Márcio", "Natália", "Otávio", "Paula", "Renato", "Sílvia", "Tiago"]
LAST = ["Souza", "Oliveira", "Santos", "Pereira", "Lima", "Carvalho", "Ribeiro", "Almeida",
        "Gonçalves", "Araújo"]
BUSINESS = ["Padaria", "Oficina", "Clínica", "Mercado", "Escola", "Construtora", "Farmácia",
            "Transportadora", "Restaurante", "Ótica"]
STREETS = ["Rua das Flores", "Avenida Paulista", "Rua XV de Novembro", "Avenida Brasil",
           "Rua Sete de Setembro"]


def cpf(rng):
    base = [rng.randint(0, 9) for _ in range(9)]
    if len(set(base)) == 1:
        base[0] = (base[0] + 1) % 10
    for n in (10, 11):
        s = sum(d * w for d, w in zip(base, range(n, 1, -1)))
        base.append(0 if s % 11 < 2 else 11 - s % 11)
    return "".join(map(str, base))


def cnpj(rng, alnum=False):
    chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" if alnum else "0123456789"
    base = [rng.choice(chars) for _ in range(8)] + list("0001")
    vals = [ord(c) - 48 for c in base]
    for weights in ([5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2], [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]):
        s = sum(v * w for v, w in zip(vals, weights))
        d = 0 if s % 11 < 2 else 11 - s % 11
        vals.append(d)
        base.append(str(d))
    return "".join(base)


def mask(doc):
    if len(doc) == 11:
        return f"{doc[:3]}.{doc[3:6]}.{doc[6:9]}-{doc[9:]}"
    return f"{doc[:2]}.{doc[2:5]}.{doc[5:8]}/{doc[8:12]}-{doc[12:]}"


def address(rng, contact):
    city = rng.choice(CITIES)
    contact.update({
        "StreetAddress": rng.choice(STREETS),
        "StreetAddressNumber": str(rng.randint(1, 3000)),
        "Neighborhood": "Centro",
        "ZipCode": rng.randint(1000000, 99999999),  # a number: CEPs lose leading zeros here
        "CityId": city[0],
        "StateId": city[2],
    })


def company(rng, cid, alnum=False):
    doc = cnpj(rng, alnum)
    name = f"{rng.choice(BUSINESS)} {rng.choice(LAST)}"
    c = {"Id": cid, "TypeId": 1, "Name": name, "LegalName": f"{name} LTDA",
         "Register": mask(doc) if rng.random() < 0.3 else doc,
         "Email": f"contato{cid}@example.com.br", "Website": f"https://example.com.br/{cid}",
         "Note": "Cliente de demonstração",
         "Phones": [{"PhoneNumber": f"(11) 3{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
                     "TypeId": 1, "CountryId": 76}],
         "Tags": [{"TagId": OTHER_TAG[0]}] if rng.random() < 0.2 else []}
    address(rng, c)
    return c, doc


def person(rng, cid, company_id=None, with_doc=True):
    doc = cpf(rng) if with_doc else None
    c = {"Id": cid, "TypeId": 2, "Name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
         "Email": f"pessoa{cid}@example.com.br",
         "Phones": [{"PhoneNumber": f"(11) 9{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
                     "TypeId": 2, "CountryId": 76}],
         "Tags": []}
    if doc:
        c["Register"] = doc
    if company_id:
        c["CompanyId"] = company_id
    if rng.random() < 0.5:
        address(rng, c)
    return c, doc


def task(rng, tid, contact_id, tagged=True):
    tag = rng.choice(TICKET_TAGS) if tagged else OTHER_TAG
    what = {40049716: "Instalação de equipamento", 40049715: "Entrega de pedido",
            40054183: "Manutenção preventiva", 40000001: "Ligar para o cliente"}[tag[0]]
    return {"Id": tid, "Title": f"{what} #{tid}", "ContactId": contact_id,
            "Description": f"{what} combinada com o cliente.\nLevar a ordem de serviço.",
            "DateTime": "2026-12-04T09:00:00-03:00", "Finished": False,
            "Tags": [{"TagId": tag[0]}]}


def interaction(rng, iid, contact_id, tagged=True):
    tag = rng.choice(TICKET_TAGS) if tagged else OTHER_TAG
    return {"Id": iid, "ContactId": contact_id, "TypeId": 1,
            "Content": f"Cliente pediu {tag[1].lower()}.\nRetornar por telefone.",
            "Tags": [{"TagId": tag[0]}]}


def milvus_client(rng, mid, doc, name):
    fisica = len(doc) == 11
    return {"id": mid, "razao_social": name, "nome_fantasia": name, "cnpj_cpf": doc,
            "is_fisica": fisica, "is_ativo": True, "site": "", "observacao": "",
            "data_nascimento": None, "sexo": None, "inscricao_estadual": ""}


def write(outdir):
    rng = random.Random(20240224)
    contacts, docs, tasks, interactions = [], [], [], []
    cid = 5000
    for i in range(12):
        c, doc = company(rng, cid, alnum=(i == 3))
        contacts.append(c)
        docs.append((doc, c["Name"]))
        company_id = cid
        cid += 1
        for _ in range(rng.randint(0, 2)):  # people of the company, some without a CPF
            p, pdoc = person(rng, cid, company_id, with_doc=rng.random() < 0.5)
            contacts.append(p)
            if pdoc:
                docs.append((pdoc, p["Name"]))
            cid += 1
    for _ in range(8):
        p, pdoc = person(rng, cid)
        contacts.append(p)
        docs.append((pdoc, p["Name"]))
        cid += 1
    bad = {"Id": cid, "TypeId": 1, "Name": "Documento Inválido SA", "Register": "11111111111111",
           "Tags": []}
    contacts.append(bad)
    # The simulators number what the pipeline creates max(id) + 1: a record with a high id makes
    # those numbers start above every id the live demo seeds (tick, milvus-tick), so a seeded
    # record never replaces one the pipeline created. It has no document: the workers skip it.
    contacts.append({"Id": ID_RESERVE, "TypeId": 1, "Name": "Reserva de ids da demonstração",
                     "Tags": []})
    ids = [c["Id"] for c in contacts if c["Id"] != ID_RESERVE]
    for t in range(10):
        tasks.append(task(rng, 9000 + t, rng.choice(ids), tagged=t % 3 != 2))
    for t in range(6):
        interactions.append(interaction(rng, 7000 + t, rng.choice(ids), tagged=t % 2 == 0))
    ploomes = {
        "States": [{"Id": s[0], "Name": s[1], "Short": s[2], "CountryId": 76} for s in STATES],
        "Cities": [{"Id": c[0], "Name": c[1], "StateId": c[2], "CountryId": 76} for c in CITIES],
        "Tags": [{"Id": t[0], "Name": t[1], "EntityId": 12} for t in TICKET_TAGS + [OTHER_TAG]],
        "Contacts": contacts, "Tasks": tasks, "InteractionRecords": interactions}
    # The desk already has a third of the clients (stored as digits), plus some of its own.
    milvus = {"clientes": [milvus_client(rng, 30000 + i, d, n)
                           for i, (d, n) in enumerate(docs) if i % 3 == 0]}
    for j in range(5):
        d = cnpj(rng)
        milvus["clientes"].append(milvus_client(rng, 31000 + j, d, f"Cliente Milvus {j + 1}"))
    reserve = milvus_client(rng, ID_RESERVE, "", "Reserva de ids da demonstração")
    reserve["is_ativo"] = False
    milvus["clientes"].append(reserve)
    os.makedirs(outdir, exist_ok=True)
    for name, data in (("ploomes.json", ploomes), ("milvus.json", milvus)):
        with open(os.path.join(outdir, name), "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.write("\n")


def tick(n):
    """One few-second step of the live demo in Ploomes."""
    rng = random.Random(n)
    existing = list(range(5000, 5030))
    out = {"Tasks": [task(rng, 100000 + n, rng.choice(existing), tagged=n % 4 != 3)]}
    if n % 5 == 0:  # a new customer, with a ticket of their own right away
        c, _ = company(rng, 60000 + n) if n % 10 == 0 else person(rng, 60000 + n)
        out["Contacts"] = [c]
        out["InteractionRecords"] = [interaction(rng, 200000 + n, c["Id"])]
    return out


def milvus_tick(n):
    rng = random.Random(10 ** 6 + n)
    d = cpf(rng) if n % 2 else cnpj(rng)
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}" if n % 2 else f"{rng.choice(BUSINESS)} Nova"
    return {"clientes": [milvus_client(rng, 40000 + n, d, name)]}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] in ("tick", "milvus-tick"):
        n = int(sys.argv[2])
        print(json.dumps(tick(n) if sys.argv[1] == "tick" else milvus_tick(n),
                         ensure_ascii=False))
    else:
        sys.exit(__doc__)
