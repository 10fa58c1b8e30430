"""Compressed retrieval exports (`quantize="float16"|"int8"`): the table, what is saved, what is served.

A tiny sasrec (60 string ids, D = 32, one block) that counted its training items, so that a
history with no known item gets the popularity answer. D = 32 because int8 costs D + 4 bytes a
row (values and a float32 scale) against float32's 4 D: at most 30% needs D >= 20.
"""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec import cli
from tf_attnrec.data.pipelines import pad_sequences
from tf_attnrec.data.vocabulary import Vocabulary
from tf_attnrec.export import ITEM_EMBEDDINGS_FILE, export_retrieval
from tf_attnrec.export.quantize import CompressedItemTable, quantize_int8
from tf_attnrec.models import PopularityModel, create_model
from tf_attnrec.runs import save_model

pytestmark = [pytest.mark.xdist_group("fresh_tensorflow")]  # one worker: one fresh TF process

NUM_ITEMS, DIM, MAX_LENGTH, K = 60, 32, 6, 5
VOCABULARY = Vocabulary.from_ids([f"m{i:02d}" for i in range(NUM_ITEMS)])
MODES = ("float16", "int8")
# recall@5 against the float32 export over 256 histories. float16 rounds an entry by at most
# 2^-11 of it and int8 by half a step (1/254 of its row's largest entry), so only items whose
# scores were that close trade places; on this model three seeds gave >= 0.999 (float16) and
# 0.994-0.998 (int8). The bars leave room for other seeds, and not for a broken table: int8
# values read without their scales scored 0.64.
MIN_RECALL = {"float16": 0.99, "int8": 0.97}


def _model(seed: int = 1) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(seed)
    model = create_model("sasrec", vocab_size=VOCABULARY.size, hidden_dim=DIM, max_length=MAX_LENGTH,
                         num_blocks=1, dropout=0.0)
    model.score(tf.zeros([1, MAX_LENGTH], tf.int32))
    model.adapt([np.random.default_rng(seed).integers(2, VOCABULARY.size, 200)])  # popularity for new users
    return model


