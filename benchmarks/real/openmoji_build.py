"""Build the OpenMoji line-art → colour benchmark from the pinned npm tarball.

OpenMoji (https://openmoji.org, CC BY-SA 4.0) draws every emoji twice: a black line drawing
(``black/svg``) and a colour version (``color/svg``). Nobody on this project drew them, so they
are an honest real-data test of sketch → photo retrieval. The builder:

- fetches ``openmoji@17.0.0`` with ``npm pack`` (or takes ``--tarball``) and refuses any
  tarball whose sha256 is not the pinned one, so every machine scores the same images;
- drops skin-tone variants (they are recoloured copies of a base emoji, so they would leak
  near-duplicates across split parts) and labels each emoji with its ``subgroups`` field;
- renders both SVGs at 128 px on white with resvg (``resvg-py``), an established renderer;
- writes the paired two-domain layout ``OUT/sketch/<subgroup>/<hexcode>.png`` and
  ``OUT/photo/<subgroup>/<hexcode>.png`` (same name = same emoji), plus the licence's
  attribution and a build record, into a temporary folder renamed into place when complete.

    python -m sketchsearch.benchmarks.real.openmoji --out openmoji-data
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sketchsearch.data.errors import LayoutError, SketchsearchError, UsageError
from sketchsearch.data.hashing import file_sha256
from sketchsearch.data.strict_json import dumps

PACKAGE = "openmoji"
VERSION = "17.0.0"
TARBALL_SHA256 = "55ee7d13485dec86e9f38c1f3a645a13382d33ff97c0cd845ee824b0aef45e68"
TARBALL_NAME = f"{PACKAGE}-{VERSION}.tgz"
SIZE = 128
DOMAINS = {"sketch": "black/svg", "photo": "color/svg"}  # our domain → the package's folder
BUILD_RECORD = "openmoji-build.json"
BUILD_FORMAT = "sketchsearch.openmoji-build/1"
MAX_SVG_BYTES = 2_000_000  # the largest OpenMoji SVG is well under 200 kB
# Names that become folder and file names: anything else is refused, never sanitised.
_SAFE_HEXCODE = re.compile(r"^[0-9A-F]{2,8}(-[0-9A-F]{2,8})*$")
_SAFE_SUBGROUP = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
ATTRIBUTION = """\
# Attribution

The images in this folder are rendered from OpenMoji {version} (npm package `openmoji`),
the open-source emoji and icon project of HfG Schwäbisch Gmünd: https://openmoji.org

License: Creative Commons Attribution-ShareAlike 4.0 International (CC BY-SA 4.0),
https://creativecommons.org/licenses/by-sa/4.0/ (full text: LICENSE.txt beside this file).

