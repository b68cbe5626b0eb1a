"""The docker backend: a container per run, shared by xdist workers, removed however the run ends.

Images are built locally from the local backend's binaries (``server/_image.py``): no registry.
Skipped when no Docker engine is reachable, unless ``PGLT_REQUIRE_DOCKER=1`` (CI) makes that a
failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
from filelock import FileLock
from fix_inner import Inner, read_line
from fix_messages import Glob, pattern

from pytest_pglocks import _settings, errors
from pytest_pglocks.server import _docker, _image
from pytest_pglocks.server._binaries import DEFAULT_MAJOR
from pytest_pglocks.server._process import wait_exit

REPO = Path(__file__).resolve().parent.parent
_WHY = _docker.unreachable_reason() if shutil.which("docker") else "no docker command on PATH"
if _WHY is not None:
    if os.environ.get("PGLT_REQUIRE_DOCKER") == "1":
        raise RuntimeError(f"PGLT_REQUIRE_DOCKER=1 but no Docker engine is reachable: {_WHY}")
    pytest.skip(f"no Docker engine is reachable: {_WHY}", allow_module_level=True)

RECORD_CONTAINER = """
import json, os, pathlib
import docker


def test_record_container(pglocks, pglocks_server):
    assert pglocks.execute("SELECT 1") == [(1,)]
    container = docker.from_env().containers.get(pglocks_server.container.id)
    record = {{
        "id": container.id,
        "run": container.labels["pytest-pglocks.run"],
        "watchdog_pid": pglocks_server.container.watchdog_pid,
        "version": pglocks_server.version,
        "backend": pglocks_server.backend,
        "published_on": [
            binding["HostIp"] for binding in container.attrs["NetworkSettings"]["Ports"]["5432/tcp"]
        ],
        "dsn_host": pglocks_server.dsn.split("host=")[1].split()[0],
    }}
    name = "container-" + os.environ.get("PYTEST_XDIST_WORKER", "main")
    pathlib.Path({records!r}, name + ".container").write_text(json.dumps(record))
