"""The production topology in docker/ (issue 4, "The production topology").

No Docker engine runs on these machines (and the `docker` client here has no compose plugin),
so these tests check what can be checked without one: the compose file parses; every service
has a health check and waits for healthy dependencies; every `REELFORGE_*` variable is a real
`Settings` field and the API's and workers' environments resolve in production mode and point
at the compose services that exist; the commands are the ones the code accepts; the
Dockerfiles copy files that exist and the build context keeps, run the installed entry points
as a non-root user, and the GPU image asks for NVENC. Then the same topology runs as plain
processes: the API and a worker start from the compose file's own commands and environments,
with the service host names pointed at real local PostgreSQL, Redis and an S3 server (moto).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from dramatiq.cli import make_argument_parser
from dramatiq.common import q_name
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import cli
import worker as worker_module
from api.core.db import new_id
from api.core.settings import Settings, SettingsError
from cdn.edge import cache_file
from cli.serve import cmd_serve
from engine.encoders import ENCODERS
from tests.support.services import (
    ApiProcess,
    WorkerProcess,
    cmdline,
    ensure_postgres,
    ensure_redis,
    free_port,
    fresh_postgres_database,
    process_tree,
    redis_database,
    start_moto,
)
from tests.support.topology import (
    COMPOSE_FILE,
    DOCKER,
    ROOT,
    ComposeError,
    Dockerfile,
    DockerIgnore,
    environment,
    load_compose,
    parse_dockerfile,
)

VENV_BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SECRETS = {
    "POSTGRES_PASSWORD": "pg-" + secrets.token_hex(8),
    "MINIO_ROOT_PASSWORD": "minio-" + secrets.token_hex(8),
    "REELFORGE_SECRET_KEY": secrets.token_urlsafe(32),
}
SERVICES = {"postgres", "redis", "minio", "api", "worker", "worker-gpu", "edge-jobs", "edge"}
APP_SERVICES = ("api", "worker", "worker-gpu", "edge-jobs")
WORKERS = ("worker", "worker-gpu", "edge-jobs")
DOCKERFILES = {
    "api": DOCKER / "api.Dockerfile",
    "worker": DOCKER / "worker.Dockerfile",
    "worker-gpu": DOCKER / "worker-gpu.Dockerfile",
}
SETTINGS_VARIABLES = {"REELFORGE_" + f.name.upper() for f in dataclasses.fields(Settings)}
# Where each backing service listens inside the compose network.
SERVICE_PORTS = {"postgres": 5432, "redis": 6379, "minio": 9000, "api": 8000, "edge": 8080}
EDGE_CONF = DOCKER / "edge" / "nginx.conf"
EDGE_CACHE = "/var/cache/reelforge"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(SECRETS)


def services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def dockerfile(name: str) -> Dockerfile:
    path = DOCKERFILES[name]
    assert path.is_file(), f"missing {path}"
    return parse_dockerfile(path)


def image_of(compose: Mapping[str, Any], service: str) -> Dockerfile:
    """The Dockerfile a service is built from (the repository root is the build context)."""
    build = services(compose)[service]["build"]
    assert (COMPOSE_FILE.parent / build["context"]).resolve() == ROOT, build
    path = (ROOT / build["dockerfile"]).resolve()
    assert path in DOCKERFILES.values(), path
    return parse_dockerfile(path)


def container_env(compose: Mapping[str, Any], name: str) -> dict[str, str]:
    """What the process in the container sees: the image's ENV, then the service's."""
    image_env = image_of(compose, name).final.env()
    return {**image_env, **environment(services(compose)[name])}


def command(compose: Mapping[str, Any], name: str) -> list[str]:
    """The service's command: compose's `command`, else the image's CMD."""
    cmd = services(compose)[name].get("command")
    if cmd is None:
        return image_of(compose, name).command()
    assert isinstance(cmd, list), f"{name}: command must be a list (exec form)"
    return [str(word) for word in cmd]


def console_scripts(distribution: str) -> set[str]:
    return {
        ep.name
        for ep in importlib.metadata.distribution(distribution).entry_points
        if ep.group == "console_scripts"
    }