Changes made: SVGs rendered to {size} px PNG on a white background with resvg; skin-tone
variants left out; files arranged by the `subgroups` field of data/openmoji.json.
"""


class TarballMismatch(SketchsearchError):
    """A tarball that is not the pinned OpenMoji release."""

    exit_code = UsageError.exit_code


@dataclass(frozen=True)
class Emoji:
    hexcode: str
    subgroup: str
    annotation: str


@dataclass(frozen=True)
class BuildReport:
    out: Path
    emojis: int
    subgroups: int
    skin_tone_variants_dropped: int
    failures: tuple[str, ...]


def fetch_tarball(cache_dir: Path) -> Path:
    """The pinned tarball from the cache, or from npm's registry into the cache."""
    cached = cache_dir / TARBALL_NAME
    if cached.is_file():
        return cached
    npm = shutil.which("npm")
    if npm is None:
        raise UsageError(
            "npm not found: install Node.js/npm, or download the tarball elsewhere with "
            f"`npm pack {PACKAGE}@{VERSION}` and pass it with --tarball"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        done = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", scratch, "--silent"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        fetched = Path(scratch) / TARBALL_NAME
        if done.returncode != 0 or not fetched.is_file():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UsageError(f"`npm pack {PACKAGE}@{VERSION}` failed: {last}")
        check_tarball(fetched)
        os.replace(fetched, cached)
    return cached


sha256_of = file_sha256  # the name this module's callers and tests know


def check_tarball(path: Path, expected: str = TARBALL_SHA256) -> None:
    if not path.is_file():
        raise UsageError(f"{path}: tarball not found")
    actual = file_sha256(path)
    if actual != expected:
        raise TarballMismatch(
            f"{path}: sha256 {actual[:16]}… is not the pinned {PACKAGE} {VERSION} tarball "
            f"({expected[:16]}…); refusing it so that every machine scores the same images"
        )


def read_catalogue(raw: bytes) -> tuple[list[Emoji], int]:
    """(base emojis with safe names, number of skin-tone variants dropped)."""
    try:
        entries = json.loads(raw)
    except ValueError as err:
        raise LayoutError(f"data/openmoji.json: not JSON ({err})") from None
    if not isinstance(entries, list):
        raise LayoutError("data/openmoji.json: expected a list of emojis")
    emojis, dropped = [], 0
    for entry in entries:
        if entry.get("skintone"):
            dropped += 1
            continue
        hexcode, subgroup = str(entry.get("hexcode", "")), str(entry.get("subgroups", ""))
        if not _SAFE_HEXCODE.match(hexcode) or not _SAFE_SUBGROUP.match(subgroup):
            raise LayoutError(f"data/openmoji.json: unexpected name {hexcode!r}/{subgroup!r}")
        emojis.append(Emoji(hexcode, subgroup, str(entry.get("annotation", ""))))
    return emojis, dropped


def render_svg(svg: bytes, size: int = SIZE) -> np.ndarray:
    """RGB uint8 [size, size, 3]: the SVG drawn by resvg on white."""
    import cv2
    import resvg_py

    png = resvg_py.svg_to_bytes(
        svg_string=svg.decode("utf-8"),
        width=size,
        height=size,
        background="white",
        skip_system_fonts=True,  # the same pixels on every machine
    )
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None or decoded.shape[:2] != (size, size):
        raise LayoutError(f"resvg returned no {size}×{size} image")
    return np.ascontiguousarray(decoded[:, :, ::-1])


def build(
    out: Path,
    tarball: Path,
    *,
    only: Sequence[str] = (),
    limit: int | None = None,
    size: int = SIZE,
    overwrite: bool = False,
    expected_sha256: str = TARBALL_SHA256,
) -> BuildReport:
    """Render the benchmark into ``out``; a half-built folder is never left under that name."""
    import cv2
    import resvg_py
    from tqdm import tqdm

    check_tarball(tarball, expected_sha256)
    if out.exists() and not overwrite:
        raise UsageError(f"{out}: already exists; pass --overwrite to rebuild it")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as archive:
        members = {m.name: m for m in archive.getmembers() if m.isfile()}

        def read(name: str) -> bytes:
            member = members.get(f"package/{name}")
            if member is None:
                raise LayoutError(f"{tarball}: has no {name}")
            if member.size > MAX_SVG_BYTES and name.endswith(".svg"):
                raise LayoutError(f"{tarball}: {name} is {member.size} bytes, too large")
            stream = archive.extractfile(member)
            assert stream is not None  # a regular file member always has a stream
            return stream.read()

        emojis, dropped = read_catalogue(read("data/openmoji.json"))
        if only:
            wanted = set(only)
            unknown = sorted(wanted - {e.hexcode for e in emojis})
            if unknown:
                raise UsageError(f"--only: not base emojis of {PACKAGE}: {', '.join(unknown)}")
            emojis = [e for e in emojis if e.hexcode in wanted]
        if limit is not None:
            emojis = emojis[:limit]
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        failures: list[str] = []
        try:
            for emoji in tqdm(emojis, desc="render", unit="emoji", file=sys.stderr):
                try:
                    images = {
                        domain: render_svg(read(f"{folder}/{emoji.hexcode}.svg"), size)
                        for domain, folder in DOMAINS.items()
                    }
                except (SketchsearchError, UnicodeDecodeError, ValueError) as err:
                    failures.append(f"{emoji.hexcode}: {err}")  # reported; the rest goes on
                    continue
                for domain, image in images.items():
                    target = staging / domain / emoji.subgroup / f"{emoji.hexcode}.png"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if not cv2.imwrite(str(target), image[:, :, ::-1]):
                        raise OSError(f"cannot write {target}")
            (staging / "LICENSE.txt").write_bytes(read("LICENSE.txt"))
            (staging / "ATTRIBUTION.md").write_text(
                ATTRIBUTION.format(version=VERSION, size=size), encoding="utf-8"
            )
            subgroups = Counter(
                e.subgroup
                for e in emojis
                if not any(f.startswith(e.hexcode + ":") for f in failures)
            )
            record = {
                "format": BUILD_FORMAT,
                "package": f"{PACKAGE}@{VERSION}",
                "tarball_sha256": expected_sha256,
                "renderer": f"resvg {resvg_py.__resvg_version__} (resvg-py {resvg_py.__version__})",
                "size": size,
                "emojis": sum(subgroups.values()),
                "skin_tone_variants_dropped": dropped,
                "subgroups": dict(sorted(subgroups.items())),
                "failures": failures,
                "subset": bool(only) or limit is not None,
            }
            (staging / BUILD_RECORD).write_text(dumps(record, indent=1) + "\n")
            if out.exists():
                shutil.rmtree(out)
            os.replace(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return BuildReport(out, record["emojis"], len(subgroups), dropped, tuple(failures))
