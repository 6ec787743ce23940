#!/usr/bin/env python3
"""Static checks of the deployment files (no cluster, no container engine needed):
deploy/k8s/*.yaml, deploy/docker-compose.yml, deploy/nginx.conf, deploy/Dockerfile and
.dockerignore. Each check_* function returns a list of problems; the tests assert the real
files have none, and that a broken copy of each is caught (so the checks can fail).

    python3 tests/deploy/k8s_manifests_test.py [-v]

Needs PyYAML (Debian: python3-yaml).
"""
import copy
import glob
import json
import os
import re
import shlex
import sys
import unittest

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(REPO, "deploy")
HEALTH = ["/usr/local/bin/edgekv", "health"]
EDGEKV_UID = 10001
SECRET_NAME, SECRET_KEY = "edgekv-cluster", "secret"
HEXISH = re.compile(r"\b[0-9a-fA-F]{32,}\b")
EMPTY_DEFAULT = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-\}")  # podman-compose 1.0.3 bug


# --------------------------------------------------------------------------- kubernetes

def load_k8s():
    docs = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml"))):
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if d:
                    d["_file"] = os.path.basename(path)
                    docs.append(d)
    return docs


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


def subset(a, b):
    """every key/value of dict a is in dict b"""
    return bool(a) and all(b.get(k) == v for k, v in a.items())


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def containers(workload):
    return pod_spec(workload).get("containers", [])


