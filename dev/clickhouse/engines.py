"""The ClickHouse engine versions the dev server can run (chdb embeds one ClickHouse each), and
the project-local virtualenv each one lives in. Standard library only: server.py imports it
before chdb, to re-execute itself under the interpreter of the engine asked for.

    .venv                 chdb-core 26.9 (dev/requirements.txt, scripts/lib/python-env)
    .venv-engines/24.8    chdb 2.1.1   (ClickHouse 24.8.4)
    .venv-engines/25.8    chdb 3.7.2   (ClickHouse 25.8.2)
"""

import fcntl
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Engine version -> PyPI requirement. The newest is the default and lives in the project's .venv.
ENGINES = {
    "24.8": "chdb==2.1.1",
    "25.8": "chdb==3.7.2",
    "26.9": "chdb-core==26.9.0",
}
DEFAULT = "26.9"


def venv_dir(version):
    if version == DEFAULT:
        return os.path.join(ROOT, ".venv")
    return os.path.join(ROOT, ".venv-engines", version)


def python(version):
    """The interpreter of `version`'s virtualenv, created and installed on first use (10-40 s,
    0.6-1.2 GB); concurrent callers wait for one install."""
    if version not in ENGINES:
        raise SystemExit(f"engines: unknown engine {version!r}; known: {', '.join(ENGINES)}")
    venv = venv_dir(version)
    exe = os.path.join(venv, "bin", "python")
    if version == DEFAULT:
        return exe  # made by scripts/lib/python-env
    stamp = os.path.join(venv, ".polo-requirement")
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    with open(venv + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        have = open(stamp).read().strip() if os.path.exists(stamp) else None
        if have != ENGINES[version]:
            sys.stderr.write(f"engines: installing {ENGINES[version]} into {venv}\n")
            subprocess.run([sys.executable if sys.prefix == sys.base_prefix else "python3", "-m", "venv", venv], check=True)
            subprocess.run([exe, "-m", "pip", "install", "-q", "--disable-pip-version-check", ENGINES[version]],
                           check=True, stdout=sys.stderr)
            with open(stamp, "w") as f:
                f.write(ENGINES[version] + "\n")
    return exe


def running_in(version):
    return os.path.realpath(sys.prefix) == os.path.realpath(venv_dir(version))


if __name__ == "__main__":
    # `python engines.py VERSION`: install if needed, print the interpreter.
    print(python(sys.argv[1] if len(sys.argv) > 1 else DEFAULT))
