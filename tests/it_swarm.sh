#!/usr/bin/env bash
# compose.yaml on a single-node Docker swarm, where a Docker engine answers: the test makes
# the swarm itself (`docker swarm init`, advertised and listening on 127.0.0.1 only),
# builds the image from docker/Dockerfile, and deploys compose.yaml as it is with
# `docker stack deploy` (own stack name, own host ports, data and results in a temporary
# folder through TALLY_DATA / TALLY_RESULTS):
#   1. the sink and the ventilator are deployed with endpoint_mode dnsrr (their names
#      resolve to their tasks' addresses, so the stack works without IPVS in the kernel,
#      which the services' virtual IPs need) and publish their ports in host mode: the
#      sink's ports answer on 127.0.0.1 and it turns healthy;
#   2. a job over generated n-gram 2012 data, linked SWARM_COPIES times (a job of several
#      seconds), starts with one worker; once the first chunks are merged, the workers are
#      scaled to 3 (`docker service scale`) while the job runs;
#   3. the ventilator's task completes (exit 0, not started again), the totals equal
#      gawk's, the watch prints the job's end with gawk's key count and sum, the
#      ventilator saw 3 workers connected, each of the two added workers took chunks (the
#      workers' own counts, logged when they are scaled to 0), and the job file is gone
#      from the volume;
#   4. `docker stack rm`, the stack's volume removed, `docker swarm leave --force`: no
#      service, container, network or volume of the stack is left, and the engine's
#      networks and volumes are those it had before.
# An engine that is already part of a swarm (any state but "inactive") is left alone: the
# test fails and says so, rather than deploying to a swarm that is not its own (whose
# other nodes may run the tasks, without this image or these folders) and leaving it.
# Without an engine, and in the sanitized variant, it prints why it skipped and exits 0.
# A trap removes the stack and leaves the swarm it made when the test fails or is stopped.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_docker.sh"
here=$(cd "$(dirname "$0")" && pwd)
stack=tallyswarm
image=tally:it

docker_require_engine it_swarm

state=$(docker info -f '{{.Swarm.LocalNodeState}}' 2> /dev/null || echo unknown)
if [ "$state" != inactive ]; then
  echo "it_swarm: this Docker engine is already part of a swarm (state: $state). The test"
  echo "  makes a single-node swarm of its own and leaves it at the end, so it does not run"
  echo "  on an engine in a swarm: run it where the engine is in none (or, if that swarm is"
  echo "  yours to drop, 'docker swarm leave --force' first)."
  check "the Docker engine is in no swarm" false
  finish
  exit 1
fi

# Only this test's settings reach the stack (a TALLY_* variable of the caller would change it).
for name in $(compgen -e | grep '^TALLY_' || true); do
  case $name in TALLY_BIN | TALLY_SOURCE_DIR | TALLY_VARIANT) ;; *) unset "$name" ;; esac
done
export TALLY_IMAGE=$image
export TALLY_DATA=$WORK/data-x
export TALLY_RESULTS=$WORK/results
export TALLY_WORKERS=1
export TALLY_VERBOSE=1
TALLY_CHUNKS_PORT=$(free_port) TALLY_SINK_PORT=$(free_port) TALLY_FEED_PORT=$(free_port)
TALLY_SNAPSHOT_PORT=$(free_port)
export TALLY_CHUNKS_PORT TALLY_SINK_PORT TALLY_FEED_PORT TALLY_SNAPSHOT_PORT
copies=${SWARM_COPIES:-16}

networks_before=$(docker network ls --format '{{.Name}}' | sort | tr '\n' ' ')
volumes_before=$(docker volume ls -q | sort | tr '\n' ' ')
made_swarm=0

