#!/usr/bin/env python3
"""The shipped Alertmanager configuration on a running Alertmanager (Debian's 0.25):

1. Inhibitions: alerts are posted to an Alertmanager with the shipped routes and inhibit rules
   and the ones it reports as inhibited are compared with the expectation (the dependency map:
   exporter down, ClickHouse down, dependencies not ready, critical over warning).
2. Time intervals: the shipped routes with the receivers pointed at a local webhook sink; the
   definitions of `business_hours` and `maintenance` are swapped for ones that do or do not
   contain the present moment, and what reaches each receiver is compared with the promise:
   warnings to chat only in business hours, pages at any hour, nothing but the Watchdog during
   maintenance.
3. The routes reference the intervals as documented (static).
4. The `amtool silence add` recipe of docs/runbooks.md, run as written.
5. Grouping: ClickHouse down (three sources) and a collector seen by two HA replicas are one
   page each.
6. One page per collector incident: a fast freshness burn page, then the same collector's
   PoloCollectorStale (which inhibits the burn) and PoloCollectorOutputCollapsed, land in one
   pager group (one group key: one PagerDuty incident) and one chat group, not one per alert name."""

import copy
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "stack"))
from stack import free_port, wait_for  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rules_docs import minutes  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))



def to_sink(cfg, sink, send_resolved):
    """The shipped routing, its receivers (but the blackhole) posting to `sink`, every group_wait
    and group_interval 1s (so a check takes seconds, not the shipped minutes)."""
    cfg["receivers"] = [r if r["name"] == "blackhole" else {"name": r["name"], "webhook_configs": [{"url": f"{sink.url}/{r['name']}", "send_resolved": send_resolved}]}
                        for r in cfg["receivers"]]

    def fast(route):
        for k in ("group_wait", "group_interval"):
            if k in route:
                route[k] = "1s"
        for r in route.get("routes", []):
            fast(r)

    fast(cfg["route"])
    cfg["route"]["group_wait"] = "1s"
    cfg["route"]["group_interval"] = "1s"

def alert(name, severity, **labels):
    return {"labels": {"alertname": name, "severity": severity, **labels}, "annotations": {"summary": name, "description": name}}


