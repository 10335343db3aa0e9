#!/usr/bin/env python3
"""Static checks of docker-compose.yml and the Dockerfile (no Docker engine runs here): the
file parses; every image is pinned; every mounted path and referenced file exists in the
repository; host ports do not collide; the exporter's config inside compose passes
`polo-exporter --config.check`; the compose Prometheus config passes `promtool check config`;
the Dockerfile is multi-stage with pinned bases and a non-root runtime user."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "stack"))
from stack import binary as stack_binary  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVICES = {"clickhouse", "seed", "aws", "exporter", "prometheus", "alertmanager", "grafana"}


def pinned(image):
    name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
    return bool(tag) and tag != "latest" and re.search(r"\d", tag) is not None


def main():
    errors = []
    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    services = compose.get("services", {})
    if set(services) != SERVICES:
        errors.append(f"services {sorted(services)} differ from {sorted(SERVICES)}")
    host_ports = []
    exporter_config = None
    prometheus_config = None
    for name, svc in services.items():
        image = svc.get("image")
        if "build" in svc:
            build = svc["build"]
            context = os.path.join(ROOT, build.get("context", "."))
            dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
            if not os.path.isfile(dockerfile):
                errors.append(f"{name}: {dockerfile} missing")
        elif not image or not pinned(image):
            errors.append(f"{name}: image {image!r} is not pinned to a version")
        for port in svc.get("ports", []):
            host_ports.append((str(port).split(":")[0], name))
        for volume in svc.get("volumes", []):
            src, dst = volume.split(":")[:2]
            if src.startswith("./") or src.startswith("../"):
                path = os.path.normpath(os.path.join(ROOT, src))
                if not os.path.exists(path):
                    errors.append(f"{name}: mounted path {src} does not exist")
                if dst == "/etc/polo-exporter/polo-exporter.yml":
                    exporter_config = path
                if dst == "/etc/prometheus/prometheus.yml":
                    prometheus_config = path
        command = svc.get("command") or []
        for arg in command if isinstance(command, list) else [command]:
            for ref in re.findall(r"(dev/[\w/.-]+\.(?:py|txt))", str(arg)):
                if not os.path.exists(os.path.join(ROOT, ref)):
                    errors.append(f"{name}: command references missing {ref}")
    ports = [p for p, _ in host_ports]
    dupes = {p for p in ports if ports.count(p) > 1}
    if dupes:
        errors.append(f"host ports used twice: {sorted(dupes)}")

    binary = stack_binary()
    if exporter_config is None:
        errors.append("no config mounted into the exporter")
    else:
        out = subprocess.run([binary, "--config.file", exporter_config, "--config.check"], capture_output=True, text=True)
        if out.returncode != 0:
            errors.append(f"compose exporter config: {out.stdout}{out.stderr}")
    if prometheus_config is None:
        errors.append("no config mounted into Prometheus")
    else:
        tmp = tempfile.mkdtemp()
        try:
            shutil.copy(prometheus_config, os.path.join(tmp, "prometheus.yml"))
            shutil.copytree(os.path.join(ROOT, "deploy/prometheus/rules"), os.path.join(tmp, "rules"))
            out = subprocess.run(["promtool", "check", "config", os.path.join(tmp, "prometheus.yml")], capture_output=True, text=True)
            if out.returncode != 0:
                errors.append(f"compose Prometheus config: {out.stdout}{out.stderr}")
        finally:
            shutil.rmtree(tmp)

    with open(os.path.join(ROOT, "Dockerfile")) as f:
        dockerfile = f.read()
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    if len(froms) < 2:
        errors.append("Dockerfile is not multi-stage")
    for base in froms:
        if not pinned(base):
            errors.append(f"Dockerfile base {base} is not pinned")
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    if not users or users[-1].split(":")[0] in ("root", "0"):
        errors.append("the runtime stage does not switch to a non-root user")
    for copied in re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+$", dockerfile, re.M):
        for src in copied.split():
            if not os.path.exists(os.path.join(ROOT, src)):
                errors.append(f"Dockerfile copies missing {src}")

    if errors:
        print("\n".join(errors))
        return 1
    print(f"{len(services)} services, {len(host_ports)} host ports, images pinned, mounts present, configs valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
