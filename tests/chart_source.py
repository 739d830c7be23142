"""Where the official chart's files that the tests check against come from (chart 1.19.0).

`locate_chart()` is the one lookup, in order:

1. `AIRFLOW_CHART_DIR` when set: your copy, used as it is (no checksum, so a chart upgrade can be
   tried before its sums are pinned); it must hold the three files.
2. `../shared/airflow-chart` next to the checkout, when present (verified against `chart/SHA256SUMS`).
3. The cache `~/.cache/airflow-oidc/chart/1.19.0/` (verified), filled by `make chart`.

`make chart` (`python -m tests.chart_source fetch`) downloads the three files from apache/airflow at
the commit released as chart 1.19.0 (GitHub raw), or takes them from the released chart tarball,
verifies each against the sha256 sums pinned in `chart/SHA256SUMS`, and only then moves them into
the cache. Nothing unverified is ever placed there.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHART_VERSION = "1.19.0"
CHART_COMMIT = "5dc0143e7df3d7d0985aaffdfd96df9905432150"
"""apache/airflow commit released as chart 1.19.0 ("Chart: update artifacthub annotations for 1.19.0rc3")."""
CHART_FILES = ("Chart.yaml", "values.schema.json", "values.yaml")
SUMS_FILE = ROOT / "chart" / "SHA256SUMS"
SHARED_DIR = ROOT.parent / "shared" / "airflow-chart"
ENV_VAR = "AIRFLOW_CHART_DIR"
FETCH_TIMEOUT_SECONDS = 20

RAW_URL = f"https://raw.githubusercontent.com/apache/airflow/{CHART_COMMIT}/chart/{{file}}"
TARBALL_URLS = (
    f"https://downloads.apache.org/airflow/helm-chart/{CHART_VERSION}/airflow-{CHART_VERSION}.tgz",
    f"https://archive.apache.org/dist/airflow/helm-chart/{CHART_VERSION}/airflow-{CHART_VERSION}.tgz",
)

HOW_TO_GET = (
    f"the official Airflow chart {CHART_VERSION} files ({', '.join(CHART_FILES)}) were not found: run `make chart` "
    f"(downloads and verifies them into {{cache}}), or set {ENV_VAR} to a directory holding them "
    f"(chart/ of apache/airflow at {CHART_COMMIT[:12]})"
)


class ChartError(Exception):
    """A chart source exists but cannot be used (files missing, a checksum that does not match)."""


@dataclass(frozen=True)
class ChartSource:
    path: Path
    origin: str
    """`AIRFLOW_CHART_DIR`, `shared` or `cache`."""


def default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "airflow-oidc" / "chart" / CHART_VERSION


def pinned_sums(sums_file: Path = SUMS_FILE) -> dict[str, str]:
    """file name -> sha256, from a `sha256sum` listing."""
    sums: dict[str, str] = {}
    for line in sums_file.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            sums[name.strip().lstrip("*")] = digest.lower()
    missing = set(CHART_FILES) - set(sums)
    if missing:
        raise ChartError(f"{sums_file}: no checksum for {sorted(missing)}")
    return sums


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_files(files: Mapping[str, bytes], sums: Mapping[str, str], where: str) -> None:
    """Refuse unless every chart file is there with its pinned checksum."""
    for name in CHART_FILES:
        if name not in files:
            raise ChartError(f"{where}: {name} is missing")
        if sha256(files[name]) != sums[name]:
            raise ChartError(f"{where}: {name} does not match its pinned sha256 in {SUMS_FILE.relative_to(ROOT)}")


def verify_dir(directory: Path, sums: Mapping[str, str]) -> None:
    files = {name: (directory / name).read_bytes() for name in CHART_FILES if (directory / name).is_file()}
    verify_files(files, sums, str(directory))


def locate_chart(
    env: Mapping[str, str] | None = None,
    shared: Path | None = None,
    cache: Path | None = None,
    sums_file: Path = SUMS_FILE,
) -> ChartSource | None:
    """The chart directory the tests use (see the module docstring), or None when there is none.

    Raises ChartError when a source exists but is unusable: an AIRFLOW_CHART_DIR without the files, or
    a shared copy or cache whose files do not match the pinned checksums (never silently skipped).
    """
    env = os.environ if env is None else env
    shared = SHARED_DIR if shared is None else shared
    cache = default_cache_dir() if cache is None else cache
    chosen = env.get(ENV_VAR)
    if chosen:
        path = Path(chosen).expanduser()
        missing = [name for name in CHART_FILES if not (path / name).is_file()]
        if missing:
            raise ChartError(f"{ENV_VAR}={chosen}: {', '.join(missing)} not found there")
        return ChartSource(path, ENV_VAR)
    sums = pinned_sums(sums_file)
    for path, origin in ((shared, "shared"), (cache, "cache")):
        if path.is_dir():
            verify_dir(path, sums)
            return ChartSource(path, origin)
    return None


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310 - fixed https URLs
        data: bytes = response.read()
        return data


def _from_raw(url_template: str) -> dict[str, bytes]:
    return {name: _download(url_template.format(file=name)) for name in CHART_FILES}


def _from_tarball(url: str) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(_download(url)), mode="r:gz") as archive:
        files: dict[str, bytes] = {}
        for name in CHART_FILES:
            member = archive.extractfile(f"airflow/{name}")
            if member is not None:
                files[name] = member.read()
        return files


def fetch(
    cache: Path | None = None,
    raw_url: str = RAW_URL,
    tarball_urls: Sequence[str] = TARBALL_URLS,
    sums_file: Path = SUMS_FILE,
) -> Path:
    """Download the chart files, verify them, and move them into the cache; returns the cache directory.

    Tries GitHub raw at the pinned commit, then each tarball URL. Raises ChartError naming every URL
    tried and why it failed; a file that does not match its checksum is never written to the cache.
    """
    cache = default_cache_dir() if cache is None else cache
    sums = pinned_sums(sums_file)
    attempts: list[tuple[str, str]] = [(raw_url.format(file="{" + ",".join(CHART_FILES) + "}"), "raw")]
    attempts += [(url, "tarball") for url in tarball_urls]
    failures: list[str] = []
    for url, kind in attempts:
        try:
            files = _from_raw(raw_url) if kind == "raw" else _from_tarball(url)
            verify_files(files, sums, url)
        except (OSError, tarfile.TarError, KeyError, ChartError) as error:
            failures.append(f"  {url}: {error}")
            continue
        cache.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".chart-", dir=cache.parent))
        for name, data in files.items():
            if name in CHART_FILES:
                (staging / name).write_bytes(data)
        if cache.exists():
            shutil.rmtree(cache)
        staging.rename(cache)
        return cache
    raise ChartError(
        f"could not fetch the Airflow chart {CHART_VERSION} files:\n"
        + "\n".join(failures)
        + f"\nCopy them by hand into {cache} (chart/ of apache/airflow at {CHART_COMMIT}), "
        f"or set {ENV_VAR} to a directory holding them."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chart_source", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command",
        choices=["fetch", "ensure", "where"],
        help="fetch: download + verify into the cache (fails when unreachable); "
        "ensure: fetch only when no source is found, warn instead of failing; where: print the source",
    )
    parser.add_argument("--cache", type=Path, default=None, help="cache directory (default: %(default)s)")
    args = parser.parse_args(argv)
    cache = args.cache or default_cache_dir()
    try:
        if args.command == "fetch":
            print(f"chart {CHART_VERSION}: verified files in {fetch(cache)}")
            return 0
        found = locate_chart(cache=cache)
        if found is not None:
            print(f"chart {CHART_VERSION}: {found.path} ({found.origin})")
            return 0
        if args.command == "where":
            print(HOW_TO_GET.format(cache=cache), file=sys.stderr)
            return 1
        print(f"chart {CHART_VERSION}: verified files in {fetch(cache)}")
        return 0
    except ChartError as error:
        print(f"error: {error}", file=sys.stderr)
        if args.command == "ensure":
            print("the chart schema tests will skip: " + HOW_TO_GET.format(cache=cache), file=sys.stderr)
            return 0
        return 2


if __name__ == "__main__":
    sys.exit(main())
