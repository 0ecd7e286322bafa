#!/usr/bin/env python3
"""The invariants of scripts/soak.sh, checked against the simulators' own state (the oracle).

  soak_check.py pending RUN_DIR [--after-replay]
                                  prints how many source records are not yet accounted for
                                  (before the replay, a record whose letter is transient waits
                                  for it and counts as accounted for; after, it does not)
  soak_check.py final RUN_DIR     prints the table, exits 1 on any violation

RUN_DIR holds: seeds/ploomes.json, seeds/milvus.json (initial state), seeds/p-N.json and
seeds/m-N.json (the stream), logs/*.log (every process), faults.log (one line per fault
injected: "<epoch> <kind> <detail>"), dlq.json (pipeline-dlq list --json, refreshed by the
script), env (PLOOMES_URL=, MILVUS_URL=, TICKET_TAG_IDS=, MILVUS_MIN_ID=), killed (one line per
SIGKILL: "<name> <pid>"), exits (one line per process end: "<name> <pid> <code> <expected>"),
replays (the replay's output), replay_at (the UTC time the replay began, as the logs print it).

A source record is accounted for when it is:
  delivered     exactly one client / ticket for it at the target (by normalised document, or
                by the marker line "[ploomes:<entity>:<Id>]" of chamado_descricao);
  skipped       a worker logged record_done outcome=skipped for it, with its reason;
  dead-lettered only for invalid data: a letter for it whose error class is a data class
                (not a transport failure, 5xx, 408/425/429 or an ambiguous create).
Violations: a duplicate at a target, a record not accounted for (lost), a ticket for a record
that should have none, an invalid record delivered, a process that died unkilled, a sanitizer
report in a log."""
import collections
import glob
import json
import os
import re
import sys
import urllib.request

TRANSIENT = re.compile(r"^(HttpStatus(5\d\d|408|425|429)|Curl.*|AmbiguousCreate|ResponseTooLarge|"
                       r"Store.*|Mongo.*|Kafka.*)$")
SANITIZER = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|runtime error:|"
                       r"SUMMARY: (Address|UndefinedBehavior|Leak)Sanitizer")
LOGFMT = re.compile(r'(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S*)')


