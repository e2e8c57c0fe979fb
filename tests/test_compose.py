"""docker-compose.yml for the multi-instance deployment (docs/deployment.md): it validates,
refuses to run without its secrets, and wires PostgreSQL, Redis, two monitors, the panel, a
demo ward and the TLS proxy with healthchecks and healthy-first start order; only the proxy
publishes a port.

There is no Docker engine here: `docker compose config` (or the standalone docker-compose
1.29.2 from PyPI, a dev dependency) validates the file without one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "REDIS_PASSWORD": "redis-secret",
    "VIGIL_ADMIN_PASSWORD": "admin-secret",
    "VIGIL_NURSE_PASSWORD": "nurse-secret",
    "VIGIL_DEMO_PASSWORD": "demo-secret",
}


def compose_command() -> list[str]:
    """The Compose v2 plugin when the docker CLI has it, else standalone docker-compose."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    # `make test` installs it in a venv of its own (its pins clash with ours).
    local = ROOT / ".venv-compose" / "bin" / "docker-compose"
    standalone = shutil.which("docker-compose") or (str(local) if local.exists() else None)
    assert standalone, (
        "neither `docker compose` nor docker-compose is installed: run `make compose-tool`"
    )
    return [standalone]


@pytest.fixture(scope="module")
def compose() -> list[str]:
    return compose_command()


def run_config(
    compose: list[str], env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    # Only PATH and the given variables: nothing from the developer's shell leaks in.
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(ROOT), **env}
    clean.pop("DOCKER_HOST", None)
    return subprocess.run(
        [*compose, "-f", str(COMPOSE_FILE), "config", *extra],
        capture_output=True,
        text=True,
        env=clean,
        cwd=ROOT,
        timeout=60,
    )


@pytest.fixture(scope="module")
def resolved(compose: list[str]) -> dict[str, Any]:
    r = run_config(compose, SECRETS)
    assert r.returncode == 0, r.stderr
    return dict(yaml.safe_load(r.stdout))


def test_compose_file_validates_with_its_secrets(compose: list[str]) -> None:
    """`compose config -q` accepts the file once every required secret is given."""
    r = run_config(compose, SECRETS, "-q")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_run_without_a_required_secret(compose: list[str], missing: str) -> None:
    """Every secret is ${VAR:?}: leaving one out is an error that names it, not a blank password."""
    env = {k: v for k, v in SECRETS.items() if k != missing}
    r = run_config(compose, env, "-q")
    assert r.returncode != 0
    assert missing in r.stderr