def _histories(count: int) -> list[list[str]]:
    """Right-padded raw-id histories of 0..8 entries, a tenth of them unknown ids."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(count):
        items = rng.integers(0, NUM_ITEMS, rng.integers(0, 9))
        row = [f"m{i:02d}" if rng.random() > 0.1 else f"unknown-{i}" for i in items]
        rows.append(row + [""] * (8 - len(row)))
    return rows + [["unknown-a", "", "unknown-b", "", "", "", "", ""], [""] * 8]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """(model, {mode: export dir}, {mode: summary}); mode "float32" is quantize=None."""
    model = _model()
    root = tmp_path_factory.mktemp("quantized")
    dirs, summaries = {}, {}
    for mode in ("float32", *MODES):
        dirs[mode] = root / mode / "1"
        summaries[mode] = export_retrieval(model, dirs[mode], k=K, vocabulary=VOCABULARY,
                                           quantize=None if mode == "float32" else mode)
    return model, dirs, summaries


def test_int8_keeps_every_entry_within_half_a_step_and_float16_rounds_once():
    rng = np.random.default_rng(0)
    table = rng.standard_normal([50, DIM]).astype(np.float32) * np.logspace(-4, 2, 50, dtype=np.float32)[:, None]
    table[3] = 0.0  # an all-zero row (scale 0) must come back as zeros, not NaN
    values, scale = quantize_int8(table)
    assert values.dtype == np.int8 and scale.dtype == np.float32 and np.abs(values).max() <= 127
    assert (np.abs(values).max(axis=1)[scale > 0] == 127).all()  # each row uses the whole range
    dequantized = CompressedItemTable(table, "int8").dequantized().numpy()
    # Half a step, plus float32 rounding of row / scale and q * scale (~1e-5 of a step).
    assert (np.abs(dequantized - table) <= scale[:, None] / 2 * (1 + 1e-4)).all()
    assert (dequantized[3] == 0).all()
    float16 = CompressedItemTable(table, "float16").dequantized().numpy()
    np.testing.assert_array_equal(float16, table.astype(np.float16).astype(np.float32))


def test_exports_reload_in_a_fresh_process_and_keep_the_float32_top_k(exports, fresh_tensorflow):
    _, dirs, _ = exports
    histories = _histories(256)
    answers = {mode: fresh_tensorflow.serve(path, {"history": histories})["serving_default"]
               for mode, path in dirs.items()}
    exact = answers["float32"]
    unknown = np.asarray([not any(h.startswith("m") for h in row) for row in histories])
    assert unknown[-2:].all() and unknown.sum() > 2
    catalogue = {f"m{i:02d}" for i in range(NUM_ITEMS)}
    for mode in MODES:
        ids, scores = answers[mode]["item_ids"], answers[mode]["scores"]
        assert ids.shape == scores.shape == (len(histories), K) and np.isfinite(scores).all()
        recall = np.mean([len(set(a) & set(e)) / K for a, e in zip(ids.tolist(), exact["item_ids"].tolist())])
        assert recall >= MIN_RECALL[mode], (mode, recall)
        for row, history in zip(ids.tolist(), histories):
            assert len(set(row)) == K and set(row) <= catalogue and not set(row) & set(history)
        # Empty and unknown-only histories get the most popular items, whatever the table.
        np.testing.assert_array_equal(ids[unknown], exact["item_ids"][unknown])
        np.testing.assert_array_equal(scores[unknown], exact["scores"][unknown])


def test_int8_export_serves_what_the_model_scores_with_the_dequantized_table(exports):
    model, dirs, _ = exports
    histories = [row for row in _histories(64) if any(h.startswith("m") for h in row)]
    ids = [VOCABULARY.lookup(np.asarray([h for h in row if h], dtype=object)) for row in histories]
    table = CompressedItemTable(np.asarray(model.item_embeddings), "int8").dequantized()
    query = model(pad_sequences(ids, MAX_LENGTH), training=False, item_table=table)
    scores = tf.matmul(query, table[2:], transpose_b=True).numpy()
    for row, seq in enumerate(ids):
        scores[row, seq[seq >= 2] - 2] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]

    loaded = tf.saved_model.load(str(dirs["int8"]))
    served = loaded.signatures["serving_default"](history=tf.constant(histories))
    assert [[v.decode() for v in row] for row in served["item_ids"].numpy()] == \
        [[str(v) for v in VOCABULARY.raw_ids(row + 2)] for row in top]
    np.testing.assert_allclose(served["scores"].numpy(), np.take_along_axis(scores, top, axis=1), rtol=1e-5, atol=1e-5)
    encoded = loaded.signatures["encode"](history=tf.constant(histories))["query_embedding"].numpy()
    np.testing.assert_allclose(encoded, query.numpy(), rtol=1e-5, atol=1e-5)


def _checkpoint(export_dir) -> dict:
    reader = tf.train.load_checkpoint(str(export_dir / "variables" / "variables"))
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    return {key: (tuple(shapes[key]), dtypes[key]) for key in shapes if key != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def _folder_bytes(folder) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def test_the_saved_variables_hold_the_table_compressed_and_nothing_float32(exports):
    _, dirs, summaries = exports
    rows = VOCABULARY.size
    float32_table = rows * DIM * 4
    expected = {"float16": rows * DIM * 2, "int8": rows * DIM + rows * 4}
    for mode in MODES:
        variables = _checkpoint(dirs[mode])
        tables = {key: spec for key, spec in variables.items() if spec[0] == (rows, DIM)}
        assert [spec[1] for spec in tables.values()] == [tf.as_dtype(mode)], variables  # no float32 copy
        assert summaries[mode].quantize == mode and summaries[mode].item_table_bytes == expected[mode]
        saved = _folder_bytes(dirs["float32"] / "variables") - _folder_bytes(dirs[mode] / "variables")
        assert saved >= (float32_table - expected[mode]) * 0.95, (mode, saved)  # the checkpoint shrank by it
        assert "item_embeddings" not in summaries[mode].files
        assert not (dirs[mode] / "assets" / ITEM_EMBEDDINGS_FILE).exists()
    assert expected["int8"] <= 0.30 * float32_table
    assert [spec[1] for spec in _checkpoint(dirs["float32"]).values() if spec[0] == (rows, DIM)] == [tf.float32]
    assert not hasattr(summaries["float32"], "quantize")  # the default export is unchanged


def test_a_fused_sasrec_saves_its_fused_table_compressed_and_serves_its_content_signature(tmp_path):
    from tests.export.test_signature_fuzz import _fused_sasrec

    model, data, _ = _fused_sasrec()
    summaries = {mode: export_retrieval(model, tmp_path / mode / "1", k=K, vocabulary=data.vocabulary,
                                        quantize=None if mode == "float32" else mode) for mode in ("float32", "int8")}
    shape = (data.vocabulary.size, int(model.item_embeddings.shape[-1]))
    # Either export saves the fused table alone (requests never read the id table): float32, or int8.
    assert [spec[1] for spec in _checkpoint(summaries["float32"].export_dir).values() if spec[0] == shape] == [
        tf.float32]
    assert [spec[1] for spec in _checkpoint(summaries["int8"].export_dir).values() if spec[0] == shape] == [tf.int8]
    raw = [str(v) for v in data.vocabulary.raw_ids(np.arange(2, data.vocabulary.size))]
    rng = np.random.default_rng(0)
    histories = tf.constant([list(rng.choice(raw, 4)) for _ in range(64)])
    served = {mode: tf.saved_model.load(str(summary.export_dir)) for mode, summary in summaries.items()}
    ids = {mode: loaded.signatures["serving_default"](history=histories)["item_ids"].numpy().tolist()
           for mode, loaded in served.items()}
    recall = np.mean([len(set(a) & set(e)) / K for a, e in zip(ids["int8"], ids["float32"])])
    assert recall >= MIN_RECALL["int8"], recall
    assert set(served["int8"].signatures) == {"serving_default", "encode", "embed_items"}


def test_bad_or_unsupported_quantize_is_refused_with_one_clear_line(tmp_path, capsys):
    model = _model()
    with pytest.raises(ValueError, match=r"quantize must be None \(a float32 item table\) or one of "
                                         r"\('float16', 'int8'\); got 'int4'"):
        export_retrieval(model, tmp_path / "a" / "1", vocabulary=VOCABULARY, quantize="int4")
    with pytest.raises(ValueError, match=r"quantize applies to index='brute_force' only"):
        export_retrieval(model, tmp_path / "b" / "1", vocabulary=VOCABULARY, index="scann", quantize="int8")
    with pytest.raises(ValueError, match=r"PopularityModel has no item table"):
        export_retrieval(PopularityModel(VOCABULARY.size), tmp_path / "c" / "1", vocabulary=VOCABULARY,
                         quantize="int8")
    lstm = create_model("lstm_attention", vocab_size=VOCABULARY.size, max_length=MAX_LENGTH)
    with pytest.raises(ValueError, match=r"RecurrentAttentionSequenceEncoder embeds the history from its own "
                                         r"float32 table"):
        export_retrieval(lstm, tmp_path / "d" / "1", vocabulary=VOCABULARY, quantize="float16")
    assert not any(tmp_path.iterdir())  # refused before anything was written

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", str(tmp_path / "run"), "--output", str(tmp_path / "e" / "1"), "--quantize", "int4"])
    assert exit_info.value.code == 2
    assert "argument --quantize: invalid choice: 'int4' (choose from 'float16', 'int8')" in capsys.readouterr().err


def test_cli_export_quantize_writes_an_int8_export(tmp_path, capsys):
    save_model(_model(), tmp_path / "run", VOCABULARY)
    export_dir = tmp_path / "serving" / "tiny" / "1"
    status = cli.main(["export", str(tmp_path / "run"), "--output", str(export_dir), "-k", "3", "--quantize", "int8"])
    assert status == 0
    assert "quantize=int8" in capsys.readouterr().out
    assert {spec[1] for spec in _checkpoint(export_dir).values() if spec[0] == (VOCABULARY.size, DIM)} == {tf.int8}