def check_k8s(docs):
    p = []
    sts = by_kind(docs, "StatefulSet")
    svc = by_kind(docs, "Service")
    dep = by_kind(docs, "Deployment")
    pdb = by_kind(docs, "PodDisruptionBudget")
    sec = by_kind(docs, "Secret")
    for d in docs:
        if d.get("metadata", {}).get("namespace"):
            p.append(f"{d['_file']}: {d['kind']} {d['metadata']['name']} names a namespace")

    # workloads: selectors, services, replicas
    for name, s in sts.items():
        labels = s["spec"]["template"]["metadata"].get("labels", {})
        if not subset(s["spec"]["selector"].get("matchLabels", {}), labels):
            p.append(f"StatefulSet {name}: selector does not match its pod labels")
        gov = svc.get(s["spec"].get("serviceName"))
        if not gov:
            p.append(f"StatefulSet {name}: serviceName {s['spec'].get('serviceName')!r} is no Service")
        else:
            if gov["spec"].get("clusterIP") != "None":
                p.append(f"Service {gov['metadata']['name']}: governs StatefulSet {name} but is not headless (clusterIP None)")
            if not subset(gov["spec"].get("selector", {}), labels):
                p.append(f"Service {gov['metadata']['name']}: selector does not select StatefulSet {name}'s pods")
        claims = {c["metadata"]["name"] for c in s["spec"].get("volumeClaimTemplates", [])}
        for c in containers(s):
            for m in c.get("volumeMounts", []):
                vols = {v["name"] for v in pod_spec(s).get("volumes", [])}
                if m["name"] not in claims | vols:
                    p.append(f"StatefulSet {name}: mount {m['name']} has no volume or claim template")
    data = sts.get("edgekv-data")
    if not data:
        p.append("no StatefulSet edgekv-data")
    else:
        if data["spec"].get("replicas") != 3:
            p.append("StatefulSet edgekv-data: replicas is not 3")
        c = containers(data)[0]
        if not any(m["mountPath"] == "/data" and m["name"] in {t["metadata"]["name"] for t in data["spec"].get("volumeClaimTemplates", [])}
                   for m in c.get("volumeMounts", [])):
            p.append("StatefulSet edgekv-data: /data is not on a volumeClaimTemplate")
        script = " ".join(c.get("command", []) + c.get("args", []))
        if not re.search(r"\*-0\)\s*EDGEKV_ROLE=primary", script):
            p.append("StatefulSet edgekv-data: pod 0 does not start as --role primary")
        if "EDGEKV_ROLE=replica" not in script:
            p.append("StatefulSet edgekv-data: the other pods do not start as --role replica")
        env = env_map(c)
        if env.get("EDGEKV_SYNC_REPLICAS", {}).get("value") != "1":
            p.append("StatefulSet edgekv-data: EDGEKV_SYNC_REPLICAS is not 1")
    if "edgekv-etcd" not in sts:
        p.append("no StatefulSet edgekv-etcd")

    edge = dep.get("edgekv-edge")
    if not edge:
        p.append("no Deployment edgekv-edge")
    else:
        if edge["spec"].get("replicas") != 3:
            p.append("Deployment edgekv-edge: replicas is not 3")
        elabels = edge["spec"]["template"]["metadata"].get("labels", {})
        if not subset(edge["spec"]["selector"].get("matchLabels", {}), elabels):
            p.append("Deployment edgekv-edge: selector does not match its pod labels")
        b = pdb.get("edgekv-edge")
        if not b:
            p.append("no PodDisruptionBudget edgekv-edge")
        else:
            if b["spec"].get("minAvailable") != 2:
                p.append("PodDisruptionBudget edgekv-edge: minAvailable is not 2")
            if not subset(b["spec"].get("selector", {}).get("matchLabels", {}), elabels):
                p.append("PodDisruptionBudget edgekv-edge: does not select the edge pods")
        front = svc.get("edgekv")
        if not front:
            p.append("no Service edgekv")
        else:
            if front["spec"].get("type", "ClusterIP") != "ClusterIP" or front["spec"].get("clusterIP") == "None":
                p.append("Service edgekv: not a ClusterIP Service")
            if not subset(front["spec"].get("selector", {}), elabels):
                p.append("Service edgekv: does not select the edge pods")
            if data and subset(front["spec"].get("selector", {}), data["spec"]["template"]["metadata"].get("labels", {})):
                p.append("Service edgekv: also selects the data pods")
            ports = [(x.get("port"), x.get("targetPort")) for x in front["spec"].get("ports", [])]
            if ports != [(8787, 8787)]:
                p.append(f"Service edgekv: ports {ports}, want 8787 -> 8787")
        env = env_map(containers(edge)[0])
        if env.get("EDGEKV_ROLE", {}).get("value") != "edge":
            p.append("Deployment edgekv-edge: EDGEKV_ROLE is not edge")
        if data:
            want = ",".join(f"edgekv-data-{i}.{data['spec']['serviceName']}:8788" for i in range(data["spec"]["replicas"]))
            if env.get("EDGEKV_REPLICAS", {}).get("value") != want:
                p.append(f"Deployment edgekv-edge: EDGEKV_REPLICAS is not {want}")

    # coordinator: every edgekv pod points at the etcd Service
    for w in list(sts.values()) + list(dep.values()):
        for c in containers(w):
            if not is_edgekv(c):
                continue
            coord = env_map(c).get("EDGEKV_COORDINATOR", {}).get("value", "")
            m = re.fullmatch(r"etcd://([a-z0-9-]+):(\d+)", coord)
            if not m:
                p.append(f"{w['metadata']['name']}: EDGEKV_COORDINATOR {coord!r} is not etcd://SERVICE:PORT")
            elif m.group(1) not in svc or int(m.group(2)) not in [x["port"] for x in svc[m.group(1)]["spec"]["ports"]]:
                p.append(f"{w['metadata']['name']}: EDGEKV_COORDINATOR {coord} is no Service port")

    # probes, security, env of every container
    for w in list(sts.values()) + list(dep.values()):
        wn = f"{w['kind']} {w['metadata']['name']}"
        psc = pod_spec(w).get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            p.append(f"{wn}: pod securityContext.runAsNonRoot is not true")
        for c in containers(w):
            cn = f"{wn} container {c['name']}"
            sc = c.get("securityContext", {})
            uid = sc.get("runAsUser", psc.get("runAsUser"))
            if not isinstance(uid, int) or uid == 0:
                p.append(f"{cn}: no non-zero runAsUser")
            if sc.get("readOnlyRootFilesystem") is not True:
                p.append(f"{cn}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                p.append(f"{cn}: allowPrivilegeEscalation is not false")
            for probe in ("readinessProbe", "livenessProbe"):
                cmd = c.get(probe, {}).get("exec", {}).get("command")
                if not cmd:
                    p.append(f"{cn}: no exec {probe}")
                elif is_edgekv(c) and cmd != HEALTH:
                    p.append(f"{cn}: {probe} runs {cmd}, not {HEALTH}")
            if is_edgekv(c):
                if uid != EDGEKV_UID:
                    p.append(f"{cn}: runAsUser {uid}, not {EDGEKV_UID}")
                p.extend(check_k8s_env(cn, c, sec))
    return p


def is_edgekv(c):
    return c.get("image", "").split("/")[-1].split(":")[0] == "edgekv"


def env_map(c):
    return {e["name"]: e for e in c.get("env", [])}


def check_k8s_env(cn, c, secrets):
    p = []
    defined = set()
    example = secrets.get(SECRET_NAME)
    keys = set((example or {}).get("stringData", {})) | set((example or {}).get("data", {}))
    for e in c.get("env", []):
        n = e["name"]
        if not n.startswith("EDGEKV_"):
            p.append(f"{cn}: env {n} does not start with EDGEKV_")
        v = e.get("value")
        if v is not None:
            if HEXISH.search(str(v)):
                p.append(f"{cn}: env {n} holds a literal secret-like value")
            for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(v)):
                if ref not in defined:
                    p.append(f"{cn}: env {n} uses $({ref}) before it is defined")
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            if ref.get("name") != SECRET_NAME:
                p.append(f"{cn}: env {n} reads Secret {ref.get('name')}, not {SECRET_NAME}")
            if ref.get("key") not in keys and not ref.get("optional"):
                p.append(f"{cn}: env {n} reads key {ref.get('key')} missing from secret.example.yaml")
        defined.add(n)
    sec = env_map(c).get("EDGEKV_CLUSTER_SECRET")
    ref = (sec or {}).get("valueFrom", {}).get("secretKeyRef", {})
    if not sec or "value" in sec or ref.get("name") != SECRET_NAME or ref.get("key") != SECRET_KEY or ref.get("optional"):
        p.append(f"{cn}: EDGEKV_CLUSTER_SECRET is not secretKeyRef {SECRET_NAME}/{SECRET_KEY}")
    return p


