"""tf_attnrec.explain_gates: which experts each task's gate attends to, per user and on average."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.data.vocabulary import Vocabulary
from tf_attnrec.explain_gates import expert_layout, explain_gates, format_gates, gate_matrix, plot_gates
from tf_attnrec.models.registry import create_model

USERS = Vocabulary.from_ids([f"u{i}" for i in range(6)])


def _model(name: str, **config):
    tf.keras.utils.set_random_seed(0)
    return create_model(name, vocab_size=9, num_users=USERS.num_items, embedding_dim=4, rating_units=[4],
                        click_units=[4], expert_units=[4], **config)


def test_ple_layout_gives_each_task_its_own_experts_then_the_shared_ones():
    model = _model("ple", num_levels=1, num_shared_experts=2, num_task_experts=1)
    labels, columns = expert_layout(model)
    assert labels == ["retrieval 1", "rating 1", "click 1", "shared 1", "shared 2"]
    assert columns == [[0, 3, 4], [1, 3, 4], [2, 3, 4]]
    matrix = gate_matrix(model, np.full((1, 3, 3), 1 / 3))
    assert np.isnan(matrix[0, 0, 1]) and np.isnan(matrix[0, 1, 0])  # a task never sees another's expert
    np.testing.assert_allclose(np.nansum(matrix[0], axis=1), 1.0)


def test_explanation_is_the_models_gates_for_the_user_and_their_mean():
    model = _model("mmoe", num_experts=3)
    explanation = explain_gates(model, USERS, "u4")
    gates = model.user_vectors(tf.constant(np.arange(2, 8, dtype=np.int32)))["task_gates"].numpy()
    np.testing.assert_allclose(explanation["gates"], gates[int(USERS.lookup("u4")) - 2], rtol=1e-6)
    np.testing.assert_allclose(explanation["mean_gates"], gates.mean(axis=0), rtol=1e-6)
    assert explanation["experts"] == ["shared 1", "shared 2", "shared 3"] and explanation["users"] == 6
    text = format_gates(explanation)
    assert "gate weights of user u4" in text and "mean over 6 users" in text and "retrieval" in text


def test_unknown_user_is_named(tmp_path):
    with pytest.raises(ValueError, match="user 'nobody' is not a user of this run"):
        explain_gates(_model("mmoe", num_experts=2), USERS, "nobody")


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    explanation = explain_gates(_model("ple", num_levels=2, num_shared_experts=1, num_task_experts=1), USERS, "u0")
    path = plot_gates(explanation, tmp_path / "gates.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