# (alert, inhibited?) — each case on its own instance/job so cases do not interact.
CASES = [
    # Exporter target down silences that instance's alerts, not another instance's or the watchdog.
    (alert("PoloExporterDown", "critical", job="polo-exporter", instance="a:9820"), False),
    (alert("PoloCollectorStale", "critical", job="polo-exporter", instance="a:9820", collector="c1"), True),
    (alert("PoloDeadLetterQueueNotEmpty", "critical", job="polo-exporter", instance="a:9820", queue="q-dlq"), True),
    (alert("PoloCollectorStale", "critical", job="polo-exporter", instance="a2:9820", collector="c1"), False),
    (alert("PoloWatchdog", "info"), False),
    # Job absent (no instance label) silences the whole job.
    (alert("PoloExporterDown", "critical", job="polo-absent"), False),
    (alert("PoloAccountNoAccess", "warning", job="polo-absent", instance="z:9820", aws_account_id="9"), True),
    # ClickHouse unreadable by collector_runs: collector alerts and not-scanned silenced, others not.
    (alert("PoloExporterSourceDown", "critical", job="polo-exporter", instance="b:9820", source="collector_runs"), False),
    (alert("PoloCollectorStale", "critical", job="polo-exporter", instance="b:9820", collector="c2"), True),
    (alert("PoloCollectorFailing", "warning", job="polo-exporter", instance="b:9820", collector="c2"), True),
    (alert("PoloCollectorKeysStale", "warning", job="polo-exporter", instance="b:9820", collector="c5"), True),
    (alert("PoloAccountNotScanned", "warning", job="polo-exporter", instance="b:9820", aws_account_id="2"), True),
    (alert("PoloAccountStale", "warning", job="polo-exporter", instance="b:9820", aws_account_id="2"), True),
    (alert("PoloAccountNoAccess", "warning", job="polo-exporter", instance="b:9820", aws_account_id="3"), False),
    (alert("PoloClickHouseDiskAlmostFull", "warning", job="polo-exporter", instance="b:9820", replica="ch", disk="default"), False),
    # Accounts source down silences account alerts and the key-level collector warnings (they
    # leave out no_access accounts only while the accounts are read), not the collector page.
    (alert("PoloExporterSourceDown", "critical", job="polo-exporter", instance="c:9820", source="accounts"), False),
    (alert("PoloAccountPendingSetup", "warning", job="polo-exporter", instance="c:9820", aws_account_id="4"), True),
    (alert("PoloCollectorKeysStale", "warning", job="polo-exporter", instance="c:9820", collector="c6"), True),
    (alert("PoloCollectorPartial", "warning", job="polo-exporter", instance="c:9820", collector="c6"), True),
    (alert("PoloCollectorRunsNearTimeout", "warning", job="polo-exporter", instance="c:9820", collector="c7"), True),
    (alert("PoloCollectorStale", "critical", job="polo-exporter", instance="c:9820", collector="c6"), False),
    # Critical silences the warnings of the same collector, not of another collector.
    (alert("PoloCollectorStale", "critical", job="polo-exporter", instance="d:9820", collector="c3"), False),
    (alert("PoloCollectorFailing", "warning", job="polo-exporter", instance="d:9820", collector="c3"), True),
    (alert("PoloCollectorKeysStale", "warning", job="polo-exporter", instance="d:9820", collector="c3"), True),
    (alert("PoloCollectorFailing", "warning", job="polo-exporter", instance="d:9820", collector="c4"), False),
    # A stale collector silences its own freshness burn pages (one incident) and tickets, not
    # another collector's.
    (alert("PoloCollectorStale", "critical", job="polo-exporter", instance="f:9820", collector="c7"), False),
    (alert("PoloCollectorFreshnessBudgetBurn", "critical", job="polo-exporter", instance="f:9820", collector="c7", burn_window="1h"), True),
    (alert("PoloCollectorFreshnessBudgetBurn", "warning", job="polo-exporter", instance="f:9820", collector="c7", burn_window="1d"), True),
    (alert("PoloCollectorFreshnessBudgetBurn", "critical", job="polo-exporter", instance="f:9820", collector="c8", burn_window="6h"), False),
    # Dependencies not ready: the waiting collector's own key warnings are silenced, another's not.
    (alert("PoloCollectorDependenciesNotReady", "warning", job="polo-exporter", instance="e:9820", collector="hierarchy_builder"), False),
    (alert("PoloCollectorKeysStale", "warning", job="polo-exporter", instance="e:9820", collector="hierarchy_builder"), True),
    (alert("PoloCollectorFailing", "warning", job="polo-exporter", instance="e:9820", collector="hierarchy_builder"), True),
    (alert("PoloCollectorPartial", "warning", job="polo-exporter", instance="e:9820", collector="hierarchy_builder"), True),
    (alert("PoloCollectorPartial", "warning", job="polo-exporter", instance="e:9820", collector="config_ebs"), False),
    (alert("PoloCollectorFailing", "warning", job="polo-exporter", instance="e:9820", collector="config_ec2"), False),
    # After 24 hours the account's NotScanned silences its rollup, not another account's.
    (alert("PoloAccountNotScanned", "warning", job="polo-exporter", instance="f:9820", aws_account_id="7"), False),
    (alert("PoloAccountStale", "warning", job="polo-exporter", instance="f:9820", aws_account_id="7"), True),
    (alert("PoloAccountStale", "warning", job="polo-exporter", instance="f:9820", aws_account_id="8"), False),
]

# What each time-interval scenario delivers: receiver -> alert names.
CRIT = alert("PoloDeadLetterQueueNotEmpty", "critical", job="polo-exporter", instance="t:9820", queue="polo-events-dlq")
WARN = alert("PoloAccountNoAccess", "warning", job="polo-exporter", instance="t:9820", aws_account_id="100000000019")
DOG = alert("PoloWatchdog", "info")


def always():
    return [{"times": [{"start_time": "00:00", "end_time": "24:00"}], "location": "UTC"}]


def never():
    # A weekday other than today's (UTC), all day.
    other = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3)).strftime("%A").lower()
    return [{"weekdays": [other], "location": "UTC"}]


SCENARIOS = [
    ("outside business hours: pages and chat for critical, warnings wait", {"business_hours": never, "maintenance": never},
     {"pager": {"PoloDeadLetterQueueNotEmpty"}, "chat": {"PoloDeadLetterQueueNotEmpty"}, "heartbeat": {"PoloWatchdog"}}),
    ("in business hours: warnings reach chat", {"business_hours": always, "maintenance": never},
     {"pager": {"PoloDeadLetterQueueNotEmpty"}, "chat": {"PoloDeadLetterQueueNotEmpty", "PoloAccountNoAccess"}, "heartbeat": {"PoloWatchdog"}}),
    ("maintenance: only the Watchdog", {"business_hours": always, "maintenance": always},
     {"pager": set(), "chat": set(), "heartbeat": {"PoloWatchdog"}}),
]


