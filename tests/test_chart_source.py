"""Where the chart files come from: the lookup order, checksum verification, and `make chart`'s fetch."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import chart_source
from tests.chart_source import CHART_FILES, ChartError, fetch, locate_chart, pinned_sums


@pytest.fixture
def chart_files() -> dict[str, bytes]:
    """Stand-ins for the three files (the lookup only cares about names and checksums)."""
    return {name: f"# {name} of chart 1.19.0\n".encode() for name in CHART_FILES}


@pytest.fixture
def sums_file(tmp_path: Path, chart_files: dict[str, bytes]) -> Path:
    path = tmp_path / "SHA256SUMS"
    path.write_text("".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in chart_files.items()))
    return path


def make_dir(path: Path, files: dict[str, bytes]) -> Path:
    path.mkdir(parents=True)
    for name, data in files.items():
        (path / name).write_bytes(data)
    return path


def test_the_pinned_sums_cover_the_three_files() -> None:
    sums = pinned_sums()
    assert sorted(sums) == sorted(CHART_FILES)
    assert all(len(digest) == 64 for digest in sums.values())


def test_lookup_order_env_then_shared_then_cache(
    tmp_path: Path, chart_files: dict[str, bytes], sums_file: Path
) -> None:
    env_dir = make_dir(tmp_path / "mine", chart_files)
    shared = make_dir(tmp_path / "shared", chart_files)
    cache = make_dir(tmp_path / "cache", chart_files)

    def where(env: dict[str, str], shared_dir: Path, cache_dir: Path) -> tuple[Path, str] | None:
        found = locate_chart(env, shared=shared_dir, cache=cache_dir, sums_file=sums_file)
        return None if found is None else (found.path, found.origin)

    assert where({"AIRFLOW_CHART_DIR": str(env_dir)}, shared, cache) == (env_dir, "AIRFLOW_CHART_DIR")
    assert where({}, shared, cache) == (shared, "shared")
    assert where({"AIRFLOW_CHART_DIR": ""}, tmp_path / "absent", cache) == (cache, "cache")
    assert where({}, tmp_path / "absent", tmp_path / "no-cache") is None


def test_an_env_dir_without_the_files_is_an_error_not_a_fallback(
    tmp_path: Path, chart_files: dict[str, bytes], sums_file: Path
) -> None:
    shared = make_dir(tmp_path / "shared", chart_files)
    partial = make_dir(tmp_path / "partial", {"values.yaml": chart_files["values.yaml"]})
    with pytest.raises(ChartError, match=r"AIRFLOW_CHART_DIR=.*partial: Chart.yaml, values.schema.json not found"):
        locate_chart({"AIRFLOW_CHART_DIR": str(partial)}, shared=shared, cache=tmp_path / "c", sums_file=sums_file)


@pytest.mark.parametrize("where", ["shared", "cache"])
def test_a_tampered_file_is_refused(tmp_path: Path, chart_files: dict[str, bytes], sums_file: Path, where: str) -> None:
    tampered = {**chart_files, "values.schema.json": chart_files["values.schema.json"] + b" "}
    directory = make_dir(tmp_path / where, tampered)
    shared = directory if where == "shared" else tmp_path / "absent"
    with pytest.raises(ChartError, match="values.schema.json does not match its pinned sha256"):
        locate_chart({}, shared=shared, cache=directory, sums_file=sums_file)


def test_a_missing_file_in_the_cache_is_refused(tmp_path: Path, chart_files: dict[str, bytes], sums_file: Path) -> None:
    cache = make_dir(tmp_path / "cache", {k: v for k, v in chart_files.items() if k != "Chart.yaml"})
    with pytest.raises(ChartError, match="Chart.yaml is missing"):
        locate_chart({}, shared=tmp_path / "absent", cache=cache, sums_file=sums_file)


def test_the_shared_copy_matches_the_pinned_sums() -> None:
    if not chart_source.SHARED_DIR.is_dir():
        pytest.skip(f"no shared copy at {chart_source.SHARED_DIR}")
    chart_source.verify_dir(chart_source.SHARED_DIR, pinned_sums())


# ---------------------------------------------------------------------------------------------- fetch


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a directory: (base URL, directory)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_fetch_from_raw_verifies_and_fills_the_cache(
    tmp_path: Path, server: tuple[str, Path], chart_files: dict[str, bytes], sums_file: Path
) -> None:
    base, root = server
    make_dir(root / "chart", chart_files)
    cache = tmp_path / "cache" / "1.19.0"
    assert fetch(cache, raw_url=base + "/chart/{file}", tarball_urls=(), sums_file=sums_file) == cache
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == chart_files
    found = locate_chart({}, shared=tmp_path / "absent", cache=cache, sums_file=sums_file)
    assert found is not None and found.origin == "cache"


def test_fetch_refuses_a_tampered_download_and_writes_nothing(
    tmp_path: Path, server: tuple[str, Path], chart_files: dict[str, bytes], sums_file: Path
) -> None:
    base, root = server
    make_dir(root / "chart", {**chart_files, "values.yaml": b"replicas: 1000\n"})
    cache = tmp_path / "cache" / "1.19.0"
    with pytest.raises(ChartError, match=r"/chart/\{.*\}: .*values.yaml does not match its pinned sha256"):
        fetch(cache, raw_url=base + "/chart/{file}", tarball_urls=(), sums_file=sums_file)
    assert not cache.exists()


def test_fetch_falls_back_to_the_chart_tarball(
    tmp_path: Path, server: tuple[str, Path], chart_files: dict[str, bytes], sums_file: Path
) -> None:
    base, root = server
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in chart_files.items():
            info = tarfile.TarInfo(f"airflow/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    (root / "airflow-1.19.0.tgz").write_bytes(buffer.getvalue())
    cache = tmp_path / "cache" / "1.19.0"
    fetch(cache, raw_url=base + "/missing/{file}", tarball_urls=(base + "/airflow-1.19.0.tgz",), sums_file=sums_file)
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == chart_files


def test_fetch_when_unreachable_fails_naming_every_url(tmp_path: Path, sums_file: Path) -> None:
    port = closed_port()
    raw, tarball = f"http://127.0.0.1:{port}/chart/{{file}}", f"http://127.0.0.1:{port}/airflow-1.19.0.tgz"
    with pytest.raises(ChartError) as raised:
        fetch(tmp_path / "cache", raw_url=raw, tarball_urls=(tarball,), sums_file=sums_file)
    message = str(raised.value)
    assert f"http://127.0.0.1:{port}/chart/{{Chart.yaml,values.schema.json,values.yaml}}:" in message
    assert f"{tarball}:" in message and "set AIRFLOW_CHART_DIR" in message
    assert not (tmp_path / "cache").exists()


def test_where_without_a_source_says_how_to_get_the_chart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AIRFLOW_CHART_DIR", raising=False)
    monkeypatch.setattr(chart_source, "SHARED_DIR", tmp_path / "absent")
    assert chart_source.main(["where", "--cache", str(tmp_path / "no-cache")]) == 1
    assert "run `make chart`" in capsys.readouterr().err
