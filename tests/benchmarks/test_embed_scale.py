"""benchmarks/embed_scale.py, tiny: both figures run, the import's recall check can fail, and
the overhead and load verdicts are checked on hand-made numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sketchsearch.benchmarks import embed_scale


def test_tiny_embed_figure(tiny_onnx: Path, tiny_run: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(tiny_run.parent / "data" / "photo" / "tx_000000000000", photos)
    out = tmp_path / "scale.json"
    args = ["--only", "embed", "--engine", str(tiny_onnx), "--image-folder", str(photos)]
    args += ["--runners", "local", "--rounds", "2", "--shard-size", "10"]
    args += ["--work", str(tmp_path / "work"), "--json", str(out)]
    assert embed_scale.main(args) == 0
    report = json.loads(out.read_text())
    assert report["command"].startswith("python benchmarks/embed_scale.py --only embed")
    assert report["environment"]["fingerprint"] and report["date"]
    assert isinstance(report["loaded"], bool) and "import" not in report
    embed = report["embed"]
    assert embed["images"] == 36 and len(embed["per_round"]) == 2
    assert embed["median"]["local"]["images_per_second"] > 0
    assert embed["ray_overhead_at_equal_cores"] == {}  # no Ray runner asked for


def test_tiny_import_figure(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    args = ["--only", "import", "--import-items", "3000", "--import-shard-size", "1000"]
    args += ["--work", str(tmp_path / "work"), "--json", str(out)]
    assert embed_scale.main(args) == 0
    imported = json.loads(out.read_text())["import"]
    assert (imported["items"], imported["shards"], imported["dim"]) == (3000, 3, 128)
    assert imported["data_model"]["latent_dim"] == 16 and imported["data_model"]["centres"] == 300
    assert imported["hnsw"] == {"M": 16, "ef_construction": 200, "ef": 64}
    assert "imported 3000 item(s) from 3 shard(s)" in imported["printed"]
    assert imported["peak_rss_mib"] > 30 and imported["seconds"] > 0 < imported["cpu_seconds"]
    assert imported["shard_bytes"] > 3000 * 128 * 4 and imported["gallery_bytes"] > 3000 * 128 * 4
    recall = imported["recall_at_10_vs_exact_200_queries"]
    assert list(recall) == ["ef=64", "ef=256", "ef=1024"] and recall["ef=64"] >= 0.9
    assert not (tmp_path / "work" / "import-3000").exists()  # cleaned up without --keep


def test_recall_falls_when_the_gallery_holds_other_vectors(tmp_path: Path) -> None:
    mixture = embed_scale.write_import_shards(tmp_path / "a", 2000, 1000, seed=0)
    embed_scale.write_import_shards(tmp_path / "b", 2000, 1000, seed=1)  # same paths
    embed_scale.run_import(tmp_path / "a", tmp_path / "ga")
    embed_scale.run_import(tmp_path / "b", tmp_path / "gb")
    assert embed_scale.import_recall(tmp_path / "a", tmp_path / "ga", mixture)["ef=64"] >= 0.9
    assert embed_scale.import_recall(tmp_path / "a", tmp_path / "gb", mixture)["ef=64"] < 0.2


def test_a_failed_import_says_why(tmp_path: Path) -> None:
    """The child's stderr (its one-line error) is captured and shown, not lost."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"exit 2\): .*no shards"):
        embed_scale.run_import(tmp_path / "empty", tmp_path / "g")


def test_the_vectors_have_a_low_intrinsic_dimension() -> None:
    """16 directions hold nearly all the variance, as in real embeddings; isotropic 128-d
    noise around a few centres (HNSW's worst case) would spread it over all 128."""
    vectors, _ = embed_scale.Mixture.new(0).draw(5000, np.random.default_rng(1))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    energy = np.linalg.svd(vectors - vectors.mean(0), compute_uv=False) ** 2
    assert energy[:16].sum() / energy.sum() > 0.9


def test_ray_overheads_per_round_median_and_target() -> None:
    def rates(local: float, ray: float) -> dict[str, dict[str, float]]:
        return {
            "local": {"images_per_second": local, "work_images_per_second": local},
            "ray-1": {"images_per_second": ray, "work_images_per_second": ray * 1.5},
        }

    rounds = [rates(100, 80), rates(50, 30), rates(200, 180)]  # 0.2, 0.4, 0.1 per round
    overheads = embed_scale.ray_overheads(rounds, ["local", "ray-1"])
    phase = overheads["images_per_second"]["ray-1"]
    np.testing.assert_allclose(phase["per_round"], [0.2, 0.4, 0.1])
    assert phase["median"] == pytest.approx(0.2) and phase["meets_target"] is True
    steady = overheads["work_images_per_second"]["ray-1"]
    np.testing.assert_allclose(steady["per_round"], [-0.2, 0.1, -0.35])
    assert steady["meets_target"] is True
    slow = embed_scale.ray_overheads([rates(100, 70)] * 3, ["local", "ray-1"])
    assert slow["images_per_second"]["ray-1"]["meets_target"] is False  # 0.3 > 0.25
    assert embed_scale.ray_overheads(rounds, ["ray-1"]) == {}  # nothing to compare with


def test_a_run_on_a_loaded_machine_is_flagged() -> None:
    assert embed_scale.is_loaded(0.5, cores=2) is False
    assert embed_scale.is_loaded(1.5, cores=2) is True
    assert embed_scale.is_loaded(8.0, cores=16) is False  # half exactly: not above
