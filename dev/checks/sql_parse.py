#!/usr/bin/env python3
"""Every statement of every shipped SQL file (deploy/clickhouse/*.sql: the schema and the
monitoring-user files) parsed by the parser of each ClickHouse engine the project supports
(dev/clickhouse/engines.py: 24.8, 25.8, 26.9, each the real ClickHouse embedded by its chdb),
with `EXPLAIN AST`: a syntax one of those servers would refuse fails here, named by engine, file
and statement. Parsing, not running: the embedded engine has no access storage for `CREATE USER`.

  sql_parse.py              check the shipped files on every engine (installs missing engines)
  sql_parse.py --self-test  a statement no engine parses must fail on each, and one that only
                            24.8 refuses (ALTER USER … ADD IDENTIFIED, 24.9+) must fail on 24.8
                            alone: each engine's own parser answers
  sql_parse.py --worker     (internal) parse the JSON list of statements on stdin with this
                            interpreter's chdb; print a JSON list of errors (null where it parsed)"""

import glob
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "dev", "clickhouse"))
import engines  # noqa: E402


def statements(path):
    """Statements of a file: `--` comment lines dropped, split on `;` (the files hold no `;` in
    strings; tests/monitoring_user.rs splits them the same way)."""
    with open(path) as f:
        code = "\n".join(line for line in f.read().splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in code.split(";") if s.strip()]


def worker():
    import chdb

    errors = []
    for stmt in json.load(sys.stdin):
        try:
            chdb.query(f"EXPLAIN AST {stmt}", "TSV")
            errors.append(None)
        except Exception as e:  # chdb raises its own exception type per version
            errors.append(str(e).strip().splitlines()[0][:300])
    json.dump(errors, sys.stdout)


def parse(version, stmts):
    """Per statement: None if `version`'s engine parses it, else its error."""
    out = subprocess.run([engines.python(version), os.path.abspath(__file__), "--worker"],
                         input=json.dumps(stmts), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"sql_parse: the {version} worker failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


def check():
    files = sorted(glob.glob(os.path.join(ROOT, "deploy", "clickhouse", "*.sql")))
    work = [(os.path.relpath(f, ROOT), s) for f in files for s in statements(f)]
    if len(files) < 4 or not work:
        print(f"sql_parse: expected the schema and three monitoring-user files, found {files}")
        return 1
    failures = 0
    for version in engines.ENGINES:
        errors = parse(version, [s for _, s in work])
        for (path, stmt), error in zip(work, errors):
            if error:
                failures += 1
                print(f"FAIL {version} {path}: {stmt.splitlines()[0]} ...\n     {error}")
        bad = sum(1 for e in errors if e)
        print(f"{'ok  ' if not bad else 'FAIL'} ClickHouse {version}: {len(work) - bad} of {len(work)} statements of {len(files)} files parse")
    return 1 if failures else 0


def self_test():
    cases = ["SELEC 1", "ALTER USER polo_exporter ADD IDENTIFIED WITH sha256_password BY 'x'"]
    expected = {"SELEC 1": set(engines.ENGINES), cases[1]: {"24.8"}}
    failed = 0
    for stmt in cases:
        refused = {v for v in engines.ENGINES if parse(v, [stmt])[0]}
        ok = refused == expected[stmt]
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {stmt!r}: refused by {sorted(refused)}, expected {sorted(expected[stmt])}")
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker()
    elif sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    else:
        sys.exit(check())
