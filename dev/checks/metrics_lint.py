#!/usr/bin/env python3
"""`promtool check metrics` on what the exporter really serves: the dev ClickHouse with the demo
data, the exporter with examples/local.yml, /metrics fetched in the classic text format (the
only one promtool reads) after a few scrapes, so every family has samples."""

import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "stack"))
from stack import free_port, wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))





def main():
    binary = os.path.join(ROOT, "target", "debug", "polo-exporter")
    ch_port, port, aws_port = free_port(), free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="polo-lint-")
    ch = subprocess.Popen([sys.executable, os.path.join(ROOT, "dev/clickhouse/server.py"), "--port", str(ch_port), "--seed", "demo", "--static"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    aws = subprocess.Popen([sys.executable, os.path.join(ROOT, "dev/aws/server.py"), "--port", str(aws_port), "--seed", "demo", "--static"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    exporter = None
    try:
        wait_for("dev ClickHouse", lambda: urllib.request.urlopen(f"http://127.0.0.1:{ch_port}/ping", timeout=2).read(), 120)
        wait_for("dev AWS", lambda: urllib.request.urlopen(f"http://127.0.0.1:{aws_port}/_polo/stats", timeout=2).read(), 60)
        with open(os.path.join(ROOT, "examples/local.yml")) as f:
            cfg = f.read().replace("http://127.0.0.1:8123", f"http://127.0.0.1:{ch_port}").replace("query_log_delay: 3s", "query_log_delay: 1s").replace("http://127.0.0.1:4566", f"http://127.0.0.1:{aws_port}")
        path = os.path.join(tmp, "exporter.yml")
        with open(path, "w") as f:
            f.write(cfg)
        env = dict(os.environ, AWS_ACCESS_KEY_ID="lint", AWS_SECRET_ACCESS_KEY="lint", AWS_EC2_METADATA_DISABLED="true")
        exporter = subprocess.Popen([binary, "--config.file", path, "--web.listen-address", f"127.0.0.1:{port}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wait_for("exporter", lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read(), 20)
        # Queries that are not the exporter's, so the latency histogram has samples.
        for _ in range(3):
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{ch_port}/", data=b"SELECT count() FROM polo.collector_runs"), timeout=10).read()
        for _ in range(3):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read()
            time.sleep(1)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": "text/plain;version=0.0.4"})
        resp = urllib.request.urlopen(req, timeout=30)
        body = resp.read()
        if not resp.headers["Content-Type"].startswith("text/plain; version=0.0.4"):
            print("unexpected content type " + resp.headers["Content-Type"])
            return 1
        lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
        families = sum(1 for line in body.decode().splitlines() if line.startswith("# TYPE "))
        if lint.returncode != 0 or lint.stdout.strip() or lint.stderr.strip():
            print((lint.stdout + lint.stderr).decode())
            return 1
        for needed in (b"polo_clickhouse_query_duration_seconds_bucket", b"polo_sqs_messages_visible{", b"polo_lambda_errors{", b"polo_collector_last_run_status{"):
            if needed not in body:
                print(f"no samples of {needed.decode()}")
                return 1
        print(f"promtool check metrics: {families} families, no problems")
        return 0
    finally:
        for p in (exporter, ch, aws):
            if p:
                p.terminate()
                p.wait()


if __name__ == "__main__":
    sys.exit(main())
