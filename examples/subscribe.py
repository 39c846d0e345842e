#!/usr/bin/env python3
"""A Tally feed subscriber in a few dozen lines of logic: pyzmq + msgpack.

Subscribes to a tally-sink's PUB endpoint, follows progress, gathers the final
totals (numbered batches, so a gap is detected) and, on "done", checks that the
totals add up to done's "sum" and writes them as KEY<TAB>TOTAL lines.

Given the feeds of a job's sink shards (several endpoints, or EP0,EP1,...), it
combines them: every body names its "shard" of "shards" (absent: 0 of 1), each
shard numbers its totals batches on its own, and the job is done once every shard
sent its "done" (their counts summed); a "failed" from any shard fails the job.

    python3 examples/subscribe.py tcp://localhost:5559 --output totals-from-feed.tsv
    python3 examples/subscribe.py tcp://host0:5559 tcp://host1:5559 --output totals.tsv

Debian: apt-get install python3-zmq python3-msgpack
"""
import argparse
import sys

import msgpack
import zmq


def progress_line(latest, shards):
    """The job's progress from its shards' latest: chunks merged by every shard."""
    heard = list(latest.values())
    line = (f"progress {min(p['chunks_done'] for p in heard)}/"
            f"{max(p['chunks_known'] for p in heard)} chunks, "
            f"{sum(p['lines'] for p in heard)} lines")
    return line if shards == 1 else f"{line} ({len(heard)} of {shards} shards)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoint", nargs="+",
                        help="the sink's feed, e.g. tcp://localhost:5559; one per shard")
    parser.add_argument("--output", help="write the totals here (KEY<TAB>TOTAL, largest first)")
    parser.add_argument("--timeout", type=float, default=120, help="give up after this many silent seconds")
    args = parser.parse_args()
    endpoints = [ep for arg in args.endpoint for ep in arg.split(",")]
    combine = len(endpoints) > 1  # one feed: each shard's done is shown on its own

    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)  # keep every totals batch, however many
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    for endpoint in endpoints:
        sub.connect(endpoint)
    print("subscribed", file=sys.stderr, flush=True)

    progress = {}  # job -> {shard: latest progress}
    batches = {}   # job -> {shard: {batch number: (batches, {key: total})}}
    dones = {}     # job -> {shard: done}
    while True:
        if not sub.poll(args.timeout * 1000):
            sys.exit(f"no message for {args.timeout:.0f} s")
        topic, body = sub.recv_multipart()
        msg = msgpack.unpackb(body, raw=False, strict_map_key=False)
        job, shard, shards = msg["job"], msg.get("shard", 0), msg.get("shards", 1)
        if not combine:
            job, shards = (job, shard), 1  # each shard's messages alone
        if topic == b"progress":
            progress.setdefault(job, {})[shard] = msg
            print(progress_line(progress[job], shards), file=sys.stderr)
        elif topic == b"totals":
            got = batches.setdefault(job, {}).setdefault(shard, {})
            got[msg["batch"]] = (msg["batches"], msg["entries"])
        elif topic == b"failed":
            sys.exit(f"job {msg['job']:016x} failed (shard {shard} of {msg.get('shards', 1)}): "
                     f"{msg['reason']}")
        elif topic == b"done":
            dones.setdefault(job, {})[shard] = msg
            if len(dones[job]) < shards:
                print(f"shard {shard} of {shards} done", file=sys.stderr)
                continue
            totals = {}
            for done_shard, done in sorted(dones[job].items()):
                got = batches.get(job, {}).get(done_shard, {})
                expected = next(iter(got.values()))[0] if got else 0
                missing = [b for b in range(expected) if b not in got]
                if missing or (done["keys"] and not got):
                    sys.exit(f"shard {done_shard}: missing totals batches: "
                             f"{missing[:10] if got else 'all'}")
                entries = {}
                for _, part in got.values():
                    entries.update(part)
                if len(entries) != done["keys"] or sum(entries.values()) != done["sum"]:
                    sys.exit(f"shard {done_shard}: feed totals disagree with done: "
                             f"{len(entries)} keys, sum {sum(entries.values())}; "
                             f"done says {done['keys']}, {done['sum']}")
                if not totals.keys().isdisjoint(entries):
                    sys.exit(f"shard {done_shard}: keys that another shard has too")
                totals.update(entries)
            parts = dones[job].values()
            done = {k: sum(d[k] for d in parts) for k in ("keys", "sum", "lines", "bad_lines")}
            seconds = max(d["seconds"] for d in parts)
            print(f"job {msg['job']:016x}: {done['keys']} keys, sum {done['sum']}, "
                  f"{done['lines']} lines, {done['bad_lines']} bad, {seconds:.2f} s"
                  + (f" ({shards} shards)" if shards > 1 else ""))
            if args.output:
                with open(args.output, "wb") as out:
                    for key, total in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])):
                        out.write(key + b"\t" + str(total).encode() + b"\n")
            return


if __name__ == "__main__":
    main()
