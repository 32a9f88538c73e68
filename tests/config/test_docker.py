"""The production container setup (docker/): read as files, since these machines have no Docker.

A broken Dockerfile or compose file fails only at deploy time, so these tests pin what a deploy relies on: every
file the images copy exists in a clean checkout, the web image never gets torch, the services consume exactly the
queues the tasks are routed to, the processes that hand files to each other share one volume, and every variable
compose needs is documented in docker/.env.example.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings
from django.urls import resolve

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
WEB_DOCKERFILE = DOCKER / "Dockerfile"
GPU_DOCKERFILE = DOCKER / "Dockerfile.gpu"

# Where the app writes files that another process reads (settings read each from the environment).
STORAGE_SETTINGS = ("MEDIA_ROOT", "EXPORT_ROOT", "TRAINING_ROOT", "MODEL_CACHE")
# Services whose files must be visible to each other: web saves uploads and serves exports and adapters, the
# worker imports uploads and builds exports, the GPU worker trains on exports and writes adapters.
FILE_SHARING_SERVICES = ("web", "worker", "gpu-worker")
# Variables read by gunicorn itself, not by Django settings.
GUNICORN_VARIABLES = {"WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"docker/.env.example: {line!r} is not NAME=value"
            values[name.strip()] = value.strip()
    return values


def _app_services(compose: dict) -> dict[str, dict]:
    """Services that run one of our images (built from docker/), as opposed to postgres and redis."""
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def _command(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _option(command: list[str], *names: str) -> str | None:
    for i, part in enumerate(command):
        for name in names:
            if part == name and i + 1 < len(command):
                return command[i + 1]
            if part.startswith(f"{name}="):
                return part.split("=", 1)[1]
    return None


def _queues(service: dict) -> set[str]:
    command = _command(service)
    assert command[:3] == ["celery", "-A", "config"] and "worker" in command, command
    queues = _option(command, "-Q", "--queues")
    assert queues, f"{command}: a worker must name its queues"
    return set(queues.split(","))


def _mounts(service: dict) -> dict[str, str]:
    """target path -> source (volume name or host path), from the short or the long volume syntax."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        mounts[target] = source
    return mounts


def _environment(service: dict) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {name: str(value) for name, value in environment.items()}


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _interpolated(compose: dict) -> set[str]:
    """Variables compose substitutes (${NAME}, ${NAME:-default}, $NAME); $$ is a literal dollar for the container."""
    names = set()
    for text in _strings(compose):
        text = text.replace("$$", "")
        names.update(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
        names.update(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text))
    return names


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, f"{dockerfile.name}: a continuation line runs off the end"
    return instructions