# -- the compose file --------------------------------------------------------------------------
def test_the_feed_model_folder_is_shared_by_the_api_and_the_trainers(
    compose: dict[str, Any],
) -> None:
    """Issue 17: the worker that runs `train_feed_model` and every API process see one model
    folder (the `feed-model` volume at REELFORGE_FEED_MODEL_DIR), which the images create
    owned by their user, so a new named volume is writable by it."""
    folder = container_env(compose, "api")["REELFORGE_FEED_MODEL_DIR"]
    for name in ("api", "worker", "worker-gpu"):
        assert container_env(compose, name)["REELFORGE_FEED_MODEL_DIR"] == folder, name
        mounts = [str(v).split(":") for v in services(compose)[name].get("volumes", [])]
        assert ["feed-model", folder] in mounts, (name, mounts)
        consumed = " ".join(str(a) for a in command(compose, name))
        if name != "api":
            assert "feed_model" in consumed, name
        text = (ROOT / "docker" / f"{name}.Dockerfile").read_text()
        assert f"install -d -o reelforge -g reelforge {folder}" in text, name


def test_compose_names_the_whole_topology(compose: dict[str, Any]) -> None:
    assert set(services(compose)) == SERVICES
    assert set(compose["volumes"]) == {
        "postgres-data", "redis-data", "minio-data", "edge-cache", "feed-model",
    }  # fmt: skip
    data_paths = {"postgres": "/var/lib/postgresql/data", "redis": "/data", "minio": "/data"}
    for name, target in data_paths.items():
        mounts = [str(v).split(":") for v in services(compose)[name]["volumes"]]
        assert [m[1] for m in mounts if m[0] == f"{name}-data"] == [target], (name, mounts)
    for name, service in services(compose).items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_secrets_have_no_default(secret: str) -> None:
    env = {k: v for k, v in SECRETS.items() if k != secret}
    with pytest.raises(ComposeError, match=secret):
        load_compose(env)


def test_every_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name}: no health check"
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), (name, test)
        assert len(test) > 1 and all(str(word).strip() for word in test), (name, test)
        for key in ("interval", "timeout"):
            assert re.fullmatch(r"\d+(ms|s|m)", str(check.get(key, ""))), (name, key, check)
    probes = {name: " ".join(s["healthcheck"]["test"]) for name, s in services(compose).items()}
    assert "pg_isready" in probes["postgres"]
    assert "redis-cli ping" in probes["redis"]
    assert "mc ready local" in probes["minio"]  # MinIO's health API, through its own client
    assert "127.0.0.1:8000/readyz" in probes["api"]
    assert "127.0.0.1:8080" in probes["edge"]


