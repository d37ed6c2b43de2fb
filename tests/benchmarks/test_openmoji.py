"""The OpenMoji benchmark builder on a few real emojis, and the quality table on what it built.

The pinned tarball comes from npm's registry once (``npm pack``, 4 MB) into the user cache, as
it does for users; every later run reads the cached copy after checking its sha256.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from sketchsearch.benchmarks.real import openmoji_build as openmoji
from sketchsearch.data.errors import UsageError
from sketchsearch.data.imagefile import read_image
from sketchsearch.data.layouts import scan

# Two faces, two mammals, two birds, two tools: four subgroups, two emojis each.
FEW = ("1F600", "1F603", "1F415", "1F408", "1F426", "1F427", "1F528", "1F527")
SKIN_TONE_VARIANT = "1F44B-1F3FB"  # waving hand: light skin tone


@pytest.fixture(scope="session")
def tarball() -> Path:
    return openmoji.fetch_tarball(Path.home() / ".cache" / "sketchsearch")


@pytest.fixture(scope="session")
def few(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("openmoji") / "data"
    openmoji.build(out, tarball, only=FEW)
    return out


def test_tarball_is_the_pinned_release(tarball: Path) -> None:
    assert openmoji.sha256_of(tarball) == openmoji.TARBALL_SHA256


def test_builds_the_paired_layout_with_attribution(few: Path) -> None:
    record = json.loads((few / openmoji.BUILD_RECORD).read_text())
    assert record["emojis"] == len(FEW) and record["failures"] == [] and record["subset"]
    assert record["subgroups"] == {
        "animal-bird": 2,
        "animal-mammal": 2,
        "face-smiling": 2,
        "tool": 2,
    }
    assert record["skin_tone_variants_dropped"] > 1000  # every skin tone of 17.0.0 is left out
    assert "CC BY-SA 4.0" in (few / "ATTRIBUTION.md").read_text()
    assert "Attribution-ShareAlike 4.0" in (few / "LICENSE.txt").read_text()
    collection = scan(few, "paired", domains=["sketch", "photo"])
    assert not collection.warnings
    assert len(collection.items) == 2 * len(FEW)
    by_instance: dict[str, set[str]] = {}
    for item in collection.items:
        by_instance.setdefault(str(item.instance), set()).add(item.domain)
    assert len(by_instance) == len(FEW)
    assert all(domains == {"sketch", "photo"} for domains in by_instance.values())


def test_renders_line_art_and_colour_on_white(few: Path) -> None:
    sketch = read_image(few / "sketch/face-smiling/1F600.png")
    photo = read_image(few / "photo/face-smiling/1F600.png")
    assert sketch.shape == photo.shape == (128, 128, 3)
    assert (sketch[0, 0] == 255).all() and (photo[0, 0] == 255).all()  # white, not transparent
    spread = sketch.max(axis=2).astype(int) - sketch.min(axis=2)
    assert spread.max() < 16  # black lines on white: no colour at all
    assert 0.02 < (sketch.mean(axis=2) < 128).mean() < 0.3  # lines, not fills
    saturated = photo.max(axis=2).astype(int) - photo.min(axis=2) > 100
    assert saturated.mean() > 0.2  # the grinning face is yellow
    # The colour image contains the drawing's outline: its dark pixels sit on the lines.
    lines = sketch.mean(axis=2) < 128
    assert (photo.mean(axis=2)[lines] < 128).mean() > 0.6


def test_refuses_another_tarball(tarball: Path, tmp_path: Path, capsys) -> None:
    from sketchsearch.cli.main import run
    from sketchsearch.cli.real_benchmarks import openmoji as openmoji_command

    with gzip.open(tarball) as stream:
        raw = stream.read()
    changed = tmp_path / openmoji.TARBALL_NAME
    with tarfile.open(fileobj=io.BytesIO(raw)) as source, tarfile.open(changed, "w:gz") as out:
        for member in source.getmembers():
            data = source.extractfile(member) if member.isfile() else None
            if member.name == "package/black/svg/1F600.svg" and data is not None:
                content = data.read().replace(b"#000000", b"#000001", 1)
                member.size = len(content)
                data = io.BytesIO(content)
            out.addfile(member, data)
    code = run(openmoji_command, ["--out", str(tmp_path / "out"), "--tarball", str(changed)])
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("error: ") and error.count("\n") == 1
    assert "is not the pinned openmoji 17.0.0 tarball" in error
    assert not (tmp_path / "out").exists()


def test_refuses_skin_tones_existing_output_and_leaves_no_half_build(
    tarball: Path, few: Path, tmp_path: Path, monkeypatch
) -> None:
    with pytest.raises(UsageError, match="not base emojis"):
        openmoji.build(tmp_path / "a", tarball, only=(SKIN_TONE_VARIANT,))
    with pytest.raises(UsageError, match="already exists"):
        openmoji.build(few, tarball, only=FEW[:1])
    assert not list(tmp_path.iterdir())  # no staging folder left behind
    before = sorted(p.name for p in few.parent.iterdir())

    class Interrupted(Exception):
        pass

    def interrupted(svg: bytes, size: int = 128) -> np.ndarray:
        raise Interrupted

    monkeypatch.setattr(openmoji, "render_svg", interrupted)  # a crash half-way through
    with pytest.raises(Interrupted):
        openmoji.build(few, tarball, only=FEW[:2], overwrite=True)
    assert sorted(p.name for p in few.parent.iterdir()) == before  # the old build is intact
    assert json.loads((few / openmoji.BUILD_RECORD).read_text())["emojis"] == len(FEW)


def test_quality_table_scores_baselines_and_models(few: Path, tmp_path: Path) -> None:
    from sketchsearch.benchmarks.make_checkpoint import make_checkpoint
    from sketchsearch.benchmarks.real import quality_runner as quality
    from sketchsearch.data.layouts import scan as scan_layout
    from sketchsearch.data.split_file import build_split_file, save_split
    from sketchsearch.data.splits import SplitConfig, make_split

    collection = scan_layout(few, "paired", domains=["sketch", "photo"])
    hard = SplitConfig(policy="hard", test_categories=("animal-bird", "tool"))
    split = save_split(
        build_split_file(collection, hard, make_split(collection, hard)), tmp_path / "split.json"
    )
    model = make_checkpoint(tmp_path / "m.ckpt", "test_efficientnet", 32, 8, 2)
    rows = quality.run_quality(split, few, [model])
    assert [(r.name, r.kind) for r in rows] == [
        ("pixels", "baseline"),
        ("edges", "baseline"),
        ("untrained", "baseline"),
        (str(model), "model"),
    ]
    for row in rows:
        assert row.queries == row.gallery == 4
        assert 0 < row.category_map <= 1 and 0 < row.instance_map <= 1
    # Line art against its own colour version: even raw pixels find most of the four.
    assert rows[0].instance_recall_at_1 >= 0.5
    assert rows[2].category_map == rows[3].category_map  # both are seed-0 random weights
    text = quality.table(rows)
    assert "× best base" in text and "untrained" in text
    soft = SplitConfig(fractions=(0.5, 0.0, 0.5), small_categories="train")
    soft_split = save_split(
        build_split_file(collection, soft, make_split(collection, soft)), tmp_path / "soft.json"
    )
    with pytest.raises(UsageError, match="needs a hard split"):
        quality.run_quality(soft_split, few, [model])
