"""examples/two_stage_cascade.ipynb executes top to bottom in smoke mode (ML-100K, one epoch,
tiny models) and prints what each step promises."""

from __future__ import annotations

import re

import pytest

from test_notebooks import EXAMPLES, _execute_smoke, _text_outputs

pytestmark = pytest.mark.slow

NOTEBOOK = EXAMPLES / "two_stage_cascade.ipynb"
K, SMOKE_COUNTS = 10, (20, 50)  # the notebook's smoke settings
# One recommended movie: rank, raw item id, title, probability, retrieval rank.
RECOMMENDATION = re.compile(r"^ *(\d+) +(\d+)  .+? +(0\.\d{4}) +(?:retrieval rank )?(\d+)$", re.MULTILINE)
TABLE_ROW = re.compile(r"^(retrieval alone|cascade, \d+ candidates) +(\d\.\d+) +(\d\.\d+) +(\d\.\d+)$", re.MULTILINE)


def _recommendations(text: str) -> list[tuple[int, str, float, int]]:
    return [(int(rank), item, float(probability), int(retrieval_rank))
            for rank, item, probability, retrieval_rank in RECOMMENDATION.findall(text)]


def test_cascade_notebook_runs_in_smoke_mode(shared_data_dir, tmp_path, monkeypatch):
    code = _execute_smoke(NOTEBOOK, shared_data_dir, tmp_path, monkeypatch)
    text = [_text_outputs(cell) for cell in code]
    assert "dataset ml-100k" in text[1]  # the smoke setting was picked up
    assert "943 users, 1,682 items" in text[2]

    # Both runs were trained and saved where the notebook said.
    assert "pass 1:" in text[3] and "pass 2:" not in text[3]
    assert "retrieval run saved to runs/sasrec-cascade: test hr@10=" in text[3]
    assert "same test items in both splits: True" in text[4]
    assert "ranking run saved to runs/din-cascade: test auc=" in text[4]
    for run in ("sasrec-cascade", "din-cascade"):
        assert (tmp_path / "runs" / run / "metrics.json").is_file()

    # One real user's list: k movies, best probability first, each with its retrieval rank.
    assert re.search(r"User 1 \(gender M, age 24, occupation technician\) rated \d+ movies", text[5])
    recommended = _recommendations(text[5])
    assert [rank for rank, *_ in recommended] == list(range(1, K + 1))
    probabilities = [probability for _, _, probability, _ in recommended]
    assert probabilities == sorted(probabilities, reverse=True)
    retrieval_ranks = [retrieval_rank for *_, retrieval_rank in recommended]
    assert len(set(retrieval_ranks)) == K and all(1 <= r <= SMOKE_COUNTS[-1] for r in retrieval_ranks)

    # The evaluation table: retrieval alone, then one row per candidate count.
    assert "test: 943 users, 1,682 movies" in text[6]
    assert all(column in text[6] for column in ("HR@10", "NDCG@10", "candidate recall"))
    rows = {name: tuple(map(float, values)) for name, *values in TABLE_ROW.findall(text[6])}
    assert list(rows) == ["retrieval alone", *(f"cascade, {count} candidates" for count in SMOKE_COUNTS)]
    recalls = [rows[f"cascade, {count} candidates"][2] for count in SMOKE_COUNTS]
    assert recalls == sorted(recalls) and rows["retrieval alone"][2] == recalls[-1]
    for count in SMOKE_COUNTS:  # candidate recall is the cascade's ceiling
        hr, _, recall = rows[f"cascade, {count} candidates"]
        assert hr <= recall

    # The export, and the served answer equals the Python cascade's.
    assert "serving_default" in text[7] and "retrieval_rank" in text[7]
    assert f"candidates={SMOKE_COUNTS[-1]}  k={K}" in text[7]
    assert (tmp_path / "serving" / "cascade" / "1" / "saved_model.pb").is_file()
    assert "served item ids equal the Python cascade's: True" in text[8]
    served = _recommendations(text[8])
    assert [(item, r) for _, item, _, r in served] == [(item, r) for _, item, _, r in recommended]
