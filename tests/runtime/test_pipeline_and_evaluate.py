"""Embedding pipelines, provider choice and evaluation, on a hand-made engine with known output.

The colour engine embeds an image as its unit-length mean RGB colour, so every score and every
metric below can be worked out by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from colour_engine import ColourEngine, solid
from colour_engine import colour_split as make_colour_split

from sketchsearch.data.split_spec import parse_split_spec
from sketchsearch.gallery.gallery import Gallery
from sketchsearch.runtime.engines.onnx_engine import choose_providers
from sketchsearch.runtime.engines.protocol import BackendUnavailableError
from sketchsearch.runtime.evaluation.evaluate import evaluate
from sketchsearch.runtime.gallery_build import build_gallery, split_sources
from sketchsearch.runtime.pipeline import embed_paths


def test_embed_paths_keeps_order_reports_failures_and_batches(tmp_path) -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 20, 30), (5, 5, 5), (9, 0, 9)]
    paths = [solid(tmp_path / f"{i}.png", c) for i, c in enumerate(colours)]
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    paths.insert(2, tmp_path / "bad.png")
    paths.append(tmp_path / "missing.png")
    engine = ColourEngine()
    result = embed_paths(engine, paths, batch_size=3, workers=2, progress=False)
    assert result.done == [0, 1, 3, 4, 5, 6]
    assert [Path(f.path).name for f in result.failures] == ["bad.png", "missing.png"]
    assert "file not found" in result.failures[1].problem
    expected = np.array(colours, np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(result.vectors, expected, atol=1e-6)
    assert engine.batches == [2, 3, 1]  # batches of 3 files; bad files leave gaps
    assert len(result.digests) == 6 and len(set(result.digests)) == 6


def test_provider_choice_prefers_gpus_and_refuses_a_missing_one() -> None:
    everything = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(None, everything) == everything
    assert choose_providers(None, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers("cuda", everything) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert choose_providers("cpu", everything) == ["CPUExecutionProvider"]
    with pytest.raises(BackendUnavailableError, match="not available") as caught:
        choose_providers("tensorrt", ["CPUExecutionProvider"])
    assert caught.value.exit_code == 2


@pytest.fixture
def colour_split(tmp_path) -> tuple[Path, Path]:
    part = make_colour_split(tmp_path)
    return part.root, part.source


def test_evaluate_on_a_case_worked_out_by_hand(colour_split, tmp_path) -> None:
    root, split = colour_split
    part = parse_split_spec(f"{split}:train", root)
    engine = ColourEngine()
    report = build_gallery(engine, tmp_path / "g", root, split_sources(part, "photo"))
    assert report.indexed == 4
    with Gallery.open(tmp_path / "g") as gallery:
        result = evaluate(engine, gallery, part)
    # red query: r1 (rel), g1, r2 (rel), b1 → AP (1/1 + 2/3) / 2 = 5/6
    # green query: r2, g1 (rel), … → AP 1/2
    for metrics in (result.hnsw, result.exact):
        assert metrics is not None
        assert metrics["mAP@all"] == pytest.approx((5 / 6 + 1 / 2) / 2)
        assert metrics["P@1"] == pytest.approx(0.5)
        assert metrics["recall@1"] == pytest.approx(0.5)
        assert metrics["recall@5"] == pytest.approx(1.0)
        assert metrics["P@100"] == pytest.approx((2 / 4 + 1 / 4) / 2)  # k > gallery: / size
    assert result.hnsw_recall_at_10 == pytest.approx(1.0)
    assert (result.queries, result.gallery_items, result.direction) == (2, 4, "sketch2photo")


def test_evaluate_refuses_a_gallery_encoder_for_queries(colour_split, tmp_path) -> None:
    from sketchsearch.data.errors import UsageError

    root, split = colour_split
    part = parse_split_spec(f"{split}:train", root)
    engine = ColourEngine()
    build_gallery(engine, tmp_path / "g", root, split_sources(part, "photo"))
    engine.card = engine.card.with_changes(domain="gallery")
    with Gallery.open(tmp_path / "g") as gallery, pytest.raises(UsageError, match=r"query\.onnx"):
        evaluate(engine, gallery, part)


def test_instance_relevance_never_matches_missing_instances() -> None:
    from types import SimpleNamespace

    from sketchsearch.runtime.evaluation.evaluate import _relevance

    queries = [
        SimpleNamespace(instance="a", category="x"),
        SimpleNamespace(instance=None, category="x"),
    ]
    items = [SimpleNamespace(instance="a", label="x"), SimpleNamespace(instance=None, label="x")]
    relevant = _relevance(queries, items, instance=True)
    assert relevant.tolist() == [[True, False], [False, False]]


def test_a_symlinked_file_is_indexed_under_its_name_in_the_folder(tmp_path) -> None:
    from sketchsearch.runtime.gallery_build import folder_sources

    outside = solid(tmp_path / "elsewhere" / "red.png", (255, 0, 0))
    (tmp_path / "photos" / "red").mkdir(parents=True)
    (tmp_path / "photos" / "red" / "link.png").symlink_to(outside)
    (source,) = folder_sources(tmp_path / "photos")
    assert (source.path, source.label) == ("red/link.png", "red")
