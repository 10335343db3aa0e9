#!/usr/bin/env python3
"""Installs, checks, removes and purges the Debian package given as argument (scripts/check-package).

Real tools only: dpkg, systemd-analyze (offline: no systemd runs here), runuser, strace, openssl,
Prometheus. Each step prints `ok` or `FAIL`; the exit status is 1 if anything failed. Needs root
and a machine where polo-exporter is not installed (it is removed and purged at the end, with
its user)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "stack"))
from stack import free_port, wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = "/lib/systemd/system/polo-exporter.service"
CONFIG = "/etc/polo-exporter/polo-exporter.yml"
USER = "polo-exporter"
# systemd-analyze security: the exposure (0 = locked down, 10 = unprotected) must stay at or below this.
MAX_EXPOSURE = 2.0
# Directives the unit must carry with exactly these values (besides what systemd-analyze scores).
REQUIRED = {
    "User": "polo-exporter",
    "Group": "polo-exporter",
    "ProtectSystem": "strict",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "ReadWritePaths": "/var/lib/polo-exporter",
    "StateDirectory": "polo-exporter",
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "MemoryDenyWriteExecute": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
}
# Where a leftover of the package would be after the purge.
LEFTOVER_ROOTS = ["/etc", "/var/lib", "/var/cache", "/usr", "/run", "/opt", "/srv", "/home"]

passed, failed = 0, 0
report = {}


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}")
        for line in str(detail).strip().splitlines():
            print(f"     {line}")
    return ok


def run(*cmd, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True, **kw)


def installed():
    return run("dpkg-query", "-W", "-f=${db:Status-Status}", "polo-exporter").stdout.strip()


def unit_directives(path):
    """[Service]/[Unit]/[Install] directives: name -> list of values (in order)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";", "[")):
                continue
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def syscall_groups():
    """systemd's syscall groups (systemd-analyze syscall-filter): group -> set of syscalls, expanded."""
    groups, current = {}, None
    for line in run("systemd-analyze", "syscall-filter").stdout.splitlines():
        if line.startswith("@"):
            current = line.strip()
            groups[current] = []
        elif current and line.startswith("    ") and not line.strip().startswith("#"):
            groups[current].append(line.strip())
        elif not line.strip():
            current = None

    def expand(name, seen=()):
        if not name.startswith("@"):
            return {name}
        out = set()
        for member in groups.get(name, []):
            if member not in seen:
                out |= expand(member, seen + (name,))
        return out

    return expand


def allowed_syscalls(filters):
    """The allow list that SystemCallFilter= lines give (systemd's semantics: the first line decides
    allow- or deny-list; later ~lines remove, later plain lines add)."""
    expand = syscall_groups()
    allowed = None
    for value in filters:
        deny = value.startswith("~")
        names = set()
        for item in value.lstrip("~").split():
            names |= expand(item)
        if allowed is None:
            if deny:
                raise ValueError("a deny list first: not an allow list")
            allowed = names
        elif deny:
            allowed -= names
        else:
            allowed |= names
    return allowed or set()


def main(deb):
    if installed():
        print(f"check-package: polo-exporter is already installed here ({installed()}); purge it first: dpkg -P polo-exporter")
        return 1
    if run("getent", "passwd", USER).returncode == 0:
        print(f"check-package: a user {USER} exists already; the purge would delete it")
        return 1

    # The package itself.
    info = run("dpkg-deb", "--info", deb)
    contents = run("dpkg-deb", "--contents", deb).stdout
    check("dpkg-deb reads the package", info.returncode == 0, info.stderr)
    with tempfile.TemporaryDirectory() as ctrl:
        run("dpkg-deb", "--control", deb, ctrl)
        with open(os.path.join(ctrl, "conffiles")) as f:
            conffiles = f.read().split()
        with open(os.path.join(ctrl, "control")) as f:
            control = f.read()
    check("conffiles: the config and the flags", conffiles == [CONFIG, "/etc/default/polo-exporter"], conffiles)
    name = os.path.basename(deb)
    version = re.search(r"^Version: (.+)$", control, re.M).group(1)
    arch = re.search(r"^Architecture: (.+)$", control, re.M).group(1)
    check("file name is polo-exporter_<version>_<arch>.deb", name == f"polo-exporter_{version}_{arch}.deb", name)
    for path in ("./usr/bin/polo-exporter", "." + UNIT, "." + CONFIG, "./etc/default/polo-exporter",
                 "./usr/share/doc/polo-exporter/examples/web-config.yml"):
        check(f"the package holds {path[1:]}", re.search(rf" {re.escape(path)}$", contents, re.M) is not None)
    report["deb_size_kib"] = os.path.getsize(deb) // 1024
    out = run("lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", deb)
    tags = [line for line in (out.stdout + out.stderr).splitlines() if re.match(r"^[EW]: ", line)]
    check("lintian: no error, no warning (overrides: deploy/debian/lintian-overrides)", out.returncode == 0 and not tags,
          "\n".join(tags) or out.stdout + out.stderr)

    files_of_package = [line.split()[5][1:] for line in contents.splitlines()]

    # Install.
    out = run("dpkg", "-i", deb)
    if not check("dpkg -i", out.returncode == 0 and installed() == "installed", out.stdout + out.stderr):
        return 1
    try:
        return installed_checks()
    finally:
        remove_and_purge(files_of_package)