def _args(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def _context_sources(dockerfile: Path) -> list[str]:
    """Paths COPY/ADD take from the build context (not from another stage)."""
    sources = []
    for keyword, arguments in _instructions(dockerfile):
        if keyword not in ("COPY", "ADD"):
            continue
        parts = _args(arguments)
        flags = [p for p in parts if p.startswith("--")]
        if any(flag.startswith("--from=") for flag in flags):
            continue
        paths = [p for p in parts if not p.startswith("--")]
        assert len(paths) >= 2, f"{dockerfile.name}: {keyword} {arguments}"
        sources.extend(paths[:-1])
    return sources


def _ignored_by_git() -> set[str]:
    return {line.strip().strip("/") for line in (ROOT / ".gitignore").read_text().splitlines() if line.strip()}


def _user_uid(dockerfile: Path) -> str:
    text = dockerfile.read_text()
    match = re.search(r"useradd\b[^\n]*?--uid (\d+)", text.replace("\\\n", " "))
    assert match, f"{dockerfile.name}: no useradd --uid"
    return match.group(1)


# --- compose: services and queues ---------------------------------------------------------------------------------


def test_compose_has_every_service(compose):
    assert {"postgres", "redis", "migrate", "web", "worker", "gpu-worker", "beat"} <= set(compose["services"])


def test_images_are_built_from_the_repository_with_the_right_dockerfile(compose):
    for name, service in _app_services(compose).items():
        build = service["build"]
        assert (DOCKER / build["context"]).resolve() == ROOT, name
        expected = "docker/Dockerfile.gpu" if name == "gpu-worker" else "docker/Dockerfile"
        assert build["dockerfile"] == expected, name


def test_workers_consume_the_queues_tasks_are_routed_to(compose):
    services = compose["services"]
    assert _queues(services["worker"]) == {"default", "judge"}
    assert _queues(services["gpu-worker"]) == {"gpu"}

    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed == {"judge", "gpu"}
    expected = routed | {settings.CELERY_TASK_DEFAULT_QUEUE}
    consumed = set().union(*(_queues(s) for s in _app_services(compose).values() if "worker" in _command(s)))
    # Every queue a task can land on has a consumer, and no worker waits on a queue nothing is sent to.
    assert consumed == expected


def test_gpu_worker_runs_one_job_at_a_time_on_reserved_nvidia_devices(compose):
    gpu_worker = compose["services"]["gpu-worker"]
    assert _option(_command(gpu_worker), "--concurrency", "-c") == "1"
    devices = gpu_worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] and d.get("count") == "all" for d in devices)
    assert _option(_command(compose["services"]["worker"]), "--concurrency", "-c") == "4"


def test_exactly_one_beat(compose):
    beats = [name for name, svc in _app_services(compose).items() if "beat" in _command(svc)]
    assert beats == ["beat"]
    beat = compose["services"]["beat"]
    assert beat.get("deploy", {}).get("replicas", 1) == 1
    # The schedule file goes in /app/var, which the image creates and gives to the non-root user.
    assert _option(_command(beat), "--schedule", "-s").startswith("/app/var/")
    assert "/app/var" in WEB_DOCKERFILE.read_text()


def test_web_runs_gunicorn_with_a_healthz_healthcheck(compose):
    web = compose["services"]["web"]
    command = _command(web)
    assert command[0] == "gunicorn" and "config.wsgi:application" in command
    assert _option(command, "--bind", "-b") == "0.0.0.0:8000"
    assert any(str(port).endswith(":8000") for port in web["ports"])
    assert "/healthz" in " ".join(web["healthcheck"]["test"])
    assert resolve("/healthz").url_name == "healthz"


def test_only_web_uses_the_http_healthcheck(compose):
    # The image's HEALTHCHECK asks port 8000, where only gunicorn listens: every other app service overrides it,
    # or Docker would report the workers unhealthy forever.
    for name, service in _app_services(compose).items():
        if name == "web":
            continue
        healthcheck = service.get("healthcheck")
        assert healthcheck, f"{name} inherits the image's HTTP health check"
        assert healthcheck.get("disable") or "8000" not in " ".join(healthcheck["test"]), name


