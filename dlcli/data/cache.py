"""Where decoded data is kept between epochs and between runs: memory, a disk cache, or nowhere.

A disk cache is a folder `<cache_dir>/<key>`, the key a hash of the files (path, size, mtime) and
the decoding settings: change a file or a setting and the cache is built anew. It is built under a
name unique to the process and renamed into place when whole, so an interrupted run leaves no
half-written cache, and two runs building the same one at once both finish (the first rename
wins; the other drops its copy and reads the winner's).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("dlcli")

RECORD = "scan.json"  # written last: a folder without it is not a cache
MEMORY_SHARE = 0.25  # `cache: auto` keeps decoded data in memory up to this share of RAM
STALE_SECONDS = 86400  # half-built caches of killed runs older than this are removed


def default_cache_dir(kind: str) -> Path:
    """`$DLCLI_CACHE_DIR/<kind>`, else `$XDG_CACHE_HOME/dlcli/<kind>` (~/.cache/dlcli/<kind>)."""
    if os.environ.get("DLCLI_CACHE_DIR"):
        return Path(os.environ["DLCLI_CACHE_DIR"]).expanduser() / kind
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "dlcli" / kind


def cache_key(paths: list[str], settings: dict[str, Any], version: int) -> str:
    """Files (with their size and modification time) and decoding settings."""
    files = []
    for path in paths:
        try:
            stat = os.stat(path)
            files.append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
        except OSError:
            files.append([os.path.abspath(path), -1, -1])
    text = json.dumps({"v": version, "settings": settings, "files": files})
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def build_once(
    root: Path, key: str, build: Callable[[Path], dict[str, Any]]
) -> tuple[Path, dict[str, Any]]:
    """The folder `root/key` and its record, built first by `build(folder) -> record` when it is
    not there yet (see the module's docstring for how runs share it)."""
    final = root / key
    if not (final / RECORD).is_file():
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".*.tmp"):
            if time.time() - stale.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(stale, ignore_errors=True)
        building = root / f".{key}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        building.mkdir()
        try:
            record = build(building)
            (building / RECORD).write_text(json.dumps(record))
            # OSError: another run finished the same cache first: use theirs.
            with contextlib.suppress(OSError):
                os.rename(building, final)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return final, json.loads((final / RECORD).read_text())


def cached_scan(
    root: Path,
    key: str,
    paths: list[str],
    labels: list[Any],
    scan: Callable[[list[Any]], Any],
    fill: Callable[[Any, Path], None],
    on_bad_file: str,
    cannot: str,
) -> tuple[Path, Any]:
    """The disk cache `root/key` of `paths`, built once by `scan(labels) -> ScanResult` and
    `fill(scan, folder)`, and the scan read back from its record (a later run scans nothing).
    A file the cached scan found bad stops the run when `on_bad_file` is `fail`, with the
    message `cannot` + the path and the reason."""
    import dataclasses

    from dlcli.data.images import ScanResult
    from dlcli.errors import DataError

    def build(folder: Path) -> dict[str, Any]:
        result = scan(list(range(len(paths))))  # labels: positions in `paths`
        fill(result, folder)
        position = {path: i for i, path in enumerate(paths)}
        record = dataclasses.asdict(result)
        del record["good"]  # the positions in `labels` say which
        record["bad"] = [[position[p], reason] for p, reason in result.bad]
        return record

    final, record = build_once(root, key, build)
    good = record.pop("labels")
    result = ScanResult(
        good=[paths[i] for i in good],
        labels=[labels[i] for i in good],
        **{**record, "bad": [(paths[i], str(reason)) for i, reason in record["bad"]]},
    )
    if result.bad and on_bad_file == "fail":
        path, reason = result.bad[0]
        raise DataError(
            f"{cannot} {path}: {reason}",
            hint="fix or remove the file, or set `data.on_bad_file: skip`",
        )
    return final, result


def memory_limit() -> int:
    """Bytes this process may use: physical RAM, or the container's cgroup limit if lower."""
    limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limit = min(limit, int(text))
    return limit


def size_text(n: float) -> str:
    """Bytes for people: 36 kB, 12.3 MB, 3.01 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def resolve_cache(mode: str, decoded_bytes: int, what: str) -> str:
    """`auto` to `memory` when the decoded data fits MEMORY_SHARE of RAM, else `disk`; logged
    with the size either way."""
    if mode == "auto":
        allowed = MEMORY_SHARE * memory_limit()
        mode = "memory" if decoded_bytes <= allowed else "disk"
        log.info(
            "cache %s: %s of decoded %s, %s %.0f%% of %s RAM (cache: auto)",
            mode,
            size_text(decoded_bytes),
            what,
            "within" if mode == "memory" else "over",
            100 * MEMORY_SHARE,
            size_text(memory_limit()),
        )
    else:
        log.info("cache %s: %s of decoded %s", mode, size_text(decoded_bytes), what)
    return mode
