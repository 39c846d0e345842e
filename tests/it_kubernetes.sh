#!/usr/bin/env bash
# The Kubernetes manifests (docker/kubernetes/, the kustomize overlays of docker/kustomize/),
# validated offline: no cluster runs here, so nothing is applied; what a cluster's API
# server would refuse, and what would make the pods unable to reach each other, is checked.
#   1. kubernetes-validate (pinned, from PyPI, in a venv cached in the build folder)
#      validates every object of docker/kubernetes/*.yaml against the OpenAPI schemas of
#      pinned Kubernetes versions with --strict: a field the API does not know is refused;
#   2. the same for what kustomize renders (`kubectl kustomize`, where kubectl is installed):
#      the base, 2 sink shards (docker/kustomize/shards-2), and both with the CURVE
#      component (docker/kustomize/curve);
#   3. the validator can fail: copies of the manifests broken on purpose (a misspelled
#      field, a port given as a string, a misspelled Service field) are refused, and the
#      misspelled field passes without --strict (so --strict is what refuses it);
#   4. tests/kubernetes_check.py, on each of those sets: every port a Service exposes is
#      a containerPort of the pods it selects, with the same number; selectors match the
#      pods' labels; every TALLY_* variable is read by Tally (its C sources, or
#      docker/entrypoint.sh) and listed by the --help of the container's program; the
#      sink list (TALLY_SINK of the ventilator and the workers) and the watch's feeds name
#      the StatefulSet's pods by their stable DNS names, in order, as many as its replicas
#      (1, and 2 with shards-2); what the programs write is on a writable volume (the
#      sink's on its PersistentVolumeClaim); non-root as the image's user; probes on the
#      containers' ports; CURVE keys where the programs are told to find them;
#   5. kubernetes_check.py fails on manifests broken on purpose (a misspelled variable, a
#      Service port that no container has, a sink list that misses a shard).
# PyPI must be reachable the first time (the venv is kept: $TALLY_BIN/../kubernetes-venv,
# or $TALLY_K8S_VENV); without it the test fails and says so. TALLY_KUBECTL names another
# kubectl (none: as without one); a kubectl older than 1.21 (whose kustomize has no
# components) is left out, with the reason printed.
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
VALIDATOR_VERSION=1.37.0               # kubernetes-validate, from PyPI
K8S_VERSIONS=(1.32.0 1.28.0 1.37.0)    # the first is the one the docs name; the oldest, the newest it has
manifests=$TALLY_SOURCE_DIR/docker/kubernetes
overlays=$TALLY_SOURCE_DIR/docker/kustomize

if [ "${TALLY_VARIANT:-}" = sanitize ]; then
  echo "it_kubernetes: skipped: the manifests do not depend on the build; the plain variant runs this test"
  exit 0
fi

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b - a}'; }

# ---- the validator, in a venv kept in the build folder ---------------------------------
venv=${TALLY_K8S_VENV:-$TALLY_BIN/../kubernetes-venv}
t=$(now)
if [ "$("$venv/bin/kubernetes-validate" --version 2> /dev/null)" != "$VALIDATOR_VERSION" ]; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" > "$WORK/venv.log" 2>&1; then
    cat "$WORK/venv.log"
    echo "FAIL: python3 -m venv $venv (Debian: apt-get install python3-venv; .ci/deps does)"
    exit 1
  fi
  if ! "$venv/bin/pip" install --disable-pip-version-check --timeout 30 --retries 2 -q \
    "kubernetes-validate==$VALIDATOR_VERSION" > "$WORK/pip.log" 2>&1; then
    tail -5 "$WORK/pip.log"
    rm -rf "$venv"
    echo "FAIL: pip could not install kubernetes-validate==$VALIDATOR_VERSION: this test needs" \
      "PyPI the first time (its venv is then kept in $venv)"
    exit 1
  fi
  echo "time: venv and pip install kubernetes-validate==$VALIDATOR_VERSION: $(since "$t") s"
else
  echo "kubernetes-validate $VALIDATOR_VERSION already in $venv"
fi
validate() { "$venv/bin/kubernetes-validate" "$@"; }
check "kubernetes-validate is version $VALIDATOR_VERSION" \
  test "$(validate --version 2> /dev/null)" = "$VALIDATOR_VERSION"
t=$(now)

# Objects in a file of YAML documents.
count_objects() {
  "$venv/bin/python" -c 'import sys, yaml; print(sum(1 for d in yaml.safe_load_all(open(sys.argv[1])) if d))' "$1"
}
# valid NAME FILE VERSION: every object of FILE passes --strict validation against VERSION,
# and the validator said so of each one (none left out).
valid() {
  local name=$1 file=$2 version=$3 objects said status
  objects=$(count_objects "$file")
  validate --strict -k "$version" "$file" > "$WORK/validate.log" 2>&1 && status=0 || status=$?
  said=$(grep -c "passed for resource" "$WORK/validate.log" || true)
  check "$name: the $objects objects pass --strict validation against Kubernetes $version ($said passed)" \
    test "$status" -eq 0 -a "$said" -eq "$objects" -a "$objects" -gt 0
  [ "$status" -eq 0 ] || grep -v "passed for resource" "$WORK/validate.log" | head -5
}

