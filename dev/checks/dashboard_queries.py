#!/usr/bin/env python3
"""Every query of the dashboard and every variable query is valid PromQL for a real Prometheus
(Debian's 2.42): a Prometheus is started with the shipped rules and each expression is sent to
its query API with the dashboard variables substituted."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "stack"))
from stack import free_port, wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUBSTITUTIONS = {"$__rate_interval": "1m", "$instance": ".*", "$job": ".*", "$collector": "config_ec2"}



def main():
    with open(os.path.join(ROOT, "deploy/grafana/dashboards/polo-system-status.json")) as f:
        d = json.load(f)
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    for v in d["templating"]["list"]:
        q = v.get("query")
        if isinstance(q, dict) and q.get("query", "").startswith("label_values("):
            inner = q["query"][len("label_values("):].rsplit(",", 1)[0]
            exprs.append(inner)
    tmp = tempfile.mkdtemp(prefix="polo-prom-")
    try:
        shutil.copytree(os.path.join(ROOT, "deploy/prometheus/rules"), os.path.join(tmp, "rules"))
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write("global: {scrape_interval: 15s}\nrule_files: [rules/polo.rules.yml]\n")
        port = free_port()
        proc = subprocess.Popen(
            [shutil.which("prometheus"), f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "prometheus.log"), "w"))
        try:
            base = f"http://127.0.0.1:{port}/api/v1"
            wait_for("Prometheus", lambda: urllib.request.urlopen(base + "/status/buildinfo", timeout=1).read(), 30)
            bad = []
            for expr in exprs:
                q = expr
                for k, v in SUBSTITUTIONS.items():
                    q = q.replace(k, v)
                try:
                    urllib.request.urlopen(base + "/query?" + urllib.parse.urlencode({"query": q}), timeout=10)
                except urllib.error.HTTPError as e:
                    bad.append(f"{expr}\n  -> {e.read().decode()[:300]}")
            rules = json.load(urllib.request.urlopen(base + "/rules", timeout=10))
            loaded = sum(len(g["rules"]) for g in rules["data"]["groups"])
        finally:
            proc.terminate()
            proc.wait()
        if bad:
            print("\n".join(bad))
            return 1
        with open(os.path.join(ROOT, "deploy/prometheus/rules/polo.rules.yml")) as f:
            expected = sum(len(g["rules"]) for g in yaml.safe_load(f)["groups"])
        if loaded != expected:
            print(f"Prometheus loaded {loaded} rules, the file has {expected}")
            return 1
        print(f"{len(exprs)} dashboard queries valid; {loaded} rules loaded by Prometheus")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
