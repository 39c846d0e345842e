#!/usr/bin/python3
"""A subscriber that joins late, for tests/it_snapshot.sh: it talks to the sink's snapshot
service (a DEALER sending one msgpack map a request) and reads its feed (SUB), with pyzmq and
msgpack only, as any client in another language would. Replies are [topic, body] messages.

  state SNAP                  {"get": "state"}; prints each reply as a JSON line
                              {"topic", "body"}, up to and with "snapshot"
  totals SNAP JOB OUT         fetches the finished job's totals batch by batch (batch 0 from
                              0, then batch+1 from each reply's "next", until batch ==
                              batches-1), writes them to OUT as "key TAB total" lines in the
                              order received; prints a JSON summary; on an "error" reply prints
                              {"error": reason} and exits 2; exits 1 when a reply breaks the
                              protocol (a batch out of order, "next" missing or not growing)
  late FEED SNAP OUT          subscribes to the feed first, then asks for the state: writes
                              every message, from either, as a JSON line {"t" (seconds since
                              the program started), "wall" (time.time()), "source" ("snapshot"
                              or "feed"), "topic", "body"} to OUT, until the feed's done or failed of a job that was
                              open in the snapshot (or 120 s)
  raw SNAP HEX[+HEX...]...    sends each argument as one message (frames separated by "+",
                              "-" for an empty frame, "big:N" for N bytes of "x"), each
                              followed by a valid {"get": "state"}; prints a JSON line per
                              argument: the reply to it ({"topic", "body"}, or null when none
                              came within 2 s) and whether the state request after it was
                              answered
  feed FEED OUT SECONDS TOPIC[,TOPIC...]
                              writes each body of those topics on the feed as a JSON line to
                              OUT (with "topic" and "t"), for SECONDS
"""
import json
import sys
import time

import msgpack
import zmq

START = time.monotonic()
TIMEOUT_MS = 20000


def plain(value):
    """A body made JSON-printable: bytes as text (invalid UTF-8 escaped)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def unpack(body):
    return msgpack.unpackb(body, raw=False, strict_map_key=False)


def dealer(ctx, endpoint):
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
    sock.connect(endpoint)
    return sock


def recv(sock, timeout_ms=TIMEOUT_MS):
    if not sock.poll(timeout_ms):
        return None
    return sock.recv_multipart()


def request(sock, req):
    sock.send(msgpack.packb(req))


def cmd_state(snap):
    sock = dealer(zmq.Context(), snap)
    request(sock, {"get": "state"})
    while True:
        frames = recv(sock)
        if frames is None:
            sys.exit("no reply to the state request")
        topic, body = frames[0].decode(), unpack(frames[1])
        print(json.dumps({"topic": topic, "body": plain(body), "frames": len(frames)}))
        if topic == "snapshot":
            return


def cmd_totals(snap, job, out):
    sock = dealer(zmq.Context(), snap)
    job, batch, cursor, replies, largest = int(job), 0, 0, 0, 0
    keys, total, cursors = 0, 0, []
    with open(out, "wb") as f:
        while True:
            request(sock, {"get": "totals", "job": job, "batch": batch, "from": cursor})
            frames = recv(sock)
            if frames is None:
                sys.exit("no reply to totals batch %d" % batch)
            replies += 1
            largest = max(largest, len(frames[1]))
            topic, body = frames[0].decode(), unpack(frames[1])
            if topic == "error":
                print(json.dumps({"error": body.get("reason"), "job": body.get("job"),
                                  "batch": batch, "replies": replies}))
                sys.exit(2)
            if topic != "totals" or body["job"] != job or body["batch"] != batch:
                print(json.dumps({"unexpected": topic, "body": plain(body)}))
                sys.exit(1)
            for key, count in body["entries"].items():
                f.write(key + b"\t%d\n" % count)
                keys += 1
                total += count
            last = batch == body["batches"] - 1
            if last:
                if "next" in body:
                    print(json.dumps({"broken": "the last batch has a next", "body": plain(body)}))
                    sys.exit(1)
                break
            nxt = body.get("next")
            if not isinstance(nxt, int) or nxt <= cursor:
                print(json.dumps({"broken": "next missing or not past from", "batch": batch,
                                  "from": cursor, "next": nxt}))
                sys.exit(1)
            cursors.append(nxt)
            batch, cursor = batch + 1, nxt
    print(json.dumps({"job": job, "batches": body["batches"], "replies": replies, "keys": keys,
                      "sum": total, "shard": body.get("shard"), "shards": body.get("shards"),
                      "largest": largest, "cursors": cursors[:3]}))


def cmd_late(feed, snap, out):
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.connect(feed)
    sock = dealer(ctx, snap)
    request(sock, {"get": "state"})
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    poller.register(sock, zmq.POLLIN)
    open_jobs, snapshot_done = set(), False
    deadline = time.monotonic() + 120
    with open(out, "w") as f:
        while time.monotonic() < deadline:
            ready = dict(poller.poll(1000))
            for s, source in ((sock, "snapshot"), (sub, "feed")):
                if s not in ready:
                    continue
                frames = s.recv_multipart()
                topic, body = frames[0].decode(), unpack(frames[1])
                f.write(json.dumps({"t": round(time.monotonic() - START, 3),
                                    "wall": time.time(), "source": source, "topic": topic,
                                    "body": plain(body)}) + "\n")
                f.flush()
                if source == "snapshot" and topic == "progress":
                    open_jobs.add(body["job"])
                if source == "snapshot" and topic == "snapshot":
                    snapshot_done = True
                if (source == "feed" and topic in ("done", "failed") and snapshot_done
                        and body["job"] in open_jobs):
                    return
    sys.exit("no done of the open job within 120 s")


def frames_of(arg):
    if arg.startswith("big:"):
        return [b"x" * int(arg[4:])]
    return [b"" if part == "-" else bytes.fromhex(part) for part in arg.split("+")]


def cmd_raw(snap, args):
    sock = dealer(zmq.Context(), snap)
    for arg in args:
        sock.send_multipart(frames_of(arg))
        frames = recv(sock, 2000)
        reply = None
        if frames is not None:
            reply = {"topic": frames[0].decode(), "body": plain(unpack(frames[1]))}
        #  The next valid request: answered in full, whatever came before.
        request(sock, {"get": "state"})
        answered = False
        while True:
            more = recv(sock)
            if more is None:
                break
            if more[0] == b"snapshot":
                answered = True
                break
        print(json.dumps({"sent": arg[:40], "reply": reply, "then_answered": answered}),
              flush=True)


def cmd_feed(feed, out, seconds, topics):
    topics = topics.encode().split(b",")
    sub = zmq.Context().socket(zmq.SUB)
    for topic in topics:
        sub.setsockopt(zmq.SUBSCRIBE, topic)
    sub.connect(feed)
    deadline = time.monotonic() + float(seconds)
    with open(out, "w") as f:
        while time.monotonic() < deadline:
            if not sub.poll(500):
                continue
            topic, body = sub.recv_multipart()
            if topic not in topics:
                continue
            msg = plain(unpack(body))
            msg["topic"] = topic.decode()
            msg["t"] = round(time.monotonic() - START, 3)
            f.write(json.dumps(msg) + "\n")
            f.flush()


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "state":
        cmd_state(*args)
    elif cmd == "totals":
        cmd_totals(*args)
    elif cmd == "late":
        cmd_late(*args)
    elif cmd == "raw":
        cmd_raw(args[0], args[1:])
    elif cmd == "feed":
        cmd_feed(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
