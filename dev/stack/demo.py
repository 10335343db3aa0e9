#!/usr/bin/env python3
"""scripts/demo: the whole stack on the usual ports, printing alerts as they fire, until Ctrl-C."""

import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import Stack, wait_for  # noqa: E402

PORTS = {"clickhouse": 8123, "aws": 4566, "exporter": 9820, "prometheus": 9090, "alertmanager": 9093, "sink": 9095}
KEY_LABELS = ("collector", "aws_account_id", "aws_region", "queue", "function", "replica", "disk", "source")


def main():
    workdir = tempfile.mkdtemp(prefix="polo-demo-")
    # Demo overlay: rules fire after 30 s instead of their production `for:`.
    stack = Stack(workdir, ports=PORTS, rule_for="30s", interval="15s")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1) or (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        print("starting the dev ClickHouse, dev AWS, the exporter, Alertmanager and Prometheus ...", flush=True)
        stack.start()
        print(f"""
polo-exporter demo is running (work directory {workdir}):
  exporter       http://127.0.0.1:9820/metrics   status: http://127.0.0.1:9820/api/v1/system/status
  Prometheus     http://127.0.0.1:9090/alerts     (the shipped rules, `for:` shortened to 30 s by an overlay)
  Alertmanager   http://127.0.0.1:9093            (the shipped routing; receivers point at a local sink)
  notifications  {workdir}/notifications.jsonl
  dev ClickHouse http://127.0.0.1:8123            dev AWS http://127.0.0.1:4566
Press Ctrl-C to stop everything.
""", flush=True)
        wait_for("exporter target up", lambda: [r for r in stack.query('up{job="polo-exporter"}') if r["value"][1] == "1"], 120)
        print("Prometheus scrapes the exporter; alerts appear below as they fire:", flush=True)
        counts = {}
        while True:
            by_name = {}
            for alert in stack.firing():
                by_name.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
            for name, alerts in sorted(by_name.items()):
                if counts.get(name) == len(alerts):
                    continue
                counts[name] = len(alerts)
                first = alerts[0]
                example = " ".join(f"{k}={first[k]}" for k in KEY_LABELS if k in first)
                more = f" (+{len(alerts) - 1} more)" if len(alerts) > 1 else ""
                print(f"  FIRING  {name:<30} {first.get('severity', ''):<9} {len(alerts):>4} × e.g. {example}{more}", flush=True)
            time.sleep(5)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping ...", flush=True)
        stack.stop()
        print("demo stopped", flush=True)


if __name__ == "__main__":
    main()
