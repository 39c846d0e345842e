#!/usr/bin/env python3
"""A Tally feed subscriber in a few dozen lines of logic: pyzmq + msgpack.

Subscribes to a tally-sink's PUB endpoint, follows progress, gathers the final
totals (numbered batches, so a gap is detected) and, on "done", checks that the
totals add up to done's "sum" and writes them as KEY<TAB>TOTAL lines.

Given the feeds of a job's sink shards (several endpoints, or EP0,EP1,...), it
combines them: every body names its "shard" of "shards" (absent: 0 of 1), each
shard numbers its totals batches on its own, and the job is done once every shard
sent its "done" (their counts summed); a "failed" from any shard fails the job.

A late joiner: once subscribed, it asks each sink's snapshot service (beside the
feed: tcp://H:P -> tcp://H:P+1, ipc://PATH -> ipc://PATH.snapshot) for the state
so far, and takes the replies as feed messages: the running jobs' progress, the
last finished jobs' done or failed (printed, but they ended before this program
started: it goes on waiting for a job's done on the feed). A shard's done or
failed that comes twice (in the snapshot and on the feed) is taken once.

With --totals JOB, it fetches a finished job's totals from the snapshot services
instead (the sinks keep their last 4 jobs' totals), batch by batch, and merges
the shards' parts into one totals file.

    python3 examples/subscribe.py tcp://localhost:5559 --output totals-from-feed.tsv
    python3 examples/subscribe.py tcp://host0:5559 tcp://host1:5559 --output totals.tsv
    python3 examples/subscribe.py tcp://host0:5559 tcp://host1:5559 --totals 0123456789abcdef --out t.tsv

Debian: apt-get install python3-zmq python3-msgpack
"""
import argparse
import heapq
import os
import sys
import time

import msgpack
import zmq


def snapshot_endpoint(feed):
    """The snapshot service beside a feed, or None when there is no rule for it."""
    if feed.startswith("ipc://") and len(feed) > len("ipc://"):
        return feed + ".snapshot"
    head, _, port = feed.rpartition(":")
    if feed.startswith("tcp://") and len(head) > len("tcp://") and port.isdigit():
        if 1 <= int(port) <= 65534:
            return f"{head}:{int(port) + 1}"
    return None


def unpack(body):
    return msgpack.unpackb(body, raw=False, strict_map_key=False)


def progress_line(latest, shards):
    """The job's progress from its shards' latest: chunks merged by every shard."""
    heard = list(latest.values())
    line = (f"progress {min(p['chunks_done'] for p in heard)}/"
            f"{max(p['chunks_known'] for p in heard)} chunks, "
            f"{sum(p['lines'] for p in heard)} lines")
    return line if shards == 1 else f"{line} ({len(heard)} of {shards} shards)"


def done_line(job, parts, shards):
    """The job's summary from its shards' done bodies."""
    done = {k: sum(d[k] for d in parts) for k in ("keys", "sum", "lines", "bad_lines")}
    seconds = max(d["seconds"] for d in parts)
    return (f"job {job:016x}: {done['keys']} keys, sum {done['sum']}, "
            f"{done['lines']} lines, {done['bad_lines']} bad, {seconds:.2f} s"
            + (f" ({shards} shards)" if shards > 1 else ""))


def follow(args, endpoints):
    """Follows the feeds until a job's done (exit 0) or failed (exit 1) on the feed."""
    combine = len(endpoints) > 1  # one feed: each shard's done is shown on its own
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)  # keep every totals batch, however many
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    for endpoint in endpoints:
        sub.connect(endpoint)
    print("subscribed", file=sys.stderr, flush=True)

    # Subscribed first, then the state asked for: what is published after the
    # snapshot was taken comes on the feed.
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    snapshots = {}  # DEALER socket -> its endpoint, until its "snapshot" reply
    for endpoint in endpoints:
        snap = snapshot_endpoint(endpoint)
        if snap is None:
            print(f"{endpoint}: no snapshot service beside it", file=sys.stderr)
            continue
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(snap)
        dealer.send(msgpack.packb({"get": "state"}))
        poller.register(dealer, zmq.POLLIN)
        snapshots[dealer] = snap

    progress = {}  # job -> {shard: latest progress}
    batches = {}   # job -> {shard: {batch number: (batches, {key: total})}}
    dones = {}     # job -> {shard: done}
    ended = set()  # (job id, shard) whose done or failed was taken
    heard = time.monotonic()  # the last message of a job (the sinks' stats do not count)
    while True:
        ready = dict(poller.poll(1000))
        if time.monotonic() - heard > args.timeout:
            sys.exit(f"no message for {args.timeout:.0f} s")
        for sock in ready:
            topic, body = sock.recv_multipart()
            from_snapshot = sock is not sub
            msg = unpack(body)
            if topic == b"snapshot":  # the last reply of a state request
                heard = time.monotonic()
                print(f"{snapshots[sock]}: {msg['open']} jobs running, "
                      f"{msg['finished']} finished", file=sys.stderr)
                poller.unregister(sock)
                sock.close()
                continue
            if not isinstance(msg, dict) or "job" not in msg:
                continue  # stats: the sink's own counters
            heard = time.monotonic()
            job, shard, shards = msg["job"], msg.get("shard", 0), msg.get("shards", 1)
            if topic in (b"done", b"failed"):
                if (job, shard) in ended:
                    continue  # heard of in the snapshot and on the feed: taken once
                ended.add((job, shard))
            if not combine:
                job, shards = (job, shard), 1  # each shard's messages alone
            if topic == b"progress":
                progress.setdefault(job, {})[shard] = msg
                print(progress_line(progress[job], shards), file=sys.stderr)
            elif topic == b"totals":
                got = batches.setdefault(job, {}).setdefault(shard, {})
                got[msg["batch"]] = (msg["batches"], msg["entries"])
            elif topic == b"failed" and from_snapshot:
                print(f"job {msg['job']:016x} failed before we started (shard {shard} of "
                      f"{msg.get('shards', 1)}): {msg['reason']}", file=sys.stderr)
            elif topic == b"failed":
                sys.exit(f"job {msg['job']:016x} failed (shard {shard} of {msg.get('shards', 1)}): "
                         f"{msg['reason']}")
            elif topic == b"done":
                dones.setdefault(job, {})[shard] = msg
                if len(dones[job]) < shards:
                    print(f"shard {shard} of {shards} done", file=sys.stderr)
                elif from_snapshot:
                    # Its totals went out before we subscribed: --totals fetches them.
                    print(done_line(msg["job"], dones.pop(job).values(), shards)
                          + " (ended before this subscriber started)", flush=True)
                else:
                    finish(args, msg["job"], dones[job], batches.get(job, {}), shards)
                    return


