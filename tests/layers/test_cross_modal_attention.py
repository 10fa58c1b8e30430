"""CrossModalAttention: NumPy reference, masking = leaving out, broadcasting, gradients, config."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.layers.cross_modal_attention import CrossModalAttention

# Not in sorted order: the declared order is the weights' axis order.
MODALITIES = {"title": 5, "id": 6, "year": 3, "genres": 4}
NAMES = tuple(MODALITIES)
UNITS, DQ, N = 7, 6, 5
# Per-row presence (True = present). Row 3 has a single modality, row 4 none at all.
MASKS = {
    "title": np.array([True, False, True, False, False]),
    "year": np.array([True, True, False, False, False]),
    "genres": np.array([False, True, True, True, False]),
}
MASKS["id"] = np.array([True, True, True, False, False])


def inputs(seed: int = 0, rows: int = N) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    values = {name: rng.normal(size=[rows, width]).astype(np.float32) for name, width in MODALITIES.items()}
    return values, rng.normal(size=[rows, DQ]).astype(np.float32)


def layer(**kwargs) -> CrossModalAttention:
    tf.keras.utils.set_random_seed(1)
    return CrossModalAttention(UNITS, MODALITIES, query_dim=DQ, **kwargs)


def dense(projection: tf.keras.layers.Dense, x: np.ndarray) -> np.ndarray:
    return np.float64(x) @ np.float64(projection.kernel.numpy()) + np.float64(projection.bias.numpy())


def reference(layer: CrossModalAttention, values, query, masks) -> tuple[np.ndarray, np.ndarray]:
    """The formula row by row in float64, for `[N, d]` inputs; left-out modalities are absent."""
    q = dense(layer.query_projection, query)
    rows = len(query)
    output, weights = np.zeros([rows, UNITS]), np.zeros([rows, len(NAMES)])
    for n in range(rows):
        present = [i for i, name in enumerate(NAMES) if name in values and masks.get(name, np.ones(rows, bool))[n]]
        if not present:
            continue
        keys = [dense(layer.key_projections[i], values[NAMES[i]][n]) for i in present]
        logits = np.array([q[n] @ k for k in keys]) / np.sqrt(UNITS)
        a = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        weights[n, present] = a
        output[n] = sum(w * dense(layer.value_projections[i], values[NAMES[i]][n]) for w, i in zip(a, present))
    return output, weights


@pytest.mark.parametrize("left_out", [(), ("year",)])
def test_matches_numpy_reference(left_out):
    cma = layer()
    values, query = inputs()
    values = {name: x for name, x in values.items() if name not in left_out}
    output, weights = cma(values, query, mask=MASKS, return_weights=True)
    expected_output, expected_weights = reference(cma, values, query, MASKS)
    assert output.shape == (N, UNITS) and weights.shape == (N, len(NAMES))
    np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(output.numpy(), expected_output, rtol=1e-5, atol=1e-5)
    # Without a mask every passed modality is present in every row.
    output, weights = cma(values, query, return_weights=True)
    expected_output, expected_weights = reference(cma, values, query, {})
    np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(output.numpy(), expected_output, rtol=1e-5, atol=1e-5)


def test_masking_a_modality_equals_leaving_it_out():
    cma = layer()
    values, query = inputs()
    without = {name: x for name, x in values.items() if name != "genres"}
    left_out = [t.numpy() for t in cma(without, query, return_weights=True)]
    masked = cma(values, query, mask={"genres": np.zeros(N, bool)}, return_weights=True)
    for got, expected in zip(masked, left_out):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-7)
    assert (left_out[1][:, NAMES.index("genres")] == 0).all()
    # Per row: the masked rows equal the call without the modality, the others do not.
    rows = np.array([True, False, True, False, True])
    per_row = [t.numpy() for t in cma(values, query, mask={"genres": ~rows}, return_weights=True)]
    full = [t.numpy() for t in cma(values, query, return_weights=True)]
    for got, expected, unmasked in zip(per_row, left_out, full):
        np.testing.assert_allclose(got[rows], expected[rows], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(got[~rows], unmasked[~rows], rtol=1e-6, atol=1e-7)
    assert not np.allclose(per_row[0][~rows], left_out[0][~rows])


@pytest.mark.parametrize("garbage", ["noise", "inf"])
def test_masked_values_never_change_a_result(garbage):
    cma = layer()
    values, query = inputs()
    output, weights = (t.numpy() for t in cma(values, query, mask=MASKS, return_weights=True))
    rng = np.random.default_rng(3)
    noisy = {
        name: np.where(MASKS[name][:, None], x, 1e3 * rng.normal(size=x.shape) if garbage == "noise" else np.inf)
        for name, x in values.items()
    }
    noisy = {name: tf.constant(x, tf.float32) for name, x in noisy.items()}
    with tf.GradientTape() as tape:
        tape.watch(noisy)
        noisy_output, noisy_weights = cma(noisy, query, mask=MASKS, return_weights=True)
    np.testing.assert_array_equal(noisy_output.numpy(), output)
    np.testing.assert_array_equal(noisy_weights.numpy(), weights)
    gradients = tape.gradient(noisy_output, [*noisy.values(), *cma.trainable_weights])
    assert all(np.isfinite(g.numpy()).all() for g in gradients)
    for name, gradient in zip(noisy, gradients):
        assert (gradient.numpy()[~MASKS[name]] == 0).all(), f"masked {name} gets no gradient"


def test_fully_masked_rows_give_zeros_and_finite_gradients():
    cma = layer()
    values, query = inputs()
    query = tf.constant(query)
    with tf.GradientTape() as tape:
        tape.watch(query)
        output, weights = cma(values, query, mask=MASKS, return_weights=True)
        loss = tf.reduce_sum(output ** 2) + tf.reduce_sum(weights)
    assert np.isfinite(output.numpy()).all() and np.isfinite(weights.numpy()).all()
    assert (output.numpy()[4] == 0).all() and (weights.numpy()[4] == 0).all()
    gradients = tape.gradient(loss, [query, *cma.trainable_weights])
    assert all(np.isfinite(g.numpy()).all() for g in gradients)
    assert (gradients[0].numpy()[4] == 0).all()
    # No modality passed at all: zeros of the query's leading shape.
    empty, empty_weights = cma({}, query, return_weights=True)
    assert empty.shape == (N, UNITS) and not empty.numpy().any() and not empty_weights.numpy().any()


def test_weights_sum_to_one_and_a_single_modality_is_its_value_projection():
    cma = layer()
    values, query = inputs()
    output, weights = cma(values, query, mask=MASKS, return_weights=True)
    present = np.stack([MASKS[name] for name in NAMES], -1)
    np.testing.assert_allclose(weights.numpy().sum(-1), present.any(-1).astype(float), rtol=1e-6)
    assert (weights.numpy()[~present] == 0).all()
    # Row 3 has only "genres".
    np.testing.assert_allclose(weights.numpy()[3], np.eye(len(NAMES))[NAMES.index("genres")], atol=1e-7)
    genres = NAMES.index("genres")
    expected = dense(cma.value_projections[genres], values["genres"][3])
    np.testing.assert_allclose(output.numpy()[3], expected, rtol=1e-5, atol=1e-6)
    # Every row with only "title" passed: the title's value projection, weight 1.
    title, title_weights = cma({"title": values["title"]}, query, return_weights=True)
    expected = dense(cma.value_projections[0], values["title"])
    np.testing.assert_allclose(title.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(title_weights.numpy(), np.eye(len(NAMES))[[0] * N])


def test_users_query_broadcasts_against_the_catalogue():
    """Query `[B, 1, dq]` against items `[V, d_m]` (mask `[V]`) is the per-user loop."""
    cma = layer()
    values, _ = inputs(rows=N)
    users = np.random.default_rng(5).normal(size=[3, 1, DQ]).astype(np.float32)
    output, weights = cma(values, users, mask=MASKS, return_weights=True)
    assert output.shape == (3, N, UNITS) and weights.shape == (3, N, len(NAMES))
    for b in range(3):
        expected = cma(values, np.repeat(users[b], N, axis=0), mask=MASKS, return_weights=True)
        np.testing.assert_allclose(output.numpy()[b], expected[0].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(weights.numpy()[b], expected[1].numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(weights.numpy()[0], weights.numpy()[1])
    # A per-user mask [B, V] broadcasts the items' values to [B, V]: user b sees its own mask.
    per_user = np.stack([MASKS["id"], ~MASKS["id"], np.ones(N, bool)])
    output = cma(values, users, mask={"id": per_user}).numpy()
    for b in range(3):
        expected = cma(values, np.repeat(users[b], N, axis=0), mask={"id": per_user[b]}).numpy()
        np.testing.assert_allclose(output[b], expected, rtol=1e-5, atol=1e-6)


def test_rank_four_inputs_match_the_flat_call():
    cma = layer()
    values, query = inputs(rows=12)
    shaped = {name: x.reshape([2, 3, 2, -1]) for name, x in values.items()}
    mask = {"id": np.arange(12).reshape([2, 3, 2]) % 3 > 0}
    output = cma(shaped, query.reshape([2, 3, 2, DQ]), mask=mask).numpy()
    flat = cma(values, query, mask={"id": mask["id"].reshape(-1)}).numpy()
    np.testing.assert_allclose(output.reshape([12, UNITS]), flat, rtol=1e-6, atol=1e-7)


def test_dropout_on_weights_in_training_only():
    cma = layer(dropout=0.5)
    values, query = inputs()
    inference, weights = cma(values, query, mask=MASKS, training=False, return_weights=True)
    expected_output, expected_weights = reference(cma, values, query, MASKS)
    np.testing.assert_allclose(inference.numpy(), expected_output, rtol=1e-5, atol=1e-5)
    tf.random.set_seed(0)
    training, training_weights = cma(values, query, mask=MASKS, training=True, return_weights=True)
    assert not np.allclose(training.numpy(), inference.numpy())
    np.testing.assert_allclose(training_weights.numpy(), expected_weights, rtol=1e-5, atol=1e-6)  # before dropout
    assert (training.numpy()[4] == 0).all()


def test_gradients_finite_and_nonzero():
    cma = layer()
    values, query = inputs()
    with tf.GradientTape() as tape:
        output = cma(values, query, mask=MASKS)
        loss = tf.reduce_sum(output * tf.random.stateless_normal(output.shape, [1, 2]))
    assert len(cma.trainable_weights) == 2 * (1 + 2 * len(NAMES))
    gradients = tape.gradient(loss, cma.trainable_weights)
    for weight, gradient in zip(cma.trainable_weights, gradients):
        assert gradient is not None and np.isfinite(gradient.numpy()).all(), weight.name
        assert np.abs(gradient.numpy()).sum() > 0, weight.name


def test_weight_order_does_not_depend_on_the_first_call():
    values, query = inputs()
    first_all, first_year = layer(), layer()
    first_all(values, query)
    first_year({"year": values["year"]}, query)
    shapes = [(DQ, UNITS), (UNITS,)] + [s for w in [*MODALITIES.values()] * 2 for s in ((w, UNITS), (UNITS,))]
    assert [w.shape for w in first_year.get_weights()] == shapes
    assert [w.shape for w in first_all.get_weights()] == shapes
    first_year.set_weights(first_all.get_weights())
    np.testing.assert_allclose(first_year(values, query).numpy(), first_all(values, query).numpy(), rtol=1e-6)


def test_seeded_initializer_draws_every_kernel_anew():
    cma = CrossModalAttention(UNITS, {"a": 4, "b": 4}, query_dim=4,
                              kernel_initializer=tf.keras.initializers.GlorotUniform(seed=3))
    cma({"a": np.ones([1, 4], np.float32)}, np.ones([1, 4], np.float32))
    kernels = [w.numpy() for w in cma.weights if "kernel" in w.name]
    assert len(kernels) == 5
    assert all(not np.allclose(kernels[i], kernels[j]) for i in range(5) for j in range(i))


@pytest.mark.parametrize("through_json", [False, True])
def test_config_round_trip(through_json):
    cma = layer(dropout=0.2, kernel_initializer="he_normal", name="fusion")
    values, query = inputs()
    expected = cma(values, query, mask=MASKS).numpy()
    config = cma.get_config()
    assert list(config["modalities"]) == list(NAMES)
    if through_json:
        config = json.loads(json.dumps(config))
    clone = CrossModalAttention.from_config(config)
    assert clone.modality_names == NAMES
    assert clone.get_config() == cma.get_config()
    clone(values, query)
    clone.set_weights(cma.get_weights())
    np.testing.assert_allclose(clone(values, query, mask=MASKS).numpy(), expected, rtol=1e-6)


def test_keras_masks_of_the_inputs_are_used():
    """A modality embedded with mask_zero carries its own `[B]` Keras mask."""
    year_ids = tf.keras.Input(shape=(), dtype=tf.int32)
    query_in = tf.keras.Input(shape=(DQ,))
    embedding = tf.keras.layers.Embedding(4, MODALITIES["year"], mask_zero=True)
    year = embedding(year_ids)
    title = tf.keras.Input(shape=(MODALITIES["title"],))
    cma = layer()
    output = cma({"year": year, "title": title}, query=query_in)
    model = tf.keras.Model([year_ids, title, query_in], output)
    values, query = inputs()
    ids = np.array([1, 0, 3, 0, 2], np.int32)
    year_vectors = embedding(ids).numpy()
    explicit = cma({"year": year_vectors, "title": values["title"]}, query, mask={"year": ids != 0})
    np.testing.assert_allclose(model([ids, values["title"], query]).numpy(), explicit.numpy(), rtol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"units": 0}, "`units` must be a positive int; got 0"),
    ({"units": True}, "`units`"),
    ({"modalities": {}}, "`modalities` must be a non-empty mapping"),
    ({"modalities": [("id", 4)]}, "`modalities` must be a non-empty mapping"),
    ({"modalities": {"id": 0}}, "'id': 0"),
    ({"modalities": {3: 4}}, "3: 4"),
    ({"query_dim": -1}, "`query_dim` must be a positive int; got -1"),
    ({"dropout": 1.0}, "`dropout` must be a rate in \\[0, 1\\); got 1.0"),
    ({"kernel_initializer": "nope"}, "unknown `kernel_initializer` 'nope'"),
])
def test_bad_arguments_are_named(kwargs, match):
    arguments = {"units": UNITS, "modalities": MODALITIES, "query_dim": DQ, **kwargs}
    with pytest.raises(ValueError, match=match):
        CrossModalAttention(**arguments)


@pytest.mark.parametrize("change, match", [
    (lambda v, q, m: ({**v, "plot": v["id"]}, q, m), "unknown modality 'plot' in `inputs`.*'title', 'id'"),
    (lambda v, q, m: (v, q, {**m, "cast": m["id"]}), "unknown modality 'cast' in `mask`.*'year', 'genres'"),
    (lambda v, q, m: ({**v, "year": v["id"]}, q, m), "modality 'year' has width 6; expected 3"),
    (lambda v, q, m: (v, q[:, :4], m), "`query` has width 4; expected query_dim=6"),
    (lambda v, q, m: (list(v.values()), q, m), "`inputs` must be a mapping"),
])
def test_bad_call_arguments_are_named(change, match):
    cma = layer()
    values, query = inputs()
    values, query, mask = change(values, query, MASKS)
    with pytest.raises(ValueError, match=match):
        cma(values, query, mask=mask)
