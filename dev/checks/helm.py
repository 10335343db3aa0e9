#!/usr/bin/env python3
"""Checks of the Helm chart and the plain manifests (run by scripts/check-helm, which installs the
tools and passes their paths in POLO_HELM, POLO_KUBECTL, POLO_NODE_MODULES and POLO_EXPORTER).

- the generated files are in sync (dev/helm/sync.py), and the drift check fails on a perturbed copy;
- for every ci/*-values.yaml scenario: `helm lint --strict`, `helm template`, every object valid
  (core kinds: kubernetes-validate --strict, Kubernetes 1.33 schemas; ServiceMonitor and
  PrometheusRule: the @kubernetes-models/prometheus-operator validators and, for unknown fields,
  the TypeScript compiler against the same package's types), the pod hardened and probed, the
  PrometheusRule equal to deploy/prometheus/rules/polo.rules.yml with the values' substitutions,
  `promtool check rules` on it, `promtool test rules` of tests/prometheus on it, and
  `polo-exporter --config.check` on the ConfigMap's configuration (and the web configuration);
- the state volume (stateVolume) mounted, the aws_cost state_file on it, a PVC and the Recreate
  strategy with `persistentVolumeClaim`; the cost rules as a second PrometheusRule with the source;
- the probes of each scenario sent, as the kubelet would (path, scheme, headers), to a real exporter
  running that scenario's configuration and web configuration: 200 (and 401 without the header);
- the default image is ghcr.io/polo/polo-exporter:<appVersion>, as Chart.yaml's artifacthub.io/images says;
- `kubectl kustomize deploy/kubernetes` equals the chart's default render;
- each validator rejects a broken object (so the checks can fail).
Prints one line per check and `check-helm: N passed, M failed`; exit status 1 on a failure.
"""
import copy
import functools
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "dev", "helm"))
import sync  # noqa: E402

import kubernetes_validate.utils as kv  # noqa: E402

HELM = os.environ["POLO_HELM"]
KUBECTL = os.environ["POLO_KUBECTL"]
NODE_MODULES = os.environ["POLO_NODE_MODULES"]
EXPORTER = os.environ["POLO_EXPORTER"]
PROMTOOL = shutil.which("promtool") or "promtool"
K8S_VERSION = "1.33.0"
CHART = os.path.join(ROOT, sync.CHART)
SCENARIOS = sorted(glob.glob(os.path.join(CHART, "ci", "*-values.yaml")))
RULES_SOURCE = os.path.join(ROOT, "deploy/prometheus/rules/polo.rules.yml")
COST_RULES_SOURCE = os.path.join(ROOT, "deploy/prometheus/rules/polo-cost.rules.yml")
DEFAULT_COST_RUNBOOK_BASE = "https://github.com/polo/polo-exporter/blob/main/docs/runbooks-cost.md"
IMAGE_REPOSITORY = "ghcr.io/polo/polo-exporter"
# Generated files whose drift is reported but does not fail, with the reason.
DEFERRED = {
    "README.md": "the root README is being split into docs/ on another branch; its values table is "
                 "regenerated with `scripts/check-helm --sync` when that merges",
}
# Every promtool test file of the shipped rules (polo.rules.yml), run on the chart's PrometheusRule too.
RULES_TESTS = sorted(glob.glob(os.path.join(ROOT, "tests/prometheus/*.test.yml")))
DEFAULT_RUNBOOK_BASE = "https://github.com/polo/polo-exporter/blob/main/docs/runbooks.md"
CRD_GROUP = "monitoring.coreos.com/"
# Loading the 1.33 schemas once instead of once per object (the library re-reads the files).
kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)

passed = 0
failed = 0
TMP = tempfile.mkdtemp(prefix="check-helm-")


def check(name, fn, *args):
    """Runs fn; it returns None or "" when fine, else the problem text (or raises)."""
    global passed, failed
    t0 = time.monotonic()
    try:
        problem = fn(*args)
    except Exception as e:  # noqa: BLE001 - every failure is reported, the run goes on
        problem = f"{type(e).__name__}: {e}"
    if problem:
        failed += 1
        print(f"FAIL {name}")
        for line in str(problem).splitlines()[:40]:
            print(f"     {line}")
    else:
        passed += 1
        print(f"ok   {name}" + (f" ({time.monotonic() - t0:.1f} s)" if os.environ.get("POLO_CHECK_TIMES") else ""))


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def objects_of(text):
    return [yaml.safe_load(body) for _, body in sync.split_documents(text)]


