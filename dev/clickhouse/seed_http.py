#!/usr/bin/env python3
"""Loads Polo's schema and the demo data into a real ClickHouse server over HTTP (used by the
docker-compose `seed` service); keeps inserting the runs that fall due unless --static."""

import argparse
import os
import re
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import demo_data  # noqa: E402


class HttpEngine:
    """The `query` interface of server.Engine, over ClickHouse's HTTP interface."""

    def __init__(self, url):
        self.url = url.rstrip("/")

    def query(self, sql, fmt="TabSeparated", settings=None, database=None):
        req = urllib.request.Request(self.url + "/?default_format=" + fmt, data=sql.encode("utf-8"), method="POST")
        return urllib.request.urlopen(req, timeout=300).read()

    def run_script(self, path):
        with open(path, encoding="utf-8") as f:
            text = "\n".join(line for line in f.read().splitlines() if not line.strip().startswith("--"))
        for statement in re.split(r";\s*\n", text):
            if statement.strip():
                self.query(statement)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8123")
    parser.add_argument("--static", action="store_true")
    args = parser.parse_args()
    engine = HttpEngine(args.url)
    for _ in range(120):
        try:
            urllib.request.urlopen(args.url + "/ping", timeout=2).read()
            break
        except Exception:  # noqa: BLE001 - server starting
            time.sleep(1)
    engine.run_script(os.path.join(os.path.dirname(os.path.dirname(HERE)), "deploy", "clickhouse", "schema.sql"))
    if int(engine.query("SELECT count() FROM polo.collector_runs").strip() or 0) == 0:
        demo_data.seed(engine, live=not args.static)
    elif not args.static:
        print("seed: data present, not seeding again", flush=True)
    while not args.static:
        time.sleep(3600)


if __name__ == "__main__":
    main()
