#!/usr/bin/env bash
# Several hosts without Docker: network namespaces stand for machines on one LAN.
#
#   host a (10.77.0.1): tally-sink, tally-ventilator
#   host b (10.77.0.2): two tally-workers          all three joined by a bridge in a
#   host c (10.77.0.3): two tally-workers          fourth namespace (the "switch")
#
# The programs are the native build's ($TALLY_BIN). Job 1 runs over generated n-gram
# data; mid-job host c is cut off (its switch port goes down, as if its cable were
# pulled): its workers hold chunks they can never return, the ventilator notices (ZMTP
# heartbeats) and sends those chunks again, and the totals still equal gawk's. Host c
# comes back, and job 2 (the bundled sample) is counted right with all hosts.
# Addresses 10.77.0.0/24 exist only on veths inside the namespaces made here; no
# interface is added to the machine's own namespace. Namespaces go on exit.
# Skips (with the reason) when not root or when network namespaces cannot be made.
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

source "$here/lib_netns.sh"
netns_init "tally$$"
declare -A addr=([a]=10.77.0.1 [b]=10.77.0.2 [c]=10.77.0.3)
for h in a b c; do netns_host "$h" "${addr[$h]}/24"; done
sink_ep=tcp://${addr[a]}:5558
vent_ep=tcp://${addr[a]}:5557

mkdir -p "$WORK/data"
t=$(date +%s.%N)
gawk -v dir="$WORK/data" -v files=6 -v lines=1500000 -v seed=77 -f "$here/docker/ngrams.awk"
expected_ngram "$WORK/data"/*.tsv > "$WORK/expected.tsv"
echo "data: $(du -sh "$WORK/data" | cut -f1), $(wc -l < "$WORK/expected.tsv") keys, $(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}') s with gawk's totals"

start ip netns exec "$(ns a)" "$TALLY_BIN/tally-sink" --bind "tcp://*:5558" \
  --publish "tcp://*:5559" --output "$WORK/totals.tsv" > "$WORK/sink.log" 2>&1
sink_pid=$LAST_PID
check "host b reaches the sink on host a" tcp_answers b "${addr[a]}" 5558
check "host c reaches the sink on host a" tcp_answers c "${addr[a]}" 5558
worker_pids=()
for h in b c; do
  for i in 1 2; do
    start ip netns exec "$(ns "$h")" "$TALLY_BIN/tally-worker" --ventilator "$vent_ep" \
      --sink "$sink_ep" > "$WORK/worker-$h$i.log" 2>&1
    worker_pids+=("$h:$LAST_PID")
  done
done

# ---- job 1: host c cut off mid-job ------------------------------------------------------
# The sink is held (SIGSTOP) while the ventilator starts, so that every worker has
# connected to it before the job is accepted; host c is cut off the moment it is: the
# chunks the ventilator has just pushed toward host c's workers can never come back.
# Host c's workers, once connected, are held too until the cut, so that they cannot have
# mapped and returned their chunks before it (the whole job takes a fraction of a
# second, about what a loaded machine takes to see the job accepted): their chunks wait
# in the kernel's socket buffers, and they go on, cut off, after it.
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b - a}'; }
c_pids=()
for entry in "${worker_pids[@]}"; do
  [ "${entry%%:*}" = c ] && c_pids+=("${entry#*:}")
done
kill -STOP "$sink_pid"
start ip netns exec "$(ns a)" "$TALLY_BIN/tally-ventilator" --verbose --progress none \
  --bind "tcp://*:5557" --sink "tcp://127.0.0.1:5558" "$WORK/data" > "$WORK/vent1.log" 2>&1
vent_pid=$LAST_PID
sleep 1  # the workers retry their connections every 0.1 s
kill -STOP "${c_pids[@]}"  #  Connected to the ventilator by now
kill -CONT "$sink_pid"
t=$(now)
for ((i = 0; i < 600; i++)); do
  grep -q "accepted by" "$WORK/vent1.log" 2> /dev/null && break
  sleep 0.02
done
unplug c
cut=$(now)
kill -0 "$vent_pid" 2> /dev/null && mid_job=yes || mid_job=no
kill -CONT "${c_pids[@]}"
wait_pid "$vent_pid" 120 && status=0 || status=$?
after_cut=$(since "$cut")
echo "job 1: host c cut off $(awk -v a="$t" -v b="$cut" 'BEGIN{printf "%.2f", b - a}') s after" \
  "the sink was released; the job ended ${after_cut} s after the cut"
check "job 1: the ventilator exits 0 with host c cut off" test "$status" -eq 0
same_file "job 1: totals equal gawk's" "$WORK/expected.tsv" "$WORK/totals.tsv"
check "job 1: host c was cut off mid-job (the ventilator still running)" test "$mid_job" = yes
# Chunks stranded on host c go again no sooner than --retry / 4 (1.25 s) at the tail.
check "job 1: host c held chunks that had to be sent again (job over >= 1 s after the cut)" \
  awk -v s="$after_cut" 'BEGIN{exit !(s >= 1.0)}'
# Which came first, the heartbeat's verdict or the resend of the stragglers, is timing.
if grep -q "a worker disconnected" "$WORK/vent1.log"; then
  echo "job 1: the ventilator saw host c's workers go (heartbeat)"
else
  echo "job 1: the ventilator's resends finished the job before the heartbeat's verdict"
fi
grep " done: " "$WORK/sink.log" | tail -1 | sed 's/^/sink: /' || true
alive=0
for entry in "${worker_pids[@]}"; do
  [ "${entry%%:*}" = c ] && kill -0 "${entry#*:}" 2> /dev/null && alive=$((alive + 1))
done
check "host c's workers are still running, cut off" test "$alive" -eq 2

# ---- job 2: host c back, the sample over all hosts ---------------------------------------
plug c
expected_ngram "$TALLY_SOURCE_DIR"/data/sample/*.tsv > "$WORK/expected-sample.tsv"
rm -f "$WORK/totals.tsv"
start ip netns exec "$(ns a)" "$TALLY_BIN/tally-ventilator" --quiet --bind "tcp://*:5557" \
  --sink "$sink_ep" "$TALLY_SOURCE_DIR/data/sample" > "$WORK/vent2.log" 2>&1
wait_pid "$LAST_PID" 120 && status=0 || status=$?
check "job 2: the ventilator exits 0 with host c back" test "$status" -eq 0
same_file "job 2: totals equal gawk's on data/sample" "$WORK/expected-sample.tsv" "$WORK/totals.tsv"
check "the sink served both jobs" test "$(grep -c " done: " "$WORK/sink.log")" -eq 2

# ---- the end: every program stops, every namespace goes ---------------------------------
for entry in "${worker_pids[@]}"; do kill -TERM "${entry#*:}" 2> /dev/null || true; done
kill -TERM "$sink_pid" 2> /dev/null || true
stopped=0
for entry in "${worker_pids[@]}" "a:$sink_pid"; do
  wait_pid "${entry#*:}" 10 && stopped=$((stopped + 1)) || true
done
check "sink and workers stop on SIGTERM with exit 0" test "$stopped" -eq 5
netns_cleanup
check "no namespace of the test is left" test "$(netns_left)" -eq 0
check "no tally process left" no_leftovers
finish