stack_services() { docker service ls -q --filter "label=com.docker.stack.namespace=$stack" 2> /dev/null; }
stack_containers() { docker ps -aq --filter "label=com.docker.stack.namespace=$stack"; }
stack_networks() { docker network ls -q --filter "label=com.docker.stack.namespace=$stack"; }
stack_volumes() { docker volume ls -q --filter "label=com.docker.stack.namespace=$stack"; }
# The containers of a service of the stack (running or not), newest first.
containers_of() { docker ps -aq --filter "label=com.docker.swarm.service.name=${stack}_$1"; }
running_of() { docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_$1"; }
stack_gone() { [ -z "$(stack_containers)" ] && [ -z "$(stack_networks)" ]; }
# Removes the stack, its volumes, the swarm and the bridge the swarm made, if this test
# made the swarm; at the end of the test and from the trap.
swarm_cleanup() {
  [ "$made_swarm" = 1 ] || return 0
  docker stack rm "$stack" > /dev/null 2>&1 || true
  wait_until 60 stack_gone || true
  stack_volumes | xargs -r docker volume rm > /dev/null 2>&1 || true
  docker swarm leave --force > /dev/null 2>&1 || true
  if [[ " $networks_before " != *" docker_gwbridge "* ]]; then
    docker network rm docker_gwbridge > /dev/null 2>&1 || true
  fi
  made_swarm=0
}
trap 'swarm_cleanup; cleanup' EXIT
trap 'exit 143' TERM INT

timing() { echo "time: $1: $(elapsed "$2") s"; }
# Chunks of job $1 merged, from the last progress line of it that the watch printed.
chunks_done() {
  docker logs "$(containers_of watch | head -1)" 2> /dev/null |
    sed -n -E "s/^$1 progress: ([0-9]+)\/.*/\1/p" | tail -1
}
merged_at_least() { [ "$(chunks_done "$1")" -ge "$2" ] 2> /dev/null; }
# The job id that the ventilator's log says the sink accepted; empty if none yet.
job_of_vent() {
  docker logs "$(containers_of ventilator | head -1)" 2>&1 |
    sed -n -E 's/.*job ([0-9a-f]{16}) accepted by.*/\1/p' | head -1
}
job_accepted() { [ -n "$(job_of_vent)" ]; }
# The states of the ventilator's tasks ("Running 3 seconds ago", "Complete ..."), one a line.
vent_tasks() { docker service ps "${stack}_ventilator" --format '{{.CurrentState}}' 2> /dev/null; }
vent_finished() { vent_tasks | grep -qE '^(Complete|Failed|Rejected|Shutdown)'; }
workers_running() { [ "$(running_of worker | wc -l)" -eq "$1" ]; }
port_open() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

ipvs=absent
[ -e /proc/net/ip_vs ] && ipvs=present
echo "it_swarm: engine $(docker version -f '{{.Server.Version}}' 2> /dev/null)," \
  "client $(docker version -f '{{.Client.Version}}' 2> /dev/null); IPVS in this kernel: $ipvs"

# Data in the background while the image builds: 8 files, ~45 MB, linked $copies times.
t0=$(now)
t=$t0
mkdir -p "$WORK/data" "$TALLY_DATA" "$TALLY_RESULTS"
(gawk -v dir="$WORK/data" -v files=8 -v lines=2000000 -v seed=2012 -f "$here/docker/ngrams.awk" &&
  expected_ngram "$WORK/data"/*.tsv > "$WORK/expected.tsv" && elapsed "$t" > "$WORK/data.time") &
data_pid=$!

docker_base_image
check "base image debian:bookworm-slim present" docker image inspect debian:bookworm-slim > /dev/null
tb=$(now)
docker build -f "$TALLY_SOURCE_DIR/docker/Dockerfile" -t "$image" "$TALLY_SOURCE_DIR" \
  > "$WORK/build.log" 2>&1 && status=0 || status=$?
timing "image build ($(grep -c 'Using cache' "$WORK/build.log" || true) cached steps)" "$tb"
check "image builds from docker/Dockerfile" test "$status" -eq 0
if [ "$status" -ne 0 ]; then
  tail -30 "$WORK/build.log"
  finish
  exit 1
fi
wait "$data_pid" && status=0 || status=$?
check "test data and gawk's totals made" test "$status" -eq 0
for ((c = 1; c <= copies; c++)); do
  for f in "$WORK"/data/*.tsv; do ln "$f" "$TALLY_DATA/copy$c-${f##*/}"; done
done
# Each key's total is $copies times gawk's: the order of the totals file is kept.
gawk -F'\t' -v k="$copies" '{printf "%s\t%d\n", $1, $2 * k}' "$WORK/expected.tsv" \
  > "$WORK/expected-x.tsv"
keys=$(wc -l < "$WORK/expected-x.tsv")
sum=$(gawk -F'\t' '{s += $2} END {printf "%d", s}' "$WORK/expected-x.tsv")
echo "time: data ($(du -sh "$WORK/data" | cut -f1), linked $copies times: $(du -shl "$TALLY_DATA" |
  cut -f1); $keys keys) and gawk's totals, beside the build: $(cat "$WORK/data.time") s"