def key(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


# ------------------------------------------------------------------------------ validators
def validate_core(objs):
    """kubernetes-validate --strict (unknown fields rejected) against the Kubernetes 1.33 schemas."""
    problems = []
    for obj in objs:
        if obj["apiVersion"].startswith(CRD_GROUP):
            continue
        try:
            kv.validate(obj, K8S_VERSION, strict=True)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            problems.append(f"{key(obj)}: {path}: {e.message}")
        except kv.SchemaNotFoundError as e:
            problems.append(f"{key(obj)}: {e.message}")
    return problems


def validate_crds(objs):
    """ServiceMonitor/PrometheusRule: the models' JSON-schema validators, then the TypeScript
    compiler for unknown fields (the validators allow them; the API server would drop them)."""
    objs = [o for o in objs if o["apiVersion"].startswith(CRD_GROUP)]
    if not objs:
        return []
    work = tempfile.mkdtemp(dir=TMP)
    with open(os.path.join(work, "in.json"), "w") as f:
        json.dump([{"id": key(o), "object": o} for o in objs], f)
    out = run(["node", os.path.join(ROOT, "dev/helm/validate_crds.mjs"), NODE_MODULES, os.path.join(work, "in.json")])
    if out.returncode != 0:
        return [f"validate_crds.mjs: {out.stderr.strip()}"]
    problems = [f"{r['id']}: {'; '.join(r['errors'])}" for r in json.loads(out.stdout) if not r["ok"]]

    types = os.path.join(NODE_MODULES, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1")
    lines = []
    kinds = sorted({o["kind"] for o in objs})
    for kind in kinds:
        lines.append(f'import type {{ I{kind} }} from "{types}/{kind}.js";')
    first = len(lines) + 1
    for i, o in enumerate(objs):
        lines.append(f"export const o{i}: I{o['kind']} = {json.dumps(o)};")
    with open(os.path.join(work, "objects.ts"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(work, "tsconfig.json"), "w") as f:
        json.dump({"compilerOptions": {"strict": True, "noEmit": True, "module": "nodenext",
                                       "moduleResolution": "nodenext", "target": "es2022",
                                       "skipLibCheck": True, "types": []},
                   "files": ["objects.ts"]}, f)
    out = run([os.path.join(NODE_MODULES, ".bin/tsc"), "-p", work])
    if out.returncode != 0:
        for line in out.stdout.splitlines():
            m = re.match(r"objects\.ts\((\d+),\d+\): (.*)", line)
            idx = int(m.group(1)) - first if m else -1
            problems.append(f"{key(objs[idx]) if 0 <= idx < len(objs) else 'tsc'}: {m.group(2) if m else line}")
        if not problems:
            problems.append("tsc: " + (out.stdout + out.stderr).strip())
    return problems


# ------------------------------------------------------------------------------ per scenario
def hardened(objs, values):
    problems = []
    dep = next((o for o in objs if o["kind"] == "Deployment"), None)
    if dep is None:
        return ["no Deployment"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    want = {
        "pod runAsNonRoot": psc.get("runAsNonRoot") is True,
        "pod seccompProfile RuntimeDefault": psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
        "readOnlyRootFilesystem": csc.get("readOnlyRootFilesystem") is True,
        "allowPrivilegeEscalation false": csc.get("allowPrivilegeEscalation") is False,
        "capabilities drop ALL": csc.get("capabilities", {}).get("drop") == ["ALL"],
        "resources requests and memory limit": bool(c.get("resources", {}).get("requests")) and "memory" in c.get("resources", {}).get("limits", {}),
        "port 9820": [p["containerPort"] for p in c["ports"]] == [9820],
        "--config.file from the ConfigMap": "--config.file=/etc/polo-exporter/config/polo-exporter.yml" in c["args"],
    }
    web = values.get("webConfig", {}).get("enabled", False)
    want["--web.config.file iff webConfig.enabled"] = any(a.startswith("--web.config.file=") for a in c["args"]) == web
    web_cfg = values.get("webConfig", {}).get("config", {}) if web else {}
    basic_auth = bool(web_cfg.get("basic_auth_users"))
    client_cert = web_cfg.get("tls_server_config", {}).get("client_auth_type") == "RequireAndVerifyClientCert"
    probe_auth = web and bool(values["webConfig"].get("probeAuth", {}).get("password"))
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        p = c.get(probe, {})
        if "httpGet" in p:
            want[f"{probe} GET {path}"] = p["httpGet"]["path"] == path
            headers = {h["name"]: h["value"] for h in p["httpGet"].get("httpHeaders", [])}
            want[f"{probe} with an Authorization header iff webConfig.probeAuth"] = ("Authorization" in headers) == probe_auth
            want[f"{probe} not httpGet without the credentials basic auth needs"] = probe_auth or not basic_auth
        else:
            want[f"{probe} TCP only without usable credentials"] = "tcpSocket" in p and web and (client_cert or (basic_auth and not probe_auth))
    state = values.get("stateVolume", {})
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    if state.get("type", "emptyDir") == "none":
        want["no state volume with stateVolume.type none"] = "state" not in volumes
    else:
        want[f"state volume at {state.get('mountPath')}"] = mounts.get("state") == state.get("mountPath") and "state" in volumes
        kind = "persistentVolumeClaim" if state.get("type") == "persistentVolumeClaim" else "emptyDir"
        want[f"state volume is a {kind}"] = kind in volumes.get("state", {})
        want["Recreate strategy iff a PVC"] = (dep["spec"].get("strategy", {}).get("type") == "Recreate") == (kind == "persistentVolumeClaim")
        if kind == "persistentVolumeClaim" and not state.get("existingClaim"):
            claim = volumes.get("state", {}).get("persistentVolumeClaim", {}).get("claimName")
            want["the chart-made PVC exists and is the one mounted"] = any(
                o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == claim for o in objs)
    cms = [o for o in objs if o["kind"] == "ConfigMap" and "polo-exporter.yml" in o.get("data", {})]
    if cms and aws_cost_on(values):
        cfg = yaml.safe_load(cms[0]["data"]["polo-exporter.yml"])
        state_file = cfg["sources"]["aws_cost"].get("state_file", "")
        want["aws_cost state_file on the state volume"] = (
            state.get("type") != "none" and state_file.startswith(state.get("mountPath", "").rstrip("/") + "/"))
    problems += [f"Deployment: not {k}" for k, ok in want.items() if not ok]
    return problems


def aws_cost_on(values):
    return bool(((values.get("config") or {}).get("sources") or {}).get("aws_cost", {}).get("enabled"))


def cost_rules_on(values):
    set_ = str(values.get("prometheusRule", {}).get("costRules", "")).lower()
    return set_ == "true" if set_ in ("true", "false") else aws_cost_on(values)


def rules_of(path_or_text):
    return yaml.safe_load(path_or_text)


def expected_rules(values, cost=False):
    """The source rules (polo.rules.yml, or polo-cost.rules.yml) with the substitutions the chart makes for these values."""
    pr = values.get("prometheusRule", {})
    if cost:
        default, base = DEFAULT_COST_RUNBOOK_BASE, pr.get("costRunbookBaseUrl", DEFAULT_COST_RUNBOOK_BASE).rstrip("/")
    else:
        default, base = DEFAULT_RUNBOOK_BASE, pr.get("runbookBaseUrl", DEFAULT_RUNBOOK_BASE).rstrip("/")
    grafana = pr.get("grafanaUrl", "").rstrip("/")
    job = values.get("serviceMonitor", {}).get("jobName", "polo-exporter")
    with open(COST_RULES_SOURCE if cost else RULES_SOURCE) as f:
        rules = yaml.safe_load(f)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["expr"] = rule["expr"].replace('job="polo-exporter"', f"job={json.dumps(job)}")
            ann = rule.get("annotations", {})
            if "runbook_url" in ann:
                ann["runbook_url"] = ann["runbook_url"].replace(default, base)
            if ann.get("dashboard_url", "").startswith("/d/"):
                ann["dashboard_url"] = grafana + ann["dashboard_url"]
    return rules


def prometheus_rule(name, objs, values):
    """The PrometheusRule equals the source rules (after the substitutions) and passes promtool."""
    pr = [o for o in objs if o["kind"] == "PrometheusRule"]
    if not values.get("prometheusRule", {}).get("enabled"):
        return "a PrometheusRule although prometheusRule.enabled is off" if pr else None
    cost = cost_rules_on(values)
    names = sorted(o["metadata"]["name"] for o in pr)
    if len(pr) != (2 if cost else 1) or (cost and not any(n.endswith("-cost") for n in names)):
        return f"PrometheusRules {names} with the cost rules {'on' if cost else 'off'}"
    for obj in pr:
        is_cost = obj["metadata"]["name"].endswith("-cost")
        source = "polo-cost.rules.yml" if is_cost else "polo.rules.yml"
        spec = obj["spec"]
        want = expected_rules(values, cost=is_cost)
        if spec != want:
            a = json.dumps(spec, indent=1, sort_keys=True).splitlines()
            b = json.dumps(want, indent=1, sort_keys=True).splitlines()
            import difflib
            return f"differs from deploy/prometheus/rules/{source}:\n" + "\n".join(list(difflib.unified_diff(b, a, "expected", "rendered", lineterm="", n=1))[:20])
        path = os.path.join(TMP, f"{name}-{source}")
        with open(path, "w") as f:
            yaml.safe_dump(spec, f, sort_keys=False, allow_unicode=True)
        out = run([PROMTOOL, "check", "rules", path])
        if out.returncode != 0:
            return f"promtool check rules ({source}):\n" + out.stdout + out.stderr
    return None


def start_promtool_test(path):
    """Starts `promtool test rules` with every test file of polo.rules.yml against the PrometheusRule
    rendered for the scenario `path` (the slowest check, about 9 s: it runs while the others do)."""
    objs = objects_of(sync.render(ROOT, HELM, [path], release="polo", namespace="monitoring"))
    prs = {("cost" if o["metadata"]["name"].endswith("-cost") else "main"): o for o in objs if o["kind"] == "PrometheusRule"}
    work = tempfile.mkdtemp(dir=TMP)
    for which, pr in prs.items():
        with open(os.path.join(work, f"rendered-{which}.rules.yml"), "w") as f:
            yaml.safe_dump(pr["spec"], f, sort_keys=False, allow_unicode=True)
    names = []
    for i, test in enumerate(RULES_TESTS):
        with open(test) as f:
            tests = yaml.safe_load(f)
        which = {"polo.rules.yml": "main", "polo-cost.rules.yml": "cost"}
        files = [which[os.path.basename(r)] for r in tests.get("rule_files", []) if os.path.basename(r) in which]
        if not files or any(w not in prs for w in files):
            continue
        tests["rule_files"] = [f"rendered-{w}.rules.yml" for w in files]
        names.append(f"test-{i}.yml")
        with open(os.path.join(work, names[-1]), "w") as f:
            yaml.safe_dump(tests, f, sort_keys=False, allow_unicode=True)
    return subprocess.Popen([PROMTOOL, "test", "rules", *names], cwd=work, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish_promtool_test(proc):
    out, _ = proc.communicate()
    return None if proc.returncode == 0 else out[-3000:]


def self_signed(folder):
    os.makedirs(folder, exist_ok=True)
    out = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=polo-exporter",
               "-keyout", os.path.join(folder, "tls.key"), "-out", os.path.join(folder, "tls.crt")])
    if out.returncode != 0:
        raise RuntimeError("openssl: " + out.stderr)
    shutil.copy(os.path.join(folder, "tls.crt"), os.path.join(folder, "ca.crt"))


def config_check(name, objs, values):
    """polo-exporter --config.check on the ConfigMap's file (and the web configuration, its
    /etc/polo-exporter paths rebased to a temp folder with a self-signed certificate)."""
    work = tempfile.mkdtemp(dir=TMP)
    cms = [o for o in objs if o["kind"] == "ConfigMap" and "polo-exporter.yml" in o.get("data", {})]
    if len(cms) != 1:
        return f"{len(cms)} ConfigMaps with polo-exporter.yml"
    os.makedirs(os.path.join(work, "config"))
    cfg = os.path.join(work, "config", "polo-exporter.yml")
    with open(cfg, "w") as f:
        f.write(cms[0]["data"]["polo-exporter.yml"])
    cmd = [EXPORTER, "--config.file", cfg, "--config.check"]
    env = dict(os.environ)
    dep = next(o for o in objs if o["kind"] == "Deployment")
    for e in dep["spec"]["template"]["spec"]["containers"][0].get("env", []):
        env[e["name"]] = e.get("value", "from-a-secret")
    if values.get("webConfig", {}).get("enabled"):
        secrets = [o for o in objs if o["kind"] == "Secret" and "web-config.yml" in o.get("stringData", {})]
        if len(secrets) != 1:
            return "webConfig.enabled but no chart-made web-config Secret to check"
        text = secrets[0]["stringData"]["web-config.yml"].replace("/etc/polo-exporter/", work + "/")
        os.makedirs(os.path.join(work, "web"))
        with open(os.path.join(work, "web", "web-config.yml"), "w") as f:
            f.write(text)
        self_signed(os.path.join(work, "tls"))
        cmd += ["--web.config.file", os.path.join(work, "web", "web-config.yml")]
    out = run(cmd, env=env)
    if out.returncode != 0 or "config OK" not in out.stdout:
        return (out.stdout + out.stderr).strip()
    return None


def probes_answer(name, objs, values):
    """The Deployment's probes, sent as the kubelet sends them (path, scheme, httpHeaders; a TCP
    connect for tcpSocket), to a real exporter running the scenario's configuration and web
    configuration on a free port: each must succeed; with an Authorization header, the same request
    without it must get 401 (the header is what lets the probe through)."""
    import socket
    import ssl
    import urllib.error
    import urllib.request
    sys.path.insert(0, os.path.join(ROOT, "dev", "stack"))
    from stack import free_port, wait_for

    work = tempfile.mkdtemp(dir=TMP)
    (cm,) = [o for o in objs if o["kind"] == "ConfigMap" and "polo-exporter.yml" in o.get("data", {})]
    cfg = os.path.join(work, "polo-exporter.yml")
    text = cm["data"]["polo-exporter.yml"]
    state = values.get("stateVolume", {}).get("mountPath", "/var/lib/polo-exporter")
    text = text.replace(state, os.path.join(work, "state"))
    os.makedirs(os.path.join(work, "state"))
    with open(cfg, "w") as f:
        f.write(text)
    port = free_port()
    cmd = [EXPORTER, "--config.file", cfg, f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"]
    env = dict(os.environ)
    dep = next(o for o in objs if o["kind"] == "Deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    for e in container.get("env", []):
        env[e["name"]] = e.get("value", "from-a-secret")
    if values.get("webConfig", {}).get("enabled"):
        (secret,) = [o for o in objs if o["kind"] == "Secret" and "web-config.yml" in o.get("stringData", {})]
        os.makedirs(os.path.join(work, "web"))
        with open(os.path.join(work, "web", "web-config.yml"), "w") as f:
            f.write(secret["stringData"]["web-config.yml"].replace("/etc/polo-exporter/", work + "/"))
        self_signed(os.path.join(work, "tls"))
        cmd += ["--web.config.file", os.path.join(work, "web", "web-config.yml")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # The kubelet does not verify the certificate of an HTTPS probe.
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    problems = []
    try:
        wait_for("the exporter", lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True, 30)
        for probe in ("livenessProbe", "readinessProbe"):
            p = container[probe]
            if "tcpSocket" in p:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                continue
            g = p["httpGet"]
            url = f"{g.get('scheme', 'HTTP').lower()}://127.0.0.1:{port}{g['path']}"
            headers = {h["name"]: h["value"] for h in g.get("httpHeaders", [])}

            def status(hdrs):
                try:
                    return urllib.request.urlopen(urllib.request.Request(url, headers=hdrs), timeout=5, context=insecure).status
                except urllib.error.HTTPError as e:
                    return e.code
            got = status(headers)
            if not 200 <= got < 400:
                problems.append(f"{probe} GET {url} with {sorted(headers)}: {got}")
            if "Authorization" in headers and status({}) != 401:
                problems.append(f"{probe} GET {url} without the Authorization header was not refused (401)")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    if problems and err:
        problems.append("exporter: " + err[-500:])
    return "\n".join(problems)


def image(objs):
    """The default image is the one a release publishes: ghcr.io/polo/polo-exporter:<appVersion>,
    and Chart.yaml's artifacthub.io/images names it."""
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    want = f"{IMAGE_REPOSITORY}:{chart['appVersion']}"
    dep = next(o for o in objs if o["kind"] == "Deployment")
    got = dep["spec"]["template"]["spec"]["containers"][0]["image"]
    listed = [i.get("image") for i in yaml.safe_load(chart.get("annotations", {}).get("artifacthub.io/images", "[]"))]
    problems = []
    if got != want:
        problems.append(f"default image {got}, expected {want}")
    if listed != [want]:
        problems.append(f"Chart.yaml artifacthub.io/images lists {listed}, expected [{want}]")
    return "\n".join(problems)


def service_monitor(objs, values):
    sm = [o for o in objs if o["kind"] == "ServiceMonitor"]
    on = values.get("serviceMonitor", {}).get("enabled", False)
    if len(sm) != (1 if on else 0):
        return f"{len(sm)} ServiceMonitors with serviceMonitor.enabled={on}"
    if not on:
        return None
    ep = sm[0]["spec"]["endpoints"][0]
    svc = next(o for o in objs if o["kind"] == "Service")
    problems = []
    if ep["port"] not in [p["name"] for p in svc["spec"]["ports"]]:
        problems.append(f"endpoint port {ep['port']} is not a Service port")
    if sm[0]["spec"]["selector"]["matchLabels"].items() - svc["metadata"]["labels"].items():
        problems.append("selector does not match the Service's labels")
    job = values.get("serviceMonitor", {}).get("jobName", "polo-exporter")
    if not any(r.get("targetLabel") == "job" and r.get("replacement") == job for r in ep.get("relabelings", [])):
        problems.append(f"no relabeling setting job={job}")
    web = values.get("webConfig", {})
    tls = web.get("enabled") and "tls_server_config" in web.get("config", {})
    if (ep.get("scheme") == "https") != bool(tls):
        problems.append(f"scheme {ep.get('scheme')} with tls_server_config {'set' if tls else 'unset'}")
    if tls and values["serviceMonitor"].get("tlsConfig") and "tlsConfig" not in ep:
        problems.append("no tlsConfig")
    if values["serviceMonitor"].get("basicAuth") and "basicAuth" not in ep:
        problems.append("no basicAuth")
    return "; ".join(problems)


def scenario(path):
    name = os.path.basename(path)[: -len("-values.yaml")]
    with open(path) as f:
        overrides = yaml.safe_load(f) or {}
    with open(os.path.join(CHART, "values.yaml")) as f:
        values = merge(yaml.safe_load(f), overrides)

    def lint():
        out = run([HELM, "lint", "--strict", CHART, "-f", path])
        return None if out.returncode == 0 else out.stdout + out.stderr

    check(f"{name}: helm lint --strict", lint)
    try:
        objs = objects_of(sync.render(ROOT, HELM, [path], release="polo", namespace="monitoring"))
    except Exception as e:  # noqa: BLE001
        check(f"{name}: helm template", lambda: str(e))
        return
    check(f"{name}: helm template ({', '.join(sorted(key(o).split('/')[0] for o in objs))})", lambda: None)
    check(f"{name}: core kinds valid (kubernetes-validate --strict, {K8S_VERSION})", lambda: "\n".join(validate_core(objs)))
    check(f"{name}: ServiceMonitor/PrometheusRule valid (models, tsc)", lambda: "\n".join(validate_crds(objs)))
    check(f"{name}: pod hardened, probes, args", lambda: "\n".join(hardened(objs, values)))
    check(f"{name}: ServiceMonitor", service_monitor, objs, values)
    check(f"{name}: PrometheusRule = polo.rules.yml (and polo-cost.rules.yml with the aws_cost source), promtool check rules", prometheus_rule, name, objs, values)
    check(f"{name}: polo-exporter --config.check", config_check, name, objs, values)
    check(f"{name}: the probes, sent as the kubelet does, answer on a real exporter with this configuration", probes_answer, name, objs, values)
    if values.get("grafanaDashboard", {}).get("enabled"):
        def dashboard():
            (cm,) = [o for o in objs if o["kind"] == "ConfigMap" and "polo-system-status.json" in o.get("data", {})]
            if cm["metadata"]["labels"].get("grafana_dashboard") != "1":
                return "no grafana_dashboard: \"1\" label"
            with open(os.path.join(ROOT, "deploy/grafana/dashboards/polo-system-status.json")) as f:
                if json.loads(cm["data"]["polo-system-status.json"]) != json.load(f):
                    return "the ConfigMap's dashboard differs from deploy/grafana/dashboards/polo-system-status.json"
            return None
        check(f"{name}: dashboard ConfigMap", dashboard)
    return objs, values


def merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ------------------------------------------------------------------------------ repository-wide
def schema_keys(schema, prefix=""):
    """Keys of the strict (additionalProperties: false) objects of values.schema.json."""
    if schema.get("additionalProperties") is False:
        for k, sub in schema["properties"].items():
            path = f"{prefix}.{k}" if prefix else k
            yield path
            yield from schema_keys(sub, path)


def in_sync():
    text = sync.read(ROOT, f"{sync.CHART}/values.yaml")
    missing = sync.undocumented(text)
    problems = [f"values.yaml: undocumented keys: {', '.join(missing)}"] if missing else []
    values = yaml.safe_load(text)
    with open(os.path.join(CHART, "values.schema.json")) as f:
        for path in schema_keys(json.load(f)):
            try:
                sync.lookup(values, path)
            except KeyError:
                if path != "global":
                    problems.append(f"values.schema.json has {path}, values.yaml does not")
    drifted = sync.drift(ROOT, HELM)
    for path, diff in drifted:
        if path in DEFERRED:
            print(f"note {path}: values table out of date, not failing: {DEFERRED[path]}")
            continue
        problems.append(f"{path} drifted:\n{diff}")
    if any(path not in DEFERRED for path, _ in drifted):
        problems.append("run `scripts/check-helm --sync`")
    return "\n".join(problems)


def drift_detected():
    """On a copy of the repository's relevant files, each perturbed source must be reported."""
    work = tempfile.mkdtemp(dir=TMP)
    for rel in ["docs/operations.md", "deploy/helm", "deploy/kubernetes", "deploy/prometheus/rules", "deploy/grafana/dashboards"]:
        src, dst = os.path.join(ROOT, rel), os.path.join(work, rel)
        if os.path.isdir(src):
            shutil.copytree(src, dst)
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(src, dst)
    if [d for d in sync.drift(work, HELM) if d[0] not in DEFERRED]:
        return "the unperturbed copy already drifts"

    def edit(rel, fn):
        p = os.path.join(work, rel)
        with open(p) as f:
            text = f.read()
        with open(p, "w") as f:
            f.write(fn(text))

    edit("deploy/prometheus/rules/polo.rules.yml", lambda t: t.replace("for: 5m", "for: 6m", 1))
    edit("deploy/grafana/dashboards/polo-system-status.json", lambda t: t.replace('"Polo System Status"', '"Polo System Status 2"', 1))
    edit("deploy/kubernetes/deployment.yaml", lambda t: t.replace("replicas: 1", "replicas: 2", 1))
    edit(f"{sync.CHART}/values.yaml", lambda t: t.replace("# -- Service type", "# -- The Service type", 1))
    edit(f"{sync.CHART}/templates/service.yaml", lambda t: t.replace("protocol: TCP", "protocol: TCP\n      appProtocol: http", 1))
    got = {path for path, _ in sync.drift(work, HELM)}
    want = {f"{sync.CHART}/files/polo.rules.yml", f"{sync.CHART}/files/polo-system-status.json",
            "deploy/kubernetes/deployment.yaml", "deploy/kubernetes/service.yaml", "docs/operations.md", f"{sync.CHART}/README.md"}
    if got != want:
        return f"reported {sorted(got)}, expected {sorted(want)}"
    sync.write(work, HELM)
    left = [d for d in sync.drift(work, HELM) if d[0] not in DEFERRED]
    return f"still drifting after write(): {left}" if left else None


def kustomize_equals_defaults():
    out = run([KUBECTL, "kustomize", os.path.join(ROOT, sync.KUBERNETES)])
    if out.returncode != 0:
        return out.stderr
    plain = sorted((objects_of(out.stdout)), key=key)
    chart = sorted(objects_of(sync.render(ROOT, HELM)), key=key)
    if plain != chart:
        return f"differ: kustomize {[key(o) for o in plain]} vs chart {[key(o) for o in chart]}" + (
            "" if [key(o) for o in plain] != [key(o) for o in chart] else " (same objects, different content)")
    return None


def overlay_example():
    """dev/helm/overlay-example (the recipe of docs/operations.md, "Without Helm") renders, is valid and its configuration passes."""
    out = run([KUBECTL, "kustomize", os.path.join(ROOT, "dev/helm/overlay-example")])
    if out.returncode != 0:
        return out.stderr
    objs = objects_of(out.stdout)
    problems = validate_core(objs)
    dep = next(o for o in objs if o["kind"] == "Deployment")
    env = dep["spec"]["template"]["spec"]["containers"][0].get("env", [])
    if [e["name"] for e in env] != ["POLO_CLICKHOUSE_PASSWORD"]:
        problems.append(f"Deployment env: {env}")
    (cm,) = [o for o in objs if o["kind"] == "ConfigMap"]
    volumes = dep["spec"]["template"]["spec"]["volumes"]
    if cm["metadata"]["name"] not in [v.get("configMap", {}).get("name") for v in volumes]:
        problems.append(f"the Deployment does not mount ConfigMap {cm['metadata']['name']}")
    problems.append(config_check("overlay-example", objs, {}) or "")
    return "\n".join(p for p in problems if p)


def app_version():
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        cargo = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), flags=re.M).group(1)
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        app = str(yaml.safe_load(f)["appVersion"])
    return None if app == cargo else f"Chart.yaml appVersion {app} != Cargo.toml version {cargo}"


def validators_reject(default_objs):
    """Each validator used above rejects a broken object: the checks can fail (values.schema.json too)."""
    problems = []
    dep = copy.deepcopy(next(o for o in default_objs if o["kind"] == "Deployment"))
    dep["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    bad_type = copy.deepcopy(next(o for o in default_objs if o["kind"] == "Service"))
    bad_type["spec"]["ports"][0]["port"] = "ninety"
    for obj, what in ((dep, "unknown Deployment field"), (bad_type, "string Service port")):
        if not validate_core([obj]):
            problems.append(f"kubernetes-validate accepted an {what}")
    sm = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"},
          "spec": {"selector": {"matchLabels": {"a": "b"}}, "endpoints": [{"port": "http", "interval": "15 seconds"}]}}
    if not validate_crds([sm]):
        problems.append("the models accepted interval: 15 seconds")
    sm["spec"]["endpoints"][0] = {"port": "http", "metricRelabeling": []}
    if not validate_crds([sm]):
        problems.append("tsc accepted an unknown ServiceMonitor field (metricRelabeling)")
    bad_rules = os.path.join(TMP, "bad.rules.yml")
    with open(bad_rules, "w") as f:
        f.write("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(up\n")
    if run([PROMTOOL, "check", "rules", bad_rules]).returncode == 0:
        problems.append("promtool accepted a broken expression")
    cfg = os.path.join(TMP, "bad.yml")
    (cm,) = [o for o in default_objs if o["kind"] == "ConfigMap"]
    with open(cfg, "w") as f:
        f.write(cm["data"]["polo-exporter.yml"].replace("database:", "databse:"))
    if run([EXPORTER, "--config.file", cfg, "--config.check"]).returncode == 0:
        problems.append("polo-exporter --config.check accepted clickhouse.databse")
    out = run([HELM, "template", "x", CHART, "--set", "config.clickhouse.password=inline"])
    if out.returncode == 0:
        problems.append("the chart rendered an inline config.clickhouse.password")
    out = run([HELM, "lint", "--strict", CHART, "--set", "serviceMonitor.enable=true"])
    if out.returncode == 0 or "enable" not in out.stdout + out.stderr:
        problems.append("helm lint --strict accepted serviceMonitor.enable (values.schema.json)")
    for bad, what in (("stateVolume.type=hostPath", "stateVolume.type hostPath"),
                      ("webConfig.probeAuth.pasword=x", "webConfig.probeAuth.pasword"),
                      ("stateVolume.size=lots", "stateVolume.size lots")):
        out = run([HELM, "lint", "--strict", CHART, "--set", bad])
        if out.returncode == 0:
            problems.append(f"helm lint --strict accepted {what} (values.schema.json)")
    out = run([HELM, "template", "x", CHART, "--set", "webConfig.enabled=true", "--set", "webConfig.probeAuth.existingSecret=probe"])
    if out.returncode == 0 or "cannot read Secrets" not in out.stderr:
        problems.append("helm template with webConfig.probeAuth.existingSecret did not fail with its explanation: " + out.stderr[-300:])
    out = run([HELM, "template", "x", CHART, "--set", "webConfig.enabled=true", "--set", "webConfig.probeAuth.password=p"])
    if out.returncode == 0:
        problems.append("the chart rendered webConfig.probeAuth.password without a username")
    # The probe check can fail: a wrong probe password gets 401 from a real exporter.
    web = os.path.join(CHART, "ci", "web-config-values.yaml")
    objs = objects_of(sync.render(ROOT, HELM, [web], release="polo", namespace="monitoring",
                                  extra=["--set", "webConfig.probeAuth.password=wrong"]))
    with open(web) as f:
        values = merge(yaml.safe_load(open(os.path.join(CHART, "values.yaml"))), yaml.safe_load(f))
    if not probes_answer("wrong-probe-password", objs, values):
        problems.append("the probe check passed with a wrong probe password")
    return "\n".join(problems)


def main():
    start = time.monotonic()
    print(f"check-helm: {run([HELM, 'version', '--short']).stdout.strip()}, "
          f"kubectl {run([KUBECTL, 'version', '--client']).stdout.split()[2]}, "
          f"{run([PROMTOOL, '--version']).stdout.splitlines()[0] if shutil.which(PROMTOOL) else 'no promtool'}, "
          f"kubernetes-validate {kv.__version__ if hasattr(kv, '__version__') else ''}".rstrip(", "))
    check("generated files in sync (rules, dashboard, deploy/kubernetes, values tables); values.yaml documented and = values.schema.json", in_sync)
    check("drift is detected on a perturbed copy (rules, dashboard, manifests, values doc, template)", drift_detected)
    check("Chart.yaml appVersion = Cargo.toml version", app_version)
    check(f"default image {IMAGE_REPOSITORY}:<appVersion>, listed in Chart.yaml", image, objects_of(sync.render(ROOT, HELM)))
    # The scenario whose PrometheusRule keeps the URLs and the job name the rule tests expect.
    plain_rules = None
    for path in SCENARIOS:
        with open(path) as f:
            v = merge(yaml.safe_load(open(os.path.join(CHART, "values.yaml"))), yaml.safe_load(f) or {})
        pr = v["prometheusRule"]
        if pr["enabled"] and pr["runbookBaseUrl"] == DEFAULT_RUNBOOK_BASE and not pr["grafanaUrl"] \
                and pr["costRunbookBaseUrl"] == DEFAULT_COST_RUNBOOK_BASE and v["serviceMonitor"]["jobName"] == "polo-exporter":
            plain_rules = path
            break
    rule_test = start_promtool_test(plain_rules) if plain_rules else None
    results = {}
    for path in SCENARIOS:
        r = scenario(path)
        if r:
            results[os.path.basename(path)] = r
    check("kubectl kustomize deploy/kubernetes = helm template of the defaults", kustomize_equals_defaults)
    check("dev/helm/overlay-example: renders, valid, --config.check on its configuration", overlay_example)
    if rule_test:
        check(f"promtool test rules tests/prometheus/*.test.yml on the PrometheusRule of {os.path.basename(plain_rules)}",
              finish_promtool_test, rule_test)
    else:
        check("promtool test rules: a ci scenario with the PrometheusRule and the default URLs and job", lambda: "none")
    if "default-values.yaml" in results:
        check("validators, promtool, --config.check and the chart reject broken input", validators_reject, results["default-values.yaml"][0])
    else:
        check("ci/default-values.yaml exists", lambda: "missing")
    shutil.rmtree(TMP, ignore_errors=True)
    print(f"check-helm: {passed} passed, {failed} failed ({time.monotonic() - start:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
