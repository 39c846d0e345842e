#!/usr/bin/env python3
"""Where a `tally run` spends its time, for bench/cardinality: follows a running tally
run from outside and writes when each phase of its sink ended.

It finds the tally-sink below ROOT (the pid of bench_peak running tally run), reads its
feed endpoint from its command line, subscribes to the progress and done topics only
(so the sink reads no totals back for it), and every INTERVAL seconds samples the sink
(VmRSS, VmHWM, CPU time), the workers' CPU time, and whether the totals file's
temporary (OUTPUT.tmp.*) or the file itself exist. The sink merges the last chunk,
sorts every key, writes the temporary, renames it, then publishes done. It publishes
progress at most every 0.25 s and only between batches of messages (while it merges
flat out, about once a window of chunks), and none while it sorts and writes. So:

  all cut      first progress with chunks_final: the ventilator has cut every chunk
               (often not seen: the sink says so only after the window's last batch)
  merged       last chunk merged: the last progress before the end phase, plus the
               input bytes it still had to merge at its rate between the last two
               messages (every message holds the input's size)
  sorted       the temporary totals file appeared (the sort is over, writing starts)
  written      the totals file appeared (renamed)
  done         the done message (often not seen: tally run stops the sink at once)
  exit         tally run exited (it then stops the sink, which frees its memory)

Usage: tally_phases.py --root PID --output FILE --start EPOCH [--interval S] --log LOG
Prints key=value lines (seconds from --start, memory in KiB, CPU in seconds) to stdout.
Needs pyzmq and msgpack (Debian: python3-zmq, python3-msgpack).
"""

import argparse
import glob
import os
import sys
import time

import msgpack
import zmq

TICK = os.sysconf("SC_CLK_TCK")


