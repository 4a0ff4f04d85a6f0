#!/usr/bin/env python3
"""Redis memory per waiting job for ways of storing compact jobs (a prototype of the
data, not baton's code): what the memory target of issue 10 needs, measured.

Each model stores N waiting jobs as baton's add does (a compact value of the shape
`<ts> <keep> <spec>` as `baton bench` makes it, 56 bytes, and the id in the wait list)
in a fresh redis-server of its own, and prints the change in used_memory per job:

- `hash`: today's one `jobs` hash (a hash table, padded as add.lua pads it);
- `buckets`: ids of one producer that differ only in their last character (baton's
  generated ids, `src/job/id.rs`) share a small hash `jobs:<id less its last char>`,
  which stays a listpack (at most 32 fields, values under 64 bytes).

Each with `uuid` ids (32 hex characters, baton before session 12) and `short` ones
(`<12 base-62>.<base-32 counter>`, baton from session 12).

    bench/bucket_memory.py [--jobs 20000]
"""
import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import redis

B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
B32 = "0123456789abcdefghijklmnopqrstuv"
PAD = "-" * 65
VALUE = b"1796120951059 0:0:10000:604800000 bench\x0013:" + bytes(range(1, 15))


def short_ids(n):
    r = uuid.uuid4().int
    prefix = "".join(B62[(r // 62**i) % 62] for i in range(12))
    out = []
    for c in range(n):
        d = ""
        while True:
            d = B32[c % 32] + d
            c //= 32
            if c == 0:
                break
        out.append(prefix + "." + d)
    return out


def uuid_ids(n):
    return [uuid.uuid4().hex for _ in range(n)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(model, ids):
    d = tempfile.mkdtemp()
    port = free_port()
    p = subprocess.Popen(
        ["redis-server", "--port", str(port), "--dir", d, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        r = redis.Redis(port=port)
        deadline = time.time() + 10
        while True:
            try:
                r.ping()
                break
            except redis.ConnectionError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        q = "baton:{q}:"
        r.lpush(q + "wait", "x")  # the list exists before, as the queue does
        before = r.info("memory")["used_memory"]
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            pipe = r.pipeline(transaction=False)
            if model == "hash":
                fields = {}
                for id_ in chunk:
                    fields[id_] = VALUE
                fields[""] = PAD
                pipe.hset(q + "jobs", mapping=fields)
            else:
                by_stem = {}
                for id_ in chunk:
                    by_stem.setdefault(id_[:-1], {})[id_] = VALUE
                for stem, fields in by_stem.items():
                    pipe.hset(q + "jobs:" + stem, mapping=fields)
            pipe.lpush(q + "wait", *chunk)
            pipe.execute()
        after = r.info("memory")["used_memory"]
        enc = r.object("encoding", q + ("jobs" if model == "hash" else "jobs:" + ids[0][:-1]))
        return (after - before) / len(ids), enc.decode()
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20000)
    a = ap.parse_args()
    print(f"| model | ids | bytes per waiting job | encoding |\n| --- | --- | ---: | --- |")
    for ids_name, make in (("uuid", uuid_ids), ("short", short_ids)):
        ids = make(a.jobs)
        for model in ("hash", "buckets"):
            per, enc = measure(model, ids)
            print(f"| {model} | {ids_name} | {per:.1f} | {enc} |")


if __name__ == "__main__":
    main()