"""


def containers_of(run: str) -> list[str]:
    """Ids of every container, running or not, labelled with the run id ``run``."""
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={_docker.LABEL_RUN}={run}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


@pytest.fixture(scope="module")
def major(outer_settings: _settings.Settings) -> int:
    spec = outer_settings.pg.value
    return spec.major if spec is not None else DEFAULT_MAJOR


@pytest.fixture(scope="module")
def other_major(major: int) -> int:
    """A second major for the matrix test (never 15, which the system may have installed)."""
    return 16 if major != 16 else 17


def _build(settings: _settings.Settings, wanted: int) -> str:
    with FileLock(os.path.join(tempfile.gettempdir(), f"pglt-image-{wanted}.lock")):
        return _image.build(wanted, settings=settings)


@pytest.fixture(scope="module")
def image(outer_settings: _settings.Settings, major: int) -> str:
    return _build(outer_settings, major)


@pytest.fixture(scope="module")
def other_image(outer_settings: _settings.Settings, other_major: int) -> str:
    return _build(outer_settings, other_major)


@pytest.fixture
def docker_inner(inner: Inner) -> Inner:
    """``inner`` with the examples, the session tests and a test recording the container."""
    for path in sorted((REPO / "examples").glob("*.py")):
        shutil.copy(path, inner.pytester.path / path.name)
    for name in ("test_session.py", "fix_sessions.py", "fix_messages.py"):
        shutil.copy(REPO / "tests" / name, inner.pytester.path / name)
    conftest = inner.pytester.path / "conftest.py"
    conftest.write_text(conftest.read_text() + '\npytest_plugins = ["fix_sessions"]\n')
    inner.pytester.makepyfile(
        test_record_container=RECORD_CONTAINER.format(records=str(inner.records_dir))
    )
    return inner


def containers_recorded(inner: Inner) -> list[dict[str, str]]:
    return [
        json.loads(path.read_text())
        for path in sorted(inner.records_dir.glob("container-*.container"))
    ]


def summary(result: pytest.RunResult) -> str:
    return next(line for line in result.outlines if line.startswith("pglocks: PostgreSQL"))


def test_the_examples_and_session_tests_pass_and_the_container_is_removed(
    docker_inner: Inner, image: str, major: int
) -> None:
    result = docker_inner.run("--pglocks-backend=docker", "-p", "no:cacheprovider", timeout=300)
    assert result.ret == 0, result.stdout.str()
    print(summary(result))
    (container,) = containers_recorded(docker_inner)
    assert container["backend"] == "docker"
    assert container["version"].startswith(f"{major}.")
    assert container["published_on"] == ["127.0.0.1"]  # never on every interface
    assert container["dsn_host"] == "127.0.0.1"
    result.stdout.fnmatch_lines([f"pglocks: PostgreSQL {major}.* (docker, *{image}), ready in *"])
    assert containers_of(container["run"]) == []
    assert wait_exit(int(container["watchdog_pid"]), 0)


def test_xdist_workers_share_one_container_that_is_removed(docker_inner: Inner, image: str) -> None:
    docker_inner.pytester.makepyfile(
        test_also=(
            "import pytest\n\n@pytest.mark.parametrize('n', range(4))\n"
            "def test_also(facts, n):\n    pass\n"
        )
    )
    result = docker_inner.run(
        "--pglocks-backend=docker", "-n", "2", "test_record_container.py", "test_also.py",
        "test_fk_cascade.py",
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()
    records = docker_inner.records()
    containers = {record["id"] for record in containers_recorded(docker_inner)}
    assert len(containers) == 1
    assert {record["worker"] for record in records.values()} == {"gw0", "gw1"}
    assert len({record["server_dsn"] for record in records.values()}) == 1
    assert {record["backend"] for record in records.values()} == {"docker"}
    (run,) = {record["run"] for record in containers_recorded(docker_inner)}
    assert containers_of(run) == []
    assert docker_inner.leftovers() == []


def test_another_major_through_its_own_image(
    docker_inner: Inner, other_image: str, other_major: int
) -> None:
    result = docker_inner.run(
        "--pglocks-backend=docker", f"--pglocks-pg={other_major}", "test_record_container.py",
        "test_fk_lock_strength.py",
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines([f"pglocks: PostgreSQL {other_major}.* (docker, *), ready in *"])
    (container,) = containers_recorded(docker_inner)
    assert containers_of(container["run"]) == []


def test_image_option_overrides_the_image(docker_inner: Inner, image: str, major: int) -> None:
    subprocess.run(["docker", "tag", image, "pglocks-custom:test"], check=True)
    try:
        result = docker_inner.run(
            "--pglocks-backend=docker", "--pglocks-image=pglocks-custom:test",
            "test_record_container.py",
        )  # fmt: skip
    finally:
        subprocess.run(["docker", "rmi", "pglocks-custom:test"], check=True, capture_output=True)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*(docker, *image pglocks-custom:test), ready in *"])


def test_auto_falls_back_to_docker_without_binaries(
    docker_inner: Inner,
    other_image: str,
    other_major: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGLOCKS_CACHE_DIR", str(docker_inner.public / "empty-cache"))
    monkeypatch.delenv("PGLOCKS_BINDIR", raising=False)
    result = docker_inner.run(
        "--pglocks-offline", f"--pglocks-pg={other_major}", "test_record_container.py"
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*(docker, *), ready in *"])


def test_a_killed_run_still_removes_its_container(
    docker_inner: Inner, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker_inner.pytester.makepyfile(
        test_killed="""
        import json, os

        def test_waits_until_killed(pglocks, pglocks_server):
            info = int(os.environ["PGLT_INFO_FD"])
            container = pglocks_server.container
            record = {"id": container.id, "watchdog_pid": container.watchdog_pid}
            os.write(info, json.dumps(record).encode() + b"\\n")
            os.close(info)
            os.read(int(os.environ["PGLT_BLOCK_FD"]), 1)  # until the outer test lets go
        """
    )
    info_r, info_w = os.pipe()
    block_r, block_w = os.pipe()
    monkeypatch.setenv("PGLT_INFO_FD", str(info_w))
    monkeypatch.setenv("PGLT_BLOCK_FD", str(block_r))
    proc = docker_inner.popen(
        "--pglocks-backend=docker", "test_killed.py", pass_fds=(info_w, block_r)
    )
    os.close(info_w)
    os.close(block_r)
    try:
        line = read_line(info_r, timeout=120)
        if not line:
            proc.wait()
            pytest.fail("the inner run ended early:\n" + docker_inner.output.read_text())
        container = json.loads(line)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    finally:
        os.close(info_r)
        os.close(block_w)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert wait_exit(container["watchdog_pid"], 60), "the watchdog did not end"
    gone = subprocess.run(
        ["docker", "ps", "-aq", "--no-trunc", "--filter", f"id={container['id']}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert gone.stdout.strip() == ""
    assert docker_inner.leftovers() == []


def test_an_unreachable_docker_says_what_to_do(
    docker_inner: Inner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    result = docker_inner.run("--pglocks-backend=docker", "test_record_container.py")
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        ["*" + pattern(errors.DOCKER_UNREACHABLE, source="--pglocks-backend") + "*"]
    )


def test_auto_without_binaries_or_docker_reports_both(
    docker_inner: Inner, other_major: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    monkeypatch.setenv("PGLOCKS_CACHE_DIR", str(docker_inner.public / "empty-cache"))
    monkeypatch.delenv("PGLOCKS_BINDIR", raising=False)
    result = docker_inner.run(
        "--pglocks-offline", f"--pglocks-pg={other_major}", "test_record_container.py"
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        ["*" + pattern(errors.AUTO_NO_DOCKER, why=Glob("*"), docker_why=Glob("*")) + "*"]
    )


def test_readiness_waits_for_the_real_server_not_the_temporary_one(
    image: str, major: int, tmp_path: Path
) -> None:
    import docker

    settings = _settings.Settings.resolve(
        lambda option: {"backend": "docker", "pg": str(major)}.get(option.name)
    )
    run = f"readiness-{os.getpid()}"
    dsn, version, container = _docker.start(settings, major, run, os.getpid(), str(tmp_path))
    try:
        log = docker.from_env().containers.get(container.id).logs().decode()
        first_start, _, real_start = log.partition("init process complete")
        assert "listening on Unix socket" in first_start
        assert "listening on IPv4" not in first_start  # the temporary server: socket only
        assert "listening on IPv4" in real_start
        assert version.startswith(f"{major}.")
        with psycopg.connect(dsn) as conn:  # a superuser, so that deadlock_timeout can be set
            assert conn.execute("SELECT current_setting('is_superuser')").fetchone() == ("on",)
    finally:
        _docker.stop(container)
    assert containers_of(run) == []