def test_dependencies_are_gated_on_health(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    expected = {
        "api": {"postgres", "redis", "minio"},
        "worker": {"postgres", "redis", "minio", "api"},
        "worker-gpu": {"postgres", "redis", "minio", "api"},
        "edge-jobs": {"postgres", "redis", "minio", "api", "edge"},
        "edge": {"api"},
    }
    for name, service in all_services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must use conditions"
        assert set(depends) == expected.get(name, set()), (name, sorted(depends))
        for target, rule in depends.items():
            assert target in all_services, (name, target)
            assert rule.get("condition") == "service_healthy", (name, target, rule)
            assert "healthcheck" in all_services[target]


def test_reelforge_variables_are_settings_fields(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        named = {k for k in environment(service) if k.startswith("REELFORGE_")}
        assert named <= SETTINGS_VARIABLES, (name, sorted(named - SETTINGS_VARIABLES))
        if name in APP_SERVICES:
            image_env = image_of(compose, name).final.env()
            image = {k for k in image_env if k.startswith("REELFORGE_")}
            assert image <= SETTINGS_VARIABLES, (name, sorted(image - SETTINGS_VARIABLES))
        else:
            assert not named, f"{name} is not ours but sets {sorted(named)}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_environment_resolves_in_production(compose: dict[str, Any], name: str) -> None:
    """The check `Settings.resolved()` makes at start, on the container's environment, and
    every address it names is a compose service with the credentials that service is given."""
    env = container_env(compose, name)
    settings = Settings.from_env(env)
    assert settings.mode == "production" and settings.storage == "s3"
    assert settings.secret_key == SECRETS["REELFORGE_SECRET_KEY"]
    for variable in ("REELFORGE_DATABASE_URL", "REELFORGE_REDIS_URL", "REELFORGE_SECRET_KEY"):
        with pytest.raises(SettingsError, match=variable):
            Settings.from_env({k: v for k, v in env.items() if k != variable})

    postgres = environment(services(compose)["postgres"])
    database = urlsplit(settings.sync_database_url)
    assert (database.hostname, database.port) == ("postgres", SERVICE_PORTS["postgres"])
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == postgres["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]
    assert database.path.lstrip("/") == postgres["POSTGRES_DB"]
    redis_url = urlsplit(settings.redis_url)
    assert (redis_url.hostname, redis_url.port) == ("redis", SERVICE_PORTS["redis"])

    minio = services(compose)["minio"]
    assert settings.s3_endpoint == f"minio:{SERVICE_PORTS['minio']}"
    assert f":{SERVICE_PORTS['minio']}" in minio["command"]
    assert settings.s3_access_key == environment(minio)["MINIO_ROOT_USER"]
    assert settings.s3_secret_key == environment(minio)["MINIO_ROOT_PASSWORD"]
    # Players get media through the edge, not straight from the origin.
    edge_port = SERVICE_PORTS["edge"]
    assert f"{edge_port}:{edge_port}" in services(compose)["edge"]["ports"]
    assert urlsplit(settings.media_url).port == edge_port
    assert settings.media_url.endswith("/media")
    # Pre-warm goes to the edge service; purge deletes files in the edge's cache volume.
    assert [urlsplit(url)[1:3] for url in settings.edges] == [(f"edge:{edge_port}", "/media")]
    assert settings.edge_purge == "files" and settings.edge_cache_dirs == (EDGE_CACHE,)


def test_workers_pick_their_encoder(compose: dict[str, Any]) -> None:
    cpu = Settings.from_env(container_env(compose, "worker"))
    gpu = Settings.from_env(container_env(compose, "worker-gpu"))
    assert cpu.encoder == "libx264" and cpu.encoder in ENCODERS
    assert gpu.encoder == "h264_nvenc" and gpu.encoder in ENCODERS
    assert dockerfile("worker-gpu").final.env()["REELFORGE_ENCODER"] == "h264_nvenc"


def test_gpu_worker_is_an_optional_profile(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        assert service.get("profiles", []) == (["gpu"] if name == "worker-gpu" else []), name
    gpu = services(compose)["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1 and devices[0]["driver"] == "nvidia"
    assert {"gpu", "video"} <= set(devices[0]["capabilities"])
    image = dockerfile("worker-gpu")
    assert image.final.base.startswith("nvidia/cuda:") and "-runtime-" in image.final.base
    capabilities = set(image.final.env()["NVIDIA_DRIVER_CAPABILITIES"].split(","))
    assert capabilities == {"video", "compute", "utility"}


RESTARTS = {"always", "unless-stopped", "on-failure"}
"""Restart policies that bring back a `dramatiq` that exited (it exits non-zero, 3, when one of
its worker processes dies: `test_compose_services_run_as_processes` kills one)."""


def test_every_worker_service_is_restarted(compose: dict[str, Any]) -> None:
    """Issue 16 item 8: compose is what supervises the worker pools, so every service that
    runs `dramatiq` (and the API) must come back after its process exits."""
    dramatiq_services = {
        name
        for name, service in services(compose).items()
        if "build" in service and command(compose, name)[0] == "dramatiq"
    }
    assert dramatiq_services == set(WORKERS)
    for name in (*WORKERS, "api"):
        policy = str(services(compose)[name].get("restart", "no"))
        assert policy.split(":")[0] in RESTARTS, f"{name}: restart: {policy}"


def test_cpu_workers_scale_by_replicas(compose: dict[str, Any]) -> None:
    cpu = services(compose)["worker"]
    assert int(cpu["deploy"]["replicas"]) >= 1
    assert "ports" not in cpu and "container_name" not in cpu  # replicas would clash
    scaled = load_compose({**SECRETS, "WORKER_REPLICAS": "5", "WORKER_PROCESSES": "3"})
    assert int(services(scaled)["worker"]["deploy"]["replicas"]) == 5
    assert worker_args(command(scaled, "worker")).processes == 3


# -- commands ----------------------------------------------------------------------------------
def test_api_command_is_reelforge_serve(compose: dict[str, Any]) -> None:
    cmd = command(compose, "api")
    assert cmd == dockerfile("api").command()
    assert cmd[0] in console_scripts("reelforge")
    assert PYPROJECT["project"]["scripts"][cmd[0]] == "cli:main"
    args = cli.build_parser().parse_args(cmd[1:])
    assert args.run is cmd_serve
    assert (args.host, args.port, args.demo) == ("0.0.0.0", SERVICE_PORTS["api"], False)
    assert f"{args.port}:{args.port}" in services(compose)["api"]["ports"]
    assert f"127.0.0.1:{args.port}/readyz" in " ".join(
        services(compose)["api"]["healthcheck"]["test"]
    )


def worker_args(cmd: list[str]) -> Any:
    assert cmd[0] == "dramatiq" and cmd[0] in console_scripts("dramatiq"), cmd
    args = make_argument_parser().parse_args(cmd[1:])
    module, _, attribute = args.broker.partition(":")
    assert module == "worker" and callable(getattr(worker_module, attribute)), args.broker
    assert "worker" in PYPROJECT["tool"]["setuptools"]["py-modules"]
    assert args.modules == [] and args.processes >= 1
    return args


@pytest.mark.parametrize("name", WORKERS)
def test_worker_command_is_dramatiq_on_worker_setup(compose: dict[str, Any], name: str) -> None:
    args = worker_args(command(compose, name))
    image_args = worker_args(image_of(compose, name).command())
    if name != "edge-jobs":  # a transcode takes a process's cores: one job per process
        assert args.threads == image_args.threads == 1
        return
    # Pre-warm and purge are short HTTP and file jobs: one process, as many threads as warms
    # may run at once in a process (api/jobs/edge.py's semaphore), the edge queue alone, and
    # the image it shares with the CPU worker overridden (that image's CMD is one thread).
    settings = Settings.from_env(container_env(compose, name))
    assert args.processes == 1, args.processes
    assert args.threads == settings.prewarm_concurrency > 1, (args.threads, settings)
    assert args.queues == [worker_module.EDGE_QUEUE], args.queues
    assert image_args.threads == 1 and command(compose, name) != image_of(compose, name).command()


def test_every_queue_has_its_workers(compose: dict[str, Any], tmp_path: Path) -> None:
    """Each queue the actors declare is consumed; the edge's only where its cache is."""
    # Resolved, as `worker:setup` builds them (Settings.from_env); start-up reads the catalog.
    jobs = worker_module.build(Settings(data_dir=tmp_path).resolved())
    try:
        declared = {q_name(queue) for queue in jobs.broker.get_declared_queues()}
    finally:
        jobs.stop()
    consumed = {name: worker_args(command(compose, name)).queues for name in WORKERS}
    assert all(queues for queues in consumed.values()), consumed  # none takes "all queues"
    assert set().union(*consumed.values()) == declared, (consumed, declared)
    assert consumed["edge-jobs"] == [worker_module.EDGE_QUEUE]
    # A chunked run's video parts stay on its encoder's pool (the stitch needs identical
    # inits): NVENC runs' on the GPU pool alone, the shared parts queue on both.
    gpu, cpu = set(consumed["worker-gpu"]), set(consumed["worker"])
    assert gpu - cpu == {worker_module.PARTS_GPU_QUEUE} and cpu <= gpu
    for name in ("worker", "worker-gpu"):  # one message held per thread, none waiting
        assert container_env(compose, name)["dramatiq_queue_prefetch"] == "1"
    assert worker_module.EDGE_QUEUE not in consumed["worker"]
    edge_jobs = services(compose)["edge-jobs"]
    assert f"edge-cache:{EDGE_CACHE}" in edge_jobs["volumes"]
    for name in ("api", "worker", "worker-gpu"):
        assert not any(EDGE_CACHE in str(v) for v in services(compose)[name].get("volumes", []))
    # It deletes nginx's cache files (0600 in 0700 directories): it runs as nginx's worker
    # user, uid 101 in the official image, and keeps its scratch space where that user writes.
    assert edge_jobs["user"] == "101:101"
    assert container_env(compose, "edge-jobs")["REELFORGE_DATA_DIR"].startswith("/tmp/")


# -- images ------------------------------------------------------------------------------------
def installed_sources() -> set[str]:
    """What `pip install .` needs: pyproject.toml, the py-modules and the packages it finds."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    modules = {f"{name}.py" for name in setuptools["py-modules"]}
    patterns = setuptools["packages"]["find"]["include"]
    packages = {
        path.name
        for path in ROOT.iterdir()
        if (path / "__init__.py").is_file()
        and any(re.fullmatch(p.replace("*", ".*"), path.name) for p in patterns)
    }
    return {"pyproject.toml", *modules, *packages}


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_builds_from_the_repository(name: str) -> None:
    image = dockerfile(name)
    ignore = DockerIgnore(ROOT / ".dockerignore")
    copied: list[str] = []
    for copy in image.copies():
        if copy.from_stage is not None:
            assert copy.from_stage in {s.name for s in image.stages} or ":" in copy.from_stage
            continue
        for source in copy.sources:
            assert (ROOT / source).exists(), f"{image.path.name}:{copy.line}: no {source}"
            assert not ignore.ignored(source), f"{source} is left out by .dockerignore"
            copied.append(source.strip("/"))
    assert installed_sources() <= set(copied), sorted(installed_sources() - set(copied))
    # Dependencies are installed from pyproject.toml before any code is copied (layer cache).
    order = [c.sources for c in image.copies() if c.from_stage is None]
    assert order[0] == ["pyproject.toml"], order
    build = "\n".join(i.args for s in image.stages for i in s.all("RUN"))
    assert "['project']['dependencies']" in build and "--no-deps ." in build
    assert "[dev]" not in build and "optional-dependencies" not in build


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_image_runs_installed_entry_points_as_non_root(name: str) -> None:
    image = dockerfile(name)
    final = image.final
    users = final.all("USER")
    assert users, f"{name}: runs as root"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0")
    assert any(f" {user}" in r.args and "useradd" in r.args for r in final.all("RUN"))
    # The final stage takes the installed environment from the build stage, no source tree.
    copies = final_copies(image)
    assert copies and all(c.from_stage is not None for c in copies), copies
    venv_bin = final.env()["PATH"].split(":")[0]
    assert venv_bin.endswith("/bin")
    assert venv_bin.removesuffix("/bin") in {c.destination for c in copies}
    assert image.command()[0] in console_scripts("reelforge") | console_scripts("dramatiq")
    if name != "worker-gpu":
        assert final.base.startswith("python:3.11-slim"), final.base
    assert sys.version_info[:2] == (3, 11)  # the interpreter these tests prove the code on
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


def built_from_source() -> set[str]:
    """The runtime dependencies (transitively, with their extras) installed here from a
    wheel built on this machine (`linux_x86_64`, not `manylinux`): a compiler builds them."""
    todo = [Requirement(text) for text in PYPROJECT["project"]["dependencies"]]
    seen: set[tuple[str, frozenset[str]]] = set()
    found: set[str] = set()
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a marker left it out on this platform
        tags = [line[5:] for line in (dist.read_text("WHEEL") or "").splitlines()
                if line.startswith("Tag: ")]  # fmt: skip
        if any(tag.split("-")[-1].startswith("linux_") for tag in tags):
            found.add(key[0])
        for text in dist.requires or []:
            nested = Requirement(text)
            extras = ["", *sorted(requirement.extras)]
            if nested.marker is None or any(nested.marker.evaluate({"extra": e}) for e in extras):
                todo.append(nested)
    return found


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_image_builds_what_has_no_wheel_and_keeps_no_compiler(name: str) -> None:
    image = dockerfile(name)
    runs = {stage.name: " ".join(r.args for r in stage.all("RUN")) for stage in image.stages}
    build = next(text for text in runs.values() if "requirements.txt" in text)
    compiled = built_from_source()
    assert not compiled or "build-essential" in build, (name, sorted(compiled))
    final = " ".join(r.args for r in image.final.all("RUN"))
    assert "build-essential" not in final and "apt-get install" not in final
    # The runtime stage imports every installed package (native libraries present there).
    for package in installed_sources() - {"pyproject.toml"}:
        module = package.removesuffix(".py")
        assert re.search(rf"[' ]{module}[',\"]", final), (name, module)


def final_copies(image: Dockerfile) -> list[Any]:
    lines = {i.line for i in image.final.instructions if i.keyword in ("COPY", "ADD")}
    return [c for c in image.copies() if c.line in lines]


def test_build_context_leaves_out_what_images_must_not_carry() -> None:
    ignore = DockerIgnore(ROOT / ".dockerignore")
    for path in (".venv/bin/python", ".git/HEAD", "tests/test_cli.py", "docker/.env",
                 ".env", "api/__pycache__/app.cpython-311.pyc", "reelforge.egg-info/PKG-INFO",
                 "tests/player/node_modules/x.js", "reelforge-data/origin/a.m4s"):  # fmt: skip
        assert ignore.ignored(path), path
    kept = ("pyproject.toml", "api/app.py", "engine/pipeline.py", "cli/__init__.py", "worker.py")
    for path in kept:
        assert not ignore.ignored(path), path


# -- the edge ----------------------------------------------------------------------------------
def test_edge_runs_the_rendered_nginx_config(compose: dict[str, Any]) -> None:
    edge = services(compose)["edge"]
    assert str(edge["image"]).startswith("nginx:")
    mounts = [str(v).split(":") for v in edge["volumes"]]
    conf = [m for m in mounts if m[1] == "/etc/nginx/nginx.conf"]
    assert len(conf) == 1 and conf[0][2] == "ro", mounts
    assert (COMPOSE_FILE.parent / conf[0][0]).resolve() == EDGE_CONF
    cache = [m for m in mounts if m[0] == "edge-cache"]
    assert [m[1] for m in cache] == [EDGE_CACHE]
    # The rendering (helper E2's `reelforge edge-config`) agrees with the compose file.
    assert EDGE_CONF.is_file(), f"{EDGE_CONF} is missing: render it with `reelforge edge-config`"
    text = EDGE_CONF.read_text()
    assert re.search(rf"listen\s+(0\.0\.0\.0:)?{SERVICE_PORTS['edge']}\b", text)
    assert re.search(rf"proxy_cache_path\s+{EDGE_CACHE}\s", text)
    assert "location = /edge-health" in text  # the edge's health check
    assert "open_file_cache" not in text  # a purged file must stop being served
    assert f"api:{SERVICE_PORTS['api']}" in text


def test_the_api_believes_forwarded_headers_from_the_edge_only(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """Issue 16, item 2: the API's trusted proxies are exactly the edge's fixed address, in
    the compose network's subnet, and `reelforge serve` hands them (only them) to uvicorn;
    the edge sends `X-Forwarded-For`."""
    import ipaddress

    from cli.serve import forwarded_options

    edge = services(compose)["edge"]
    address = edge["networks"]["default"]["ipv4_address"]
    subnets = [c["subnet"] for c in compose["networks"]["default"]["ipam"]["config"]]
    assert any(ipaddress.ip_address(address) in ipaddress.ip_network(n) for n in subnets)
    env = {**container_env(compose, "api"), "REELFORGE_DATA_DIR": str(tmp_path)}
    settings = Settings.from_env(env)
    assert settings.trusted_proxies == (address,)
    assert forwarded_options(settings) == {"proxy_headers": True, "forwarded_allow_ips": [address]}
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in EDGE_CONF.read_text()
    for name in ("worker", "edge-jobs"):  # nothing else serves HTTP
        assert "REELFORGE_TRUSTED_PROXIES" not in environment(services(compose)[name])


def test_docker_readme_shows_the_commands() -> None:
    text = (DOCKER / "README.md").read_text()
    for phrase in ("docker compose up", "--profile gpu", *SECRETS):
        assert phrase in text, phrase
    # The edge-config command it shows renders the file compose mounts, for this topology.
    shown = re.search(r"^reelforge (edge-config .*)$", text.replace("\\\n", " "), re.M)
    assert shown, "no `reelforge edge-config` command"
    args = cli.build_parser().parse_args(shlex.split(shown[1]))
    assert args.origin == f"http://api:{SERVICE_PORTS['api']}"
    assert args.listen == f"0.0.0.0:{SERVICE_PORTS['edge']}"
    assert (args.cache_dir, ROOT / args.out) == (EDGE_CACHE, EDGE_CONF)


# -- the same topology as processes ------------------------------------------------------------
CONTAINER_PATHS = ("REELFORGE_DATA_DIR", "REELFORGE_EDGE_CACHE_DIRS", "REELFORGE_FEED_MODEL_DIR")


def localize(env: Mapping[str, str], real: Mapping[str, str], root: Path) -> dict[str, str]:
    """A container's environment for a process here: every value that names a compose
    service (`postgres:5432`, `redis://redis:6379/0`) is replaced by the real local server,
    and the container's own paths move under `root` (its file system)."""
    local = {k: v for k, v in os.environ.items() if not k.startswith("REELFORGE_")}
    local["PYTHONUNBUFFERED"] = "1"
    for key, value in env.items():
        if not key.startswith("REELFORGE_"):
            continue
        host = urlsplit(value if "://" in value else f"//{value}").hostname
        if host in SERVICES:
            assert host in real, f"{key}={value}: no local stand-in for {host}"
            value = real[host]
        elif key in CONTAINER_PATHS:
            assert value.startswith("/") and "," not in value, (key, value)
            value = str(root / value.lstrip("/"))
        local[key] = value
    return local


def run_healthcheck(test: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    assert test[0] == "CMD" and test[1] == "python", test
    return subprocess.run(
        [sys.executable, *test[2:]], env=dict(env), cwd=ROOT,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def worker_processes(main_pid: int) -> list[int]:
    """The worker processes `dramatiq` forked: its direct children, less multiprocessing's
    helpers (the resource tracker)."""
    return [
        pid
        for pid in process_tree(main_pid)
        if pid != main_pid
        and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(main_pid)
        and "resource_tracker" not in cmdline(pid)
    ]


def wait_for_log(process: WorkerProcess, text: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while text not in process.log():
        assert process.running(), process.log_tail()
        assert time.monotonic() < deadline, f"no {text!r} in:\n{process.log_tail()}"
        time.sleep(0.2)


@pytest.fixture
def local_servers() -> Iterator[dict[str, str]]:
    """Real stand-ins for the compose services the processes talk to: PostgreSQL, Redis, an
    S3 server (moto); the edge is a closed port (these tests enqueue no pre-warm; the nginx
    edge has tests of its own)."""
    ensure_postgres()
    ensure_redis()
    with ExitStack() as stack:
        moto, endpoint = start_moto()
        stack.callback(moto.stop)
        yield {
            "postgres": stack.enter_context(fresh_postgres_database()),
            "redis": stack.enter_context(redis_database()),
            "minio": endpoint,
            "edge": f"http://127.0.0.1:{free_port()}/media",
        }


def nginx_cache_entry(cache_dir: Path, key: str) -> Path:
    """A file where nginx keeps the response cached under `key`: a binary header, then a
    `KEY:` line (the layout `cdn.edge.cache_file` computes)."""
    path = cache_file(cache_dir, key)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x05" + bytes(40) + f"\nKEY: {key}\nHTTP/1.1 200 OK\r\n\r\n".encode())
    return path


def start_worker(stack: ExitStack, compose: Mapping[str, Any], name: str, env: Mapping[str, str],
                 log: Path) -> WorkerProcess:  # fmt: skip
    """The service's own command, through the installed `dramatiq` entry point."""
    process = stack.enter_context(WorkerProcess(env, log))
    cmd = command(compose, name)
    process.argv = [str(VENV_BIN / cmd[0]), *cmd[1:]]
    process.start()
    return process


def test_compose_services_run_as_processes(
    compose: dict[str, Any], local_servers: dict[str, str], tmp_path: Path
) -> None:
    envs = {
        name: localize(container_env(compose, name), local_servers, tmp_path / name)
        for name in ("api", "worker", "edge-jobs")
    }
    api_port = free_port()
    api_cmd = command(compose, "api")
    argv = [str(VENV_BIN / api_cmd[0]), *api_cmd[1:]]
    argv[argv.index("0.0.0.0")] = "127.0.0.1"
    argv[argv.index(str(SERVICE_PORTS["api"]))] = str(api_port)
    cache_dir = Path(envs["edge-jobs"]["REELFORGE_EDGE_CACHE_DIRS"])
    cache_dir.mkdir(parents=True)  # the edge-cache volume, made by nginx in compose

    with ExitStack() as stack:
        api = stack.enter_context(ApiProcess(envs["api"], api_port, tmp_path / "api.log"))
        api.argv = argv  # the compose command itself, through the installed entry point
        api.start()  # returns once /readyz answers 200: database, broker, cache, bucket
        assert "production mode: API only" in api.log(), api.log_tail()
        health = services(compose)["api"]["healthcheck"]["test"]
        probe = [w.replace(f":{SERVICE_PORTS['api']}/", f":{api_port}/") for w in health]
        assert probe != health
        result = run_healthcheck(probe, envs["api"])
        assert result.returncode == 0, result.stderr

        worker = start_worker(stack, compose, "worker", envs["worker"], tmp_path / "worker.log")
        edge_jobs = start_worker(
            stack, compose, "edge-jobs", envs["edge-jobs"], tmp_path / "edge-jobs.log"
        )
        # Jobs enqueued on the API's broker reach the service that consumes their queue, and
        # that service reaches the database the API created and the bucket it made.
        video_id = new_id("v")  # an id no video has
        entry = nginx_cache_entry(cache_dir, f"/media/{video_id}/r_0/master.m3u8")
        jobs = worker_module.build(Settings.from_env(envs["api"]))
        try:
            jobs.enqueue_cleanup(video_id)
            jobs.enqueue_purge(video_id)  # runs after worker.PURGE_DELAY_MS
        finally:
            jobs.stop()
        wait_for_log(worker, f"cleanup of video {video_id} removed 0 object(s)")
        purged = f"purged video {video_id} from the edges: 1 cached file(s) removed"
        wait_for_log(edge_jobs, purged, deadline_s=60 + worker_module.PURGE_DELAY_MS / 1000)
        assert not entry.exists()
        assert video_id not in edge_jobs.log().replace(purged, "")
        assert video_id not in worker.log().replace(f"cleanup of video {video_id}", "")

        check = services(compose)["worker"]["healthcheck"]["test"]
        assert run_healthcheck(check, envs["worker"]).returncode == 0
        dead = {**envs["worker"], "REELFORGE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
        assert run_healthcheck(check, dead).returncode != 0

        # Issue 16 item 8: one worker process killed takes the whole `dramatiq` down, with a
        # non-zero code, so the pool is back only if something restarts it (the restart
        # policy that `test_every_worker_service_is_restarted` asserts).
        children = worker_processes(worker.pid)
        assert len(children) == worker_args(command(compose, "worker")).processes, children
        os.kill(children[0], signal.SIGKILL)
        assert worker.proc is not None
        code = worker.proc.wait(30)
        assert code != 0, worker.log_tail()
        assert "exited unexpectedly" in worker.log(), worker.log_tail()
