"""Exact ROC, AUC, EER and threshold at a target FPR, against sklearn and hand-made cases;
pair sampling against brute force; `analyze roc` with a CSV and with a hand-made engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from colour_engine import ColourEngine, colour_split
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sklearn_roc_curve

from sketchsearch.cli.main import cli, run
from sketchsearch.data.errors import ExitCode
from sketchsearch.data.split_spec import parse_split_spec
from sketchsearch.gallery.gallery import Gallery
from sketchsearch.runtime.evaluation.roc import (
    RocError,
    auc,
    equal_error_rate,
    roc_curve,
    roc_report,
    threshold_at_fpr,
)
from sketchsearch.runtime.evaluation.roc_gallery import roc_for_gallery
from sketchsearch.runtime.evaluation.roc_pairs import (
    PairSampling,
    PairsFileError,
    read_pairs_csv,
    sample_pairs,
)
from sketchsearch.runtime.gallery_build import build_gallery, split_sources


def random_case(seed: int, n: int, levels: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores; with ``levels`` the scores take few values, so ties are everywhere."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = rng.normal(size=n) + labels
    if levels is not None:
        scores = np.round(scores * levels / 4) / levels
    return labels, scores


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("n", "levels"), [(50, None), (2000, None), (2000, 3), (300, 1)])
def test_curve_and_auc_equal_sklearn(seed: int, n: int, levels: int | None) -> None:
    labels, scores = random_case(seed, n, levels)
    curve = roc_curve(labels, scores)
    fpr, tpr, thresholds = sklearn_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(curve.fpr, fpr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(curve.tpr, tpr, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(curve.thresholds, thresholds)
    assert abs(auc(curve) - roc_auc_score(labels, scores)) < 1e-9
    assert len(curve.fpr) == len(np.unique(scores)) + 1  # one point per distinct score


def test_perfect_and_reversed_and_all_tied() -> None:
    labels = np.array([0, 0, 1, 1])
    assert auc(roc_curve(labels, np.array([0.1, 0.2, 0.8, 0.9]))) == 1.0
    assert auc(roc_curve(labels, np.array([0.9, 0.8, 0.2, 0.1]))) == 0.0
    tied = roc_curve(labels, np.full(4, 0.5))
    assert auc(tied) == 0.5 and equal_error_rate(tied) == (0.5, 0.5)
    assert equal_error_rate(roc_curve(labels, np.array([0.1, 0.2, 0.8, 0.9]))) == (0.0, 0.8)


def test_eer_and_threshold_on_a_hand_made_case() -> None:
    # Scores high to low: + + - + - - + - ; 4 positives, 4 negatives.
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    labels = np.array([1, 1, 0, 1, 0, 0, 1, 0])
    curve = roc_curve(labels, scores)
    # (fpr, tpr): start, then after each score.
    np.testing.assert_allclose(curve.fpr, [0, 0, 0, 0.25, 0.25, 0.5, 0.75, 0.75, 1])
    np.testing.assert_allclose(curve.tpr, [0, 0.25, 0.5, 0.5, 0.75, 0.75, 0.75, 1, 1])
    # fpr + tpr - 1 reaches 0 exactly at the point of 0.6 (0.25 + 0.75 = 1): EER 0.25 there.
    assert equal_error_rate(curve) == pytest.approx((0.25, 0.6))
    # Here it crosses between points. Points: (0,0) (0,.5)@.9 (1/3,.5)@.8 (1/3,1)@.7, with
    # fpr + tpr - 1 = -1, -.5, -1/6, 1/3: a third of the way from (1/3, .5) to (1/3, 1), where
    # TPR = 2/3, so FPR = 1 - TPR = 1/3; the threshold a third of the way from .8 to .7.
    odd = roc_curve(np.array([1, 0, 1, 0, 0]), np.array([0.9, 0.8, 0.7, 0.6, 0.5]))
    eer, at = equal_error_rate(odd)
    assert eer == pytest.approx(1 / 3) and at == pytest.approx(0.8 - 0.1 / 3)

    assert threshold_at_fpr(curve, 0.0).threshold == 0.8  # the lowest score with no FP
    point = threshold_at_fpr(curve, 0.3)
    assert (point.threshold, point.fpr, point.tpr) == (0.6, 0.25, 0.75)
    assert threshold_at_fpr(curve, 0.5).threshold == 0.5
    assert threshold_at_fpr(curve, 1.0).threshold == 0.2
    # Score >= threshold is a match: check the rates against the definition.
    for target in (0.0, 0.25, 0.3, 0.5, 0.9):
        point = threshold_at_fpr(curve, target)
        matched = scores >= point.threshold
        assert matched[labels == 0].mean() == point.fpr <= target
        assert matched[labels == 1].mean() == point.tpr


def test_a_target_below_every_fpr_matches_nothing() -> None:
    curve = roc_curve(np.array([0, 1, 0, 1]), np.array([0.9, 0.8, 0.2, 0.1]))
    point = threshold_at_fpr(curve, 0.1)
    assert point.threshold > 0.9 and (point.fpr, point.tpr) == (0.0, 0.0)
    with pytest.raises(RocError, match="between 0 and 1"):
        threshold_at_fpr(curve, 1.5)


def test_report_dict_has_the_promised_keys_and_a_lossless_curve() -> None:
    labels, scores = random_case(0, 5000, 50)
    report = roc_report(labels, scores, target_fpr=0.05, source="test")
    data = report.to_dict()
    assert {
        "auc",
        "eer",
        "eer_threshold",
        "target_fpr",
        "threshold_at_target_fpr",
        "tpr_at_target_fpr",
        "positives",
        "negatives",
        "curve",
    } <= set(data)
    assert data["positives"] + data["negatives"] == 5000 and data["target_fpr"] == 0.05
    curve = data["curve"]
    assert curve["thresholds"][0] is None and len(curve["fpr"]) < len(report.curve.fpr)
    thinned = np.trapezoid(curve["tpr"], curve["fpr"])
    assert abs(thinned - roc_auc_score(labels, scores)) < 1e-9


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([1, 1], [0.1, 0.2], "a ROC needs both"),
        ([0, 2], [0.1, 0.2], "must be 1"),
        ([0, 1], [0.1, np.nan], "NaN"),
        ([0, 1, 1], [0.1, 0.2], "one length"),
    ],
)
def test_bad_inputs_are_refused(labels, scores, message) -> None:
    with pytest.raises(RocError, match=message):
        roc_curve(np.array(labels), np.array(scores))


def brute_force_pairs(q_labels, g_labels, q_inst=None, g_inst=None):
    same_cat = np.array(q_labels)[:, None] == np.array(g_labels)[None, :]
    if q_inst is None:
        return same_cat, ~same_cat
    return np.array(q_inst)[:, None] == np.array(g_inst)[None, :], ~same_cat


def test_pairs_without_sampling_are_all_pairs() -> None:
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(30, 8)), rng.normal(size=(40, 8))
    q_labels = [f"c{i % 4}" for i in range(30)]
    g_labels = [f"c{i % 5}" for i in range(40)]  # c4 has no queries
    q_inst = [f"{label}/{i % 3}" for i, label in enumerate(q_labels)]
    g_inst = [f"{label}/{i % 2}" for i, label in enumerate(g_labels)]
    cos = (q / np.linalg.norm(q, axis=1)[:, None]) @ (g / np.linalg.norm(g, axis=1)[:, None]).T
    for instances in (False, True):
        kwargs = {"query_instances": q_inst, "gallery_instances": g_inst} if instances else {}
        pairs = sample_pairs(q, q_labels, g, g_labels, **kwargs)
        positive, negative = brute_force_pairs(
            q_labels, g_labels, *((q_inst, g_inst) if instances else ())
        )
        assert pairs.available == {"positives": positive.sum(), "negatives": negative.sum()}
        got_pos = np.sort(pairs.scores[pairs.labels == 1])
        got_neg = np.sort(pairs.scores[pairs.labels == 0])
        np.testing.assert_allclose(got_pos, np.sort(cos[positive]), atol=1e-6)
        np.testing.assert_allclose(got_neg, np.sort(cos[negative]), atol=1e-6)


def test_sampled_pairs_are_distinct_seeded_and_of_the_right_kind() -> None:
    rng = np.random.default_rng(1)
    q, g = rng.normal(size=(50, 4)), rng.normal(size=(60, 4))
    q_labels = [f"c{i % 3}" for i in range(50)]
    g_labels = [f"c{i % 3}" for i in range(60)]
    sampling = PairSampling(max_positives=100, max_negatives=300, seed=7)
    first = sample_pairs(q, q_labels, g, g_labels, sampling=sampling)
    again = sample_pairs(q, q_labels, g, g_labels, sampling=sampling)
    other = sample_pairs(q, q_labels, g, g_labels, sampling=PairSampling(100, 300, seed=8))
    assert (first.labels == 1).sum() == 100 and (first.labels == 0).sum() == 300
    assert np.array_equal(first.scores, again.scores)
    assert not np.array_equal(first.scores, other.scores)
    assert first.indices is not None and len(np.unique(first.indices, axis=0)) == 400
    positive, negative = brute_force_pairs(q_labels, g_labels)
    q_at, g_at = first.indices.T
    assert positive[q_at[:100], g_at[:100]].all() and negative[q_at[100:], g_at[100:]].all()
    cos = (q / np.linalg.norm(q, axis=1)[:, None]) @ (g / np.linalg.norm(g, axis=1)[:, None]).T
    np.testing.assert_allclose(first.scores, cos[q_at, g_at], atol=1e-6)


def test_the_original_csv_format_is_read(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    # As pandas' to_csv wrote it in the original: an unnamed index column, then the two.
    path.write_text(",actual,prediction\n0,1,0.91\n1,0,0.12\n2,1.0,0.55\n3,0,0.60\n\n")
    pairs = read_pairs_csv(path)
    assert pairs.labels.tolist() == [1, 0, 1, 0]
    assert pairs.scores.tolist() == [0.91, 0.12, 0.55, 0.60]
    assert roc_report(pairs.labels, pairs.scores).auc == 0.75


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("label,score\n1,0.5\n", r"no 'actual' or 'prediction' column \(found 'label', 'score'\)"),
        ("actual\n1\n", "no 'prediction' column"),
        ("", "no header"),
        ("actual,prediction\n", "no pairs"),
        ("actual,prediction\n1,0.5\n2,0.4\n", "line 3: actual is 2"),
        ("actual,prediction\n1,high\n", "line 2: expected numbers"),
        ("actual,prediction\n1,nan\n", "not finite"),
    ],
)
def test_bad_csv_files_name_the_file_and_the_fix(tmp_path: Path, text: str, message) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(text)
    with pytest.raises(PairsFileError, match=message) as caught:
        read_pairs_csv(path)
    assert str(path) in str(caught.value)


@pytest.fixture
def colour_gallery(tmp_path: Path) -> tuple[Path, Path, Path]:
    part = colour_split(tmp_path)
    root, split = part.root, part.source
    build_gallery(ColourEngine(), tmp_path / "g", root, split_sources(part, "photo"))
    return root, split, tmp_path / "g"


def test_engine_mode_on_a_case_worked_out_by_hand(colour_gallery) -> None:
    root, split, folder = colour_gallery
    with Gallery.open(folder) as gallery:
        report = roc_for_gallery(
            ColourEngine(), gallery, parse_split_spec(f"{split}:train", root), target_fpr=0.01
        )
    # Positives (same category): 1.0, 0.6 (red q) and 0.6 (green q); negatives 0.8, 0, 0.8,
    # 0, 0. AUC: 1.0 beats all 5 negatives, each 0.6 beats the three 0s: 11 of 15 pairs.
    assert (report.curve.positives, report.curve.negatives) == (3, 5)
    assert report.auc == pytest.approx(11 / 15)
    # Curve: (0, 1/3) at 1.0, (2/5, 1/3) at 0.8, (2/5, 1) at 0.6, (1, 1) at 0. FPR + TPR - 1
    # goes -4/15 → 2/5 between 0.8 and 0.6: t = 0.4, so EER 0.4 at score 0.72.
    assert (report.eer, report.eer_threshold) == pytest.approx((0.4, 0.72), abs=1e-6)
    point = report.at_target
    assert point.threshold == pytest.approx(1.0) and point.tpr == pytest.approx(1 / 3)
    assert report.sampling["available"] == {"positives": 3, "negatives": 5}


def write_pairs(path: Path) -> Path:
    labels, scores = random_case(3, 400, None)
    lines = ["actual,prediction"] + [
        f"{a},{float(p)!r}" for a, p in zip(labels, scores, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_analyze_roc_with_pairs_writes_json_plot_and_threshold(
    tmp_path: Path, colour_gallery, capsys
) -> None:
    pairs = write_pairs(tmp_path / "scores.csv")
    labels, scores = random_case(3, 400, None)
    folder = colour_gallery[2]
    args = ["analyze", "roc", "--pairs", str(pairs), "--target-fpr", "0.05"]
    args += ["--json", str(tmp_path / "roc.json"), "--out", str(tmp_path / "roc.png")]
    assert run(cli, [*args, "--index", str(folder), "--write-threshold"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "AUC" in out and "recorded in" in out
    report = json.loads((tmp_path / "roc.json").read_text())
    assert abs(report["auc"] - roc_auc_score(labels, scores)) < 1e-9
    assert report["target_fpr"] == 0.05
    image = cv2.imread(str(tmp_path / "roc.png"))
    assert image is not None and image.shape[1] > image.shape[0]
    with Gallery.open(folder) as gallery:
        recorded = gallery.manifest.threshold
    assert recorded is not None and recorded.value == report["threshold_at_target_fpr"]
    assert (recorded.target_fpr, recorded.auc) == (0.05, report["auc"])
    assert str(pairs) in recorded.source


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either --pairs CSV, or --engine"),
        (["--pairs", "{csv}", "--instance"], "--instance: only used with --engine"),
        (["--pairs", "{csv}", "--seed", "3"], "--seed: only used with --engine"),
        (["--pairs", "{csv}", "--index", "{csv}"], "--index (without --write-threshold)"),
        (["--pairs", "{csv}", "--write-threshold"], "add --index"),
        (["--engine", "{csv}"], "--engine needs --index"),
        (["--pairs", "{csv}", "--target-fpr", "2"], "--target-fpr"),
    ],
)
def test_analyze_roc_usage_errors_are_one_line(tmp_path: Path, capsys, args, message) -> None:
    pairs = write_pairs(tmp_path / "scores.csv")
    code = run(cli, ["analyze", "roc", *[a.format(csv=pairs) for a in args]])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE and message in err, err


def test_a_bad_csv_exits_3_naming_the_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("label,score\n1,0.5\n")
    assert run(cli, ["analyze", "roc", "--pairs", str(path)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: no 'actual'") and err.count("\n") == 1


def test_analyze_roc_runs_where_torch_cannot_be_imported(tmp_path: Path) -> None:
    blocker = (
        "import sys\n"
        "class Blocker:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchvision', 'timm', 'pytorch_grad_cam'):\n"
        "            raise ImportError(f'{name} is blocked in this test')\n"
        "sys.meta_path.insert(0, Blocker())\n"
        "from sketchsearch.cli.main import cli, run\n"
    )
    pairs = write_pairs(tmp_path / "scores.csv")
    for args in (
        ["analyze", "--help"],
        ["analyze", "gradcam", "--help"],
        ["analyze", "roc", "--pairs", str(pairs), "--out", str(tmp_path / "roc.png")],
    ):
        code = blocker + f"sys.exit(run(cli, {args!r}))\n"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, (args, done.stderr)
