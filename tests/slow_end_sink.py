#!/usr/bin/env python3
"""A stand-in for tally-sink that is slow at the end, for tests/it_slow_end.sh.

It speaks enough of the protocol (docs/PROTOCOL.md, version 4) for one job: ACCEPT for
JOB, ACK for every PARTIAL, PONG for PING. Modes:
  end   once END has come and every chunk is acknowledged: touch MARK, sleep SILENCE
        seconds without reading (as a sink sorting millions of keys does; libzmq's I/O
        thread still answers the ventilator's heartbeats), then send DONE;
  kill  the same, but the test kills it while it sleeps;
  mid   after the first PARTIAL: touch MARK and sleep SILENCE seconds, then go on.
Usage: slow_end_sink.py ENDPOINT MODE SILENCE MARK
"""
import sys
import time

import msgpack
import zmq

endpoint, mode, silence, mark = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
sock = zmq.Context().socket(zmq.ROUTER)
sock.bind(endpoint)
incarnation = 12345
chunks, payload = set(), 0
owner, job, end = None, None, None
started = time.time()


def send(cmd, body):
    sock.send_multipart([owner, cmd, msgpack.packb(body)])


def go_silent():
    open(mark, "w").close()
    time.sleep(silence)


while True:
    frames = sock.recv_multipart()
    ident, cmd, body = frames[0], frames[1], msgpack.unpackb(frames[2], raw=True)
    if cmd == b"JOB":
        owner, job = ident, body[0]
        send(b"ACCEPT", [job, incarnation, len(chunks)])
    elif cmd == b"PARTIAL" and job is not None:
        if body[1] not in chunks:
            chunks.add(body[1])
            payload += body[4]
        send(b"ACK", [job, [body[1]]])
        if mode == "mid" and len(chunks) == 1:
            go_silent()
    elif cmd == b"PING":
        send(b"PONG", [job, incarnation, len(chunks), True])
    elif cmd == b"END":
        end = body[2]
    if end is not None and len(chunks) == end and mode in ("end", "kill"):
        go_silent()
        send(b"DONE", [job, 1, 1, 0, 0, 0, time.time() - started, b"totals.tsv",
                       len(chunks), payload])
        time.sleep(1)
        break