# ---- 1. the plain manifests, as kubectl apply -f docker/kubernetes/ takes them --------
files=("$manifests"/*.yaml)
echo "manifests: ${files[*]##*/} (kubectl apply -f reads these; $(ls "$manifests" | grep -vcE '\.(yaml|yml|json)$') other file(s) it leaves)"
check "docker/kubernetes/ holds manifests" test "${#files[@]}" -ge 5
for f in "${files[@]}"; do
  for v in "${K8S_VERSIONS[@]}"; do valid "${f##*/}" "$f" "$v"; done
done
# One file of them all, as one set of objects (documents joined by ---).
for f in "${files[@]}"; do echo "---"; cat "$f"; done > "$WORK/base.yaml"
sets=("base=$WORK/base.yaml")

# ---- 2. what kustomize renders ---------------------------------------------------------
# The CURVE component goes into a kustomization of the user's (as docs/DEPLOY.md shows);
# here one in the work folder (kustomize wants relative paths).
rel=$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$TALLY_SOURCE_DIR/docker" "$WORK")
mkdir -p "$WORK/curve-base" "$WORK/curve-shards-2"
for pair in "curve-base:../$rel/kubernetes" "curve-shards-2:../$rel/kustomize/shards-2"; do
  printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [%s]\ncomponents: [../%s/kustomize/curve]\n' \
    "${pair#*:}" "$rel" > "$WORK/${pair%%:*}/kustomization.yaml"
done
kubectl=${TALLY_KUBECTL:-kubectl}  # TALLY_KUBECTL=none: as on a machine without kubectl
kubectl_minor=$("$kubectl" version --client -o json 2> /dev/null |
  python3 -c 'import json, re, sys; print(re.sub(r"\D.*", "", json.load(sys.stdin)["clientVersion"]["minor"]))' 2> /dev/null || echo 0)
if ! command -v "$kubectl" > /dev/null; then
  why="no kubectl on this machine"
elif [ "${kubectl_minor:-0}" -lt 21 ]; then
  why="kubectl 1.${kubectl_minor:-?} is older than 1.21: its kustomize has no components"
else
  why=
fi
if [ -z "$why" ]; then
  echo "kustomize: $("$kubectl" version --client 2> /dev/null | grep -i kustomize || echo 'kubectl kustomize')"
  for pair in "kustomize-base:$manifests" "shards-2:$overlays/shards-2" \
    "curve-base:$WORK/curve-base" "curve-shards-2:$WORK/curve-shards-2"; do
    name=${pair%%:*}
    "$kubectl" kustomize "${pair#*:}" > "$WORK/$name.yaml" 2> "$WORK/$name.err" && status=0 || status=$?
    check "$name: kubectl kustomize renders it" test "$status" -eq 0
    [ "$status" -eq 0 ] || { head -5 "$WORK/$name.err"; continue; }
    for v in "${K8S_VERSIONS[@]}"; do valid "$name" "$WORK/$name.yaml" "$v"; done
    sets+=("$name=$WORK/$name.yaml")
  done
  # The base through kustomize is the same objects as the plain files.
  same=$("$venv/bin/python" - "$WORK/base.yaml" "$WORK/kustomize-base.yaml" << 'EOF'
import sys, yaml
a, b = ([d for d in yaml.safe_load_all(open(f)) if d] for f in sys.argv[1:3])
key = lambda d: (d["kind"], d["metadata"]["name"])
print(sorted(a, key=key) == sorted(b, key=key))
EOF
)
  check "kubectl apply -k docker/kubernetes/ and -f docker/kubernetes/ give the same objects" test "$same" = True
else
  # Without kubectl the overlays cannot be rendered: their patches are checked through
  # what they change (below), and the renderings are left out, said here.
  echo "it_kubernetes: kustomize renderings skipped: $why (the plain manifests are validated)"
  "$venv/bin/python" - "$WORK/base.yaml" "$overlays/shards-2" > "$WORK/shards-2.yaml" << 'EOF'
import os, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
k = yaml.safe_load(open(os.path.join(sys.argv[2], "kustomization.yaml")))
counts = {r["name"]: r["count"] for r in k.get("replicas", [])}
patches = [yaml.safe_load(open(os.path.join(sys.argv[2], p["path"]))) for p in k.get("patches", [])]
for d in docs:
    if d["metadata"]["name"] in counts and d["kind"] in ("StatefulSet", "Deployment"):
        d["spec"]["replicas"] = counts[d["metadata"]["name"]]
    for p in patches:
        if d["kind"] == p["kind"] == "ConfigMap" and d["metadata"]["name"] == p["metadata"]["name"]:
            d["data"].update(p["data"])
