#!/usr/bin/env python3
"""Checks of Tally's Kubernetes manifests beyond their schema (tests/it_kubernetes.sh).

    kubernetes_check.py --source DIR [--bin DIR] NAME=FILE...

Each FILE is a set of manifests (YAML documents) as it would be applied: the files of
docker/kubernetes/ together, or the output of `kubectl kustomize` of an overlay. NAME
says which set it is in the lines printed: "ok: NAME: ..." or "FAIL: NAME: ...". A set
named curve* must hold the CURVE keys; one whose StatefulSet has N replicas must list N
sinks. Exits 1 if any check failed. Needs PyYAML (the venv of kubernetes-validate).
"""

import argparse
import os
import re
import subprocess
import sys

import yaml

PROGRAMS = ("tally", "tally-sink", "tally-worker", "tally-ventilator", "tally-watch")
UID = 10001  # docker/Dockerfile's user; checked against the Dockerfile below
passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok: {name}")
    else:
        failed += 1
        print(f"FAIL: {name}" + (f": {detail}" if detail else ""))


def source_env_names(src):
    """TALLY_* names the programs read: the string literals of the C sources, and the
    variables of docker/entrypoint.sh."""
    names = set()
    for part in ("common", "sink", "worker", "ventilator", "cli"):
        for root, _, files in os.walk(os.path.join(src, part)):
            for f in files:
                if f.endswith((".c", ".h")):
                    with open(os.path.join(root, f), errors="replace") as fh:
                        names |= set(re.findall(r'"(TALLY_[A-Z0-9_]+)"', fh.read()))
    with open(os.path.join(src, "docker", "entrypoint.sh")) as fh:
        names |= set(re.findall(r"\$\{?(TALLY_[A-Z0-9_]+)", fh.read()))
    return names


def help_env_names(bindir, program):
    """TALLY_* names that a built program's --help lists, or None without the binary."""
    path = os.path.join(bindir, program) if bindir else None
    if not path or not os.access(path, os.X_OK):
        return None
    out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30).stdout
    return set(re.findall(r"\[env (TALLY_[A-Z0-9_]+)\]", out))


def pod_spec(obj):
    kind = obj.get("kind")
    if kind in ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"):
        return obj["spec"]["template"]["spec"]
    if kind == "Pod":
        return obj["spec"]
    return None


def pod_labels(obj):
    if obj.get("kind") == "Pod":
        return obj["metadata"].get("labels", {})
    return obj["spec"]["template"].get("metadata", {}).get("labels", {})


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def env_value(container, name, configmaps):
    """The value of an env var of a container, following configMapKeyRef."""
    for e in container.get("env", []):
        if e["name"] != name:
            continue
        if "value" in e:
            return e["value"]
        ref = e.get("valueFrom", {}).get("configMapKeyRef")
        if ref:
            return configmaps.get(ref["name"], {}).get(ref["key"])
    return None


def under(path, mount):
    return path == mount or path.startswith(mount.rstrip("/") + "/")


