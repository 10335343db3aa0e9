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

import chdb

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

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


class Engine:
    """One chdb connection; chdb is not safe for concurrent queries, so calls are serialised."""

    def __init__(self, data_dir, query_log=True):
        self.lock = threading.Lock()
        self.database = None
        path = data_dir
        if query_log:
            path += "?config-file=" + os.path.join(HERE, "config.xml")
        self.conn = chdb.connect(path)

    def query(self, sql, fmt="TabSeparated", settings=None, database=None):
        """Runs one statement. Settings go into a SETTINGS clause on SELECT-like statements, so
        no extra statement lands in system.query_log; other statements get them with SET."""
        with self.lock:
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
            self.conn.close()

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
        summary = {
            "read_rows": str(result.storage_rows_read()),
            "read_bytes": str(result.storage_bytes_read()),
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
    args = parser.parse_args()

    data_dir = args.data or tempfile.mkdtemp(prefix="polo-dev-clickhouse-")
    os.makedirs(data_dir, exist_ok=True)
    engine = Engine(data_dir, query_log=not args.no_query_log)
    engine.run_script(os.path.join(ROOT, "deploy", "clickhouse", "schema.sql"))
    if not args.no_query_log:
        # ClickHouse creates system.query_log at its first flush; a running server has one.
        engine.query("SYSTEM FLUSH LOGS")
    if args.seed == "demo":
        sys.path.insert(0, HERE)
        import demo_data
        demo_data.seed(engine, live=not args.static)

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.engine = engine
    server.user = args.user
    server.password = ""
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as f:
            server.password = f.read().rstrip("\r\n")
    server.verbose = args.verbose
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"dev-clickhouse: listening on http://{args.host}:{server.server_address[1]} (data {data_dir}, seed {args.seed})", flush=True)
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