def norm_doc(raw, is_fisica=None):
    """Normal form of a CPF/CNPJ (doc.h) or None when it is not a valid one."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        if raw != int(raw) or raw < 0:
            return None
        raw = str(int(raw))
    if not isinstance(raw, str):
        return None
    s = "".join(c for c in raw if c not in "./- \t\r\n").upper()
    if s.isdigit():
        if is_fisica is True and len(s) < 11:
            s = s.zfill(11)
        elif is_fisica is False and len(s) < 14:
            s = s.zfill(14)
        elif is_fisica is None and 9 <= len(s) <= 10:
            s = s.zfill(11)
        elif is_fisica is None and 12 <= len(s) <= 13:
            s = s.zfill(14)
    return s if valid_doc(s) else None


def valid_doc(s):
    if len(s) not in (11, 14) or len(set(s)) == 1:
        return False
    if len(s) == 11:
        if not s.isdigit():
            return False
        weights = [list(range(10, 1, -1)), list(range(11, 1, -1))]
    else:
        if not (all(c.isdigit() or "A" <= c <= "Z" for c in s[:12]) and s[12:].isdigit()):
            return False
        weights = [[5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2], [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]]
    vals = [ord(c) - 48 for c in s]
    n = len(s) - 2
    for k in range(2):
        total = sum(v * w for v, w in zip(vals[:n + k], weights[k]))
        d = total % 11
        d = 0 if d < 2 else 11 - d
        if vals[n + k] != d:
            return False
    return True


def contact_doc(c):
    """(kind, normal form): kind 'none', 'invalid' or 'valid' (milvus_contact_document)."""
    for key in ("Register", "CNPJ", "CPF"):
        v = c.get(key)
        if v is None or v == "":
            continue
        if not isinstance(v, str):
            return "invalid", None
        d = norm_doc(v)
        return ("valid", d) if d else ("invalid", None)
    return "none", None


def get_json(url):
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.load(r)


def read_env(run):
    env = {}
    with open(os.path.join(run, "env"), encoding="utf-8") as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            env[k] = v
    return env


def load_sources(run):
    contacts, tasks, interactions, mclients = {}, {}, {}, {}
    files = [os.path.join(run, "seeds", "ploomes.json")] + sorted(glob.glob(os.path.join(run, "seeds", "p-*.json")))
    for path in files:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        for c in d.get("Contacts", []):
            contacts[c["Id"]] = c
        for t in d.get("Tasks", []):
            tasks[t["Id"]] = t
        for t in d.get("InteractionRecords", []):
            interactions[t["Id"]] = t
    files = [os.path.join(run, "seeds", "milvus.json")] + sorted(glob.glob(os.path.join(run, "seeds", "m-*.json")))
    for path in files:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        for c in d.get("clientes", []):
            mclients[c["id"]] = c
    return contacts, tasks, interactions, mclients


def parse_logs(run):
    """record_done events per (worker, key), http_retry count, sanitizer lines."""
    done = collections.defaultdict(list)
    retries = 0
    sanitizer = []
    for path in sorted(glob.glob(os.path.join(run, "logs", "*.log"))):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if SANITIZER.search(line):
                    sanitizer.append(f"{os.path.basename(path)}: {line.strip()[:200]}")
                if "event=http_retry" in line:
                    retries += 1
                elif "event=record_done" in line:
                    kv = {k: v.strip('"') for k, v in LOGFMT.findall(line)}
                    done[(kv.get("worker", ""), kv.get("key", ""))].append(kv)
    return done, retries, sanitizer


def load_dlq(run):
    path = os.path.join(run, "dlq.json")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if isinstance(d, dict):
        for v in d.values():
            if isinstance(v, list):
                return v
        return []
    return d


def load_replayed(run, letters):
    """(worker, key) of every letter in RUN/replays ("<partition>/<offset> <worker> -> <topic>:
    replayed" lines of pipeline-dlq replay), and the ISO time in RUN/replay_at ("" if none)."""
    by_pos = {(int(l.get("partition", -1)), int(l.get("offset", -1))):
              (l.get("worker", ""), str(l.get("key", ""))) for l in letters}
    keys = set()
    rpath = os.path.join(run, "replays")
    if os.path.exists(rpath):
        with open(rpath, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"^(\d+)/(\d+) (\S+) -> \S+: replayed", line)
                if m and (int(m.group(1)), int(m.group(2))) in by_pos:
                    keys.add(by_pos[(int(m.group(1)), int(m.group(2)))])
    at = ""
    apath = os.path.join(run, "replay_at")
    if os.path.exists(apath):
        with open(apath, encoding="utf-8") as f:
            at = f.read().strip()
    return keys, at


def check(run, final, after_replay=False):
    env = read_env(run)
    tag_ids = {int(x) for x in env.get("TICKET_TAG_IDS", "").split(",") if x}
    min_id = int(env.get("MILVUS_MIN_ID", "0") or 0)
    contacts, tasks, interactions, mclients = load_sources(run)
    pstate = get_json(env["PLOOMES_URL"] + "/_admin/state")
    mstate = get_json(env["MILVUS_URL"] + "/_admin/state")
    done, retries, sanitizer = parse_logs(run)
    letters = load_dlq(run)
    letters_by = collections.defaultdict(list)
    for l in letters:
        letters_by[(l.get("worker", ""), str(l.get("key", "")))].append(l)
    # Records whose letter was replayed, and when the replay began: until the worker has
    # finished each of them again, the drain is not over (stopping then would leave them
    # in flight, unhandled: the 20-minute soak of 2026-12-03 stopped 8 s after the replay).
    replayed_keys, replay_at = load_replayed(run, letters)

    # Targets, counted by the oracle.
    m_by_doc = collections.Counter()
    for c in mstate.get("clientes", []):
        d = norm_doc(c.get("cnpj_cpf"), c.get("is_fisica") if isinstance(c.get("is_fisica"), bool) else None)
        if d:
            m_by_doc[d] += 1
    p_by_doc = collections.Counter()
    for c in pstate.get("Contacts", []):
        kind, d = contact_doc(c)
        if kind == "valid":
            p_by_doc[d] += 1
    marker_re = re.compile(r"^\s*\[ploomes:(task|interaction):(-?\d+)\]\s*$")
    tickets = collections.Counter()
    for t in mstate.get("chamados", []):
        text = t.get("chamado_descricao", t.get("descricao", "")) or ""
        first = re.split(r"\r\n|\r|\n", text, maxsplit=1)[0]
        m = marker_re.match(first)
        if m:
            tickets[(m.group(1), int(m.group(2)))] += 1

    stats = collections.Counter()
    violations = []
    reasons = collections.Counter()

    def account(what, worker, key, delivered_count, expect_delivery, strict=False):
        """Classifies one source record; returns True when it is accounted for. strict: the
        record is valid, so only a delivery accounts for it (no skip, no dead letter)."""
        evs = done.get((worker, str(key)), [])
        lets = letters_by.get((worker, str(key)), [])
        if (not final and after_replay and (worker, str(key)) in replayed_keys and
                not any(e.get("time", "") >= replay_at for e in evs)):
            return False  # replayed, not handled again yet
        if delivered_count > 1:
            stats["duplicates"] += delivered_count - 1
            violations.append(f"duplicate: {what} {key} is {delivered_count} times at the target")
            return True
        if delivered_count == 1:
            if not expect_delivery:
                violations.append(f"delivered although it must not be: {what} {key}")
            stats["delivered"] += 1
            return True
        if not final and not after_replay and any(TRANSIENT.match(l.get("error_class", "")) for l in lets):
            return True  # waits for the replay, which comes after this drain
        if strict:
            if final:
                last = evs[-1] if evs else {}
                lt = lets[-1].get("error_class") if lets else "-"
                violations.append(f"lost: valid {what} {key} not delivered (last outcome "
                                  f"{last.get('outcome', 'none')} {last.get('reason', '')} "
                                  f"{last.get('error_class', '')}; letter {lt})")
            stats["lost"] += 1
            return False
        skips = [e for e in evs if e.get("outcome") == "skipped"]
        data_letters = [l for l in lets if not TRANSIENT.match(l.get("error_class", ""))]
        if not expect_delivery and skips:
            stats["skipped"] += 1
            reasons["skipped " + skips[-1].get("reason", "?")] += 1
            return True
        if data_letters:
            stats["dead_lettered"] += 1
            reasons["dead-lettered " + data_letters[-1].get("error_class", "?")] += 1
            return True
        if skips:
            stats["skipped"] += 1
            reasons["skipped " + skips[-1].get("reason", "?")] += 1
            return True
        if final:
            last = evs[-1] if evs else {}
            lt = lets[-1].get("error_class") if lets else "-"
            violations.append(f"lost: {what} {key} (last outcome {last.get('outcome', 'none')} "
                              f"{last.get('reason', '')} {last.get('error_class', '')}; letter {lt})")
        stats["lost"] += 1
        return False

    pending = 0
    for cid, c in sorted(contacts.items()):
        kind, d = contact_doc(c)
        stats["records"] += 1
        n = m_by_doc[d] if d else 0
        if kind != "valid":
            # invalid: a data letter; none: a skip. Never a client.
            pending += not account("contact", "clients-to-milvus", cid, 0, False)
        else:
            pending += not account("contact", "clients-to-milvus", cid, n, True, strict=True)
    for entity, worker, src in (("task", "tasks-to-milvus", tasks),
                                ("interaction", "interactions-to-milvus", interactions)):
        for tid, t in sorted(src.items()):
            stats["records"] += 1
            tagged = any(isinstance(x, dict) and x.get("TagId") in tag_ids for x in t.get("Tags", []))
            contact = contacts.get(t.get("ContactId"), {})
            ok = contact_doc(contact)[0] == "valid" or (
                contact_doc(contact)[0] == "none" and
                contact_doc(contacts.get(contact.get("CompanyId"), {}))[0] == "valid")
            pending += not account(entity, worker, tid, tickets[(entity, tid)], tagged,
                                   strict=tagged and ok)
    for mid, c in sorted(mclients.items()):
        stats["records"] += 1
        d = norm_doc(c.get("cnpj_cpf"), c.get("is_fisica"))
        expect = d is not None and mid >= min_id
        pending += not account("milvus client", "clients-to-ploomes", mid, p_by_doc[d] if d else 0,
                               expect, strict=expect)

    # Duplicates among everything at the targets (also what no seed of ours made).
    for d, n in m_by_doc.items():
        if n > 1 and not any(contact_doc(c)[1] == d for c in contacts.values()):
            stats["duplicates"] += n - 1
            violations.append(f"duplicate: {n} Milvus clients share one document")
    for d, n in p_by_doc.items():
        if n > 1 and not any(norm_doc(c.get("cnpj_cpf"), c.get("is_fisica")) == d for c in mclients.values()):
            stats["duplicates"] += n - 1
            violations.append(f"duplicate: {n} Ploomes contacts share one document")
    if not final:
        print(pending)
        return 0

    faults = collections.Counter()
    fpath = os.path.join(run, "faults.log")
    if os.path.exists(fpath):
        with open(fpath, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2:
                    faults[parts[1]] += 1
    killed = set()
    kpath = os.path.join(run, "killed")
    if os.path.exists(kpath):
        with open(kpath, encoding="utf-8") as f:
            killed = {tuple(line.split()[:2]) for line in f if line.strip()}
    died = 0
    epath = os.path.join(run, "exits")
    if os.path.exists(epath):
        with open(epath, encoding="utf-8") as f:
            for line in f:
                name, pid, code, expected = (line.split() + ["", "", "", ""])[:4]
                if (name, pid) in killed:
                    continue
                if expected != "expected" or code != "0":
                    died += 1
                    violations.append(f"process died: {name} pid {pid} exit {code} ({expected})")
    replays = 0
    rpath = os.path.join(run, "replays")
    if os.path.exists(rpath):
        with open(rpath, encoding="utf-8") as f:
            replays = sum(int(x) for x in re.findall(r"(\d+) replayed,", f.read()))
    for s in sanitizer[:10]:
        violations.append("sanitizer: " + s)

    rows = [("source records", stats["records"]),
            ("  delivered exactly once", stats["delivered"]),
            ("  skipped (with reason)", stats["skipped"]),
            ("  dead-lettered (invalid data)", stats["dead_lettered"])]
    rows += [("    " + r, n) for r, n in sorted(reasons.items())]
    rows += [("faults injected", sum(faults.values()))]
    rows += [("  " + k, n) for k, n in sorted(faults.items())]
    rows += [("HTTP retries (http_retry lines)", retries),
             ("dead letters in the DLQ (all)", len(letters)),
             ("replays", replays),
             ("processes killed (SIGKILL)", len(killed)),
             ("processes died unkilled", died),
             ("sanitizer reports", len(sanitizer)),
             ("duplicates (must be 0)", stats["duplicates"]),
             ("lost (must be 0)", stats["lost"])]
    print()
    print(f"{'soak':<40} {'count':>8}")
    for label, n in rows:
        print(f"{label:<40} {n:>8}")
    print(f"targets: {len(mstate.get('clientes', []))} Milvus clients, {len(mstate.get('chamados', []))} "
          f"tickets, {len(pstate.get('Contacts', []))} Ploomes contacts")
    if violations:
        print(f"\nVIOLATIONS ({len(violations)}):")
        for v in violations[:60]:
            print("  " + v)
        return 1
    print("\nall invariants hold")
    return 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--after-replay"]
    if len(args) != 2 or args[0] not in ("pending", "final"):
        sys.exit(__doc__)
    sys.exit(check(args[1], args[0] == "final", "--after-replay" in sys.argv))
