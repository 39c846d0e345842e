#!/usr/bin/env bash
# Stopping tally run mid-job: SIGINT and SIGTERM make it exit non-zero within 10 s, with
# no sink, worker or ventilator left running and nothing written in the output folder
# (no totals file, no temporary one, no checkpoint of the abandoned job). SIGKILL to tally
# itself: the kernel's PR_SET_PDEATHSIG stops its children within a few seconds. Its
# workers run at a lower priority than the sink and the ventilator (--worker-nice, 10 by
# default). The job is made long with small chunks (1K) over 200 MB (50 MB sanitized),
# several seconds of work, so the signal lands mid-job.
source "$(dirname "$0")/lib.sh"
mb=$(scaled 200)
gen_ngram2012 "$WORK/data" 4 "$mb" 11

# Children of the tally process $1 that are Tally services (pids, one a line).
children_of() {
  pgrep -P "$1" -f "^$TALLY_BIN/tally-(sink|worker|ventilator)" || true
}

# Starts tally run on the data, from and into the empty folder $WORK/$1 (totals to
# $WORK/$1/totals.tsv), with the options that follow; sets $tally.
start_run() {
  local name=$1
  shift
  mkdir -p "$WORK/$name"
  cd "$WORK/$name"
  start "$TALLY_BIN/tally" run --workers 2 --chunk-size 1K "$@" --output "$WORK/$name/totals.tsv" \
    "$WORK"/data/*.tsv > "$WORK/$name.stdout" 2> "$WORK/$name.stderr"
  tally=$LAST_PID
  cd - > /dev/null
}

# The private folder of tally run's ipc:// endpoints, read from its sink's command line.
ipc_dir_of() {
  local pid arg
  for pid in $(children_of "$1"); do
    while IFS= read -r -d '' arg; do
      if [[ $arg =~ ^ipc://(/.*)/in[0-9]+$ ]]; then
        echo "${BASH_REMATCH[1]}"
        return 0
      fi
    done < "/proc/$pid/cmdline" || true
  done
  return 0
}

# An interrupted run leaves nothing in the output folder: no totals, no temporary totals,
# no other file (such as a sink checkpoint of the abandoned job).
no_totals() {
  local name=$1 left
  left=$(ls -A "$WORK/$name")
  [ -z "$left" ] || echo "    left in the output folder: $left"
  [ -z "$left" ]
}

# The niceness of process $1 (field 19 of /proc/PID/stat; field 2, the name, has no spaces).
nice_of() { awk '{print $19}' "/proc/$1/stat"; }

# Whether tally $1's workers run at its niceness plus $2 (19 at most), and its sink and
# ventilator at its own.
niced_by() {
  local base worker want pid prog n workers=0 bad=0
  base=$(nice_of "$1")
  worker=$((base + $2 > 19 ? 19 : base + $2))
  for pid in $(children_of "$1"); do
    prog=$(tr '\0' '\n' < "/proc/$pid/cmdline" | head -n 1)
    prog=${prog##*/}
    n=$(nice_of "$pid")
    want=$base
    [[ $prog == tally-worker ]] && want=$worker workers=$((workers + 1))
    [ "$n" -eq "$want" ] || { echo "    $prog (pid $pid): niceness $n, not $want"; bad=1; }
  done
  [ "$workers" -gt 0 ] || { echo "    no worker found"; bad=1; }
  return $bad
}

for signal in INT TERM; do
  name=sig$signal
  # The default, then a niceness given
  if [ "$signal" = INT ]; then by=10 opts=(); else by=3 opts=(--worker-nice 3); fi
  start_run "$name" "${opts[@]}"
  sleep 1
  check "SIG$signal: all services started (sink, 2 workers, ventilator)" \
    test "$(children_of "$tally" | wc -l)" -eq 4
  check "SIG$signal: the workers run at niceness +$by, the sink and the ventilator at tally's" \
    niced_by "$tally" "$by"
  check "SIG$signal: the job is still running after 1 s" kill -0 "$tally"
  ipc_dir=$(ipc_dir_of "$tally")
  check "SIG$signal: the services talk over ipc:// in a private folder" test -d "${ipc_dir:-/nonexistent}"
  t0=$(now)
  kill -"$signal" "$tally"
  wait_pid "$tally" 10 && status=0 || status=$?
  echo "SIG$signal: tally exited with status $status in $(elapsed "$t0") s"
  check "SIG$signal: tally exits within 10 s" test "$status" -ne 124
  check "SIG$signal: tally exits non-zero" test "$status" -ne 0
  check "SIG$signal: no sink, worker or ventilator left" no_leftovers
  check "SIG$signal: no totals file, temporary file or other file left" no_totals "$name"
  check "SIG$signal: the ipc:// folder is removed" test ! -e "${ipc_dir:-/nonexistent}"
  check "SIG$signal: no summary printed" bash -c "! grep -q '^totals written to' '$WORK/$name.stdout'"