def check_secret_example(docs):
    p = []
    s = by_kind(docs, "Secret").get(SECRET_NAME)
    if not s:
        return [f"no Secret {SECRET_NAME} (secret.example.yaml)"]
    vals = dict(s.get("stringData", {}))
    vals.update(s.get("data", {}))
    if SECRET_KEY not in vals:
        p.append(f"Secret {SECRET_NAME} has no key {SECRET_KEY}")
    for k, v in vals.items():
        if HEXISH.search(str(v)) or "REPLACE" not in str(v).upper():
            p.append(f"Secret {SECRET_NAME}: key {k} holds something other than a placeholder")
    if len(str(vals.get(SECRET_KEY, ""))) >= 32:
        p.append(f"Secret {SECRET_NAME}: the placeholder {SECRET_KEY} is long enough (>= 32 bytes) to be accepted by edgekv")
    path = os.path.join(DEPLOY, "k8s", s["_file"])
    if "kubectl create secret generic " + SECRET_NAME not in open(path).read():
        p.append(f"{s['_file']}: no comment on how to create the Secret with kubectl")
    return p


# --------------------------------------------------------------------------- compose

COMPOSE_SERVICES = {"etcd", "primary", "replica1", "replica2", "edge1", "edge2", "edge3", "lb"}
DATA_NODES = {"primary": "primary", "replica1": "replica", "replica2": "replica"}
EDGES = {"edge1", "edge2", "edge3"}


def load_compose():
    path = os.path.join(DEPLOY, "docker-compose.yml")
    with open(path) as f:
        text = f.read()
    return yaml.safe_load(text), text


def norm_env(env):
    if isinstance(env, list):
        return dict(x.split("=", 1) if "=" in x else (x, None) for x in env)
    return dict(env or {})


