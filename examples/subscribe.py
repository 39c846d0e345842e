#!/usr/bin/env python3
"""A Tally feed subscriber in a dozen lines of logic: pyzmq + msgpack.

Subscribes to a tally-sink's PUB endpoint, follows progress, gathers the final
totals (numbered batches, so a gap is detected) and, on "done", checks that the
totals add up to done's "sum" and writes them as KEY<TAB>TOTAL lines.

    python3 examples/subscribe.py tcp://localhost:5559 --output totals-from-feed.tsv

Debian: apt-get install python3-zmq python3-msgpack
"""
import argparse
import sys

import msgpack
import zmq


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoint", help="the sink's feed, e.g. tcp://localhost:5559")
    parser.add_argument("--output", help="write the totals here (KEY<TAB>TOTAL, largest first)")
    parser.add_argument("--timeout", type=float, default=120, help="give up after this many silent seconds")
    args = parser.parse_args()

    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)  # keep every totals batch, however many
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(args.endpoint)
    print("subscribed", file=sys.stderr, flush=True)

    batches = {}  # job -> {batch number: {key: total}}
    while True:
        if not sub.poll(args.timeout * 1000):
            sys.exit(f"no message for {args.timeout:.0f} s")
        topic, body = sub.recv_multipart()
        msg = msgpack.unpackb(body, raw=False, strict_map_key=False)
        job = msg["job"]
        if topic == b"progress":
            print(f"progress {msg['chunks_done']}/{msg['chunks_known']} chunks, "
                  f"{msg['lines']} lines", file=sys.stderr)
        elif topic == b"totals":
            batches.setdefault(job, {})[msg["batch"]] = (msg["batches"], msg["entries"])
        elif topic == b"failed":
            sys.exit(f"job {job:016x} failed: {msg['reason']}")
        elif topic == b"done":
            got = batches.get(job, {})
            expected = next(iter(got.values()))[0] if got else 0
            missing = [b for b in range(expected) if b not in got]
            if missing or (msg["keys"] and not got):
                sys.exit(f"missing totals batches: {missing[:10]}")
            totals = {}
            for _, entries in got.values():
                totals.update(entries)
            if len(totals) != msg["keys"] or sum(totals.values()) != msg["sum"]:
                sys.exit(f"feed totals disagree with done: {len(totals)} keys, "
                         f"sum {sum(totals.values())}; done says {msg['keys']}, {msg['sum']}")
            print(f"job {job:016x}: {msg['keys']} keys, sum {msg['sum']}, "
                  f"{msg['lines']} lines, {msg['bad_lines']} bad, {msg['seconds']:.2f} s")
            if args.output:
                with open(args.output, "wb") as out:
                    for key, total in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])):
                        out.write(key + b"\t" + str(total).encode() + b"\n")
            return


if __name__ == "__main__":
    main()
