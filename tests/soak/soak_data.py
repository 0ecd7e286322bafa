#!/usr/bin/env python3
"""Records for scripts/soak.sh: the demo account of scripts/demo_data.py plus, in the steady
stream, records that must end skipped or dead-lettered (a CPF with a letter, a tagged task of a
contact whose document is invalid, an untagged task).

  soak_data.py write DIR        initial state: DIR/ploomes.json, DIR/milvus.json
  soak_data.py tick N           one Ploomes step (JSON for POST /_admin/seed)
  soak_data.py milvus-tick N    one Milvus step
Deterministic: the same N gives the same records."""
import json
import os
import random
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import demo_data  # noqa: E402

BAD_CONTACT_BASE = 80000


# The simulators hand out max(id) + 1 to what the pipeline creates, and a seed with an id that
# exists REPLACES that record. The stream's ids (demo_data: contacts 60000+n, Milvus clients
# 40000+n, ...) would then overwrite clients the pipeline created. A sentinel with a high id in
# each set the pipeline writes to keeps created ids above every id the stream seeds.
SENTINEL_ID = 9_000_000


def write(outdir):
    demo_data.write(outdir)
    rng = random.Random(SENTINEL_ID)
    path = os.path.join(outdir, "ploomes.json")
    with open(path, encoding="utf-8") as f:
        ploomes = json.load(f)
    ploomes["Contacts"].append({"Id": SENTINEL_ID, "TypeId": 2, "Name": "Sentinela Sem Documento",
                                "Tags": []})
    path_m = os.path.join(outdir, "milvus.json")
    with open(path_m, encoding="utf-8") as f:
        milvus = json.load(f)
    milvus["clientes"].append(demo_data.milvus_client(rng, SENTINEL_ID, demo_data.cpf(rng),
                                                      "Sentinela Milvus"))
    for p, d in ((path, ploomes), (path_m, milvus)):
        with open(p, "w", encoding="utf-8") as f:
            json.dump(d, f, ensure_ascii=False, indent=1)
            f.write("\n")


def tick(n):
    out = demo_data.tick(n)
    rng = random.Random(7 * 10 ** 6 + n)
    if n % 3 == 1:  # letters in a CPF: clients-to-milvus dead-letters it (InvalidDocument)
        cid = BAD_CONTACT_BASE + n
        out.setdefault("Contacts", []).append(
            {"Id": cid, "TypeId": 2, "Name": f"Documento Com Letra {n}",
             "Register": "529.98A.247-25", "Tags": []})
        if n % 6 == 1:  # and a ticket for that contact: no client can be made for it
            out.setdefault("Tasks", []).append(demo_data.task(rng, 300000 + n, cid, tagged=True))
    return out


def milvus_tick(n):
    return demo_data.milvus_tick(n)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] in ("tick", "milvus-tick"):
        k = int(sys.argv[2])
        print(json.dumps(tick(k) if sys.argv[1] == "tick" else milvus_tick(k), ensure_ascii=False))
    else:
        sys.exit(__doc__)