def check_set(setname, objs, src, bindir, env_names):
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    workloads = [o for o in objs if pod_spec(o) is not None]
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in by_kind.get("ConfigMap", [])}
    n = lambda o: f"{o['kind']} {o['metadata']['name']}"  # noqa: E731

    # Selectors of the workloads match their own pods' labels.
    for w in workloads:
        if w["kind"] == "Job":
            continue  # a Job's selector is made by Kubernetes
        sel = w["spec"].get("selector", {}).get("matchLabels", {})
        check(f"{setname}: {n(w)} selects its own pods ({sel})", selects(sel, pod_labels(w)))

    # Services: they select pods, and each port they expose is a containerPort of every
    # pod they select, with the same number (the programs' endpoints name it).
    for s in by_kind.get("Service", []):
        sel = s["spec"].get("selector", {})
        chosen = [w for w in workloads if selects(sel, pod_labels(w))]
        check(f"{setname}: Service {s['metadata']['name']} selects pods ({', '.join(map(n, chosen))})",
              len(chosen) > 0, f"no pod template has the labels {sel}")
        for p in s["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            for w in chosen:
                ports = [cp for c in pod_spec(w)["containers"] for cp in c.get("ports", [])]
                match = [cp for cp in ports
                         if cp.get("name") == target or cp["containerPort"] == target]
                check(f"{setname}: Service {s['metadata']['name']} port {p['port']} ({target})"
                      f" is a containerPort of {n(w)}",
                      len(match) == 1 and match[0]["containerPort"] == p["port"]
                      and match[0].get("protocol", "TCP") == p.get("protocol", "TCP"),
                      f"containerPorts {[(cp.get('name'), cp['containerPort']) for cp in ports]}")

    # Every pod: non-root as the image's user, no privileges, resources, the image.
    for w in workloads:
        spec = pod_spec(w)
        sc = spec.get("securityContext", {})
        check(f"{setname}: {n(w)} runs as non-root uid {UID} (the image's user)",
              sc.get("runAsNonRoot") is True and sc.get("runAsUser") == UID)
        check(f"{setname}: {n(w)} has no service-link variables (enableServiceLinks: false)",
              spec.get("enableServiceLinks") is False)
        for c in spec.get("initContainers", []) + spec["containers"]:
            cn = f"{n(w)} container {c['name']}"
            csc = c.get("securityContext", {})
            check(f"{setname}: {cn}: no privilege escalation, read-only root, no capability",
                  csc.get("allowPrivilegeEscalation") is False
                  and csc.get("readOnlyRootFilesystem") is True
                  and csc.get("capabilities", {}).get("drop") == ["ALL"])
            res = c.get("resources", {})
            check(f"{setname}: {cn}: cpu and memory requests and limits",
                  all(k in res.get(r, {}) for r in ("requests", "limits") for k in ("cpu", "memory")))
            check(f"{setname}: {cn}: image tally:latest, pulled if not present",
                  c.get("image") == "tally:latest" and c.get("imagePullPolicy") == "IfNotPresent")
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                tcp = c.get(probe, {}).get("tcpSocket")
                if tcp:
                    names = {cp.get("name") for cp in c.get("ports", [])}
                    nums = {cp["containerPort"] for cp in c.get("ports", [])}
                    check(f"{setname}: {cn}: {probe} port {tcp['port']} is one of its ports",
                          tcp["port"] in names or tcp["port"] in nums)

        # The program and its environment.
        for c in spec["containers"]:
            cn = f"{n(w)} container {c['name']}"
            args = (c.get("command") or []) + (c.get("args") or [])
            program = args[0] if args else None
            check(f"{setname}: {cn} runs a Tally program ({program})", program in PROGRAMS)
            listed = help_env_names(bindir, program) if program in PROGRAMS else None
            defined = set()
            for e in c.get("env", []):
                name = e["name"]
                if name.startswith("TALLY_"):
                    check(f"{setname}: {cn}: {name} is read by Tally (C sources, entrypoint)",
                          name in env_names)
                    if listed is not None:
                        check(f"{setname}: {cn}: {name} is an option of {program} (--help)",
                              name in listed, f"{program} --help lists {sorted(listed)}")
                ref = e.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    check(f"{setname}: {cn}: {name} from ConfigMap {ref['name']} key {ref['key']}",
                          ref["key"] in configmaps.get(ref["name"], {}))
                defined.add(name)
            for a in args:
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", a):
                    check(f"{setname}: {cn}: argument $({ref}) is one of its variables",
                          ref in defined)
            # What the program writes lies on a writable volume (the root is read-only).
            mounts = [m for m in c.get("volumeMounts", []) if not m.get("readOnly")]
            for var in ("TALLY_OUTPUT", "TALLY_STATE_DIR", "TALLY_JOB_FILE"):
                path = env_value(c, var, configmaps)
                if path:
                    check(f"{setname}: {cn}: {var} ({path}) is on a writable volume",
                          any(under(path, m["mountPath"]) for m in mounts))

    # The sinks: a StatefulSet behind a headless Service; sink lists name its pods.
    for sts in by_kind.get("StatefulSet", []):
        name = sts["metadata"]["name"]
        svc = [s for s in by_kind.get("Service", []) if s["metadata"]["name"] == sts["spec"]["serviceName"]]
        check(f"{setname}: StatefulSet {name}'s serviceName is a headless Service",
              len(svc) == 1 and svc[0]["spec"].get("clusterIP") == "None")
        if len(svc) != 1:
            continue
        ports = {p["name"]: p["port"] for p in svc[0]["spec"]["ports"]}
        check(f"{setname}: Service {svc[0]['metadata']['name']} exposes sink 5558, feed 5559,"
              f" snapshot 5560 (the feed's port + 1)",
              ports.get("sink") == 5558 and ports.get("feed") == 5559
              and ports.get("snapshot") == ports.get("feed", 0) + 1, f"ports {ports}")
        replicas = sts["spec"].get("replicas", 1)
        dns = [f"{name}-{i}.{svc[0]['metadata']['name']}" for i in range(replicas)]
        sinks = ",".join(f"tcp://{d}:{ports.get('sink')}" for d in dns)
        feeds = ",".join(f"tcp://{d}:{ports.get('feed')}" for d in dns)
        c = pod_spec(sts)["containers"][0]
        claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
        for var in ("TALLY_OUTPUT", "TALLY_STATE_DIR"):
            path = env_value(c, var, configmaps) or ""
            check(f"{setname}: {var} of {name} ({path}) is on its PersistentVolumeClaim",
                  any(m["name"] in claims and under(path, m["mountPath"])
                      for m in c.get("volumeMounts", [])))
        for w in workloads:
            for cc in pod_spec(w)["containers"]:
                value = env_value(cc, "TALLY_SINK", configmaps)
                if value is not None:
                    check(f"{setname}: TALLY_SINK of {n(w)} names the {replicas} sink(s) by their"
                          f" stable names, in order ({value})", value == sinks, f"expected {sinks}")
                args = " ".join((cc.get("command") or []) + (cc.get("args") or []))
                if "tally-watch" in args:
                    value = env_value(cc, "FEEDS", configmaps)
                    check(f"{setname}: the feeds of {n(w)} are the {replicas} sinks' ({value})",
                          value == feeds, f"expected {feeds}")

    # The ventilator's Job, and the workers' autoscaler.
    for job in by_kind.get("Job", []):
        spec = job["spec"]
        check(f"{setname}: Job {job['metadata']['name']}: restartPolicy OnFailure, backoffLimit set",
              spec["template"]["spec"].get("restartPolicy") == "OnFailure" and "backoffLimit" in spec)
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = hpa["spec"]["scaleTargetRef"]
        target = [w for w in workloads if w["kind"] == ref["kind"] and w["metadata"]["name"] == ref["name"]]
        cpu = [m for m in hpa["spec"].get("metrics", [])
               if m.get("type") == "Resource" and m["resource"]["name"] == "cpu"]
        check(f"{setname}: HorizontalPodAutoscaler {hpa['metadata']['name']} (autoscaling/v2) scales"
              f" {ref['kind']} {ref['name']} by CPU, whose containers request CPU",
              hpa["apiVersion"] == "autoscaling/v2" and len(target) == 1 and len(cpu) == 1
              and all("cpu" in c.get("resources", {}).get("requests", {})
                      for c in pod_spec(target[0])["containers"]))

    # CURVE: each key file or folder a program is given is in the Secret volume mounted
    # there; the key pairs fit together (one server pair, the clients name its public key).
    if setname.startswith("curve"):
        keys = {}
        for w in workloads:
            spec = pod_spec(w)
            vols = {v["name"]: v for v in spec.get("volumes", [])}
            for c in spec["containers"]:
                cn = f"{n(w)} container {c['name']}"
                files = {}
                for m in c.get("volumeMounts", []):
                    secret = vols.get(m["name"], {}).get("secret")
                    if secret:
                        for it in secret.get("items", []):
                            files[os.path.join(m["mountPath"], it["path"])] = it["key"]
                given = {}
                for var in ("TALLY_CURVE_SECRET", "TALLY_CURVE_SERVER", "TALLY_CURVE_ALLOW",
                            "TALLY_CURVE_ALLOW_FEED"):
                    path = env_value(c, var, configmaps)
                    if path is None:
                        continue
                    if var.endswith(("SECRET", "SERVER")):
                        given[var] = files.get(path)
                        ok = path in files
                    else:
                        given[var] = sorted(k for f, k in files.items() if under(f, path) and f != path)
                        ok = bool(given[var])
                    check(f"{setname}: {cn}: {var} ({path}) is in its Secret volume ({given[var]})", ok)
                check(f"{setname}: {cn} has a CURVE secret key", "TALLY_CURVE_SECRET" in given)
                keys[c["name"]] = given
        sink, vent = keys.get("sink", {}), keys.get("ventilator", {})
        server = (sink.get("TALLY_CURVE_SECRET") or "").removesuffix("_secret")
        check(f"{setname}: the sink and the ventilator share the server pair ({server})",
              server and vent.get("TALLY_CURVE_SECRET") == server + "_secret")
        for name, k in keys.items():
            if name != "sink":
                check(f"{setname}: {name} names the server's public key", k.get("TALLY_CURVE_SERVER") == server)
        worker = (keys.get("worker", {}).get("TALLY_CURVE_SECRET") or "").removesuffix("_secret")
        watch = (keys.get("watch", {}).get("TALLY_CURVE_SECRET") or "").removesuffix("_secret")
        check(f"{setname}: the sink admits the workers and the ventilator to 5558",
              {worker, server} <= set(sink.get("TALLY_CURVE_ALLOW", [])))
        check(f"{setname}: the ventilator admits the workers to 5557",
              worker in vent.get("TALLY_CURVE_ALLOW", []))
        check(f"{setname}: the watch's key reaches the feed only",
              sink.get("TALLY_CURVE_ALLOW_FEED") == [watch] and watch not in sink.get("TALLY_CURVE_ALLOW", []))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--bin")
    ap.add_argument("sets", nargs="+")
    a = ap.parse_args()
    with open(os.path.join(a.source, "docker", "Dockerfile")) as fh:
        dockerfile = fh.read()
    check(f"docker/Dockerfile makes the user uid {UID} and runs as it",
          re.search(rf"useradd --uid {UID} .*tally", dockerfile) is not None
          and re.search(r"^USER tally$", dockerfile, re.M) is not None)
    env_names = source_env_names(a.source)
    for s in a.sets:
        setname, path = s.split("=", 1)
        with open(path) as fh:
            objs = [o for o in yaml.safe_load_all(fh) if o]
        check(f"{setname}: {len(objs)} objects read", len(objs) > 0)
        check_set(setname, objs, a.source, a.bin, env_names)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