def finish(args, job, dones, batches, shards):
    """A job done on the feed: checks every shard's totals against its done, writes them."""
    totals = {}
    for done_shard, done in sorted(dones.items()):
        got = batches.get(done_shard, {})
        expected = next(iter(got.values()))[0] if got else 0
        missing = [b for b in range(expected) if b not in got]
        if missing or (done["keys"] and not got):
            sys.exit(f"shard {done_shard}: missing totals batches: "
                     f"{missing[:10] if got else 'all'} (--totals {job:016x} fetches them)")
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
    print(done_line(job, dones.values(), shards))
    if args.output:
        with open(args.output, "wb") as out:
            for key, total in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])):
                out.write(key + b"\t" + str(total).encode() + b"\n")


def shard_totals(args, feed, job, shards_seen):
    """One shard's part of a finished job's totals, in its order, fetched batch by batch
    from the sink's snapshot service: batch 0 from 0, then batch+1 from each reply's
    "next", until batch == batches-1. Exits 1 on an "error" reply."""
    endpoint = snapshot_endpoint(feed)
    if endpoint is None:
        sys.exit(f"{feed}: no snapshot service beside it")
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(endpoint)
    batch, cursor = 0, 0
    while True:
        dealer.send(msgpack.packb({"get": "totals", "job": job, "batch": batch, "from": cursor}))
        if not dealer.poll(args.timeout * 1000):
            sys.exit(f"{endpoint}: no reply for {args.timeout:.0f} s")
        topic, body = dealer.recv_multipart()
        msg = unpack(body)
        if topic == b"error":
            sys.exit(f"{endpoint}: job {job:016x}: {msg['reason']}")
        if topic != b"totals" or msg["job"] != job or msg["batch"] != batch:
            sys.exit(f"{endpoint}: unexpected reply {topic!r} to batch {batch}")
        if batch == 0:
            shards_seen.append((msg.get("shard", 0), msg.get("shards", 1)))
        yield from msg["entries"].items()
        if batch >= msg["batches"] - 1:
            break
        batch, cursor = batch + 1, msg["next"]
    dealer.close()


def fetch_totals(args, endpoints):
    """A finished job's totals from every shard's snapshot service, merged into one file
    sorted as a totals file (total descending, then key bytes), as each part is."""
    job = int(args.totals, 16)
    shards_seen = []  # (shard, shards) of each part
    parts = [shard_totals(args, feed, job, shards_seen) for feed in endpoints]
    # Written to a temporary name, renamed once complete: a file that exists is whole.
    temporary = f"{args.output}.tmp{os.getpid()}" if args.output else None
    out = open(temporary, "wb") if temporary else sys.stdout.buffer
    keys = total = 0
    try:
        for key, count in heapq.merge(*parts, key=lambda kv: (-kv[1], kv[0])):
            out.write(key + b"\t" + str(count).encode() + b"\n")
            keys, total = keys + 1, total + count
        if sorted(shards_seen) != [(shard, len(endpoints)) for shard in range(len(endpoints))]:
            sys.exit(f"job {job:016x}: parts (shard, of shards) {sorted(shards_seen)}: "
                     "give every shard's feed, once")
    except BaseException:
        if temporary:
            out.close()
            os.unlink(temporary)
        raise
    if temporary:
        out.close()
        os.replace(temporary, args.output)
    print(f"job {job:016x}: {keys} keys, sum {total}"
          + (f" ({len(endpoints)} shards)" if len(endpoints) > 1 else ""), file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoint", nargs="+",
                        help="the sink's feed, e.g. tcp://localhost:5559; one per shard")
    parser.add_argument("--output", "--out",
                        help="write the totals here (KEY<TAB>TOTAL, largest first); "
                             "with --totals, standard output when not given")
    parser.add_argument("--timeout", type=float, default=120,
                        help="give up after this many seconds without a job's message "
                             "(the sinks' stats do not count)")
    parser.add_argument("--totals", metavar="JOB_HEX",
                        help="fetch this finished job's totals from the snapshot services")
    args = parser.parse_args()
    endpoints = [ep for arg in args.endpoint for ep in arg.split(",")]
    if args.totals:
        try:
            int(args.totals, 16)
        except ValueError:
            parser.error(f"--totals {args.totals}: not a job id in hex")
        fetch_totals(args, endpoints)
    else:
        follow(args, endpoints)


if __name__ == "__main__":
    main()