def test_startup_order_and_backing_service_healthchecks(compose):
    services = compose["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]

    migrate = services["migrate"]
    assert _command(migrate) == ["python", "manage.py", "migrate", "--no-input"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"
    for name in ("web", "worker", "gpu-worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_long_running_services_restart(compose):
    for name, service in compose["services"].items():
        if name != "migrate":
            assert service.get("restart") in ("always", "unless-stopped"), name


# --- compose: configuration and storage ---------------------------------------------------------------------------


def test_app_services_read_database_and_broker_from_the_env_file(compose, env_example):
    for name, service in _app_services(compose).items():
        env_files = service["env_file"]
        env_files = [env_files] if isinstance(env_files, str) else env_files
        assert ".env" in env_files, name
        # compose's environment wins over env_file: it must not replace the connection settings.
        assert not {"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"} & set(_environment(service)), name
    for variable in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "SECRET_KEY", "ALLOWED_HOSTS"):
        assert env_example.get(variable), variable
    assert env_example["ARBITER_ENV"] == "production"


def test_example_urls_point_at_the_compose_services(compose, env_example):
    postgres = compose["services"]["postgres"]["environment"]
    database = urlsplit(env_example["DATABASE_URL"])
    assert database.scheme == "postgres" and database.hostname == "postgres" and database.port == 5432
    assert database.username == postgres["POSTGRES_USER"]
    assert database.path == f"/{postgres['POSTGRES_DB']}"
    # The postgres service takes its password from POSTGRES_PASSWORD: the URL must carry the same one.
    assert database.password == env_example["POSTGRES_PASSWORD"]
    for variable in ("CELERY_BROKER_URL", "CACHE_URL"):
        url = urlsplit(env_example[variable])
        assert url.scheme == "redis" and url.hostname == "redis", variable
    assert env_example["CELERY_BROKER_URL"] != env_example["CACHE_URL"]  # separate Redis databases


def test_every_variable_compose_uses_is_in_env_example(compose, env_example):
    missing = _interpolated(compose) - set(env_example)
    assert not missing, f"add to docker/.env.example: {sorted(missing)}"


def test_every_variable_in_env_example_is_read_by_something(compose):
    # A misspelt name (SECURE_SSL_REDIRECTS) would be silently ignored, so each must be read by the settings,
    # by gunicorn or by compose itself.
    settings_names = set()
    for module in (ROOT / "config").glob("*.py"):
        settings_names.update(re.findall(r'env_(?:str|bool|int|list)\(\s*"(\w+)"', module.read_text()))
    # Every setting also accepts NAME_FILE (config/env.py).
    known = settings_names | {f"{name}_FILE" for name in settings_names} | GUNICORN_VARIABLES | _interpolated(compose)
    lines = (DOCKER / ".env.example").read_text().splitlines()
    names = {m.group(1) for line in lines if (m := re.match(r"#?\s*([A-Z][A-Z0-9_]*)=", line.strip()))}
    judge_keys = {name for name in names if name.endswith("_API_KEY")}  # judges name their key's variable
    assert not names - known - judge_keys, sorted(names - known - judge_keys)


def test_example_has_no_real_secrets(env_example):
    for variable in ("SECRET_KEY", "POSTGRES_PASSWORD"):
        assert "change-me" in env_example[variable], variable


def test_file_sharing_services_mount_one_volume_for_all_storage(compose):
    services = compose["services"]
    mounts = [_mounts(services[name]) for name in FILE_SHARING_SERVICES]
    shared = {(target, source) for target, source in mounts[0].items() if source in compose.get("volumes", {})}
    assert shared, "web mounts no named volume"
    for name, service_mounts in zip(FILE_SHARING_SERVICES, mounts, strict=True):
        assert shared <= set(service_mounts.items()), f"{name} does not mount {shared}"
    targets = {target for target, _ in shared}

    environments = [_environment(services[name]) for name in FILE_SHARING_SERVICES]
    for setting in STORAGE_SETTINGS:
        values = {env.get(setting) for env in environments}
        assert len(values) == 1, f"{setting} differs between {FILE_SHARING_SERVICES}: {values}"
        (value,) = values
        assert value and any(Path(value).is_relative_to(t) for t in targets), f"{setting}={value} is not shared"
        assert f'env_str("{setting}"' in (ROOT / "config" / "settings.py").read_text(), setting


def test_no_volume_hides_the_collected_static_files(compose):
    # collectstatic writes /app/var/static into the image; a volume there would serve stale or no assets.
    for name, service in compose["services"].items():
        for target in _mounts(service):
            assert not Path("/app/var/static").is_relative_to(target), f"{name} mounts over {target}"


# --- Dockerfiles ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", [WEB_DOCKERFILE, GPU_DOCKERFILE], ids=lambda p: p.name)
def test_copied_paths_exist_in_a_clean_checkout(dockerfile):
    ignored = _ignored_by_git()
    sources = _context_sources(dockerfile)
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source}: no such path"
        assert Path(source).parts[0] not in ignored, f"{dockerfile.name}: COPY {source} is git-ignored"
    for requirements in set(re.findall(r"requirements[\w-]*\.txt", dockerfile.read_text())):
        assert (ROOT / requirements).is_file(), requirements
        assert requirements in sources, f"{dockerfile.name} uses {requirements} without copying it"


@pytest.mark.parametrize("dockerfile", [WEB_DOCKERFILE, GPU_DOCKERFILE], ids=lambda p: p.name)
def test_images_copy_every_app_and_run_as_a_non_root_user(dockerfile):
    sources = {Path(s).parts[0] for s in _context_sources(dockerfile)}
    local_apps = {app for app in settings.INSTALLED_APPS if (ROOT / app).is_dir()}
    assert local_apps | {"config", "manage.py", "templates"} <= sources, dockerfile.name

    users = [arguments for keyword, arguments in _instructions(dockerfile) if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), dockerfile.name
    assert not any(keyword in ("ENV", "ARG") and "SECRET_KEY" in arguments
                   for keyword, arguments in _instructions(dockerfile))  # fmt: skip


def test_both_images_share_the_uid_that_owns_the_shared_volume():
    assert _user_uid(WEB_DOCKERFILE) == _user_uid(GPU_DOCKERFILE) != "0"


def test_web_image_collects_static_files_from_npm_and_never_installs_torch():
    instructions = _instructions(WEB_DOCKERFILE)
    runs = " ".join(arguments for keyword, arguments in instructions if keyword == "RUN")
    assert "collectstatic --no-input" in runs
    assert "npm ci" in runs
    assert "node_modules" in " ".join(arguments for keyword, arguments in instructions if keyword == "COPY")
    # settings.STATICFILES_DIRS reads these packages' dist folders; npm ci must install them.
    dependencies = json.loads((ROOT / "package.json").read_text())["dependencies"]
    for entry in settings.STATICFILES_DIRS:
        path = Path(entry[1] if isinstance(entry, tuple) else entry)
        if "node_modules" in path.parts:
            assert path.parts[path.parts.index("node_modules") + 1] in dependencies, path

    text = WEB_DOCKERFILE.read_text()
    assert "requirements-train.txt" not in text and "torch" not in runs
    cmd = _args(next(arguments for keyword, arguments in reversed(instructions) if keyword == "CMD"))
    assert cmd[0] == "gunicorn" and "config.wsgi:application" in cmd
    assert "8000" in [arguments for keyword, arguments in instructions if keyword == "EXPOSE"]
    healthcheck = next(arguments for keyword, arguments in instructions if keyword == "HEALTHCHECK")
    assert "/healthz" in healthcheck


def test_gpu_image_installs_cuda_torch_at_the_pinned_version():
    instructions = _instructions(GPU_DOCKERFILE)
    runs = " ".join(arguments for keyword, arguments in instructions if keyword == "RUN")
    assert "-r requirements.txt" in runs and "-r requirements-train.txt" in runs
    assert "download.pytorch.org/whl/" in runs
    # The CUDA build's version is read from the torch== line of requirements-train.txt, so that line must exist.
    assert "^torch==" in runs
    assert re.search(r"^torch==\S+", (ROOT / "requirements-train.txt").read_text(), re.MULTILINE)
    # torch from the CUDA index must come before the training extras, or pip would install the PyPI build first.
    assert runs.index("download.pytorch.org") < runs.index("-r requirements-train.txt")

    cmd = _args(next(arguments for keyword, arguments in reversed(instructions) if keyword == "CMD"))
    assert cmd[:4] == ["celery", "-A", "config", "worker"]
    assert _option(cmd, "-Q") == "gpu" and _option(cmd, "--concurrency") == "1"
