#!/usr/bin/env python3
"""scripts/simulate: a production-shaped Polo in compressed time, through the whole shipped
stack (the exporter, Prometheus with the shipped rules, Alertmanager with the shipped routing and
a sink), scored from the receivers' side. docs/simulate.md describes the scenario format.

    simulate.py --scenario dev/simulate/scenarios/short.yml [--json] [--workdir DIR]

Exit 0 only if every incident's `expect` was met and nothing else paged.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "dev", "stack"))
sys.path.insert(0, HERE)
import scenario as scenario_mod  # noqa: E402
import score as score_mod  # noqa: E402
from stack import ROOT as _ROOT, Stack, get_json, wait_for  # noqa: E402,F401
from world import World  # noqa: E402

SCRAPE_S = 1  # scrape and evaluation interval of the run (a minute of production at time_scale 60)
SLACK_S = 12  # the pipeline's own delay: scrape, evaluation, group_wait, delivery, a source's read


def scaled(duration_text, scale, minimum=1.0):
    s = max(scenario_mod.seconds(duration_text, "duration") / scale, minimum)
    return f"{int(round(s * 1000))}ms"


def scale_expr(expr, scale):
    """Second constants compared with an age or a `_seconds` series, and range selectors, divided
    by time_scale (range selectors kept at 5 scrapes at least, so rate() has samples)."""
    def ranged(m):
        s = max(scenario_mod.seconds(m.group(1), "range") / scale, 5 * SCRAPE_S)
        return f"[{int(round(s * 1000))}ms]"
    expr = re.sub(r"\[(\d+[smhdw])\]", ranged, expr)
    return re.sub(r"(seconds\S*\s*>\s*)(\d+(?:\.\d+)?)\b", lambda m: f"{m.group(1)}{float(m.group(2)) / scale:g}", expr)


def rule_for_seconds():
    """Per alert of the shipped rules, its longest `for:` (production seconds)."""
    out = {}
    for name in sorted(os.listdir(os.path.join(ROOT, "deploy/prometheus/rules"))):
        if name.endswith(".rules.yml"):
            with open(os.path.join(ROOT, "deploy/prometheus/rules", name)) as f:
                for group in yaml.safe_load(f)["groups"]:
                    for rule in group["rules"]:
                        if "alert" in rule and "for" in rule:
                            out[rule["alert"]] = max(out.get(rule["alert"], 0), scenario_mod.seconds(rule["for"], "for"))
    return out


class TimedSink:
    """Alertmanager's webhook receiver: each notification with its receiver and the run second it arrived."""

    def __init__(self, path, port, t0):
        self.path, self.t0, self.lock = path, t0, threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with sink.lock, open(sink.path, "a") as f:
                    f.write(json.dumps({"receiver": self.path.strip("/"), "at_s": time.time() - sink.t0(), "notification": body}) + "\n")
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def notifications(self):
        if not os.path.exists(self.path):
            return []
        with self.lock, open(self.path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self):
        self.server.shutdown()


