#!/usr/bin/env python3
"""A ClickHouse-compatible HTTP front on the real ClickHouse engine (chdb).

Speaks the subset of ClickHouse's HTTP interface that the `clickhouse` Rust crate, curl and the
tests use: SQL in the POST body or the `query` URL parameter (the body then being INSERT data),
`default_format`, `database`, `param_*` and settings as URL parameters, credentials in
X-ClickHouse-User/X-ClickHouse-Key headers, basic auth or `user`/`password` parameters, errors
as a non-200 status with `Code: N. DB::Exception: ...` and X-ClickHouse-Exception-Code, and an
X-ClickHouse-Summary header whose read_rows is what the storage read.
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import engines  # noqa: E402 - standard library only; chdb is imported once the engine is chosen

chdb = None

# URL parameters that belong to the HTTP interface, not to query settings.
HTTP_ONLY = {
    "default_format", "database", "query", "compress", "decompress", "wait_end_of_query",
    "cancel_http_readonly_queries_on_client_close", "send_progress_in_http_headers", "session_id",
    "session_timeout", "session_check", "user", "password", "buffer_size", "role", "query_id",
    "http_headers_progress_interval_ms", "enable_http_compression", "http_zlib_compression_level",
    "quota_key", "stacktrace",
}
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CODE = re.compile(r"Code: (\d+)")
SELECT_LIKE = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)


def server_config(query_log, clusters):
    """The engine's config file: system.query_log as in dev/clickhouse/config.xml, and
    `remote_servers` for --cluster (one shard, the given replicas; `localhost:9000` is this
    engine itself, any other address a remote that must answer on ClickHouse's native port)."""
    parts = []
    if query_log:
        with open(os.path.join(HERE, "config.xml"), encoding="utf-8") as f:
            text = f.read()
        parts.append(text[text.index("<clickhouse>") + len("<clickhouse>"):text.rindex("</clickhouse>")])
    if clusters:
        parts.append("<tcp_port>9000</tcp_port><remote_servers>")
        for name, replicas in clusters.items():
            parts.append(f"<{name}><shard>")
            for host, port in replicas:
                parts.append(f"<replica><host>{host}</host><port>{port}</port></replica>")
            parts.append(f"</shard></{name}>")
        parts.append("</remote_servers>")
    return "<clickhouse>" + "\n".join(parts) + "</clickhouse>\n" if parts else None


class Engine:
    """One chdb connection; chdb is not safe for concurrent queries, so calls are serialised."""

    def __init__(self, data_dir, query_log=True, clusters=None):
        self.lock = threading.Lock()
        self.database = None
        config = server_config(query_log, clusters or {})
        path = data_dir
        if config:
            config_file = os.path.join(data_dir, "polo-dev-config.xml")
            with open(config_file, "w", encoding="utf-8") as f:
                f.write(config)
            path += "?config-file=" + config_file
        if hasattr(chdb, "connect"):
            self.conn = chdb.connect(path)
        else:
            # chdb < 3 (ClickHouse 24.8): a session on the directory, without a config file
            # (so without system.query_log and clusters).
            from chdb import session
            self.conn = session.Session(data_dir)
        self.version = self.conn.query("SELECT version()", "TabSeparated").bytes().decode().strip()

    def query(self, sql, fmt="TabSeparated", settings=None, database=None):
        """Runs one statement. Settings go into a SETTINGS clause on SELECT-like statements, so
        no extra statement lands in system.query_log; other statements get them with SET."""
        with self.lock:
            try:
                return self._query(sql, fmt, settings, database)
            except Exception:
                # chdb can keep the partial output of a query that failed mid-way (seen with a
                # clusterAllReplicas whose remote replica is down: the local replica's rows) and
                # prepend it to the next result; a throwaway query takes it.
                # Not logged (a test counts system.query_log), unless readonly=1 refuses the setting.
                for clear in ("SELECT 1 SETTINGS log_queries = 0", "SELECT 1"):
                    try:
                        self.conn.query(clear, "TabSeparated")
                        break
                    except Exception:  # noqa: BLE001 - only clearing
                        pass
                raise

    def _query(self, sql, fmt, settings, database):
        if database and database != self.database:
            self.conn.query(f"USE {database}")
            self.database = database
        settings = settings or {}
        if not settings:
            return self.conn.query(sql, fmt)
        if SELECT_LIKE.match(sql):
            clause = ", ".join(f"{k} = {quote(v)}" for k, v in settings.items())
            return self.conn.query(sql.rstrip().rstrip(";") + "\nSETTINGS " + clause, fmt)
        applied = []
        try:
            for name, value in settings.items():
                self.conn.query(f"SET {name} = {quote(value)}")
                applied.append(name)
            return self.conn.query(sql, fmt)
        finally:
            for name in reversed(applied):
                try:
                    self.conn.query(f"SET {name} = DEFAULT")
                except Exception:  # noqa: BLE001 - best effort reset
                    pass

    def close(self):
        with self.lock:
            for name in ("close", "cleanup"):
                if hasattr(self.conn, name):
                    getattr(self.conn, name)()
                    return

    def run_script(self, path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
        for statement in re.split(r";\s*\n", text):
            if statement.strip():
                self.query(statement)


def quote(value):
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "polo-dev-clickhouse"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("dev-clickhouse: " + (fmt % args) + "\n")

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path in ("/ping", "/"):
            params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            if "query" not in params:
                return self.reply(200, b"Ok.\n", "text/plain; charset=UTF-8")
        return self.handle_query(b"")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self.read_chunked()
        self.handle_query(body)

    def read_chunked(self):
        out = b""
        while True:
            size = int(self.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    def handle_query(self, body):
        url = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if not self.authenticated(params):
            user = self.headers.get("X-ClickHouse-User") or params.get("user") or "default"
            return self.error(403, f"Code: 516. DB::Exception: {user}: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)")
        if "query" in params:
            sql = params["query"] + ("\n" + body.decode("utf-8") if body else "")
        else:
            sql = body.decode("utf-8")
        if not sql.strip():
            return self.error(400, "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
        settings = {k: v for k, v in params.items() if k not in HTTP_ONLY and not k.startswith("param_")}
        bad = [k for k in settings if not SETTING_NAME.match(k)]
        if bad:
            return self.error(400, f"Code: 115. DB::Exception: Unknown setting {bad[0]}. (UNKNOWN_SETTING)")
        fmt = params.get("default_format") or "TabSeparated"
        database = params.get("database")
        if database and not SETTING_NAME.match(database):
            return self.error(400, f"Code: 81. DB::Exception: Database {database} does not exist. (UNKNOWN_DATABASE)")
        started = time.monotonic()
        try:
            result = self.server.engine.query(sql, fmt, settings, database)
        except Exception as exc:  # chdb raises ChdbError with ClickHouse's own text
            text = str(exc).strip()
            code = CODE.search(text)
            status = 404 if code and code.group(1) in ("60", "81") else 500
            return self.error(status, text, code.group(1) if code else "1001")
        # Before chdb 3, only result rows are known: read_rows is then a lower bound.
        storage = hasattr(result, "storage_rows_read")
        summary = {
            "read_rows": str(result.storage_rows_read() if storage else result.rows_read()),
            "read_bytes": str(result.storage_bytes_read() if storage else result.bytes_read()),
            "written_rows": str(result.rows_written() if hasattr(result, "rows_written") else 0),
            "written_bytes": str(result.bytes_written() if hasattr(result, "bytes_written") else 0),
            "total_rows_to_read": "0",
            "result_rows": str(result.rows_read()),
            "result_bytes": str(result.bytes_read()),
            "elapsed_ns": str(int((time.monotonic() - started) * 1e9)),
        }
        self.reply(200, result.bytes(), "application/octet-stream", {
            "X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":")),
            "X-ClickHouse-Format": fmt,
        })

    def authenticated(self, params):
        user = self.headers.get("X-ClickHouse-User")
        password = self.headers.get("X-ClickHouse-Key")
        auth = self.headers.get("Authorization", "")
        if user is None and auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
        if user is None:
            user, password = params.get("user"), params.get("password")
        user = user or "default"
        password = password or ""
        return user == self.server.user and password == self.server.password

    def error(self, status, text, code=None):
        code = code or (CODE.search(text).group(1) if CODE.search(text) else "1001")
        self.reply(status, (text + "\n").encode("utf-8"), "text/plain; charset=UTF-8", {"X-ClickHouse-Exception-Code": code})

    def reply(self, status, payload, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


def main():
    parser = argparse.ArgumentParser(description="ClickHouse-compatible HTTP server on chdb for polo-exporter's tests and demo.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--data", help="data directory (default: a temporary one, removed at exit)")
    parser.add_argument("--seed", choices=["demo", "empty"], default="empty")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password-file", help="file holding the password the server accepts (default: empty password)")
    parser.add_argument("--no-query-log", action="store_true", help="run without system.query_log (to test a missing system table)")
    parser.add_argument("--static", action="store_true", help="with --seed demo: do not keep inserting new runs")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument("--engine", choices=sorted(engines.ENGINES), default=engines.DEFAULT,
                        help="ClickHouse engine version (its chdb is installed into .venv-engines/VERSION on first use)")
    parser.add_argument("--readonly", type=int, choices=[1, 2],
                        help="after the schema and seed, apply readonly=N to every query, as a monitoring profile does: "
                             "1 refuses any changed setting (code 164), 2 refuses writes only")
    parser.add_argument("--tls-cert", help="PEM certificate (chain) of an HTTPS listener on --https-port")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--https-port", type=int, help="port of the HTTPS listener (with --tls-cert/--tls-key)")
    parser.add_argument("--tls-client-ca", help="PEM CA: the HTTPS listener requires a client certificate signed by it")
    parser.add_argument("--cluster", action="append", default=[], metavar="NAME=HOST:PORT,...",
                        help="a cluster in remote_servers: one shard with these replicas; localhost:9000 is this "
                             "engine, any other address must answer ClickHouse's native protocol (a closed port is a node down)")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key) or bool(args.tls_cert) != bool(args.https_port):
        parser.error("--tls-cert, --tls-key and --https-port go together")
    clusters = {}
    for spec in args.cluster:
        name, _, replicas = spec.partition("=")
        if not SETTING_NAME.match(name) or not replicas:
            parser.error(f"--cluster {spec!r}: expected NAME=HOST:PORT[,HOST:PORT...]")
        clusters[name] = [(r.rsplit(":", 1)[0], int(r.rsplit(":", 1)[1])) for r in replicas.split(",")]

    if args.engine != engines.DEFAULT and not engines.running_in(args.engine):
        # Each engine version has its own virtualenv: run this server there.
        exe = engines.python(args.engine)
        os.execv(exe, [exe, os.path.abspath(__file__), *sys.argv[1:]])
    global chdb
    import chdb as chdb_module
    chdb = chdb_module

    data_dir = args.data or tempfile.mkdtemp(prefix="polo-dev-clickhouse-")
    os.makedirs(data_dir, exist_ok=True)
    engine = Engine(data_dir, query_log=not args.no_query_log, clusters=clusters)
    engine.run_script(os.path.join(ROOT, "deploy", "clickhouse", "schema.sql"))
    if not args.no_query_log and hasattr(chdb, "connect"):
        # ClickHouse creates system.query_log at its first flush; a running server has one.
        engine.query("SYSTEM FLUSH LOGS")
    if args.seed == "demo":
        sys.path.insert(0, HERE)
        import demo_data
        demo_data.seed(engine, live=not args.static)

    if args.readonly:
        # As a settings profile with readonly=N: the engine itself then checks every setting
        # the client sends (the URL settings become a SETTINGS clause) and refuses writes.
        engine.query(f"SET readonly = {args.readonly}")

    password = ""
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as f:
            password = f.read().rstrip("\r\n")

    def listener(port, tls=None):
        srv = ThreadingHTTPServer((args.host, port), Handler)
        if tls:
            # The handshake happens in the request's thread, on its first read.
            srv.socket = tls.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
        srv.daemon_threads = True
        srv.engine = engine
        srv.user = args.user
        srv.password = password
        srv.verbose = args.verbose
        return srv

    server = listener(args.port)
    servers = [server]
    if args.tls_cert:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.tls_client_ca)
        https = listener(args.https_port, ctx)
        servers.append(https)
        threading.Thread(target=https.serve_forever, daemon=True).start()
        print(f"dev-clickhouse: HTTPS on https://{args.host}:{args.https_port} ({args.tls_cert})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=lambda: [s.shutdown() for s in servers]).start())
    print(f"dev-clickhouse: listening on http://{args.host}:{server.server_address[1]} (engine {engine.version}, "
          f"data {data_dir}, seed {args.seed}{', readonly=' + str(args.readonly) if args.readonly else ''})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if args.seed == "demo":
            demo_data.stop()
        server.server_close()
        engine.close()
        if not args.data:
            shutil.rmtree(data_dir, ignore_errors=True)
        # chdb's embedded engine can crash in interpreter teardown; leave without it.
        os._exit(0)


if __name__ == "__main__":
    main()
