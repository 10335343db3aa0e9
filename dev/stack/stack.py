"""The one harness that starts the dev backends, for the Rust tests (through `stack.py argv`),
the Python checks, scripts/demo and the benchmark: dev ClickHouse, dev AWS, the exporter,
Prometheus with the shipped rules, Alertmanager with the shipped routing, and a webhook sink that
logs every notification. Shortened `for:` durations and the receivers pointed at the sink come
from generated overlays in the work directory; the shipped files are not modified.

    stack.py argv clickhouse --port 8123 -- --seed demo   # prints {"argv": [...], "ready": "/ping", ...}
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


sys.path.insert(0, os.path.join(ROOT, "dev", "clickhouse"))
import engines  # noqa: E402 - the ClickHouse engine versions of the dev ClickHouse (--engine)

# How each dev backend is started and when it is ready: the only place that says so.
BACKENDS = {
    "clickhouse": {"script": "dev/clickhouse/server.py", "ready": "/ping", "timeout": 120},
    "aws": {"script": "dev/aws/server.py", "ready": "/_polo/stats", "timeout": 60},
}


def backend_argv(kind, port, args=()):
    """The command line of a dev backend on `port` (this interpreter: the project's .venv)."""
    return [sys.executable, os.path.join(ROOT, BACKENDS[kind]["script"]), "--port", str(port), *args]


def seconds(duration):
    """A duration such as `10s`, `5m` or `1h` in seconds."""
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


def prometheus_flags(rule_for):
    """The alert-state flags the shipped deployments give Prometheus (docker-compose.yml,
    docs/operations.md): a restart restores firing alerts for every rule whose `for:` is at least
    the grace period (2m, or the overlay's shorter `for:`), after an outage of up to an hour."""
    grace = min(seconds(rule_for), 120)
    return [f"--rules.alert.for-grace-period={grace}s", "--rules.alert.for-outage-tolerance=1h"]


def binary():
    """The exporter binary of the current build (honours CARGO_TARGET_DIR)."""
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    return os.path.join(target, "debug", "polo-exporter")


def exporter_config(clickhouse_url, aws_url, overrides=None):
    """examples/local.yml with the backends' URLs and `overrides` ({"sources.x.key": value}) set.
    A path that does not already exist in the example fails loudly instead of being ignored,
    unless its parent exists (a new key of an existing section)."""
    with open(os.path.join(ROOT, "examples/local.yml")) as f:
        cfg = yaml.safe_load(f)
    settings = {"clickhouse.url": clickhouse_url, "aws.endpoint_url": aws_url, **(overrides or {})}
    for path, value in settings.items():
        *parents, leaf = path.split(".")
        node = cfg
        for key in parents:
            if not isinstance(node, dict) or key not in node:
                raise KeyError(f"exporter_config: {path!r}: no {key!r} in examples/local.yml")
            node = node[key]
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return yaml.safe_dump(cfg, sort_keys=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url, timeout=10):
    return json.load(urllib.request.urlopen(url, timeout=timeout))


def wait_for(what, check, timeout):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - not ready yet
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"{what} not reached within {timeout}s (last error: {last})")


class Sink:
    """Alertmanager webhook receiver: appends each notification, with the receiver (the URL
    path) it arrived under, as a JSON line to a file."""

    def __init__(self, path, port):
        self.path = path
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with sink.lock, open(sink.path, "a") as f:
                    f.write(json.dumps({"receiver": self.path.strip("/"), "notification": body}) + "\n")
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