class Sink:
    def __init__(self):
        self.got = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                sink.got.append((self.path.strip("/"), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self):
        out = {}
        for receiver, body in self.got:
            out.setdefault(receiver, set()).update(a["labels"]["alertname"] for a in body.get("alerts", []))
        return out


def shipped():
    with open(os.path.join(ROOT, "deploy/alertmanager/alertmanager.yml")) as f:
        return yaml.safe_load(f)


def run_alertmanager(tmp, cfg, alerts, until, timeout=20, before=None):
    """Starts Alertmanager with cfg, calls before(url), posts alerts, returns until(api_url) once truthy."""
    cfg = copy.deepcopy(cfg)
    cfg["templates"] = [os.path.join(ROOT, "deploy/alertmanager/templates/*.tmpl")]
    os.makedirs(tmp, exist_ok=True)
    path = os.path.join(tmp, "alertmanager.yml")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("prometheus-alertmanager") or shutil.which("alertmanager"), f"--config.file={path}", f"--storage.path={tmp}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "am.log"), "w"))
    try:
        base = f"http://127.0.0.1:{port}/api/v2"
        if proc.poll() is not None:
            time.sleep(0.1)
        wait_for("Alertmanager", lambda: urllib.request.urlopen(base + "/status", timeout=1).read(), 20)
        if before:
            before(f"http://127.0.0.1:{port}")
        body = json.dumps(alerts).encode()
        urllib.request.urlopen(urllib.request.Request(base + "/alerts", data=body, method="POST", headers={"Content-Type": "application/json"}), timeout=5)
        return wait_for("Alertmanager result", lambda: until(base), timeout)
    finally:
        proc.terminate()
        proc.wait()


def check_inhibitions(tmp):
    cfg = shipped()
    sink = {"url": "http://127.0.0.1:9/discard", "send_resolved": False}
    cfg["receivers"] = [{"name": r["name"], "webhook_configs": [sink]} if r["name"] != "blackhole" else r for r in cfg["receivers"]]

    def settled(base):
        time.sleep(0.5)
        got = json.load(urllib.request.urlopen(base + "/alerts", timeout=5))
        return got if len(got) == len(CASES) else None

    got = run_alertmanager(os.path.join(tmp, "inhibit"), cfg, [c[0] for c in CASES], settled)
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
    return wrong


def check_time_intervals(tmp):
    wrong = []
    base_cfg = shipped()
    names = {t["name"] for t in base_cfg.get("time_intervals", [])}
    if names != {"business_hours", "maintenance"}:
        wrong.append(f"time_intervals are {sorted(names)}, expected business_hours and maintenance")
    for i, (title, intervals, want) in enumerate(SCENARIOS):
        sink = Sink()
        try:
            cfg = copy.deepcopy(base_cfg)
            cfg["time_intervals"] = [{"name": n, "time_intervals": make()} for n, make in intervals.items()]
            to_sink(cfg, sink, send_resolved=False)

            # The Watchdog is never muted, so its arrival says Alertmanager has flushed; then give
            # the other groups (same group_wait) two more seconds.
            def flushed(_base):
                if "PoloWatchdog" not in sink.delivered().get("heartbeat", set()):
                    return None
                time.sleep(2)
                return True

            run_alertmanager(os.path.join(tmp, f"intervals-{i}"), cfg, [CRIT, WARN, DOG], flushed)
            got = sink.delivered()
            got = {r: got.get(r, set()) for r in want}
            if got != want:
                wrong.append(f"{title}: delivered {got}, expected {want}")
        finally:
            sink.server.shutdown()
    return wrong


def check_grouping(tmp):
    """One incident, one page: ClickHouse down fails three sources (one group by `backend`); a
    collector stale in three regions as seen by two HA exporter replicas is one group."""
    sink = Sink()
    try:
        cfg = shipped()
        cfg["time_intervals"] = [{"name": n, "time_intervals": f()} for n, f in (("business_hours", always), ("maintenance", never))]
        cfg["receivers"] = [r if r["name"] == "blackhole" else {"name": r["name"], "webhook_configs": [{"url": f"{sink.url}/{r['name']}", "send_resolved": False}]}
                            for r in cfg["receivers"]]
        cfg["route"]["group_wait"] = "1s"
        alerts = [alert("PoloExporterSourceDown", "critical", backend="clickhouse", job="polo-exporter", instance="g:9820", source=s)
                  for s in ("collector_runs", "accounts", "clickhouse_system")]
        alerts += [alert("PoloCollectorStale", "critical", job="polo-exporter", instance=i, collector="config_rds") for i in ("g1:9820", "g2:9820")]
        alerts.append(DOG)

        def flushed(_base):
            if sum(len(b.get("alerts", [])) for r, b in sink.got if r == "pager") < 5:
                return None
            time.sleep(2)
            return True

        run_alertmanager(os.path.join(tmp, "grouping"), cfg, alerts, flushed)
        pages = sorted((sorted(b["groupLabels"].items()), len(b["alerts"])) for r, b in sink.got if r == "pager")
        want = [([("alertname", "PoloExporterSourceDown"), ("backend", "clickhouse")], 3), ([("collector", "config_rds")], 2)]
        return [] if pages == want else [f"grouping: pages {pages}, expected {want}"]
    finally:
        sink.server.shutdown()


def check_collector_one_page(tmp):
    """One collector incident, one page: the fast freshness burn pages first (it fires minutes
    before PoloCollectorStale when every key goes stale one after the other), then the stale page
    and the output-collapse page of the same collector arrive. All must land in the pager group
    of the first page (the same group key, so one PagerDuty incident) and one chat group; another
    collector's burn page is a group of its own."""
    sink = Sink()
    try:
        cfg = shipped()
        cfg["time_intervals"] = [{"name": n, "time_intervals": f()} for n, f in (("business_hours", always), ("maintenance", never))]
        to_sink(cfg, sink, send_resolved=True)
        common = {"job": "polo-exporter", "instance": "p:9820", "collector": "cur_ingest"}
        burn = alert("PoloCollectorFreshnessBudgetBurn", "critical", burn_window="1h", **common)
        other = alert("PoloCollectorFreshnessBudgetBurn", "critical", burn_window="6h", **dict(common, collector="config_ec2"))
        later = [burn, other, alert("PoloCollectorStale", "critical", **common), alert("PoloCollectorOutputCollapsed", "critical", **common)]
        state = {"posted": False}

        def names(receiver):
            return {a["labels"]["alertname"] for r, b in sink.got if r == receiver for a in b.get("alerts", [])}

        def both_paged(base):
            if "PoloCollectorFreshnessBudgetBurn" not in names("pager"):
                return None
            if not state["posted"]:
                # The burn has paged: now the stale and collapse pages of the same collector.
                urllib.request.urlopen(urllib.request.Request(base + "/alerts", data=json.dumps(later).encode(), method="POST",
                                                              headers={"Content-Type": "application/json"}), timeout=5)
                state["posted"] = True
                return None
            if not {"PoloCollectorStale", "PoloCollectorOutputCollapsed"} <= names("pager"):
                return None
            time.sleep(2)
            return True

        run_alertmanager(os.path.join(tmp, "collector-one-page"), cfg, [burn], both_paged)
        wrong = []
        for receiver in ("pager", "chat"):
            keys = {}
            for r, b in sink.got:
                if r == receiver:
                    for a in b.get("alerts", []):
                        keys.setdefault(a["labels"]["collector"], set()).add(b["groupKey"])
            if len(keys.get("cur_ingest", ())) != 1 or len(keys.get("config_ec2", ())) != 1 or keys["cur_ingest"] == keys["config_ec2"]:
                wrong.append(f"one collector incident, {receiver}: the burn, stale and collapse pages of cur_ingest arrived in "
                             f"{len(keys.get('cur_ingest', ()))} groups {sorted(keys.get('cur_ingest', ()))}, expected one "
                             f"(and config_ec2's burn in one other group: {sorted(keys.get('config_ec2', ()))})")
        inhibited_burn = [b for r, b in sink.got if r == "pager" and any(a["labels"]["alertname"] == "PoloCollectorStale" for a in b["alerts"])
                          and any(a["labels"]["alertname"] == "PoloCollectorFreshnessBudgetBurn" and a["labels"]["collector"] == "cur_ingest"
                                  and a["status"] == "firing" for a in b["alerts"])]
        if inhibited_burn:
            wrong.append("one collector incident: the burn page still listed as firing next to PoloCollectorStale (the inhibition)")
        return wrong
    finally:
        sink.server.shutdown()


def check_silence_recipe(tmp):
    """The `amtool silence add` recipe of docs/runbooks.md, run as written against a running
    Alertmanager: it silences the exporter's alerts and leaves the Watchdog alone."""
    import shlex
    with open(os.path.join(ROOT, "docs/runbooks.md")) as f:
        doc = f.read()
    m = re.search(r"^amtool [^\n]*silence add \\\n(.*?)\n(.*?)\n", doc, re.M)
    if not m:
        return ["docs/runbooks.md: no `amtool ... silence add` recipe found"]
    flags = shlex.split(m.group(1).rstrip("\\"))
    matchers = shlex.split(m.group(2))
    cfg = shipped()
    cfg["receivers"] = [{"name": r["name"], "webhook_configs": [{"url": "http://127.0.0.1:9/discard"}]} if r["name"] != "blackhole" else r
                        for r in cfg["receivers"]]
    alerts = [alert("PoloCollectorStale", "critical", job="polo-exporter", instance="s:9820", collector="config_rds"),
              alert("PoloAccountNoAccess", "warning", job="polo-exporter", instance="s:9820", aws_account_id="1"),
              DOG]
    want = {"PoloCollectorStale": True, "PoloAccountNoAccess": True, "PoloWatchdog": False}

    def add_silence(url):
        run = subprocess.run(["amtool", f"--alertmanager.url={url}", "silence", "add", *flags, *matchers], capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"amtool silence add failed: {run.stderr}")

    def settled(base):
        time.sleep(0.5)
        got = json.load(urllib.request.urlopen(base + "/alerts", timeout=5))
        return got if len(got) == len(alerts) else None

    got = run_alertmanager(os.path.join(tmp, "silence"), cfg, alerts, settled, before=add_silence)
    silenced = {a["labels"]["alertname"]: bool(a["status"]["silencedBy"]) for a in got}
    return [] if silenced == want else [f"silence recipe {matchers}: silenced {silenced}, expected {want}"]


def check_routes_reference_intervals():
    """The shipped routes: the Watchdog never muted, every other route muted in maintenance,
    warnings active in business hours only, critical at any hour. The Watchdog's
    repeat_interval is below its group_interval: Alertmanager checks the repeat at each flush
    (every group_interval) against the time of the last send, which lies a little after the
    previous flush, so repeat_interval equal to group_interval sends every second flush about
    half the time (60 or 120 s; measured on Debian's 0.25 at 1/12 scale: gaps of 5 and 10 s
    with both at 5s, 5 s every time with repeat_interval 2.5s)."""
    wrong = []
    routes = shipped()["route"]["routes"]
    for r in routes:
        m = " ".join(r.get("matchers", []))
        mutes = set(r.get("mute_time_intervals", []))
        active = set(r.get("active_time_intervals", []))
        if "PoloWatchdog" in m:
            if mutes or active:
                wrong.append("the Watchdog route must not be muted")
            if minutes(r.get("repeat_interval")) >= minutes(r.get("group_interval")):
                wrong.append(f"the Watchdog's repeat_interval {r.get('repeat_interval')} must be below its group_interval "
                             f"{r.get('group_interval')}, or it arrives every second group_interval")
        elif r.get("receiver") != "blackhole" and "maintenance" not in mutes:
            wrong.append(f"route {m} is not muted during maintenance")
        if 'severity="warning"' in m and active != {"business_hours"}:
            wrong.append("warnings are not limited to business_hours")
        if 'severity="critical"' in m and active:
            wrong.append("pages must not wait for business hours")
    return wrong


def main():
    tmp = tempfile.mkdtemp(prefix="polo-am-")
    try:
        wrong = check_routes_reference_intervals()
        wrong += check_inhibitions(tmp)
        wrong += check_time_intervals(tmp)
        wrong += check_silence_recipe(tmp)
        wrong += check_grouping(tmp)
        wrong += check_collector_one_page(tmp)
        if wrong:
            print("\n".join(wrong))
            return 1
        print(f"{len(CASES)} alerts, inhibitions as expected; {len(SCENARIOS)} time-interval scenarios deliver as promised; the runbooks' silence recipe works; one page per incident (a collector's burn, stale and collapse pages: one group)")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