def test_compose_runs_two_monitors_on_shared_postgres_and_redis(resolved: dict[str, Any]) -> None:
    """Two monitor instances with distinct ids share one database and one Redis."""
    services = resolved["services"]
    a, b = services["monitor-a"], services["monitor-b"]
    for m in (a, b):
        assert m["command"][:4] == ["python", "-m", "monitor", "serve"]
        assert m["environment"]["VIGIL_DB"] == "postgresql://vigil:pg-secret@postgres:5432/vigil"
        assert m["environment"]["VIGIL_REDIS_URL"] == "redis://:redis-secret@redis:6379/0"
    assert a["environment"]["VIGIL_INSTANCE_ID"] != b["environment"]["VIGIL_INSTANCE_ID"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pg-secret"
    assert "redis-secret" in services["redis"]["command"]


def test_compose_starts_each_service_after_its_dependencies_are_healthy(
    resolved: dict[str, Any],
) -> None:
    """Servers have healthchecks; dependants wait for service_healthy (init: completed)."""
    services = resolved["services"]
    names = ("postgres", "redis", "monitor-a", "monitor-b", "panel", "simulator", "proxy")
    assert set(services) >= set(names)
    for name in names:
        assert services[name]["healthcheck"]["test"], name
    for name, svc in services.items():
        for dep, cond in svc.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dep == "init" else "service_healthy"
            assert cond["condition"] == expected, (name, dep)
            if dep != "init":
                assert "healthcheck" in services[dep], dep
    for m in ("monitor-a", "monitor-b"):
        assert set(services[m]["depends_on"]) == {"postgres", "redis", "init"}
    assert services["init"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_compose_panel_and_demo_ward_use_the_documented_commands(resolved: dict[str, Any]) -> None:
    """The panel is `python -m dashboard --monitor-url ...` on 8050; the ward is `simulators demo`."""
    services = resolved["services"]
    panel = services["panel"]["command"]
    assert panel[:3] == ["python", "-m", "dashboard"]
    assert panel[panel.index("--monitor-url") + 1].startswith("http://monitor-")
    assert panel[panel.index("--port") + 1] == "8050"
    assert not services["panel"].get("ports")  # reached through the proxy only
    sim = services["simulator"]["command"]
    assert sim[:4] == ["python", "-m", "simulators", "demo"]
    assert sim[sim.index("--url") + 1].startswith("ws://monitor-")
    assert services["simulator"]["environment"]["VIGIL_DEMO_PASSWORD"] == "demo-secret"


def test_dockerfile_builds_one_image_that_serves_the_monitor() -> None:
    """The Dockerfile installs from the lock file, drops root, and defaults to `monitor serve`."""
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11" in text
    assert "-c requirements.lock" in text
    assert "\nUSER vigil" in text
    assert '"monitor", "serve"' in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "data"} <= set(ignored)


def test_only_the_tls_proxy_publishes_a_port(resolved: dict[str, Any]) -> None:
    """Nothing patient-related is reachable in clear: the proxy's 443 is the one published
    port; monitors, panel, database and Redis talk on the internal network only."""
    services = resolved["services"]
    published = {name: svc["ports"] for name, svc in services.items() if svc.get("ports")}
    assert set(published) == {"proxy"}, published
    assert [p["target"] for p in published["proxy"]] == [443]


def test_the_proxy_is_caddy_with_the_repos_caddyfile_in_front_of_panel_api_and_feed(
    resolved: dict[str, Any],
) -> None:
    """A maintained Caddy image reads deploy/Caddyfile, waits for healthy monitors and panel,
    and the monitors believe X-Forwarded-For only from the proxy's and the panel's fixed
    addresses (docs/security.md)."""
    services = resolved["services"]
    proxy = services["proxy"]
    assert proxy["image"].startswith("caddy:2")
    mounts = dict(_mount(v) for v in proxy["volumes"])
    assert mounts["/etc/caddy/Caddyfile"] == (ROOT / "deploy" / "Caddyfile", True)
    assert set(proxy["depends_on"]) == {"monitor-a", "monitor-b", "panel"}
    proxy_ip = proxy["networks"]["vigil"]["ipv4_address"]
    panel_ip = services["panel"]["networks"]["vigil"]["ipv4_address"]
    for m in ("monitor-a", "monitor-b"):
        cmd = services[m]["command"]
        trusted = cmd[cmd.index("--forwarded-allow-ips") + 1].split(",")
        assert sorted(trusted) == sorted([proxy_ip, panel_ip]), m
    panel = services["panel"]["command"]
    assert panel[panel.index("--forwarded-allow-ips") + 1] == proxy_ip
    # init may run again on the next `up`: re-adding its users must say --reset.
    script = services["init"]["command"][-1]
    adds = [line for line in script.splitlines() if "monitor add-user" in line]
    assert len(adds) == 3 and all(line.endswith("--reset") for line in adds), adds


def _mount(v: Any) -> tuple[str, tuple[Path, bool]]:
    """target -> (source, read-only), from Compose v2's long or docker-compose 1.x's short form."""
    if isinstance(v, dict):
        return v["target"], (Path(v["source"]), bool(v.get("read_only")))
    source, target, *mode = str(v).split(":")
    return target, (Path(source), mode == ["ro"])


def caddy_validate(env: dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    caddy = shutil.which("caddy")
    assert caddy, "caddy is not installed: run `make proxy-tool` (Debian's caddy package)"
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        **env,
    }
    return subprocess.run(
        [caddy, "validate", "--adapter", "caddyfile", "--config", str(ROOT / "deploy/Caddyfile")],
        capture_output=True,
        text=True,
        env=clean,
        timeout=60,
    )


def test_the_caddyfile_validates_for_the_demo_and_refuses_a_missing_clinic_certificate(
    tmp_path: Path,
) -> None:
    """`caddy validate` accepts deploy/Caddyfile with the demo's internal CA, and with the
    clinic's own certificate files; it refuses to start when those files are missing."""
    r = caddy_validate({}, tmp_path)
    assert r.returncode == 0, r.stderr
    cert, key = make_certificate(tmp_path, "vigil.clinic.example")
    r = caddy_validate(
        {"VIGIL_SITE": "vigil.clinic.example", "VIGIL_TLS": f"{cert} {key}"}, tmp_path
    )
    assert r.returncode == 0, r.stderr
    r = caddy_validate({"VIGIL_TLS": f"{tmp_path}/none.pem {tmp_path}/none-key.pem"}, tmp_path)
    assert r.returncode != 0 and "none.pem" in r.stderr


def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name``, as a clinic's own would be given to Caddy."""
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        + ["-nodes", "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key