class Stack:
    def __init__(self, workdir, ports=None, rule_for="30s", interval="15s", aws_static=False, clickhouse_static=False,
                 keep_for=(), prometheus_args=()):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        names = ("clickhouse", "aws", "exporter", "prometheus", "alertmanager", "sink")
        self.ports = {n: (ports or {}).get(n) or free_port() for n in names}
        self.rule_for = rule_for
        # Alerts whose shipped `for:` the overlay keeps (the others get `rule_for`), and extra
        # Prometheus flags.
        self.keep_for = set(keep_for)
        self.prometheus_args = list(prometheus_args)
        self.interval = interval
        self.aws_static = aws_static
        self.clickhouse_static = clickhouse_static
        # Extra Prometheus flags, e.g. --enable-feature=native-histograms (scrapes protobuf first).
        self.prometheus_args = list(prometheus_args)
        self.procs = {}
        self.sink = None

    def url(self, name):
        return f"http://127.0.0.1:{self.ports[name]}"

    def _spawn(self, name, argv, env=None):
        log = open(os.path.join(self.workdir, f"{name}.log"), "a")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=log, env=env, start_new_session=True)

    def start_backend(self, kind, args=()):
        spec = BACKENDS[kind]
        self._spawn(kind, backend_argv(kind, self.ports[kind], args))
        wait_for(f"dev {kind}", lambda: urllib.request.urlopen(self.url(kind) + spec["ready"], timeout=2).read(), spec["timeout"])

    def start_clickhouse(self, seed="demo"):
        args = ["--data", os.path.join(self.workdir, "clickhouse-data"), "--seed", seed]
        if self.clickhouse_static and seed == "demo":
            args.append("--static")
        self.start_backend("clickhouse", args)

    def stop_clickhouse(self):
        self._stop("clickhouse")

    def stop_exporter(self):
        self._stop("exporter")

    def restart_prometheus(self):
        """Stops Prometheus and starts it again on the same storage, with the overlay as it is now
        (`keep_for` may have changed)."""
        self._stop("prometheus")
        self._start_prometheus()

    def pause(self, name, paused=True):
        """Freezes a process (SIGSTOP: it accepts nothing, scrapes time out) or thaws it."""
        os.killpg(self.procs[name].pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def start_exporter(self, overrides=None, args=()):
        exporter_cfg = os.path.join(self.workdir, "polo-exporter.yml")
        with open(exporter_cfg, "w") as f:
            f.write(exporter_config(self.url("clickhouse"), self.url("aws"), overrides))
        env = dict(os.environ, AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo", AWS_EC2_METADATA_DISABLED="true")
        self._spawn("exporter", [binary(), "--config.file", exporter_cfg, "--web.listen-address", f"127.0.0.1:{self.ports['exporter']}", *args], env)
        wait_for("exporter", lambda: urllib.request.urlopen(self.url("exporter") + "/healthz", timeout=2).read(), 30)

    def start(self, monitoring=True, exporter_overrides=None):
        """The backends and the exporter; with `monitoring`, also the sink, Alertmanager and Prometheus."""
        self.start_clickhouse()
        self.start_backend("aws", ["--seed", "demo"] + (["--static"] if self.aws_static else []))
        self.start_exporter(exporter_overrides)
        if monitoring:
            self.sink = Sink(os.path.join(self.workdir, "notifications.jsonl"), self.ports["sink"])
            self._start_alertmanager()
            self._start_prometheus()

    def _start_prometheus(self):
        prom_dir = os.path.join(self.workdir, "prometheus")
        os.makedirs(os.path.join(prom_dir, "rules"), exist_ok=True)
        for name in sorted(os.listdir(os.path.join(ROOT, "deploy/prometheus/rules"))):
            if not name.endswith(".rules.yml"):
                continue
            with open(os.path.join(ROOT, "deploy/prometheus/rules", name)) as f:
                rules = yaml.safe_load(f)
            for group in rules["groups"]:
                for rule in group["rules"]:
                    if "for" in rule and rule.get("alert") not in self.keep_for:
                        rule["for"] = self.rule_for
            with open(os.path.join(prom_dir, "rules", name), "w") as f:
                yaml.safe_dump(rules, f, sort_keys=False)
        with open(os.path.join(ROOT, "deploy/prometheus/prometheus.yml")) as f:
            cfg = yaml.safe_load(f)
        cfg["global"]["scrape_interval"] = self.interval
        cfg["global"]["evaluation_interval"] = self.interval
        cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{self.ports['alertmanager']}"]
        # The static job only: the file_sd and ec2_sd examples have no targets here (ec2_sd would
        # call AWS).
        cfg["scrape_configs"] = cfg["scrape_configs"][:1]
        job = cfg["scrape_configs"][0]
        job["scrape_interval"] = self.interval
        job["scrape_timeout"] = self.interval
        job["static_configs"][0]["targets"] = [f"127.0.0.1:{self.ports['exporter']}"]
        with open(os.path.join(prom_dir, "prometheus.yml"), "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        self._spawn("prometheus", [shutil.which("prometheus"), f"--config.file={prom_dir}/prometheus.yml",
                                   f"--storage.tsdb.path={prom_dir}/data", f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}",
                                   *prometheus_flags(self.rule_for), *self.prometheus_args])
        wait_for("Prometheus", lambda: urllib.request.urlopen(self.url("prometheus") + "/-/ready", timeout=2).read(), 60)

    def _start_alertmanager(self):
        am_dir = os.path.join(self.workdir, "alertmanager")
        os.makedirs(am_dir, exist_ok=True)
        with open(os.path.join(ROOT, "deploy/alertmanager/alertmanager.yml")) as f:
            cfg = yaml.safe_load(f)
        sink = self.url("sink")
        cfg["receivers"] = [
            r if r["name"] == "blackhole" else {"name": r["name"], "webhook_configs": [{"url": f"{sink}/{r['name']}", "send_resolved": True}]}
            for r in cfg["receivers"]
        ]
        cfg["templates"] = [os.path.join(ROOT, "deploy/alertmanager/templates/*.tmpl")]
        # At least two rule evaluations: an inhibiting alert that needs a recording rule fires one
        # evaluation after the alert it silences (the shipped 30 s covers the default 15 s).
        seconds = int(self.interval.rstrip("s"))
        cfg["route"]["group_wait"] = f"{2 * seconds}s"
        cfg["route"]["group_interval"] = f"{seconds}s"
        with open(os.path.join(am_dir, "alertmanager.yml"), "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        self._spawn("alertmanager", [binary, f"--config.file={am_dir}/alertmanager.yml", f"--storage.path={am_dir}/data",
                                     f"--web.listen-address=127.0.0.1:{self.ports['alertmanager']}", "--cluster.listen-address="])
        wait_for("Alertmanager", lambda: urllib.request.urlopen(self.url("alertmanager") + "/-/ready", timeout=2).read(), 60)

    # --- queries --------------------------------------------------------------------------------
    def query(self, expr):
        q = urllib.parse.urlencode({"query": expr})
        return get_json(f"{self.url('prometheus')}/api/v1/query?{q}")["data"]["result"]

    def firing(self):
        alerts = get_json(self.url("prometheus") + "/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["state"] == "firing"]

    def am_alerts(self):
        return get_json(self.url("alertmanager") + "/api/v2/alerts")

    # --- teardown -------------------------------------------------------------------------------
    def _stop(self, name):
        proc = self.procs.pop(name, None)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop(self):
        for name in list(self.procs)[::-1]:
            self._stop(name)
        if self.sink:
            self.sink.stop()


def main(argv):
    """`argv KIND --port N [-- backend args]`: the command line and readiness of a dev backend,
    as JSON, for harnesses in other languages (the Rust tests)."""
    import argparse
    parser = argparse.ArgumentParser(prog="stack.py")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("argv")
    cmd.add_argument("kind", choices=sorted(BACKENDS))
    cmd.add_argument("--port", type=int, required=True)
    eng = sub.add_parser("engines", help="the ClickHouse engine versions of the matrix, as JSON; --install prepares each")
    eng.add_argument("--install", action="store_true")
    own, rest = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = parser.parse_args(own)
    if args.command == "engines":
        if args.install:
            for version in engines.ENGINES:
                engines.python(version)
        print(json.dumps({"default": engines.DEFAULT, "engines": engines.ENGINES}))
        return 0
    spec = BACKENDS[args.kind]
    print(json.dumps({"argv": backend_argv(args.kind, args.port, rest), "ready": spec["ready"], "timeout": spec["timeout"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
