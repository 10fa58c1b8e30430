"""`target_weighting`: how the next-item losses weigh a step's targets."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.models.conftest import MAX_LENGTH, VOCAB_SIZE
from tf_attnrec.models.registry import create_model
from tf_attnrec.models.sequential_retrieval import SequentialRetrievalModel


def _rows(lengths: list[int], seed: int) -> dict[str, tf.Tensor]:
    """Left-padded `{"history", "targets"}` rows whose histories have the given lengths."""
    rng = np.random.default_rng(seed)
    history = np.zeros([len(lengths), MAX_LENGTH], np.int32)
    targets = np.zeros_like(history)
    for row, length in enumerate(lengths):
        items = rng.integers(2, VOCAB_SIZE, size=length + 1)
        if length:
            history[row, -length:], targets[row, -length:] = items[:-1], items[1:]
    return {"history": tf.constant(history), "targets": tf.constant(targets)}


def _sasrec(target_weighting: str, loss: str = "softmax"):
    tf.keras.utils.set_random_seed(0)  # the same weights and the same negative draws
    return create_model("sasrec", vocab_size=VOCAB_SIZE, max_length=MAX_LENGTH, hidden_dim=8, num_blocks=1,
                        dropout=0.0, loss=loss, target_weighting=target_weighting)


def _joined(*batches: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    return {key: tf.concat([batch[key] for batch in batches], axis=0) for key in batches[0]}


def test_per_target_weighs_a_target_the_same_in_a_batch_of_short_histories():
    long_rows, short_rows = _rows([8, 7], seed=1), _rows([2, 1], seed=2)
    losses = {}
    for weighting in ("per_batch", "per_target"):
        model = _sasrec(weighting)
        losses[weighting] = [float(model.compute_loss(batch)) for batch in (long_rows, short_rows,
                                                                              _joined(long_rows, short_rows))]
    # Two equal-sized batches: the pass's loss is the loss of the batch they make together.
    long_loss, short_loss, joined = losses["per_target"]
    assert joined == pytest.approx((long_loss + short_loss) / 2, rel=1e-5)
    # The batch mean gives the 3 short-history targets as much weight as the 15 long ones.
    long_loss, short_loss, joined = losses["per_batch"]
    assert joined != pytest.approx((long_loss + short_loss) / 2, rel=1e-3)


@pytest.mark.parametrize("loss", ["softmax", "bce"])
def test_per_target_is_the_sum_over_the_batch_target_slots(loss):
    batch = _rows([8, 3, 0], seed=3)  # 11 targets in 3 x 8 slots; an empty row still counts its slots
    per_batch = float(_sasrec("per_batch", loss).compute_loss(batch))
    per_target = float(_sasrec("per_target", loss).compute_loss(batch))
    assert per_target == pytest.approx(per_batch * 11 / 24, rel=1e-5)


def test_per_target_counts_prefix_slots_for_encoders_that_train_on_prefixes():
    batch = _rows([8, 0], seed=4)  # the empty row gives no prefixes but has its slots
    losses = {}
    for weighting in ("per_batch", "per_target"):
        tf.keras.utils.set_random_seed(0)
        model = create_model("gcsan", vocab_size=VOCAB_SIZE, max_length=MAX_LENGTH, hidden_dim=8, num_blocks=1,
                             num_steps=2, dropout=0.0, prefixes_per_sequence=3, target_weighting=weighting)
        assert not model.encoder.supports_all_positions
        losses[weighting] = float(model.compute_loss(batch))
    assert losses["per_target"] == pytest.approx(losses["per_batch"] * 3 / 6, rel=1e-5)


def test_target_weighting_round_trips_and_rejects_what_it_cannot_weigh():
    model = _sasrec("per_target")
    assert SequentialRetrievalModel.from_config(model.get_config()).target_weighting == "per_target"
    with pytest.raises(ValueError, match="target_weighting"):
        _sasrec("per_row")
    with pytest.raises(ValueError, match='"per_target" with loss "softmax" or "bce" only'):
        _sasrec("per_target", loss="sampled_softmax")