# ---- the swarm: one node, on loopback ----------------------------------------------------
t=$(now)
docker swarm init --advertise-addr 127.0.0.1 --listen-addr "127.0.0.1:$(free_port)" \
  > "$WORK/init.log" 2>&1 && status=0 || status=$?
[ "$(docker info -f '{{.Swarm.LocalNodeState}}' 2> /dev/null)" = active ] && made_swarm=1
timing "docker swarm init" "$t"
check "docker swarm init --advertise-addr 127.0.0.1 makes a single-node swarm" \
  test "$status" -eq 0 -a "$made_swarm" = 1
if [ "$made_swarm" != 1 ]; then
  cat "$WORK/init.log"
  finish
  exit 1
fi

# ---- 1. docker stack deploy -c compose.yaml ----------------------------------------------
t=$(now)
(cd "$TALLY_SOURCE_DIR" && docker stack deploy --resolve-image never -c compose.yaml "$stack") \
  > "$WORK/deploy.log" 2>&1 && status=0 || status=$?
grep -iE 'ignoring|error|warn' "$WORK/deploy.log" | sed 's/^/  stack deploy: /' || true
check "docker stack deploy -c compose.yaml succeeds" test "$status" -eq 0
[ "$status" -eq 0 ] || cat "$WORK/deploy.log"
for s in sink ventilator; do
  mode=$(docker service inspect -f '{{.Spec.EndpointSpec.Mode}}' "${stack}_$s" 2> /dev/null || true)
  publish=$(docker service inspect "${stack}_$s" \
    -f '{{range .Spec.EndpointSpec.Ports}}{{.PublishMode}} {{end}}' 2> /dev/null || true)
  check "$s: endpoint mode dnsrr (is: ${mode:-none}), ports published in host mode (${publish:-none})" \
    test "$mode" = dnsrr -a -n "$publish" -a -z "${publish//host /}"
done
wait_until 120 job_accepted || true
job=$(job_of_vent)
timing "deploy until the sink accepted the job" "$t"
check "the ventilator reaches the sink by name and the job is accepted" test -n "$job"

# ---- 2. workers scaled from 1 to 3 mid-job -----------------------------------------------
wait_until 120 merged_at_least "$job" 1 || true
before=$(chunks_done "$job")
first_worker=$(running_of worker)
check "one worker runs before the scale-up" test "$(echo "$first_worker" | grep -c .)" -eq 1
ts=$(now)
docker service scale -d "${stack}_worker=3" > "$WORK/scale.log" 2>&1 && status=0 || status=$?
check "docker service scale ${stack}_worker=3 succeeds" test "$status" -eq 0
wait_until 60 workers_running 3 || true
at=$(chunks_done "$job")
mid_job=false
[ -n "$(running_of ventilator)" ] && mid_job=true
echo "workers scaled to 3 at ${before:-0} chunks merged; 3 ran $(elapsed "$ts") s later," \
  "at ${at:-0} chunks merged"
check "three workers run" workers_running 3
check "the added workers started mid-job (the ventilator still running)" test "$mid_job" = true

# ---- 3. the job's end ----------------------------------------------------------------------
wait_until 300 vent_finished || true
timing "the job (deploy to the ventilator's exit)" "$t"
vent=$(containers_of ventilator | head -1)
docker logs "$vent" > "$WORK/vent.log" 2>&1 || true
tasks=$(vent_tasks)
echo "$tasks" | sed 's/^/  ventilator task: /'
check "the ventilator's one task completes (not started again)" \
  test "$(echo "$tasks" | grep -c .)" -eq 1 -a "$(echo "$tasks" | grep -c '^Complete')" -eq 1
check "the ventilator exits 0" \
  test "$(docker inspect -f '{{.State.ExitCode}}' "$vent" 2> /dev/null || echo none)" = 0
grep -E "^[WE]:|^tally-ventilator:" "$WORK/vent.log" | tail -5 | sed 's/^/  ventilator: /' || true
same_file "totals equal gawk's" "$WORK/expected-x.tsv" "$TALLY_RESULTS/totals.tsv"
sink=$(containers_of sink | head -1)
docker logs "$sink" > "$WORK/sink.log" 2>&1 || true
chunks=$(sed -n -E "s/.*job $job done: ([0-9]+) chunks.*/\1/p" "$WORK/sink.log" | tail -1)
grep " $job done: " "$WORK/sink.log" | sed 's/^/  sink: /' || true
check "the sink finished job $job" test -n "$chunks"
docker logs "$(containers_of watch | head -1)" > "$WORK/watch.log" 2>&1 || true
check "the watch printed the job's end: $keys keys, sum $sum" \
  grep -q "^$job done: $keys keys, sum $sum, " "$WORK/watch.log"
