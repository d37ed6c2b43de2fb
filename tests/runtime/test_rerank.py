"""Query-time re-ranking: against literal references written from the papers, on cases built
by hand, and through `retrieve` and `evaluate` on a tiny real model and gallery."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from colour_engine import ColourEngine, solid

from sketchsearch.data.errors import UsageError
from sketchsearch.runtime.rerank import (
    RERANK_METHODS,
    RerankConfig,
    rerank,
    rerank_config,
    rerank_scores,
)

# ---------------------------------------------------------------- literal references


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def aqe_reference(query: np.ndarray, shortlist: np.ndarray, n: int, alpha: float) -> list[float]:
    """Radenović et al.: q' = unit(q + Σ_{i ≤ n} max(s_i, 0)^α g_i); scores = cos(q', g)."""
    q = unit(query)
    items = [unit(g) for g in shortlist]
    s = [float(q @ g) for g in items]
    best = sorted(range(len(items)), key=lambda i: (-s[i], i))[:n]
    expanded = q.copy()
    for i in best:
        expanded = expanded + max(s[i], 0.0) ** alpha * items[i]
    expanded = unit(expanded)
    return [float(expanded @ g) for g in items]


def kreciprocal_reference(
    query: np.ndarray, shortlist: np.ndarray, k1: int, k2: int, lam: float
) -> list[float]:
    """Zhong et al., CVPR 2017, with sets and loops; point 0 is the query."""
    points = [unit(query)] + [unit(g) for g in shortlist]
    n = len(points)
    d = [[float(np.sum((a - b) ** 2)) for b in points] for a in points]
    d = [[x / max(row) for x in row] for row in d]  # each row by its largest, as the authors do
    ranking = [sorted(range(n), key=lambda j, i=i: (d[i][j], j)) for i in range(n)]

    def nearest(i: int, k: int) -> set[int]:  # N(i, k): the k + 1 nearest, i itself included
        return set(ranking[i][: k + 1])

    def reciprocal(i: int, k: int) -> set[int]:  # R(i, k) = {j ∈ N(i, k) | i ∈ N(j, k)}
        return {j for j in nearest(i, k) if i in nearest(j, k)}

    v = []
    for i in range(n):
        r = reciprocal(i, k1)
        expanded = set(r)
        for j in r:  # R*(i, k1) = R(i, k1) ∪ R(j, ½k1) when |R(i,k1) ∩ R(j,½k1)| > ⅔|R(j,½k1)|
            rj = reciprocal(j, round(k1 / 2))
            if 3 * len(r & rj) > 2 * len(rj):
                expanded |= rj
        weights = {j: math.exp(-d[i][j]) for j in expanded}
        total = sum(weights.values())
        v.append([weights.get(j, 0.0) / total for j in range(n)])
    if k2 > 1:  # local query expansion over the k2 nearest
        v = [[sum(v[m][j] for m in ranking[i][:k2]) / k2 for j in range(n)] for i in range(n)]
    final = []
    for j in range(1, n):
        common = sum(min(v[0][m], v[j][m]) for m in range(n))
        union = sum(max(v[0][m], v[j][m]) for m in range(n))
        final.append((1 - lam) * (1 - common / union) + lam * d[0][j])
    return final


def clustered(seed: int, queries: int, k: int, dim: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Queries and shortlists drawn around a few centres, so neighbourhoods have structure."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim))
    q = centres[rng.integers(0, 3, queries)] + 0.5 * rng.normal(size=(queries, dim))
    g = centres[rng.integers(0, 3, (queries, k))] + 0.5 * rng.normal(size=(queries, k, dim))
    return q, g


def at(*degrees: float) -> np.ndarray:
    """Unit vectors in a plane, at these angles."""
    radians = np.radians(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


# ---------------------------------------------------------------- against the references


@pytest.mark.parametrize(
    ("seed", "k", "n", "alpha"), [(0, 12, 3, 3.0), (1, 7, 1, 1.0), (2, 5, 9, 0.0)]
)
def test_aqe_scores_match_the_literal_reference(seed, k, n, alpha) -> None:
    q, g = clustered(seed, 4, k)
    result = rerank(RerankConfig(method="aqe", aqe_neighbours=n, aqe_alpha=alpha), q, g)
    expected = np.array([aqe_reference(q[b], g[b], n, alpha) for b in range(len(q))])
    np.testing.assert_allclose(result.scores, expected, atol=1e-10)
    np.testing.assert_allclose(  # the order follows the scores (distances, not labels, compared)
        np.take_along_axis(result.scores, result.order, axis=1), -np.sort(-expected, axis=1)
    )


@pytest.mark.parametrize(
    ("seed", "k", "k1", "k2", "lam"),
    [
        (0, 15, 5, 3, 0.3),
        (1, 12, 4, 1, 0.0),
        (2, 20, 7, 6, 0.3),
        (3, 9, 3, 2, 1.0),
        (4, 30, 10, 1, 0.5),
    ],
)
def test_kreciprocal_distances_match_the_literal_reference(seed, k, k1, k2, lam) -> None:
    q, g = clustered(seed, 3, k)
    config = RerankConfig(method="kreciprocal", k1=k1, k2=k2, lambda_value=lam)
    result = rerank(config, q, g)
    expected = np.array([kreciprocal_reference(q[b], g[b], k1, k2, lam) for b in range(len(q))])
    np.testing.assert_allclose(1.0 - result.scores, expected, atol=1e-10)
    np.testing.assert_allclose(
        1.0 - np.take_along_axis(result.scores, result.order, axis=1), np.sort(expected, axis=1)
    )


def test_a_batch_is_the_same_as_its_queries_one_by_one() -> None:
    q, g = clustered(7, 5, 10)
    for method in RERANK_METHODS:
        config = RerankConfig(method=method, k1=4, k2=3)
        together = rerank(config, q, g)
        for b in range(len(q)):
            alone = rerank(config, q[b : b + 1], g[b : b + 1])
            np.testing.assert_allclose(together.scores[b], alone.scores[0], atol=1e-12)
            assert together.order[b].tolist() == alone.order[0].tolist()


# ---------------------------------------------------------------- cases built by hand


def test_aqe_promotes_the_true_neighbour_ranked_second() -> None:
    # The query (0°) is nearest a lone look-alike (10°); its cluster A sits at -12°, -14°, -16°.
    query, shortlist = at(0)[0], at(10, -12, -14, -16)
    plain = rerank(RerankConfig(), query[None], shortlist[None])
    assert plain.order[0].tolist() == [0, 1, 2, 3]  # the look-alike first, A's best second
    expanded = rerank(RerankConfig(method="aqe", aqe_neighbours=3), query[None], shortlist[None])
    # Worked by hand: q' = unit(q + Σ cos^3 · g) over the top 3 points at -3.8°, so A's best
    # (8.2° away) overtakes the look-alike (13.8° away).
    assert expanded.order[0].tolist() == [1, 2, 3, 0]
    assert math.degrees(math.acos(expanded.scores[0, 1])) == pytest.approx(8.2, abs=0.1)


def test_kreciprocal_demotes_a_neighbour_that_does_not_return_the_favour() -> None:
    # x (-7°) is the query's nearest, but its own nearest are its tight cluster b1..b3; the
    # loose cluster a1..a3 counts the query among its nearest.
    names = ["x", "a1", "b1", "b2", "b3", "a2", "a3"]
    query, shortlist = at(0)[0], at(-7, 8, -10, -11, -12, 17, 26)
    plain = rerank(RerankConfig(), query[None], shortlist[None])
    assert names[plain.order[0, 0]] == "x"
    config = RerankConfig(method="kreciprocal", k1=3, k2=1)
    result = rerank(config, query[None], shortlist[None])
    ranked = [names[i] for i in result.order[0]]
    assert ranked[:3] == ["a1", "a2", "x"]  # the reciprocal neighbour first, x demoted
    expected = kreciprocal_reference(query, shortlist, 3, 1, 0.3)
    np.testing.assert_allclose(1.0 - result.scores[0], expected, atol=1e-10)


# ---------------------------------------------------------------- shortlists and edge cases


def test_items_outside_the_shortlist_keep_their_order_after_it() -> None:
    rng = np.random.default_rng(3)
    queries, gallery = rng.normal(size=(6, 5)), rng.normal(size=(30, 5))
    scores = queries @ gallery.T
    before = np.argsort(-scores, axis=1, kind="stable")
    for method in ("aqe", "kreciprocal"):
        config = RerankConfig(method=method, shortlist=8, k1=4, k2=2)
        after = np.argsort(-rerank_scores(config, queries, gallery, scores), axis=1, kind="stable")
        np.testing.assert_array_equal(after[:, 8:], before[:, 8:])
        np.testing.assert_array_equal(np.sort(after[:, :8]), np.sort(before[:, :8]))
        assert (after[:, :8] != before[:, :8]).any()  # it did re-rank something
        # The shortlist's new order is the re-ranking of the best 8.
        expected = rerank(config, queries, gallery[before[:, :8]])
        np.testing.assert_array_equal(
            after[:, :8], np.take_along_axis(before[:, :8], expected.order, axis=1)
        )
    none = rerank_scores(RerankConfig(), queries, gallery, scores)
    np.testing.assert_array_equal(np.argsort(-none, axis=1, kind="stable"), before)


def test_a_shortlist_of_one_and_k1_beyond_the_shortlist() -> None:
    q, g = clustered(4, 3, 1)
    for method in RERANK_METHODS:
        result = rerank(RerankConfig(method=method), q, g)
        assert result.order.tolist() == [[0], [0], [0]] and np.isfinite(result.scores).all()
    q, g = clustered(5, 2, 8)
    wide = rerank(RerankConfig(method="kreciprocal", k1=20, k2=6), q, g)  # k1 > K = 8
    expected = np.array([kreciprocal_reference(q[b], g[b], 8, 6, 0.3) for b in range(2)])
    np.testing.assert_allclose(1.0 - wide.scores, expected, atol=1e-10)  # clamped to k1 = K
    many = rerank(RerankConfig(method="aqe", aqe_neighbours=50), q, g)
    exact = np.array([aqe_reference(q[b], g[b], 8, 3.0) for b in range(2)])
    np.testing.assert_allclose(many.scores, exact, atol=1e-10)  # n > K: the whole shortlist
    empty = rerank(RerankConfig(method="kreciprocal"), q, g[:, :0])
    assert empty.order.shape == (2, 0)


def test_configuration_is_checked_with_one_line_errors() -> None:
    for bad, message in [
        ({"method": "qe"}, "use one of none, aqe, kreciprocal"),
        ({"shortlist": 0}, "shortlist=0"),
        ({"k1": True}, "k1=True"),
        ({"k2": 2.5}, "k2=2.5"),
        ({"aqe_alpha": -1.0}, "aqe_alpha"),
        ({"lambda_value": 1.5}, "lambda_value"),
    ]:
        with pytest.raises(UsageError, match=message) as caught:
            RerankConfig(**bad)
        assert "\n" not in str(caught.value) and caught.value.exit_code == 2
    with pytest.raises(UsageError, match="also pass --rerank"):
        rerank_config("none", 50)
    assert rerank_config("aqe", None) == RerankConfig(method="aqe", shortlist=100)
    assert RerankConfig(method="kreciprocal").to_dict() == {
        "method": "kreciprocal",
        "shortlist": 100,
        "k1": 20,
        "k2": 6,
        "lambda_value": 0.3,
    }
    from sketchsearch.cli.retrieve_command import RERANK_CHOICES

    assert RERANK_CHOICES == RERANK_METHODS  # the CLIs list them without importing numpy


# ---------------------------------------------------------------- through the runtime


def test_evaluate_with_aqe_fixes_a_ranking_worked_out_by_hand(tmp_path) -> None:
    """The colour engine embeds the mean RGB: the αQE case above, drawn in the red-green plane."""
    from sketchsearch.data.layouts import scan
    from sketchsearch.data.split_file import build_split_file, save_split
    from sketchsearch.data.split_spec import parse_split_spec
    from sketchsearch.data.splits import SplitConfig, make_split
    from sketchsearch.gallery.gallery import Gallery
    from sketchsearch.runtime.evaluation.evaluate import evaluate
    from sketchsearch.runtime.gallery_build import build_gallery, split_sources

    def colour(degrees: float) -> tuple[int, int, int]:
        radians = math.radians(45 + degrees)  # around 45°, so red and green stay positive
        return round(255 * math.cos(radians)), round(255 * math.sin(radians)), 0

    root = tmp_path / "data"
    solid(root / "sketch" / "a" / "q.png", colour(0))
    solid(root / "photo" / "d" / "look-alike.png", colour(10))
    for n, degrees in enumerate((-12, -14, -16)):
        solid(root / "photo" / "a" / f"a{n}.png", colour(degrees))
    collection = scan(root, "generic", domains=("sketch", "photo"))
    config = SplitConfig(fractions=(1.0, 0.0, 0.0), small_categories="train")
    split = save_split(
        build_split_file(collection, config, make_split(collection, config)), tmp_path / "s.json"
    )
    part = parse_split_spec(f"{split}:train", root)
    engine = ColourEngine()
    build_gallery(engine, tmp_path / "g", root, split_sources(part, "photo"))
    with Gallery.open(tmp_path / "g") as gallery:
        plain = evaluate(engine, gallery, part)
        expanded = evaluate(
            engine, gallery, part, reranking=RerankConfig(method="aqe", aqe_neighbours=3)
        )
        ids = gallery.export_vectors().ids
        np.testing.assert_array_equal(  # vectors fetched by id are the stored ones
            gallery.vectors(ids[::-1]), gallery.export_vectors().vectors[::-1]
        )
    for metrics in (plain.hnsw, plain.exact):
        assert metrics is not None and metrics["P@1"] == 0.0
        assert metrics["mAP@all"] == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3)
    for metrics in (expanded.hnsw, expanded.exact):
        assert metrics is not None and metrics["P@1"] == 1.0 and metrics["mAP@all"] == 1.0
    assert plain.to_dict()["rerank"] == {"method": "none"}
    assert expanded.to_dict()["rerank"]["method"] == "aqe" and "rerank" in expanded.seconds
    assert expanded.hnsw_recall_at_10 == plain.hnsw_recall_at_10 == 1.0


@pytest.fixture(scope="module")
def served(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model exported to ONNX, a gallery of its split's test photos, one query."""
    from sketchsearch.cli.main import cli, run
    from sketchsearch.data.split_spec import parse_split_spec
    from sketchsearch.export.pipeline import ExportOptions, export_onnx

    folder = tmp_path_factory.mktemp("rerank-served")
    (result,) = export_onnx(
        ExportOptions(checkpoint=tiny_run / "best.ckpt", output=folder / "model.onnx")
    )
    data, split = tiny_run.parent / "data", tiny_run.parent / "split.json"
    build = ["gallery", "build", "--engine", str(result.path), "--split", f"{split}:test"]
    build += ["--data", str(data), "--out", str(folder / "gallery"), "--quiet", "--no-default"]
    assert run(cli, build) == 0
    part = parse_split_spec(f"{split}:test", data)
    return {
        "model": result.path,
        "gallery": folder / "gallery",
        "data": data,
        "split": split,
        "query": part.path(part.items("sketch")[0]),
    }