def check_compose(c, text):
    p = []
    if "version" in c and not str(c["version"]).startswith("3."):
        p.append(f"compose: version {c['version']!r} (docker-compose 1.29 needs a 3.x file format)")
    if EMPTY_DEFAULT.search("\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))):
        p.append("compose: ${VAR:-} with an empty default (podman-compose 1.0.3 leaves it unsubstituted)")
    svcs = c.get("services", {})
    if set(svcs) != COMPOSE_SERVICES:
        p.append(f"compose: services {sorted(svcs)}, want {sorted(COMPOSE_SERVICES)}")
    vols = c.get("volumes") or {}
    for name, s in svcs.items():
        sn = f"compose service {name}"
        if s.get("restart") != "unless-stopped":
            p.append(f"{sn}: restart is not unless-stopped")
        if "profiles" in s:
            p.append(f"{sn}: uses profiles (podman-compose 1.0.3 ignores them)")
        if isinstance(s.get("depends_on"), dict):
            p.append(f"{sn}: depends_on with conditions")
        hc = (s.get("healthcheck") or {}).get("test")
        if not hc or hc[0] not in ("CMD", "CMD-SHELL"):
            p.append(f"{sn}: no healthcheck")
        if name != "lb" and s.get("ports"):
            p.append(f"{sn}: publishes ports (only lb may)")
        env = norm_env(s.get("environment"))
        for k, v in env.items():
            if not k.startswith("EDGEKV_"):
                p.append(f"{sn}: env {k} does not start with EDGEKV_")
            if v is not None and HEXISH.search(str(v)):
                p.append(f"{sn}: env {k} holds a literal secret-like value")
        for k in ("EDGEKV_CLUSTER_SECRET", "EDGEKV_ACCOUNT_ID", "EDGEKV_ROOT_TOKEN"):
            if k in env and not re.fullmatch(r"\$\{" + k + r"(:?[?-][^}]*)?\}", str(env[k])):
                p.append(f"{sn}: {k} is not taken from the environment (${{{k}}})")
        if name in DATA_NODES or name in EDGES:
            if s.get("healthcheck", {}).get("test") != ["CMD"] + HEALTH:
                p.append(f"{sn}: healthcheck is not {['CMD'] + HEALTH}")
            if s.get("read_only") is not True:
                p.append(f"{sn}: read_only is not true")
            if s.get("hostname") != name:
                p.append(f"{sn}: hostname is not {name}")
            if env.get("EDGEKV_NODE_ID") != name:
                p.append(f"{sn}: EDGEKV_NODE_ID is not {name}")
            if env.get("EDGEKV_COORDINATOR") != "etcd://etcd:2379":
                p.append(f"{sn}: EDGEKV_COORDINATOR is not etcd://etcd:2379")
            if "EDGEKV_CLUSTER_SECRET" not in env:
                p.append(f"{sn}: no EDGEKV_CLUSTER_SECRET")
        if name in DATA_NODES:
            if env.get("EDGEKV_ROLE") != DATA_NODES[name]:
                p.append(f"{sn}: EDGEKV_ROLE is not {DATA_NODES[name]}")
            if env.get("EDGEKV_REPL_ADVERTISE") != f"{name}:8788":
                p.append(f"{sn}: EDGEKV_REPL_ADVERTISE is not {name}:8788")
            if str(env.get("EDGEKV_SYNC_REPLICAS")) != "1":
                p.append(f"{sn}: EDGEKV_SYNC_REPLICAS is not 1")
            for k in ("EDGEKV_ACCOUNT_ID", "EDGEKV_ROOT_TOKEN"):
                if k not in env:
                    p.append(f"{sn}: no {k}")
            mounts = [v for v in s.get("volumes", []) if isinstance(v, str) and v.endswith(":/data")]
            if mounts != [f"{name}-data:/data"] or f"{name}-data" not in vols:
                p.append(f"{sn}: /data is not the named volume {name}-data")
        if name in EDGES:
            if env.get("EDGEKV_ROLE") != "edge":
                p.append(f"{sn}: EDGEKV_ROLE is not edge")
            if env.get("EDGEKV_DO_ADVERTISE") != f"{name}:8789":
                p.append(f"{sn}: EDGEKV_DO_ADVERTISE is not {name}:8789")
            if s.get("volumes"):
                p.append(f"{sn}: an edge has volumes")
    lb = svcs.get("lb", {})
    if lb.get("ports") != ["127.0.0.1:${EDGEKV_PORT:-8787}:8787"]:
        p.append(f"compose service lb: ports {lb.get('ports')}, want 127.0.0.1:${{EDGEKV_PORT:-8787}}:8787")
    if not any(v.startswith("etcd-data:") for v in svcs.get("etcd", {}).get("volumes", [])):
        p.append("compose service etcd: no named volume")
    return p


def check_nginx(conf):
    p = []
    m = re.search(r"upstream\s+(\w+)\s*\{([^}]*)\}", conf)
    if not m:
        return ["nginx.conf: no upstream block"]
    servers = re.findall(r"^\s*server\s+([\w.-]+:\d+)", m.group(2), re.M)
    if servers != ["edge1:8787", "edge2:8787", "edge3:8787"]:
        p.append(f"nginx.conf: upstream servers {servers}, want edge1..edge3:8787")
    if not re.search(r"^\s*keepalive\s+\d+;", m.group(2), re.M):
        p.append("nginx.conf: no upstream keepalive")
    if not re.search(rf"proxy_pass\s+http://{m.group(1)};", conf):
        p.append("nginx.conf: proxy_pass does not use the upstream")
    if not re.search(r"proxy_next_upstream\s+error\s+timeout;", conf):
        p.append("nginx.conf: no proxy_next_upstream error timeout")
    if "non_idempotent" in conf:
        p.append("nginx.conf: retries non-idempotent requests")
    if not re.search(r"^\s*listen\s+8787\b", conf, re.M):
        p.append("nginx.conf: does not listen on 8787")
    return p


# --------------------------------------------------------------------------- Dockerfile

def dockerfile_instructions(text):
    """[(INSTRUCTION, args)] with continuation lines joined and comments dropped"""
    out, cur = [], ""
    for line in text.splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        parts = cur.strip().split(None, 1)
        out.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
        cur = ""
    return out


def check_dockerfile(text):
    p = []
    ins = dockerfile_instructions(text)
    stages = []
    for k, v in ins:
        if k == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((k, v))
    if len(stages) < 2:
        return ["Dockerfile: not multi-stage"]
    if not stages[0][0][1].startswith("debian:bookworm-slim"):
        p.append("Dockerfile: the build stage is not FROM debian:bookworm-slim")
    last = dict()
    for k, v in stages[-1]:
        last.setdefault(k, []).append(v)
    user = (last.get("USER") or [""])[-1].split(":")[0]
    if user in ("", "0", "root"):
        p.append("Dockerfile: the final stage runs as root")
    elif user != str(EDGEKV_UID):
        p.append(f"Dockerfile: USER {user}, want {EDGEKV_UID}")
    hc = (last.get("HEALTHCHECK") or [""])[-1]
    m = re.search(r"\bCMD\s+(\[.*\])\s*$", hc)
    if not m or json.loads(m.group(1)) != HEALTH:
        p.append(f"Dockerfile: HEALTHCHECK is not the exec form {HEALTH}")
    if [json.loads(x) for x in last.get("ENTRYPOINT", [])][-1:] != [["/usr/local/bin/edgekv"]]:
        p.append("Dockerfile: ENTRYPOINT is not [\"/usr/local/bin/edgekv\"]")
    if [json.loads(x) for x in last.get("CMD", [])][-1:] != [["serve"]]:
        p.append("Dockerfile: CMD is not [\"serve\"]")
    if "/data" not in " ".join(last.get("VOLUME", [])):
        p.append("Dockerfile: no VOLUME /data")
    if set(" ".join(last.get("EXPOSE", [])).split()) != {"8787", "8788"}:
        p.append("Dockerfile: EXPOSE is not 8787 8788")
    env = " ".join(last.get("ENV", []))
    for kv in ("EDGEKV_DATA_DIR=/data", "EDGEKV_LISTEN=0.0.0.0:8787"):
        if kv not in env:
            p.append(f"Dockerfile: no ENV {kv}")
    # runtime stages (all but the first) install no toolchain and no curl
    for st in stages[1:]:
        for k, v in st:
            if k == "RUN" and "apt-get install" in v:
                words = set(shlex.split(v.replace("&&", " ").replace("\\", " ")))
                bad = words & {"gcc", "cmake", "make", "g++", "build-essential", "curl", "wget", "clang"}
                if bad:
                    p.append(f"Dockerfile: a runtime stage installs {sorted(bad)}")
    if "-DEKV_TESTS=OFF" not in text:
        p.append("Dockerfile: the build does not turn the unit tests off (-DEKV_TESTS=OFF)")
    return p


def check_dockerignore(text):
    lines = {l.strip().rstrip("/") for l in text.splitlines() if l.strip() and not l.startswith("#")}
    want = {".git", "build*", "data", "**/node_modules", "deploy/.secrets"}
    return [f".dockerignore: does not exclude {w}" for w in sorted(want - lines)]


# --------------------------------------------------------------------------- tests

class RealFiles(unittest.TestCase):
    def test_k8s(self):
        self.assertEqual(check_k8s(load_k8s()), [])

    def test_k8s_secret_example(self):
        self.assertEqual(check_secret_example(load_k8s()), [])

    def test_k8s_kinds(self):
        kinds = sorted((d["kind"], d["metadata"]["name"]) for d in load_k8s())
        self.assertEqual(kinds, sorted([
            ("Service", "edgekv-etcd"), ("StatefulSet", "edgekv-etcd"),
            ("Service", "edgekv-data"), ("StatefulSet", "edgekv-data"),
            ("Deployment", "edgekv-edge"), ("PodDisruptionBudget", "edgekv-edge"),
            ("Service", "edgekv"), ("Secret", "edgekv-cluster"),
        ]))

    def test_compose(self):
        self.assertEqual(check_compose(*load_compose()), [])

    def test_nginx(self):
        with open(os.path.join(DEPLOY, "nginx.conf")) as f:
            self.assertEqual(check_nginx(f.read()), [])

    def test_dockerfile(self):
        with open(os.path.join(DEPLOY, "Dockerfile")) as f:
            self.assertEqual(check_dockerfile(f.read()), [])

    def test_dockerignore(self):
        with open(os.path.join(REPO, ".dockerignore")) as f:
            self.assertEqual(check_dockerignore(f.read()), [])

    def test_secrets_gitignored(self):
        with open(os.path.join(DEPLOY, ".gitignore")) as f:
            lines = f.read().split()
        self.assertIn("/.env", lines)
        self.assertIn("/.secrets/", lines)


class ChecksCatchBreakage(unittest.TestCase):
    """Each check reports a broken copy of the real file."""

    def k8s_with(self, mutate):
        docs = copy.deepcopy(load_k8s())
        mutate(docs)
        return check_k8s(docs) + check_secret_example(docs)

    def find(self, docs, kind, name):
        return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)

    def test_k8s_breakage(self):
        def not_headless(d):
            self.find(d, "Service", "edgekv-data")["spec"].pop("clusterIP")

        def wrong_probe(d):
            c = self.find(d, "Deployment", "edgekv-edge")["spec"]["template"]["spec"]["containers"][0]
            c["readinessProbe"]["exec"]["command"] = ["/usr/local/bin/edgekv", "version"]

        def writable_root(d):
            c = self.find(d, "StatefulSet", "edgekv-data")["spec"]["template"]["spec"]["containers"][0]
            c["securityContext"]["readOnlyRootFilesystem"] = False

        def literal_secret(d):
            c = self.find(d, "StatefulSet", "edgekv-data")["spec"]["template"]["spec"]["containers"][0]
            e = next(e for e in c["env"] if e["name"] == "EDGEKV_CLUSTER_SECRET")
            e.pop("valueFrom")
            e["value"] = "ab" * 32

        def wrong_secret_key(d):
            c = self.find(d, "Deployment", "edgekv-edge")["spec"]["template"]["spec"]["containers"][0]
            e = next(e for e in c["env"] if e["name"] == "EDGEKV_CLUSTER_SECRET")
            e["valueFrom"]["secretKeyRef"]["key"] = "cluster-secret"

        def foreign_env(d):
            c = self.find(d, "Deployment", "edgekv-edge")["spec"]["template"]["spec"]["containers"][0]
            c["env"].append({"name": "POD_IP", "value": "x"})

        def pdb_selects_data(d):
            self.find(d, "PodDisruptionBudget", "edgekv-edge")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "data"

        def front_selects_data(d):
            self.find(d, "Service", "edgekv")["spec"]["selector"]["app.kubernetes.io/component"] = "data"

        def root_user(d):
            s = self.find(d, "StatefulSet", "edgekv-data")["spec"]["template"]["spec"]
            s["securityContext"]["runAsUser"] = 0
            s["containers"][0]["securityContext"]["runAsUser"] = 0

        def no_pdb(d):
            d.remove(self.find(d, "PodDisruptionBudget", "edgekv-edge"))

        def real_secret_in_example(d):
            self.find(d, "Secret", "edgekv-cluster")["stringData"]["secret"] = "0f" * 32

        def usable_placeholder(d):
            self.find(d, "Secret", "edgekv-cluster")["stringData"]["secret"] = "REPLACE-ME-with-64-hex-characters"

        def all_replicas(d):
            c = self.find(d, "StatefulSet", "edgekv-data")["spec"]["template"]["spec"]["containers"][0]
            c["args"] = ["export EDGEKV_ROLE=replica; exec /usr/local/bin/edgekv serve"]

        for mutate in (not_headless, wrong_probe, writable_root, literal_secret, wrong_secret_key,
                       foreign_env, pdb_selects_data, front_selects_data, root_user, no_pdb,
                       real_secret_in_example, usable_placeholder, all_replicas):
            with self.subTest(mutate.__name__):
                self.assertNotEqual(self.k8s_with(mutate), [])

    def test_compose_breakage(self):
        def no_healthcheck(c, t):
            c["services"]["edge2"].pop("healthcheck")
            return c, t

        def literal_secret(c, t):
            c["services"]["replica1"]["environment"]["EDGEKV_CLUSTER_SECRET"] = "ab" * 32
            return c, t

        def edge_volume(c, t):
            c["services"]["edge1"]["volumes"] = ["x:/data"]
            return c, t

        def anonymous_data(c, t):
            c["services"]["replica2"]["volumes"] = ["/data"]
            return c, t

        def missing_service(c, t):
            c["services"].pop("edge3")
            return c, t

        def published_primary(c, t):
            c["services"]["primary"]["ports"] = ["8787:8787"]
            return c, t

        def empty_default(c, t):
            return c, t + "\nx-empty: ${EDGEKV_ACCOUNT_ID:-}\n"

        def wrong_advertise(c, t):
            c["services"]["replica1"]["environment"]["EDGEKV_REPL_ADVERTISE"] = "0.0.0.0:8788"
            return c, t

        for mutate in (no_healthcheck, literal_secret, edge_volume, anonymous_data,
                       missing_service, published_primary, empty_default, wrong_advertise):
            with self.subTest(mutate.__name__):
                c, t = load_compose()
                self.assertNotEqual(check_compose(*mutate(copy.deepcopy(c), t)), [])

    def test_nginx_breakage(self):
        with open(os.path.join(DEPLOY, "nginx.conf")) as f:
            conf = f.read()
        for broken in (conf.replace("server edge3:8787", "server edge4:8787"),
                       conf.replace("proxy_next_upstream error timeout;", "proxy_next_upstream error timeout non_idempotent;"),
                       re.sub(r"keepalive \d+;", "", conf)):
            self.assertNotEqual(check_nginx(broken), [])

    def test_dockerfile_breakage(self):
        with open(os.path.join(DEPLOY, "Dockerfile")) as f:
            text = f.read()
        for broken in (re.sub(r"^USER .*$", "USER root", text, flags=re.M),
                       text.replace('"/usr/local/bin/edgekv", "health"', '"/usr/local/bin/edgekv", "version"'),
                       re.sub(r'^HEALTHCHECK(.*\\\n)*.*$', "HEALTHCHECK CMD /usr/local/bin/edgekv health", text, flags=re.M),
                       text.replace("libssl3 ", "libssl3 gcc "),
                       "FROM debian:bookworm-slim\nUSER 10001\n"):
            self.assertNotEqual(check_dockerfile(broken), [])


if __name__ == "__main__":
    unittest.main()