def installed_checks():
    pw = run("getent", "passwd", USER).stdout.strip().split(":")
    check("postinst made the system user polo-exporter (nologin, home /var/lib/polo-exporter)",
          len(pw) == 7 and int(pw[2]) < 1000 and pw[6] == "/usr/sbin/nologin" and pw[5] == "/var/lib/polo-exporter", pw)
    st = os.stat("/var/lib/polo-exporter")
    check("/var/lib/polo-exporter: owned by the user, 0750",
          st.st_uid == int(pw[2]) and oct(st.st_mode & 0o777) == "0o750", (st.st_uid, oct(st.st_mode)))
    st = os.stat(CONFIG)
    gid = int(run("getent", "group", USER).stdout.split(":")[2])
    check(f"{CONFIG}: root:polo-exporter 0640", st.st_uid == 0 and st.st_gid == gid and oct(st.st_mode & 0o777) == "0o640",
          (st.st_uid, st.st_gid, oct(st.st_mode)))
    check("the unit is enabled (multi-user.target.wants)",
          os.path.islink("/etc/systemd/system/multi-user.target.wants/polo-exporter.service"))

    # The unit, without a running systemd.
    out = run("systemd-analyze", "verify", UNIT)
    check("systemd-analyze verify: no error, no warning", out.returncode == 0 and not (out.stdout + out.stderr).strip(),
          out.stdout + out.stderr)
    out = run("systemd-analyze", "security", "--offline=yes", "--no-pager", UNIT)
    m = re.search(r"Overall exposure level for polo-exporter.service: ([0-9.]+) (\w+)", out.stdout)
    exposure = float(m.group(1)) if m else None
    report["exposure"] = f"{m.group(1)} {m.group(2)}" if m else None
    report["exposure_open"] = [re.sub(r"\s{2,}", " | ", line.strip()) for line in out.stdout.splitlines() if line.startswith("✗")]
    check(f"systemd-analyze security --offline=yes: exposure {report['exposure']} <= {MAX_EXPOSURE}",
          exposure is not None and exposure <= MAX_EXPOSURE, out.stdout[-3000:] + out.stderr)
    directives = unit_directives(UNIT)
    wrong = {k: (directives.get(k), v) for k, v in REQUIRED.items() if directives.get(k) != [v]}
    check("hardening directives (parsed): " + ", ".join(f"{k}={v}" for k, v in list(REQUIRED.items())[2:6]), not wrong, wrong)
    filters = directives.get("SystemCallFilter", [])
    allowed = allowed_syscalls(filters)
    check("SystemCallFilter is an allow list (@system-service) without @privileged and @resources",
          filters and filters[0] == "@system-service" and "setuid" not in allowed and "setrlimit" not in allowed
          and "read" in allowed, filters)

    # The manual page describes every flag of --help.
    helptext = run("/usr/bin/polo-exporter", "--help").stdout
    flags = set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z.-]*)", helptext, re.M))
    page = run("zcat", "/usr/share/man/man1/polo-exporter.1.gz").stdout.replace("\\-", "-")
    undocumented = sorted(f for f in flags if f not in page)
    check(f"the manual page describes every flag of --help ({len(flags)})", flags and not undocumented, undocumented)

    # The installed binary with the installed config, as the service user.
    out = run("runuser", "-u", USER, "--", "/usr/bin/polo-exporter", f"--config.file={CONFIG}", "--config.check")
    check("polo-exporter --config.file=/etc/polo-exporter/polo-exporter.yml --config.check (as polo-exporter)",
          out.returncode == 0 and "config OK" in out.stdout, out.stdout + out.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy("/usr/share/doc/polo-exporter/examples/web-config.yml", tmp)
        os.makedirs(os.path.join(tmp, "tls"))
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-keyout", f"{tmp}/tls/server.key", "-out", f"{tmp}/tls/server.crt")
        out = run("/usr/bin/polo-exporter", f"--config.file={CONFIG}", f"--web.config.file={tmp}/web-config.yml", "--config.check")
        check("the web config example (with a generated certificate) passes --config.check", out.returncode == 0, out.stdout + out.stderr)

    service_run()
    return 0


def service_command(port):
    """ExecStart with /etc/default/polo-exporter's ARGS, the port replaced by a free one."""
    execstart = unit_directives(UNIT)["ExecStart"][0]
    env = {}
    with open("/etc/default/polo-exporter") as f:
        for line in f:
            m = re.match(r'^([A-Z_]+)="?(.*?)"?$', line.strip())
            if m:
                env[m.group(1)] = m.group(2)
    cmd = execstart.replace("$ARGS", env.get("ARGS", "")).split()
    return [re.sub(r"^--web.listen-address=.*", f"--web.listen-address=127.0.0.1:{port}", a) for a in cmd], env


def service_run():
    """The unit's command as its user, in its working directory, under strace: a scrape, Prometheus's
    file_sd job, SIGHUP (ExecReload) and SIGTERM; then every syscall it made against the filter."""
    port = free_port()
    cmd, _ = service_command(port)
    check("ExecStart names the installed binary and config", cmd[:2] == ["/usr/bin/polo-exporter", f"--config.file={CONFIG}"], cmd)
    tmp = tempfile.mkdtemp(prefix="polo-package-")
    prom = None
    try:
        trace = os.path.join(tmp, "strace.txt")
        log = open(os.path.join(tmp, "exporter.log"), "w+")
        # strace -u: strace switches to the user before it executes the command, as systemd does.
        proc = subprocess.Popen(["strace", "-f", "-qq", "-c", "-o", trace, "-u", USER] + cmd,
                                cwd="/var/lib/polo-exporter", stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for("the exporter", lambda: urllib.request.urlopen(url + "/readyz", timeout=2).read(), 60)
            body = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
            check("the service's command line serves /metrics as the service user",
                  "polo_exporter_build_info" in body and "polo_exporter_source_up" in body, body[:500])

            # Prometheus with the shipped file_sd job (and the static job) pointed at it.
            with open(os.path.join(ROOT, "deploy/prometheus/prometheus.yml")) as f:
                cfg = yaml.safe_load(f)
            jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
            job = jobs["polo-exporter-file-sd"]
            job["scrape_interval"] = job["scrape_timeout"] = "1s"
            job["file_sd_configs"][0]["refresh_interval"] = "1s"
            cfg = {"global": {"scrape_interval": "1s"}, "scrape_configs": [job]}
            os.makedirs(os.path.join(tmp, "targets"))
            with open(os.path.join(ROOT, "deploy/prometheus/targets/polo-exporter.yml")) as f:
                targets = yaml.safe_load(f)
            targets[0]["targets"] = [f"127.0.0.1:{port}"]
            with open(os.path.join(tmp, "targets", "polo-exporter.yml"), "w") as f:
                yaml.safe_dump(targets, f)
            with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
                yaml.safe_dump(cfg, f)
            pport = free_port()
            prom = subprocess.Popen([shutil.which("prometheus"), f"--config.file={tmp}/prometheus.yml",
                                     f"--storage.tsdb.path={tmp}/data", f"--web.listen-address=127.0.0.1:{pport}"],
                                    stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "prometheus.log"), "w"))
            query = f"http://127.0.0.1:{pport}/api/v1/query?query=" + urllib.parse.quote('polo_exporter_build_info{job="polo-exporter"}')

            def scraped():
                result = json.load(urllib.request.urlopen(query, timeout=2))["data"]["result"]
                if not result:
                    raise RuntimeError("no series yet")
                return result

            try:
                result = wait_for("Prometheus's file_sd scrape", scraped, 30)
                labels = result[0]["metric"]
                check("Prometheus's file_sd job scrapes it as job=polo-exporter with the targets file's labels",
                      labels.get("job") == "polo-exporter" and labels.get("instance") == f"127.0.0.1:{port}"
                      and labels.get("environment") == targets[0]["labels"]["environment"], labels)
            except Exception as e:  # noqa: BLE001
                check("Prometheus's file_sd job scrapes it as job=polo-exporter", False, e)

            # ExecReload: kill -HUP $MAINPID. The main PID is the exporter, strace's child.
            pid = exporter_pid(proc.pid)
            os.kill(pid, signal.SIGHUP)
            ok = wait_log(log, "configuration reloaded")
            check("SIGHUP (ExecReload) reloads the configuration", ok, tail(log))
            os.kill(pid, signal.SIGTERM)
            rc = proc.wait(timeout=30)
            check("SIGTERM stops it gracefully (exit 0, message=stopped)", rc == 0 and wait_log(log, "message=stopped"), tail(log))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        used = parse_strace(trace)
        allowed = allowed_syscalls(unit_directives(UNIT)["SystemCallFilter"])
        denied = sorted(s for s in used if s not in allowed)
        report["syscalls_used"] = len(used)
        check(f"every syscall it made ({len(used)} distinct, startup to stop) is allowed by SystemCallFilter",
              used and not denied, f"denied by the filter: {denied}")
    finally:
        if prom:
            prom.terminate()
            prom.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def exporter_pid(parent):
    """The polo-exporter process started under the given strace."""
    deadline = time.time() + 10
    while time.time() < deadline:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if argv[0] == b"/usr/bin/polo-exporter" and ppid != 0 and ancestor(int(pid), parent):
                return int(pid)
        time.sleep(0.1)
    raise RuntimeError("exporter process not found")