check "the ventilator saw 3 workers connected" grep -q "a worker connected (3 now)" "$WORK/vent.log"
check "the sink's feed port answers on 127.0.0.1:$TALLY_FEED_PORT (published in host mode)" \
  port_open "$TALLY_FEED_PORT"
check "the sink's port answers on 127.0.0.1:$TALLY_SINK_PORT" port_open "$TALLY_SINK_PORT"
health=$(docker inspect -f '{{.State.Health.Status}}' "$sink" 2> /dev/null || echo none)
check "the sink's healthcheck passes (is: $health)" test "$health" = healthy
files=$(docker run --rm -v "${stack}_ventilator-state:/var/lib/tally" --entrypoint ls "$image" \
  -A /var/lib/tally 2>&1 | tr '\n' ' ')
check "the job file is removed from the volume when the job ends (${files:-none left})" \
  test -z "$files"

# The workers' own counts: each logs "stopping after N chunks" when it is stopped.
docker service scale -d "${stack}_worker=0" > "$WORK/scale0.log" 2>&1 || cat "$WORK/scale0.log"
wait_until 60 workers_running 0 || true
total_taken=0
added=0
added_took=0
for w in $(containers_of worker); do
  n=$(docker logs "$w" 2>&1 | sed -n -E 's/.*stopping after ([0-9]+) chunks.*/\1/p' | tail -1)
  name=$(docker inspect -f '{{.Name}}' "$w" | cut -d. -f1-2)
  if [ "$w" = "$first_worker" ]; then
    echo "  ${name#/}, the first: ${n:-no count} chunks"
  else
    echo "  ${name#/}, added mid-job: ${n:-no count} chunks"
    added=$((added + 1))
    [ "${n:-0}" -gt 0 ] && added_took=$((added_took + 1))
  fi
  total_taken=$((total_taken + ${n:-0}))
done
check "each of the 2 added workers took chunks of the job ($added_took of $added)" \
  test "$added" -eq 2 -a "$added_took" -eq 2
check "the workers took at least the job's $chunks chunks between them ($total_taken)" \
  test "$total_taken" -ge "${chunks:-1}"

# ---- 4. stack rm, swarm leave: nothing left ------------------------------------------------
t=$(now)
docker stack rm "$stack" > "$WORK/rm.log" 2>&1 && status=0 || status=$?
check "docker stack rm succeeds" test "$status" -eq 0
wait_until 90 stack_gone || true
timing "stack rm, until its containers and network are gone" "$t"
check "stack rm leaves no service of the stack" test -z "$(stack_services)"
check "stack rm leaves no container of the stack" test -z "$(stack_containers)"
check "stack rm leaves no network of the stack" test -z "$(stack_networks)"
vols=$(stack_volumes | tr '\n' ' ')
echo "volumes of the stack, which stack rm keeps: ${vols:-none}"
[ -z "$vols" ] || docker volume rm $vols > /dev/null
check "the stack's volumes are removed" test -z "$(stack_volumes)"
docker swarm leave --force > "$WORK/leave.log" 2>&1 && status=0 || status=$?
check "docker swarm leave --force succeeds" test "$status" -eq 0
made_swarm=0
if [[ " $networks_before " != *" docker_gwbridge "* ]]; then
  docker network rm docker_gwbridge > /dev/null 2>&1 || true
fi
state=$(docker info -f '{{.Swarm.LocalNodeState}}' 2> /dev/null || echo unknown)
check "the engine is in no swarm again (state: $state)" test "$state" = inactive
networks_after=$(docker network ls --format '{{.Name}}' | sort | tr '\n' ' ')
volumes_after=$(docker volume ls -q | sort | tr '\n' ' ')
check "the engine's networks are those it had before (${networks_after% })" \
  test "$networks_after" = "$networks_before"
check "the engine's volumes are those it had before" test "$volumes_after" = "$volumes_before"
check "no container of the stack is left" test -z "$(stack_containers)"
timing "it_swarm, all of it" "$t0"
finish