done

# SIGKILL cannot be caught: tally's children must go by PR_SET_PDEATHSIG.
start_run kill
sleep 1
kids=$(children_of "$tally" | tr '\n' ' ')
ipc_dir=$(ipc_dir_of "$tally")
check "SIGKILL: all services started" test "$(wc -w <<< "$kids")" -eq 4
kill -KILL "$tally"
wait_pid "$tally" 5 || true
t0=$(now)
all_gone() {
  local pid
  for pid in $kids; do kill -0 "$pid" 2> /dev/null && return 1; done
  return 0
}
wait_until 5 all_gone && gone=0 || gone=1
echo "SIGKILL: children gone after $(elapsed "$t0") s"
check "SIGKILL: every child of tally exits within 5 s" test "$gone" -eq 0
check "SIGKILL: no sink, worker or ventilator left" no_leftovers
check "SIGKILL: no totals file, temporary file or other file left" no_totals kill
# Reap whatever is still there so the next test starts clean.
for pid in $kids; do kill -KILL "$pid" 2> /dev/null || true; done
# Nobody is left to remove tally's ipc:// folder after a SIGKILL: this test does.
case $ipc_dir in /tmp/tally-??????) rm -rf "$ipc_dir" ;; esac

# A signal in the first milliseconds, while the ventilator sets up its sockets, stops it
# like any other: no abort (an assertion in a library, SIGABRT, a core dump).
# A sink is there so that what the ventilator sends on its way out (CANCEL) is delivered
# at once rather than lingering.
one="$TALLY_SOURCE_DIR/data/sample/googlebooks-eng-all-1gram-20120701-a.head10k.tsv"
bind="tcp://127.0.0.1:$(free_port)"
sink="tcp://127.0.0.1:$(free_port)"
mkdir -p "$WORK/early"
start "$TALLY_BIN/tally-sink" --quiet --bind "$sink" --publish "tcp://127.0.0.1:$(free_feed_port)" \
  --output "$WORK/early/totals.tsv" > "$WORK/early-sink.log" 2>&1
sink_pid=$LAST_PID
aborts=0 codes=""
ulimit -c 0  # an abort here should not leave a core file behind
cd "$WORK"
t0=$(now)
for try in $(seq 1 20); do
  start "$TALLY_BIN/tally-ventilator" --bind "$bind" --sink "$sink" --quiet "$one" \
    > "$WORK/early.out" 2> "$WORK/early.err"
  sleep "0.00$((try % 10))"
  kill -TERM "$LAST_PID" 2> /dev/null || true
  wait_pid "$LAST_PID" 10 && status=0 || status=$?
  codes="$codes $status"
  if [ "$status" -eq 134 ] || [ "$status" -eq 139 ] || grep -q -i 'assert' "$WORK/early.err"; then
    aborts=$((aborts + 1))
    [ "$aborts" -gt 1 ] || sed 's/^/    /' "$WORK/early.err"
  fi
done
echo "tally-ventilator stopped 0-9 ms after its start, 20 times in $(elapsed "$t0") s: statuses$codes"
check "tally-ventilator stopped during its start never aborts ($aborts of 20 did)" test "$aborts" -eq 0
kill -TERM "$sink_pid"
wait_pid "$sink_pid" 10 || true
no_leftovers || pgrep -a -f "^$TALLY_BIN/tally-(sink|worker|ventilator)" || true
check "no sink, worker or ventilator left" no_leftovers
finish