def ancestor(pid, parent):
    while pid > 1:
        if pid == parent:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
    return False


def wait_log(log, text, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        log.flush()
        log.seek(0)
        if text in log.read():
            return True
        time.sleep(0.1)
    return False


def tail(log):
    log.seek(0)
    return "".join(log.readlines()[-10:])


def parse_strace(path):
    """Syscall names from the `strace -c` summary (from the exec of the exporter to its exit)."""
    names = set()
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and re.match(r"^[0-9.]+$", parts[0]) and parts[-1] != "total":
                names.add(parts[-1])
    return names


def remove_and_purge(files_of_package):
    out = run("dpkg", "-r", "polo-exporter")
    check("dpkg -r", out.returncode == 0 and installed() == "config-files", out.stdout + out.stderr)
    gone = [p for p in ("/usr/bin/polo-exporter", UNIT) if os.path.exists(p)]
    check("after dpkg -r: binary and unit gone; conffiles kept (Debian's remove)",
          not gone and os.path.exists(CONFIG) and os.path.exists("/etc/default/polo-exporter"), gone)
    out = run("dpkg", "-P", "polo-exporter")
    check("dpkg -P", out.returncode == 0 and installed() in ("", "not-installed"), out.stdout + out.stderr)
    left = [p for p in files_of_package if os.path.lexists(p) and not os.path.isdir(p)]
    left += [p for p in ("/etc/polo-exporter", "/var/lib/polo-exporter", "/usr/share/doc/polo-exporter") if os.path.exists(p)]
    found = run("find", *LEFTOVER_ROOTS, "-xdev", "-name", "*polo-exporter*", "-not", "-path", "/work/*").stdout.split()
    check("after dpkg -P: none of its files, no *polo-exporter* path under " + " ".join(LEFTOVER_ROOTS),
          not left and not found, left + found)
    check("after dpkg -P: no polo-exporter user or group",
          run("getent", "passwd", USER).returncode != 0 and run("getent", "group", USER).returncode != 0)


if __name__ == "__main__":
    started = time.time()
    rc = main(sys.argv[1])
    print(f"systemd-analyze security exposure: {report.get('exposure')}; open items:")
    for line in report.get("exposure_open", []):
        print(f"     {line}")
    print(f"check-package: {passed} passed, {failed} failed in {time.time() - started:.0f}s "
          f"(package {report.get('deb_size_kib')} KiB)")
    sys.exit(1 if rc or failed else 0)
