"""The approximate (ScaNN) export: needs the `ann` extra, skipped cleanly without it."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

pytest.importorskip("scann", reason="the ScaNN export needs the 'ann' extra (scann==1.4.2)")

from tf_attnrec.data.pipelines import pad_sequences  # noqa: E402
from tf_attnrec.data.readers import read_sasrec_txt  # noqa: E402
from tf_attnrec.data.vocabulary import Vocabulary  # noqa: E402
from tf_attnrec.export import export_retrieval  # noqa: E402
from tf_attnrec.models import create_model  # noqa: E402

K = 10
MAX_LENGTH = 50


def test_scann_recall_on_ml1m_item_embeddings(shared_data_dir, tmp_path):
    """recall@10 of the served ScaNN results against the exact top-k of the model >= 0.95."""
    interactions = read_sasrec_txt(shared_data_dir / "ml-1m" / "ml-1m.txt")
    vocabulary = Vocabulary.from_ids(interactions["item_id"])
    tf.keras.utils.set_random_seed(0)
    model = create_model("sasrec", vocab_size=vocabulary.size, max_length=MAX_LENGTH,
                         num_blocks=1, dropout=0.0)
    model.score(tf.zeros([1, MAX_LENGTH], tf.int32))
    summary = export_retrieval(model, tmp_path / "sasrec" / "1", k=K, index="scann",
                               vocabulary=vocabulary)
    assert summary.index == "scann"
    served = tf.saved_model.load(str(summary.export_dir)).signatures["serving_default"]

    users = interactions.groupby("user_id", sort=True)["item_id"]
    histories = [items.to_numpy()[-MAX_LENGTH:] for _, items in list(users)[:256]]
    request = [[str(v) for v in h] + [""] * (MAX_LENGTH - len(h)) for h in histories]
    out = served(history=tf.constant(request))
    scann_ids = [[v.decode() for v in row] for row in out["item_ids"].numpy()]

    scores = model.score(pad_sequences([vocabulary.lookup(h) for h in histories], MAX_LENGTH))
    scores = scores.numpy()[:, 2:]
    for row, history in enumerate(histories):
        scores[row, vocabulary.lookup(history) - 2] = -np.inf
    exact = np.argsort(-scores, axis=1, kind="stable")[:, :K] + 2
    exact_ids = [[str(v) for v in vocabulary.raw_ids(row)] for row in exact]

    recall = np.mean([len(set(a) & set(e)) / K for a, e in zip(scann_ids, exact_ids)])
    assert recall >= 0.95, recall
    for history, row in zip(histories, scann_ids):  # exclusion and validity hold for ScaNN too
        assert len(set(row)) == K and "" not in row
        assert not set(row) & {str(v) for v in history}