class SimStack(Stack):
    """The shipped stack with every duration divided by time_scale: `for:`, range selectors and
    second thresholds of the rules, Alertmanager's group and repeat intervals; the exporter's
    expected intervals from the scenario; the time intervals always in business hours."""

    def __init__(self, workdir, sc):
        super().__init__(workdir, rule_for="1s", interval=f"{SCRAPE_S}s")
        self.sc = sc
        self.t0 = None

    def overrides(self):
        scale = self.sc["time_scale"]
        intervals = {c: f"{int(round(v / scale * 1000))}ms" for c, v in self.sc["collectors"].items()}
        return {
            "sources.collector_runs.expected_intervals": intervals,
            "sources.collector_runs.default_expected_interval": max(intervals.values(), key=lambda s: int(s[:-2])),
            "sources.collector_runs.dependencies": None,
            # The smallest window the exporter accepts (production's 20 min would be 20 s here).
            "sources.collector_runs.late_arrival_window": "1m",
            "sources.aws_cost.enabled": False,
        }

    def _start_prometheus(self):
        super()._start_prometheus()
        # Rewrite the rules the base wrote with every duration scaled, then restart Prometheus on them.
        self._stop("prometheus")
        scale = self.sc["time_scale"]
        rules_dir = os.path.join(self.workdir, "prometheus", "rules")
        for name in sorted(os.listdir(os.path.join(ROOT, "deploy/prometheus/rules"))):
            if not name.endswith(".rules.yml"):
                continue
            with open(os.path.join(ROOT, "deploy/prometheus/rules", name)) as f:
                rules = yaml.safe_load(f)
            for group in rules["groups"]:
                group["interval"] = f"{SCRAPE_S}s"
                for rule in group["rules"]:
                    rule["expr"] = scale_expr(rule["expr"], scale)
                    for key in ("for", "keep_firing_for"):
                        if key in rule:
                            rule[key] = scaled(rule[key], scale)
            with open(os.path.join(rules_dir, name), "w") as f:
                yaml.safe_dump(rules, f, sort_keys=False)
        prom_dir = os.path.join(self.workdir, "prometheus")
        import shutil
        self._spawn("prometheus", [shutil.which("prometheus"), f"--config.file={prom_dir}/prometheus.yml",
                                   f"--storage.tsdb.path={prom_dir}/data", f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}"])
        wait_for("Prometheus", lambda: urllib.request.urlopen(self.url("prometheus") + "/-/ready", timeout=2).read(), 60)

    def _start_alertmanager(self):
        super()._start_alertmanager()
        path = os.path.join(self.workdir, "alertmanager", "alertmanager.yml")
        with open(path) as f:
            cfg = yaml.safe_load(f)
        scale = self.sc["time_scale"]

        def walk(route):
            for key in ("group_wait", "group_interval", "repeat_interval"):
                if key in route:
                    route[key] = scaled(route[key], scale, minimum=1.0 if key != "group_wait" else 0.0)
            for child in route.get("routes", []):
                walk(child)
        walk(cfg["route"])
        cfg["route"]["group_wait"] = f"{2 * SCRAPE_S}s"
        cfg["time_intervals"] = [
            {"name": "business_hours", "time_intervals": [{"times": [{"start_time": "00:00", "end_time": "24:00"}]}]},
            {"name": "maintenance", "time_intervals": [{"years": ["1999"]}]},
        ]
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        urllib.request.urlopen(urllib.request.Request(self.url("alertmanager") + "/-/reload", data=b"", method="POST"), timeout=10)

    def start_sim(self):
        self.start_clickhouse(seed="empty")
        self.start_backend("aws", ["--seed", "empty"])
        self.t0 = time.time()
        self.world = World(self.sc, self.url("clickhouse"), self.url("aws"), self.t0)
        self.world.setup()
        self.world.start()
        self.start_exporter(self.overrides())
        self.sink = TimedSink(os.path.join(self.workdir, "notifications.jsonl"), self.ports["sink"], lambda: self.t0)
        self._start_alertmanager()
        self._start_prometheus()


def actions(sc):
    """(run second, what, incident) for the incidents the runner itself carries out. At one
    second: the ends of incidents that started before, then the starts, then the ends of
    incidents that start and end there. An exporter restart with start_s == end_s is one action
    (its start restarts at once): its end would start a second exporter on the port the first
    still holds (it exits, and the runner loses the first one's handle)."""
    out = []
    for inc in sc["incidents"]:
        if inc["kind"] in ("account_loses_access", "dlq_fills", "clickhouse_down", "exporter_restart"):
            instant = inc["end_s"] == inc["start_s"]
            out.append((inc["start_s"], "start", inc))
            if not (instant and inc["kind"] == "exporter_restart"):
                out.append((inc["end_s"], "end", inc))
    order = {"end": 0, "start": 1}
    return sorted(out, key=lambda a: (a[0], 2 if a[1] == "end" and a[2]["end_s"] == a[2]["start_s"] else order[a[1]]))


def carry_out(stack, what, inc):
    w = stack.world
    kind = inc["kind"]
    if kind == "account_loses_access":
        w.set_account_status(stack.sc["accounts"][inc["account"]], "no_access" if what == "start" else "active")
    elif kind == "dlq_fills":
        (w.fill_dlq(inc["queue"], inc["messages"]) if what == "start" else w.drain_dlq(inc["queue"]))
    elif kind == "clickhouse_down":
        if what == "start":
            w.ch_paused.set()
            stack.stop_clickhouse()
        else:
            stack.start_clickhouse(seed="empty")
            w.ch_paused.clear()
    elif kind == "exporter_restart" and what == "end":
        stack.start_exporter(stack.overrides())
    elif kind == "exporter_restart":
        stack._stop("exporter")
        if inc["end_s"] == inc["start_s"]:
            stack.start_exporter(stack.overrides())


def run(sc, workdir, tail_s, log):
    stack = SimStack(workdir, sc)
    try:
        stack.start_sim()
        log(f"stack up {time.time() - stack.t0:.1f} s into the run; {len(stack.world.keys)} keys; workdir {workdir}")
        for at, what, inc in actions(sc):
            delay = stack.t0 + at - time.time()
            if delay > 0:
                time.sleep(delay)
            log(f"{time.time() - stack.t0:6.1f} s  {what:5} {inc['name']}")
            carry_out(stack, what, inc)
        end = stack.t0 + sc["duration_s"] + tail_s
        while time.time() < end:
            time.sleep(min(1.0, max(0.0, end - time.time())))
        stack.world.stop()
        notifications = stack.sink.notifications()
        log(f"{stack.world.inserted} runs in {stack.world.batches} inserts; {len(notifications)} notifications")
        return score_mod.score(sc, notifications, rule_for_seconds(), SLACK_S)
    finally:
        stack.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", required=True, help="a scenario file (docs/simulate.md)")
    parser.add_argument("--json", action="store_true", help="print the score as JSON")
    parser.add_argument("--workdir", help="where the stack keeps its files and logs (default: a new temporary directory)")
    parser.add_argument("--tail", type=float, default=10.0, help="seconds to keep listening after duration_s (default 10)")
    parser.add_argument("--rescore", metavar="WORKDIR", help="score the notifications of an earlier run's work directory again, running nothing")
    args = parser.parse_args(argv)
    try:
        sc = scenario_mod.load(args.scenario)
    except (OSError, scenario_mod.ScenarioError, yaml.YAMLError) as err:
        print(f"simulate: {err}", file=sys.stderr)
        return 2
    if args.rescore:
        with open(os.path.join(args.rescore, "notifications.jsonl")) as f:
            notifications = [json.loads(line) for line in f if line.strip()]
        result = score_mod.score(sc, notifications, rule_for_seconds(), SLACK_S)
    else:
        workdir = args.workdir or tempfile.mkdtemp(prefix="polo-simulate-")
        result = run(sc, workdir, args.tail, lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(result, indent=2) if args.json else score_mod.table(result))
    return 0 if result["totals"]["expectations_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
