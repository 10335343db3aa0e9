#!/usr/bin/env python3
"""Runs Alertmanager with the shipped routes and inhibit rules (receivers swapped for a local
webhook nobody listens on), posts alerts and checks which ones it reports as inhibited."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "stack"))
from stack import free_port, wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))



def alert(name, severity, **labels):
    return {"labels": {"alertname": name, "severity": severity, **labels}, "annotations": {"summary": name}}


# (alert, inhibited?) — each case on its own instance/job so cases do not interact.
CASES = [
    # Exporter target down silences that instance's alerts, not another instance's or the watchdog.
    (alert("PoloExporterDown", "critical", job="polo-exporter", instance="a:9820"), False),
    (alert("PoloCollectorStale", "critical", job="polo-exporter", instance="a:9820", collector="c1", aws_account_id="1", aws_region="r"), True),
    (alert("PoloDeadLetterQueueNotEmpty", "critical", job="polo-exporter", instance="a:9820", queue="q-dlq"), True),
    (alert("PoloCollectorStale", "critical", job="polo-exporter", instance="a2:9820", collector="c1", aws_account_id="1", aws_region="r"), False),
    (alert("PoloWatchdog", "none"), False),
    # Job absent (no instance label) silences the whole job.
    (alert("PoloExporterDown", "critical", job="polo-absent"), False),
    (alert("PoloAccountNoAccess", "warning", job="polo-absent", instance="z:9820", aws_account_id="9"), True),
    # ClickHouse unreadable by collector_runs: collector alerts and not-scanned silenced, others not.
    (alert("PoloExporterSourceDown", "critical", job="polo-exporter", instance="b:9820", source="collector_runs"), False),
    (alert("PoloCollectorFailing", "warning", job="polo-exporter", instance="b:9820", collector="c2", aws_account_id="2", aws_region="r"), True),
    (alert("PoloAccountNotScanned", "warning", job="polo-exporter", instance="b:9820", aws_account_id="2"), True),
    (alert("PoloAccountNoAccess", "warning", job="polo-exporter", instance="b:9820", aws_account_id="3"), False),
    (alert("PoloClickHouseDiskAlmostFull", "warning", job="polo-exporter", instance="b:9820", replica="ch", disk="default"), False),
    # Accounts source down silences account alerts.
    (alert("PoloExporterSourceDown", "critical", job="polo-exporter", instance="c:9820", source="accounts"), False),
    (alert("PoloAccountPendingSetup", "warning", job="polo-exporter", instance="c:9820", aws_account_id="4"), True),
    # Critical silences the warning of the same key, not of another key.
    (alert("PoloCollectorStale", "critical", job="polo-exporter", instance="d:9820", collector="c3", aws_account_id="5", aws_region="r"), False),
    (alert("PoloCollectorFailing", "warning", job="polo-exporter", instance="d:9820", collector="c3", aws_account_id="5", aws_region="r"), True),
    (alert("PoloCollectorFailing", "warning", job="polo-exporter", instance="d:9820", collector="c3", aws_account_id="6", aws_region="r"), False),
]


def main():
    tmp = tempfile.mkdtemp(prefix="polo-am-")
    try:
        with open(os.path.join(ROOT, "deploy/alertmanager/alertmanager.yml")) as f:
            cfg = yaml.safe_load(f)
        sink = {"url": "http://127.0.0.1:9/discard", "send_resolved": False}
        cfg["receivers"] = [{"name": r["name"], "webhook_configs": [sink]} if r["name"] != "blackhole" else r for r in cfg["receivers"]]
        cfg["templates"] = [os.path.join(ROOT, "deploy/alertmanager/templates/*.tmpl")]
        path = os.path.join(tmp, "alertmanager.yml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        port = free_port()
        proc = subprocess.Popen(
            [shutil.which("prometheus-alertmanager") or "alertmanager", f"--config.file={path}", f"--storage.path={tmp}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "am.log"), "w"))
        try:
            base = f"http://127.0.0.1:{port}/api/v2"
            wait_for("Alertmanager", lambda: urllib.request.urlopen(base + "/status", timeout=1).read(), 20)
            body = json.dumps([c[0] for c in CASES]).encode()
            urllib.request.urlopen(urllib.request.Request(base + "/alerts", data=body, method="POST", headers={"Content-Type": "application/json"}), timeout=5)
            time.sleep(0.5)
            got = json.load(urllib.request.urlopen(base + "/alerts", timeout=5))
        finally:
            proc.terminate()
            proc.wait()
        by_labels = {json.dumps(a["labels"], sort_keys=True): a for a in got}
        wrong = []
        for sent, want_inhibited in CASES:
            a = by_labels.get(json.dumps(sent["labels"], sort_keys=True))
            if a is None:
                wrong.append(f"missing: {sent['labels']}")
                continue
            inhibited = bool(a["status"]["inhibitedBy"])
            if inhibited != want_inhibited:
                wrong.append(f"{'inhibited' if inhibited else 'not inhibited'} but expected the opposite: {sent['labels']}")
        if wrong:
            print("\n".join(wrong))
            return 1
        print(f"{len(CASES)} alerts, inhibitions as expected")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