yaml.safe_dump_all(docs, sys.stdout, width=1000)
EOF
  sets+=("shards-2=$WORK/shards-2.yaml")
fi

# ---- 3. the validator refuses what is broken -------------------------------------------
differs() { ! cmp -s "$1" "$2"; }
# broken NAME FILE SED WHAT: a copy of FILE changed by SED is refused with --strict, the
# reason naming WHAT.
broken() {
  local name=$1 file=$2 expr=$3 what=$4 v=${K8S_VERSIONS[0]} status
  sed "$expr" "$file" > "$WORK/broken.yaml"
  check "$name: the broken copy differs from the file" differs "$file" "$WORK/broken.yaml"
  validate --strict -k "$v" "$WORK/broken.yaml" > "$WORK/broken.log" 2>&1 && status=0 || status=$?
  grep "did not validate" "$WORK/broken.log" | head -2 | cut -c1-300 | sed 's/^/  /' || true
  check "$name: refused by --strict validation (exit $status), naming $what" \
    eval "[ $status -ne 0 ] && grep -q \"$what\" \"$WORK/broken.log\""
}
broken "readinessProbe misspelled" "$manifests/sink.yaml" 's/readinessProbe:/readinesProbe:/' "'readinesProbe' was unexpected"
validate -k "${K8S_VERSIONS[0]}" "$WORK/broken.yaml" > "$WORK/lax.log" 2>&1 && status=0 || status=$?
check "readinessProbe misspelled: accepted without --strict (exit $status): --strict is what refuses it" \
  test "$status" -eq 0
broken "containerPort as a string" "$manifests/ventilator.yaml" \
  's/containerPort: 5557/containerPort: "5557"/' "'5557' is not of type 'integer'"
broken "clusterIP misspelled" "$manifests/sink.yaml" 's/clusterIP: None/clusterIp: None/' "'clusterIp' was unexpected"
echo "time: validation: $(since "$t") s"

# ---- 4. the checks beyond the schema -----------------------------------------------------
# run_checks NAME SET...: kubernetes_check.py's lines, counted here.
run_checks() {
  local label=$1; shift
  "$venv/bin/python" "$here/kubernetes_check.py" --source "$TALLY_SOURCE_DIR" --bin "$TALLY_BIN" "$@" \
    > "$WORK/$label.log" 2>&1 && status=0 || status=$?
}
t=$(now)
[ -x "$TALLY_BIN/tally-sink" ] || echo "it_kubernetes: no programs in $TALLY_BIN: the variables are checked against the C sources only"
run_checks checks "${sets[@]}"
cat "$WORK/checks.log"
PASSED=$((PASSED + $(grep -c '^ok:' "$WORK/checks.log" || true)))
FAILED=$((FAILED + $(grep -c '^FAIL:' "$WORK/checks.log" || true)))
check "kubernetes_check.py: exit 0 and no failure" \
  eval "[ $status -eq 0 ] && ! grep -q '^FAIL:\|Traceback' \"$WORK/checks.log\""

# ---- 5. ... and they fail on broken manifests ---------------------------------------------
# The shards-2 set with three faults: the workers' TALLY_VENTILATOR misspelled, the sink
# Service's feed port 5559 pointing at a port no container has, a sink list without shard 1.
sed -e 's/name: TALLY_VENTILATOR$/name: TALLY_VENTILATER/' \
  -e 's/targetPort: feed/targetPort: fed/' \
  -e 's|sinks: tcp://tally-sink-0.tally-sink:5558,tcp://tally-sink-1.tally-sink:5558|sinks: tcp://tally-sink-0.tally-sink:5558|' \
  "$WORK/shards-2.yaml" > "$WORK/shards-2-broken.yaml"
run_checks broken-checks "broken=$WORK/shards-2-broken.yaml"
grep '^FAIL:' "$WORK/broken-checks.log" | sed 's/^FAIL:/  refused:/' | cut -c1-200 || true
check "broken manifests: kubernetes_check.py exits 1" test "$status" -eq 1
check "broken manifests: the misspelled TALLY_VENTILATER is named" \
  grep -q '^FAIL:.*TALLY_VENTILATER is read by Tally' "$WORK/broken-checks.log"
check "broken manifests: the feed port that no container has is named" \
  grep -q '^FAIL:.*Service tally-sink port 5559 (fed)' "$WORK/broken-checks.log"
check "broken manifests: the sink list without shard 1 is named (workers and ventilator)" \
  test "$(grep -c '^FAIL:.*TALLY_SINK of .* names the 2 sink' "$WORK/broken-checks.log")" -eq 2
echo "time: checks: $(since "$t") s"
finish