def children(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def tree(root):
    """Pids of ROOT's descendants, with their names."""
    found, todo = {}, [root]
    while todo:
        for child in children(todo.pop()):
            try:
                with open(f"/proc/{child}/comm") as f:
                    found[child] = f.read().strip()
            except OSError:
                continue
            todo.append(child)
    return found


def stat(pid):
    """(state, CPU seconds) of a process, or (None, 0) when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None, 0.0
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], (int(fields[11]) + int(fields[12])) / TICK


def memory(pid):
    """(VmRSS, VmHWM) in KiB, or (0, 0)."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def endpoint(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return None
    for i, arg in enumerate(args[:-1]):
        if arg == b"--publish":
            return args[i + 1].decode()
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=int, required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    log = open(args.log, "w")
    now = lambda: time.time() - args.start  # noqa: E731
    sink = None
    workers = []
    sub = None
    progress = []  # (t, chunks_done, chunks_known, final, keys, seconds, bytes, input_bytes)
    samples = []  # (t, sink_rss, sink_cpu, workers_cpu)
    hwm = 0
    worker_cpu = {}
    events = {}
    done_msg = None
    while True:
        state, _ = stat(args.root)
        if state in (None, "Z", "X"):
            events.setdefault("exit", now())
            break
        if sink is None:
            procs = tree(args.root)
            for pid, name in procs.items():
                if name == "tally-sink":
                    ep = endpoint(pid)
                    if ep:
                        sink = pid
                        sub = zmq.Context.instance().socket(zmq.SUB)
                        sub.setsockopt(zmq.LINGER, 0)
                        sub.setsockopt(zmq.SUBSCRIBE, b"progress")
                        sub.setsockopt(zmq.SUBSCRIBE, b"done")
                        sub.connect(ep)
                        print(f"{now():.3f} sink {pid} feed {ep}", file=log)
            workers = [pid for pid, name in procs.items() if name == "tally-worker"]
        if sub is not None:
            while sub.poll(0):
                topic, body = sub.recv_multipart()
                msg = msgpack.unpackb(body, raw=False, strict_map_key=False)
                t = now()
                if topic == b"progress":
                    progress.append((t, msg["chunks_done"], msg["chunks_known"],
                                     bool(msg["chunks_final"]), msg["keys"], msg["seconds"],
                                     msg["bytes"], msg["input_bytes"]))
                    if msg["chunks_final"]:
                        events.setdefault("all_cut", t)
                    print(f"{t:.3f} progress {msg['chunks_done']}/{msg['chunks_known']}"
                          f"{' final' if msg['chunks_final'] else ''} keys {msg['keys']}"
                          f" bytes {msg['bytes']}/{msg['input_bytes']}", file=log)
                elif topic == b"done":
                    events.setdefault("done", t)
                    done_msg = msg
                    print(f"{t:.3f} done {msg['keys']} keys {msg['seconds']:.3f} s", file=log)
        t = now()
        if "sorted" not in events and glob.glob(glob.escape(args.output) + ".tmp.*"):
            events["sorted"] = t
        if "written" not in events and os.path.exists(args.output):
            events["written"] = t
            events.setdefault("sorted", t)
        if sink is not None:
            rss, h = memory(sink)
            hwm = max(hwm, h)
            _, cpu = stat(sink)
            for pid in workers:
                s, c = stat(pid)
                if s is not None:
                    worker_cpu[pid] = c
            wcpu = sum(worker_cpu.values())
            if rss:
                samples.append((t, rss, cpu, wcpu))
                print(f"{t:.3f} sink rss {rss} cpu {cpu:.2f} workers cpu {wcpu:.2f}", file=log)
        time.sleep(args.interval)
    if sub is not None:
        sub.close()

    out = {"exit": events.get("exit")}
    for name in ("all_cut", "sorted", "written", "done"):
        out[name] = events.get(name)
    # The merge's end: from the last progress before the end phase, plus the bytes it
    # still had to merge (the input's size is in every message; the chunks' total only
    # once the ventilator has cut them all, which the feed may not say before the end)
    end_phase = out["sorted"] or out["written"] or out["done"]
    before = [p for p in progress
              if p[1] > 0 and (end_phase is None or p[0] <= end_phase)]
    merged = chunks = None
    if before:
        t1, d1, b1, total = before[-1][0], before[-1][1], before[-1][6], before[-1][7]
        final = [p[2] for p in progress if p[3]]
        chunks = final[0] if final else round(d1 * total / b1) if b1 else d1
        rate = None
        if len(before) >= 2 and before[-1][0] > before[-2][0] and b1 > before[-2][6]:
            rate = (b1 - before[-2][6]) / (before[-1][0] - before[-2][0])
        elif before[-1][5] > 0:  # one message: the mean rate since the job opened
            rate = b1 / before[-1][5]
        if b1 >= total:
            merged = t1
        elif rate:
            merged = t1 + (total - b1) / rate
        if merged is not None and end_phase is not None:
            merged = min(merged, end_phase)
    out["chunks"] = chunks
    out["keys"] = done_msg["keys"] if done_msg else None
    out["merged"] = merged
    out["first_merged"] = before[0][0] if before else None
    # When the merge passed each quarter of the input (interpolated between messages
    # sent while it merged, and the start)
    points = [(0.0, 0, 0, False, 0, 0.0, 0, before[0][7])] + before if before else []
    for q in (1, 2, 3):
        value = None
        for a, b in zip(points, points[1:]):
            target = b[7] * q / 4
            if a[6] < target <= b[6]:
                value = a[0] + (b[0] - a[0]) * (target - a[6]) / (b[6] - a[6])
                break
        out[f"q{q}"] = value
    # The sink at the merge's end (its table) and at its peak; CPU before and after
    at_merge = [s for s in samples if merged is not None and s[0] <= merged]
    out["sink_rss_merged_kib"] = at_merge[-1][1] if at_merge else None
    out["sink_cpu_merged"] = at_merge[-1][2] if at_merge else None
    out["sink_hwm_kib"] = hwm
    out["sink_cpu"] = samples[-1][2] if samples else None
    out["workers_cpu"] = samples[-1][3] if samples else None
    # The workers stopped working when their CPU over the last second fell under a
    # quarter of a core for good (their heartbeats use next to nothing)
    busy, j = [], 0
    for b in samples:
        while samples[j][0] < b[0] - 1.0:
            j += 1
        a = samples[j]
        if b[0] - a[0] >= 0.5 and (b[3] - a[3]) / (b[0] - a[0]) > 0.25:
            busy.append(b[0])
    out["workers_idle"] = busy[-1] if busy else None
    for key, value in out.items():
        if isinstance(value, float):
            value = f"{value:.3f}"
        print(f"{key}={'' if value is None else value}")
    log.close()


if __name__ == "__main__":
    sys.exit(main())
