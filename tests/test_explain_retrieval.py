"""`explain` for retrieval models: the query's attention weights and `explain_history`.

Tiny untrained models built directly (no run folder, no dataset download): the weights must
be the ones the encoder really uses for its query, and `explain_history` must rank the
user's unseen items with `model.score`.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec import explain
from tf_attnrec.data.splits import leave_one_out_split
from tf_attnrec.models.attention_pooling import AttentionPoolingEncoder
from tf_attnrec.models.lstm_attention import RecurrentAttentionSequenceEncoder
from tf_attnrec.models.mean_pooling import MeanPoolingEncoder
from tf_attnrec.models.sasrec import SASRecEncoder
from tf_attnrec.models.sequential_retrieval import SequentialRetrievalModel

pytestmark = [pytest.mark.xdist_group(__name__)]  # one worker builds the module's fixtures

MAX_LENGTH = 6
VOCAB_SIZE = 20
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

ENCODERS = {
    "sasrec": (SASRecEncoder, {"hidden_dim": 8, "num_heads": 2, "num_blocks": 2}),
    "lstm_attention": (RecurrentAttentionSequenceEncoder, {"embedding_dim": 8, "units": 8}),
    "lstm_attention_gru": (RecurrentAttentionSequenceEncoder, {"embedding_dim": 8, "units": 8, "cell": "gru"}),
    "attention_pooling": (AttentionPoolingEncoder, {"embedding_dim": 8}),
}

# Left-padded histories: partly padded, full, a single item, fully padded.
HISTORIES = np.array(
    [
        [0, 0, 3, 4, 5, 6],
        [2, 7, 3, 9, 11, 4],
        [0, 0, 0, 0, 0, 8],
        [0, 0, 0, 0, 0, 0],
    ],
    np.int32,
)


def build(name: str, vocab_size: int = VOCAB_SIZE, max_length: int = MAX_LENGTH) -> SequentialRetrievalModel:
    encoder_class, config = ENCODERS[name]
    tf.keras.utils.set_random_seed(7)
    model = SequentialRetrievalModel.with_encoder(
        encoder_class, vocab_size=vocab_size, name=name.replace("_gru", ""), max_length=max_length, **config
    )
    model.build_variables()
    return model


@pytest.fixture(scope="module", params=sorted(ENCODERS))
def model(request) -> SequentialRetrievalModel:
    return build(request.param)


# --------------------------------------------------------------------------------- weights
def test_weights_are_a_softmax_over_the_real_items(model):
    weights = model.attention_weights(tf.constant(HISTORIES)).numpy()
    assert weights.shape == HISTORIES.shape and weights.dtype == np.float32
    assert np.all(np.isfinite(weights)) and np.all(weights >= 0)
    real = HISTORIES > 0
    assert np.all(weights[~real] == 0.0)
    np.testing.assert_allclose(weights[:3].sum(axis=1), 1.0, atol=1e-5)
    assert np.all(weights[3] == 0.0)  # fully padded: zeros, not NaN, not uniform
    assert weights[2, -1] == pytest.approx(1.0, abs=1e-6)  # one item takes all the weight
    # Untrained but not degenerate: the weights differ between positions.
    assert np.ptp(weights[1]) > 1e-4


def test_per_head_weights(model):
    per_head = model.attention_weights(tf.constant(HISTORIES), per_head=True).numpy()
    heads = getattr(model.encoder, "num_heads", 1)
    assert per_head.shape == (len(HISTORIES), heads, MAX_LENGTH)
    np.testing.assert_allclose(per_head[:3].sum(axis=-1), 1.0, atol=1e-5)  # every head is a softmax
    assert np.all(per_head[3] == 0.0)
    mean = model.attention_weights(tf.constant(HISTORIES)).numpy()
    np.testing.assert_allclose(per_head.mean(axis=1), mean, atol=1e-6)
    if heads > 1:
        assert np.abs(per_head[1, 0] - per_head[1, 1]).max() > 1e-4  # the heads really differ


def test_weights_do_not_depend_on_left_padding_or_dropout(model):
    short = tf.constant([[3, 4, 5, 6], [0, 9, 11, 4]])
    padded = tf.pad(short, [[0, 0], [2, 0]])
    w_short = model.attention_weights(short).numpy()
    w_padded = model.attention_weights(padded).numpy()
    np.testing.assert_allclose(w_padded[:, 2:], w_short, atol=1e-6)
    assert np.all(w_padded[:, :2] == 0.0)
    # Inference mode even though the encoders have dropout: deterministic.
    np.testing.assert_array_equal(model.attention_weights(padded).numpy(), w_padded)


def test_items_older_than_max_length_get_zero_weight(model):
    long = np.array([[5, 13, 2, 7, 3, 9, 11, 4]], np.int32)  # 8 items, the encoder reads 6
    weights = model.attention_weights(tf.constant(long)).numpy()
    assert weights.shape == (1, 8)
    assert np.all(weights[0, :2] == 0.0)
    np.testing.assert_allclose(weights[:, 2:], model.attention_weights(tf.constant(long[:, 2:])).numpy(), atol=1e-6)


def test_model_accepts_a_feature_dict_and_delegates_to_the_encoder(model):
    history = tf.constant(HISTORIES)
    np.testing.assert_array_equal(
        model.attention_weights({"history": history}).numpy(), model.encoder.attention_weights(history).numpy()
    )


def _real_rows(history: np.ndarray) -> np.ndarray:
    return history[:, -1] > 0


def test_attention_pooling_weights_rebuild_the_query():
    model = build("attention_pooling")
    encoder = model.encoder
    history = tf.constant(HISTORIES)
    weights = model.attention_weights(history)
    x = encoder.embedding(history, training=False)
    x = x * tf.cast(history > 0, x.dtype)[:, :, None]
    pooled = tf.einsum("bt,btd->bd", weights, x)
    rebuilt = encoder.output_projection(tf.concat([pooled, x[:, -1]], axis=-1)).numpy()
    query = model(history, training=False).numpy()
    rows = _real_rows(HISTORIES)
    np.testing.assert_allclose(rebuilt[rows], query[rows], atol=1e-5)
    # The check can fail: uniform weights over the real items give another query.
    uniform = tf.cast(history > 0, tf.float32) / tf.maximum(tf.reduce_sum(tf.cast(history > 0, tf.float32), 1, keepdims=True), 1.0)
    wrong = encoder.output_projection(tf.concat([tf.einsum("bt,btd->bd", uniform, x), x[:, -1]], -1)).numpy()
    assert np.abs(wrong[:2] - query[:2]).max() > 1e-4


@pytest.mark.parametrize("name", ["lstm_attention", "lstm_attention_gru"])
def test_lstm_attention_weights_rebuild_the_query(name):
    model = build(name)
    encoder = model.encoder
    history = tf.constant(HISTORIES)
    weights = model.attention_weights(history)
    mask = history > 0
    x = encoder.embedding(history, training=False)
    outputs = encoder.recurrent.rnn(x, mask=mask, training=False)
    states, final = outputs[0], outputs[1]
    local = tf.einsum("bt,btd->bd", weights, states)
    rebuilt = encoder.output_projection(tf.concat([final, local], axis=-1)).numpy()
    query = model(history, training=False).numpy()
    rows = _real_rows(HISTORIES)
    np.testing.assert_allclose(rebuilt[rows], query[rows], atol=1e-5)
    shifted = tf.einsum("bt,btd->bd", tf.roll(weights, 1, axis=1), states)  # weights on the wrong states
    wrong = encoder.output_projection(tf.concat([final, shifted], axis=-1)).numpy()
    assert np.abs(wrong[:2] - query[:2]).max() > 1e-5


def test_sasrec_weights_rebuild_the_last_position_and_match_the_layer():
    model = build("sasrec")
    encoder = model.encoder
    history = tf.constant(HISTORIES)
    per_head = model.attention_weights(history, per_head=True)  # [B, H, L]
    mask = history > 0
    x = encoder.embedding(history, training=False)
    for block in encoder.blocks[:-1]:
        x = block(x, mask=mask, training=False)
    last = encoder.blocks[-1]
    normed = last.attention_norm(x)
    # The MultiHeadAttention layer's own scores on the same inputs.
    _, scores = last.attention(normed, normed, query_mask=mask, value_mask=mask, training=False,
                               return_attention_scores=True)
    np.testing.assert_allclose(per_head.numpy(), scores.numpy()[:, :, -1, :], atol=1e-6)
    # The last position's output of the last block, from these weights only.
    values = last.attention._value_dense(normed)  # [B, L, H, d]
    context = tf.einsum("bhl,blhd->bhd", per_head, values)[:, tf.newaxis]  # [B, 1, H, d]
    h = x[:, -1:] + last.attention._output_dense(context)
    y = h + last._feed_forward(last.feed_forward_norm(h), training=False)
    rebuilt = encoder.final_norm(y)[:, 0].numpy()
    query = model(history, training=False).numpy()
    rows = _real_rows(HISTORIES)
    np.testing.assert_allclose(rebuilt[rows], query[rows], atol=1e-5)
    reversed_heads = tf.reverse(per_head, axis=[1])  # head 2's weights used for head 1
    h_wrong = x[:, -1:] + last.attention._output_dense(tf.einsum("bhl,blhd->bhd", reversed_heads, values)[:, None])
    wrong = encoder.final_norm(h_wrong + last._feed_forward(last.feed_forward_norm(h_wrong), training=False))[:, 0]
    assert np.abs(wrong.numpy()[:2] - query[:2]).max() > 1e-5


def test_sasrec_block_weights_are_each_blocks_query_attention():
    model = build("sasrec")
    encoder = model.encoder
    history = tf.constant(HISTORIES)
    blocks = encoder.block_attention_weights(history).numpy()  # [B, blocks, heads, L]
    assert blocks.shape == (len(HISTORIES), 2, 2, MAX_LENGTH)
    np.testing.assert_allclose(blocks[:, -1], model.attention_weights(history, per_head=True).numpy(), atol=1e-6)
    mask = HISTORIES > 0
    x = encoder.embedding(history, training=False)
    normed = encoder.blocks[0].attention_norm(x)
    _, scores = encoder.blocks[0].attention(normed, normed, query_mask=mask, value_mask=mask, training=False,
                                            return_attention_scores=True)
    rows = _real_rows(HISTORIES)
    np.testing.assert_allclose(blocks[rows, 0], scores.numpy()[rows, :, -1, :], atol=1e-6)  # block 1's own scores
    assert not np.allclose(blocks[rows, 0], blocks[rows, 1], atol=1e-4)
    np.testing.assert_allclose(blocks[rows].sum(axis=-1), 1.0, atol=1e-5)  # a distribution per block and head
    assert (blocks[~mask[:, None, None, :].repeat(2, 1).repeat(2, 2)] == 0).all()  # padding gets 0
    assert np.isfinite(blocks).all() and (blocks[~rows] == 0).all()  # a fully padded row: zeros, no NaN
    # A longer input than the model reads: the oldest positions get weight 0.
    longer = encoder.block_attention_weights(tf.constant([[5, 2, 7, 3, 9, 11, 4]])).numpy()
    np.testing.assert_allclose(longer[0, :, :, 1:], blocks[1], atol=1e-6)
    assert (longer[0, :, :, 0] == 0).all()


def test_encoder_without_attention_is_rejected():
    model = SequentialRetrievalModel.with_encoder(MeanPoolingEncoder, vocab_size=VOCAB_SIZE, name="mean_pooling",
                                                  max_length=MAX_LENGTH, embedding_dim=8)
    with pytest.raises(ValueError, match="mean_pooling.*MeanPoolingEncoder.*no attention"):
        model.attention_weights(tf.constant(HISTORIES))
    assert not explain.supports_explain(model)
    with pytest.raises(ValueError, match="the mean_pooling model has no attention.*sasrec"):
        explain.check_explainable(model)


def test_explainable_models_come_from_the_registry():
    import tf_attnrec.models.din  # noqa: F401  (registers din)

    names = explain.explainable_models()
    assert {"sasrec", "lstm_attention", "attention_pooling", "din"} <= set(names)
    assert "mean_pooling" not in names and names == sorted(names)


# ------------------------------------------------------------------------- explain_history
def _interactions() -> pd.DataFrame:
    """Users 1-4 with distinct raw item ids 101..; rows deliberately out of time order."""
    sequences = {
        1: [101, 102, 103, 104, 105],
        2: [106, 107, 101, 108, 109, 110, 111, 112, 113, 102],  # 9 items before the test item
        3: [103, 114, 115, 104],
        4: [105, 106, 107, 108, 114, 109],
    }
    rows = [(user, item, 1000 * user + t) for user, items in sequences.items() for t, item in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True), sequences


@pytest.fixture(scope="module")
def data():
    frame, sequences = _interactions()
    return leave_one_out_split(frame), sequences


@pytest.fixture(scope="module", params=["sasrec", "attention_pooling", "lstm_attention"])
def retrieval(request, data):
    split, _ = data
    return build(request.param, vocab_size=split.vocabulary.size)


def _scores(model, split, history_raw):
    index = split.vocabulary.lookup(history_raw)[-MAX_LENGTH:].astype(np.int32)
    padded = np.zeros(MAX_LENGTH, np.int32)
    padded[MAX_LENGTH - len(index):] = index
    return model.score(tf.constant(padded[None])).numpy()[0], padded


def test_top_recommendation(retrieval, data):
    split, sequences = data
    e = explain.explain_history(retrieval, split.vocabulary, split, user=2)
    before_test = sequences[2][:-1]
    assert e["history"] == before_test[-MAX_LENGTH:]  # the test item (102) is not in the history
    assert 102 not in e["history"] and e["sequence_length"] == 9
    scores, padded = _scores(retrieval, split, before_test)
    unseen = [i for i in range(2, split.vocabulary.size) if split.vocabulary.raw_ids([i])[0] not in before_test]
    best = max(unseen, key=lambda i: scores[i])
    assert e["recommended"] and e["item_index"] == best and e["item"] == split.vocabulary.raw_ids([best])[0]
    assert e["rank"] == 1 and e["num_candidates"] == len(unseen)
    assert e["score"] == pytest.approx(float(scores[best]), abs=1e-5)
    assert e["item"] not in before_test and not e["candidate_in_history"]
    weights = retrieval.attention_weights(tf.constant(padded[None])).numpy()[0]
    np.testing.assert_allclose(e["weights"], weights[padded > 0], atol=1e-6)
    np.testing.assert_allclose(e["position_weights"], weights, atol=1e-6)
    assert len(e["weights"]) == len(e["history"]) == MAX_LENGTH
    assert e["weights"].sum() == pytest.approx(1.0, abs=1e-5)
    assert e["model"] == retrieval.name and e["task"] == "retrieval"
    assert e["weight_kind"] == retrieval.encoder.attention_description
    if retrieval.name == "sasrec":
        assert e["weight_kind"] == "query (last position) softmax attention, last block"
        assert e["head_weights"].shape == (2, MAX_LENGTH)
        assert e["block_weights"].shape == (2, 2, MAX_LENGTH)  # blocks, heads, the shown history
        np.testing.assert_allclose(e["block_weights"][-1], e["head_weights"], atol=1e-6)
    else:
        assert e["head_weights"] is None and e["block_weights"] is None


def test_given_item_rank_and_score(retrieval, data):
    split, sequences = data
    e = explain.explain_history(retrieval, split.vocabulary, split, user="1", item="105")  # strings, as typed
    assert e["user"] == 1 and e["item"] == 105 and e["is_test_item"] and not e["recommended"]
    assert e["history"] == [101, 102, 103, 104]
    scores, _ = _scores(retrieval, split, [101, 102, 103, 104])
    unseen = [i for i in range(2, split.vocabulary.size) if split.vocabulary.raw_ids([i])[0] not in (101, 102, 103, 104)]
    order = sorted(unseen, key=lambda i: -scores[i])
    target = int(split.vocabulary.lookup(105))
    assert e["score"] == pytest.approx(float(scores[target]), abs=1e-5)
    ties_or_better = sum(scores[i] >= scores[target] for i in unseen if i != target)
    assert e["rank"] == 1 + ties_or_better == order.index(target) + 1
    assert e["num_candidates"] == len(unseen)


def test_item_from_the_history(retrieval, data):
    split, _ = data
    e = explain.explain_history(retrieval, split.vocabulary, split, user=3, item=114)
    assert e["history"] == [103, 114, 115]
    assert e["candidate_in_history"] and e["candidate_recency"] == 2 and not e["is_test_item"]
    assert 1 <= e["rank"] <= e["num_candidates"]


def test_errors(data):
    split, _ = data
    model = build("sasrec", vocab_size=split.vocabulary.size)
    with pytest.raises(LookupError, match="user 99"):
        explain.explain_history(model, split.vocabulary, split, user=99)
    with pytest.raises(LookupError, match="item 999"):
        explain.explain_history(model, split.vocabulary, split, user=1, item=999)
    mean = SequentialRetrievalModel.with_encoder(MeanPoolingEncoder, vocab_size=split.vocabulary.size,
                                                 name="mean_pooling", max_length=MAX_LENGTH, embedding_dim=8)
    with pytest.raises(ValueError, match="mean_pooling model has no attention"):
        explain.explain_history(mean, split.vocabulary, split, user=1)
    with pytest.raises(ValueError, match="retrieval model: explain it with explain_history"):
        explain.explain_example(model, None, {}, None, 1, 105)


# ----------------------------------------------------------------------------- text, plot
def test_format_explanation_prints_score_and_rank(data):
    split, _ = data
    model = build("sasrec", vocab_size=split.vocabulary.size)
    e = explain.explain_history(model, split.vocabulary, split, user=1, item=105)
    text = explain.format_explanation(e, {"105": {"title": "Heat", "year": 1995}}, top=3)
    assert f"score {e['score']:.4f}, rank {e['rank']:,} of {e['num_candidates']:,} unseen items" in text
    assert "probability" not in text and "Heat (1995)" in text and "held-out test item" in text
    assert "query (last position) softmax attention, last block" in text
    table = text.splitlines()[-3:]
    best = int(np.argmax(e["weights"]))
    assert table[0].split()[:3] == ["1", str(len(e["history"]) - best), str(e["history"][best])]
    assert len(table[0].split()) >= 4 + 2  # weight, then one column per head
    top = explain.explain_history(model, split.vocabulary, split, user=1)
    assert "(the model's top recommendation)" in explain.format_explanation(top)


def test_format_explanation_still_prints_a_ranking_probability():
    ranking = {
        "model": "din", "user": 1, "item": 50, "probability": 0.25, "logit": -1.0986, "history": [3, 4],
        "weights": np.array([0.7, 0.3]), "head_weights": None, "sequence_length": 2,
        "candidate_in_history": False, "candidate_recency": None, "is_test_item": False,
        "weight_kind": "target attention, unnormalised activation-unit score",
    }
    text = explain.format_explanation(ranking)
    assert "click probability 0.2500 (logit -1.099)" in text and "score" not in text.splitlines()[1]


@pytest.mark.parametrize("name", ["sasrec", "lstm_attention"])
def test_plot_attention_writes_a_png(name, data, tmp_path):
    pytest.importorskip("matplotlib")
    split, _ = data
    model = build(name, vocab_size=split.vocabulary.size)
    e = explain.explain_history(model, split.vocabulary, split, user=2)
    path = explain.plot_attention(e, tmp_path / "plots" / f"{name}.png", titles={"101": "Toy Story"})
    assert path.exists() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000
    saved = json.loads(explain.write_explanation_json(e, tmp_path / "plots" / f"{name}.json").read_text())
    assert saved["history"] == e["history"] and "features" not in saved
    np.testing.assert_allclose(saved["weights"], e["weights"], rtol=1e-12)
    assert (saved["block_weights"] is None) == (name != "sasrec")


# ------------------------------------------------------------------------------------ nais
def _nais(vocab_size: int) -> "tf.keras.Model":
    from tf_attnrec.models.item_similarity import NAIS

    tf.keras.utils.set_random_seed(7)
    model = NAIS(vocab_size, embedding_dim=8, attention_dim=4, max_length=MAX_LENGTH, beta=0.5, name="nais")
    rng = np.random.default_rng(0)  # weights away from the near-zero initialisation, so attention varies
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def test_nais_explains_the_attention_for_the_explained_item(data, tmp_path):
    split, sequences = data
    model = _nais(split.vocabulary.size)
    assert "nais" in explain.explainable_models() and "fism" not in explain.explainable_models()
    e = explain.explain_history(model, split.vocabulary, split, user=2)
    scores, padded = _scores(model, split, sequences[2][:-1])
    assert e["recommended"] and e["rank"] == 1 and e["score"] == pytest.approx(float(scores[e["item_index"]]), abs=1e-5)
    # The weights are those of the recommended item, and differ for another item.
    own = model.attention_weights(tf.constant(padded[None]), candidates=[e["item_index"]]).numpy()[0]
    np.testing.assert_allclose(e["position_weights"], own, atol=1e-6)
    other = explain.explain_history(model, split.vocabulary, split, user=2, item=102)
    assert not np.allclose(other["weights"], e["weights"])
    assert e["head_weights"] is None and e["weight_kind"].startswith("NAIS prod attention")
    assert len(e["weights"]) == len(e["history"]) and (e["weights"] > 0).all()
    text = explain.format_explanation(e)
    assert "NAIS prod attention" in text
    pytest.importorskip("matplotlib")
    assert explain.plot_attention(e, tmp_path / "nais.png").read_bytes()[:8] == PNG_MAGIC


def test_fism_has_no_attention_to_explain(data):
    from tf_attnrec.models.item_similarity import FISM

    model = FISM(data[0].vocabulary.size, embedding_dim=8, max_length=MAX_LENGTH, name="fism")
    with pytest.raises(ValueError, match="the fism model has no attention"):
        explain.check_explainable(model)