def test_retrieve_rerank_aqe_end_to_end(served, capsys) -> None:
    from sketchsearch.cli.main import run
    from sketchsearch.cli.retrieve_command import retrieve
    from sketchsearch.gallery.gallery import Gallery
    from sketchsearch.runtime.engines.table import open_engine
    from sketchsearch.runtime.preprocess import preprocess_batch

    base = ["--engine", str(served["model"]), "--index", str(served["gallery"])]
    base += ["--query", str(served["query"]), "-k", "6", "--json"]  # the whole gallery

    def answer(*extra: str) -> dict:
        assert run(retrieve, [*base, *extra]) == 0
        return json.loads(capsys.readouterr().out)

    plain, reranked = answer(), answer("--rerank", "aqe", "--rerank-k", "3")
    assert set(reranked) == set(plain) and reranked["schema"] == "sketchsearch.retrieve/1"
    assert set(reranked["timings_ms"]) == {"decode", "embed", "search"}
    before, after = plain["results"], reranked["results"]
    assert [r["rank"] for r in after] == list(range(1, 7))
    assert after[3:] == before[3:]  # beyond the shortlist: untouched
    assert sorted(r["id"] for r in after[:3]) == sorted(r["id"] for r in before[:3])
    score = {r["id"]: r["score"] for r in before}
    assert all(r["score"] == score[r["id"]] for r in after)  # the original cosine is reported
    # The order is αQE's over the shortlist's stored vectors.
    engine = open_engine(served["model"], threads=1)
    query = engine.embed(preprocess_batch([served["query"]], engine.card.preprocess))
    shortlist = np.array([r["id"] for r in before[:3]])
    with Gallery.open(served["gallery"]) as gallery:
        vectors = gallery.vectors(shortlist)
    order = rerank(RerankConfig(method="aqe"), query, vectors[None]).order[0]
    assert [r["id"] for r in after[:3]] == shortlist[order].tolist()
    # --rerank-k alone is refused, in one line, before anything runs
    assert run(retrieve, [*base, "--rerank-k", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--rerank aqe" in err and len(err.splitlines()) == 1


def test_evaluate_rerank_kreciprocal_end_to_end(served, capsys, tmp_path) -> None:
    from sketchsearch.cli.main import cli, run

    base = ["evaluate", "--engine", str(served["model"]), "--index", str(served["gallery"])]
    base += ["--split", f"{served['split']}:test", "--data", str(served["data"])]
    assert run(cli, [*base, "--json", str(tmp_path / "plain.json")]) == 0
    out = capsys.readouterr().out
    assert "re-ranked" not in out
    args = [*base, "--rerank", "kreciprocal", "--rerank-k", "3", "--json", str(tmp_path / "r.json")]
    assert run(cli, args) == 0
    out = capsys.readouterr().out
    assert "re-ranked by kreciprocal (top 3, k1=20, k2=6, λ=0.3)" in out.splitlines()[0]
    plain = json.loads((tmp_path / "plain.json").read_text())
    reranked = json.loads((tmp_path / "r.json").read_text())
    assert plain["rerank"] == {"method": "none"}
    assert reranked["rerank"] == {
        "method": "kreciprocal",
        "shortlist": 3,
        "k1": 20,
        "k2": 6,
        "lambda_value": 0.3,
    }
    assert reranked["hnsw_recall@10"] == plain["hnsw_recall@10"]  # the index, not the ranking
    # Only the best 3 move: precision beyond them cannot change.
    assert reranked["exact"]["P@200"] == plain["exact"]["P@200"]
    assert 0.0 < reranked["exact"]["mAP@all"] <= 1.0
    assert run(cli, [*base, "--rerank-k", "3"]) == 2
    assert "also pass --rerank" in capsys.readouterr().err
