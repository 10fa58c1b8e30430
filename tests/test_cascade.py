"""The Python cascade's evaluation: its ranks are those of the cascade's own lists, and its
retrieval-alone numbers are the retrieval task's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.cascade import Cascade, cascade_ranks, evaluate_cascade, left_padded, retrieval_negative_pools
from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.ranking_examples import build_ranking_data
from tf_attnrec.data.splits import leave_one_out_split
from tf_attnrec.data.vocabulary import Vocabulary
from tf_attnrec.evaluation.ranking import ranking_metrics
from tf_attnrec.models.registry import create_model
from tf_attnrec.tasks.retrieval import evaluate_sequential

ITEMS = np.arange(100, 140)


def dataset() -> Dataset:
    rng = np.random.default_rng(5)
    rows = [(user, int(item), t) for user in range(1, 41)
            for t, item in enumerate(rng.choice(ITEMS, size=int(rng.integers(5, 12)), replace=False))]
    items = pd.DataFrame({"item_id": ITEMS, "title": [f"m{i}" for i in ITEMS],
                          "genres": [("Drama",) if i % 3 else ("Comedy",) for i in ITEMS],
                          "year": pd.array(1980 + ITEMS % 9, dtype="Int64")})
    users = pd.DataFrame({"user_id": np.arange(1, 41), "gender": rng.choice(["F", "M"], 40),
                          "age": rng.choice([18, 25, 35], 40), "occupation": rng.integers(0, 4, 40)})
    return Dataset(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), items, users,
                   name="tiny", source="memory")


@pytest.fixture(scope="module")
def setup():
    data = dataset()
    split = leave_one_out_split(data.interactions)
    ranking = build_ranking_data(data, max_length=4, train_positions_per_user=2)
    tf.keras.utils.set_random_seed(1)
    sasrec = create_model("sasrec", vocab_size=split.vocabulary.size, hidden_dim=8, max_length=6, num_blocks=1)
    sasrec.score(tf.zeros([1, 6], tf.int32))
    din = create_model("din", vocab_size=ranking.vocabularies.item.size, feature_sizes=ranking.vocabularies.sizes(),
                       max_length=4, embedding_dim=8, hidden_units=(8,), attention_units=(4,))
    din.build_variables()
    cascade = Cascade(sasrec, split.vocabulary, din, ranking.vocabularies, ranking.item_genres, ranking.item_year,
                      rows_per_call=100)  # several predict calls per batch
    return cascade, split, data.users


def test_cascade_ranks_count_better_probabilities_and_earlier_ties():
    probabilities = np.array([[0.5, 0.9, 0.5], [0.5, 0.9, 0.5], [0.1, 0.2, 0.3]])
    np.testing.assert_array_equal(cascade_ranks(probabilities, np.array([2, 0, -1])), [3, 2, 0])


def test_evaluation_ranks_are_the_places_in_the_cascades_lists(setup):
    cascade, split, users = setup
    counts = (10, 20, cascade.retrieval_vocabulary.num_items)
    results = evaluate_cascade(cascade, split, users, candidate_counts=counts, ks=(5, 10), batch_size=7)
    inputs = split.test_inputs()
    user_features = cascade.vocabularies.user_table(users, split.users[inputs.user_indices])
    history = left_padded([cascade.to_ranker[h] for h in inputs.histories], 4)
    scores = cascade.retrieval_scores(inputs.histories)
    for count in counts:
        lists = cascade.rank(scores, user_features, history, candidates=count, k=count).items
        hit = lists == inputs.targets[:, None]
        ranks = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 10**6)
        expected = ranking_metrics(ranks, ks=(5, 10))
        for key in ("hr@5", "ndcg@5", "hr@10", "ndcg@10"):
            assert results[f"cascade@{count}"][key] == pytest.approx(expected[key], abs=1e-12), (count, key)
        assert results[f"cascade@{count}"]["candidate_recall"] == pytest.approx(hit.any(axis=1).mean())
    assert results[f"cascade@{counts[-1]}"]["candidate_recall"] == 1.0  # every unseen item is a candidate
    assert results["retrieval"]["users"] == len(inputs.targets) == 40


def test_retrieval_alone_is_the_retrieval_tasks_evaluation(setup):
    cascade, split, users = setup
    results = evaluate_cascade(cascade, split, users, candidate_counts=(15,))
    reference = evaluate_sequential(cascade.retrieval_model, split, "test")
    assert results["retrieval"]["hr@10"] == pytest.approx(reference["hr@10"], abs=1e-12)
    assert results["retrieval"]["ndcg@10"] == pytest.approx(reference["ndcg@10"], abs=1e-9)


def test_cut_offs_above_the_smallest_count_are_refused(setup):
    cascade, split, users = setup
    with pytest.raises(ValueError, match="smallest count"):
        evaluate_cascade(cascade, split, users, candidate_counts=(5, 50), ks=(10,))


def test_the_benchmark_times_each_export_and_prints_one_row_per_stage(setup, tmp_path):
    from tests.conftest import load_benchmark

    benchmark = load_benchmark("cascade_table")
    cascade, split, users = setup
    counts = benchmark.parse_counts(["12", "all", "20"], cascade.retrieval_vocabulary.num_items)
    assert counts == [12, 20, 40]
    quality = evaluate_cascade(cascade, split, users, candidate_counts=counts)
    batches = {size: benchmark.requests(split, users, size, 4, seed=size) for size in benchmark.BATCH_SIZES}
    assert len(batches[64]) == 4 and len(batches[64][0]["history"]) == 64  # 40 users, drawn with replacement
    latency = benchmark.latency_table(cascade, counts[:2], batches, 10, tmp_path)
    assert [(row["stage"], row["candidates"]) for row in latency] == [
        ("retrieval", 0), ("retrieval", 0), ("cascade", 12), ("cascade", 12), ("cascade", 20), ("cascade", 20)]
    assert all(0 < row["p50_ms"] <= row["p99_ms"] for row in latency)
    table = benchmark.markdown(quality, latency).splitlines()
    assert len(table) == 2 + 4 and table[2].startswith("| retrieval alone |") and table[-1].startswith("| cascade | 40 |")


# ------------------------------------------------------------------ hard negatives for a ranker
def test_pools_are_retrievals_best_items_the_user_never_had(setup):
    cascade, split, _ = setup
    model = cascade.retrieval_model
    pools = retrieval_negative_pools(model, split, candidates=5, batch_size=7)
    full = split.full_sequences()
    assert len(pools) == split.num_users
    for row in (0, 5, 17, 39):
        scores = model.score(tf.constant(left_padded([split.train[row]], 6))).numpy()[0].astype(np.float64)
        scores[:2] = -np.inf
        scores[full[row]] = -np.inf
        assert pools[row].tolist() == np.argsort(-scores, kind="stable")[:5].tolist()
        assert not set(pools[row].tolist()) & set(full[row].tolist())


def test_hard_negatives_come_from_the_pools_and_leave_evaluation_unchanged(setup):
    cascade, split, _ = setup
    pools = retrieval_negative_pools(cascade.retrieval_model, split, candidates=6)
    options = dict(max_length=4, train_positions_per_user=2, num_negatives=4)
    plain = build_ranking_data(dataset(), **options)
    hard = build_ranking_data(dataset(), **options, negative_pools=pools, hard_negative_share=0.5)
    for stage in ("validation", "test"):  # the same evaluation sets as rankers trained on uniform negatives
        for field in ("user_row", "history_end", "candidate", "label"):
            np.testing.assert_array_equal(getattr(hard.examples[stage], field), getattr(plain.examples[stage], field))
    groups = hard.examples["train"].candidate.reshape(-1, 5)
    users = hard.examples["train"].user_row.reshape(-1, 5)[:, 0]
    full = split.full_sequences()
    for group, user in zip(groups, users):
        assert set(group[1:3].tolist()) <= set(pools[user].tolist())  # round(4 * 0.5) hard ones first
        assert not set(group[1:].tolist()) & set(full[user].tolist())
    # The uniform draws are the ones a build without pools makes.
    np.testing.assert_array_equal(groups[:, 3:], plain.examples["train"].candidate.reshape(-1, 5)[:, 3:])
    assert (groups[:, 1:3] != plain.examples["train"].candidate.reshape(-1, 5)[:, 1:3]).any()
    none = build_ranking_data(dataset(), **options, negative_pools=pools, hard_negative_share=0.0)
    np.testing.assert_array_equal(none.examples["train"].candidate, plain.examples["train"].candidate)
    with pytest.raises(ValueError, match="one pool per user"):
        build_ranking_data(dataset(), **options, negative_pools=pools[:3])


def test_a_ranking_config_names_the_retrieval_run_of_its_hard_negatives(setup, tmp_path):
    from tf_attnrec.runs import save_model
    from tf_attnrec.tasks import get_task

    cascade, split, _ = setup
    save_model(cascade.retrieval_model, tmp_path / "sasrec", split.vocabulary)
    task = get_task("ranking")
    options = {"train_positions_per_user": 2, "hard_negatives_from": str(tmp_path / "sasrec"),
               "hard_negative_candidates": 6, "hard_negative_share": 1.0}
    data = task.build_data(dataset(), {"max_length": 4}, options)
    pools = retrieval_negative_pools(cascade.retrieval_model, split, candidates=6)
    groups = data.examples["train"].candidate.reshape(-1, 5)
    users = data.examples["train"].user_row.reshape(-1, 5)[:, 0]
    assert all(set(group[1:].tolist()) <= set(pools[user].tolist()) for group, user in zip(groups, users))
    other = create_model("sasrec", vocab_size=12, hidden_dim=8, max_length=6, num_blocks=1)
    other.score(tf.zeros([1, 6], tf.int32))
    save_model(other, tmp_path / "other", Vocabulary.from_ids(range(10)))
    with pytest.raises(ValueError, match="hard_negatives_from: .*other is not a retrieval run of this data"):
        task.build_data(dataset(), {"max_length": 4}, {**options, "hard_negatives_from": str(tmp_path / "other")})
