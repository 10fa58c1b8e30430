"""Every layer in tf_attnrec.layers survives a SavedModel export and a Keras config round trip.

The SavedModel is reloaded in a fresh Python process that imports only TensorFlow, as a
serving environment would (no tf_attnrec, no custom-object registration). The layers that
propagate over a sparse adjacency (GraphConvolution, GraphAttention) cannot sit in a Keras
functional model, whose inputs are dense, so they are exported from a `tf.Module` of their own
that builds the adjacency from an edge list in the serving graph.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

import tf_attnrec.layers
from tf_attnrec.layers.attention import ScaledDotProductAttention
from tf_attnrec.data import schema
from tf_attnrec.data.item_content import ItemContent
from tf_attnrec.layers.cross_modal_attention import CrossModalAttention
from tf_attnrec.layers.dropout import ByteDropout
from tf_attnrec.layers.embeddings import ItemSequenceEmbedding, PositionEmbedding
from tf_attnrec.layers.experts import ExtractionLevel, MultiGateExperts
from tf_attnrec.layers.feature_embedding import FeatureEmbedding
from tf_attnrec.layers.fused_item_embedding import FusedItemEmbedding
from tf_attnrec.layers.gated_graph import GatedGraphConvolution, session_graph
from tf_attnrec.layers.graph_attention import GraphAttention
from tf_attnrec.layers.graph_convolution import GraphConvolution
from tf_attnrec.layers.graph_sage import GraphSAGE
from tf_attnrec.layers.item_similarity import ItemSimilarityAttention
from tf_attnrec.layers.multi_head_attention import MultiHeadAttention
from tf_attnrec.layers.pooling import AttentionPooling
from tf_attnrec.layers.random_draws import RandomDraws
from tf_attnrec.layers.recurrent import RecurrentAttentionEncoder
from tf_attnrec.layers.target_attention import TargetAttention
from tf_attnrec.layers.transformer import TransformerBlock

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fresh_tensorflow")]  # one worker: its fixtures and one fresh TF process

VOCAB, DIM, MAX_LEN, NUM_OUTPUTS = 20, 8, 8, 3

# Left-padded histories of two different lengths (shorter than MAX_LEN and exactly MAX_LEN),
# including a row with no item at all.
BATCHES = {
    "short": np.array(
        [[0, 0, 0, 5, 7, 9], [2, 3, 4, 5, 6, 7], [0, 0, 0, 0, 0, 0], [0, 1, 19, 1, 8, 8]],
        np.int32,
    ),
    "full": np.array([[0, 0, 11, 12, 13, 14, 15, 16], [3, 4, 5, 6, 7, 8, 9, 10]], np.int32),
}

# Graphs as (node ids, directed edges [target, source]): one with an isolated node (4), and a
# bipartite-looking star whose edge list is unsorted.
GRAPHS = {
    "chain": (np.array([3, 5, 7, 9, 11], np.int32),
              np.array([[0, 1], [1, 0], [1, 2], [2, 1], [2, 3], [3, 2], [3, 3]], np.int64)),
    "star": (np.array([2, 4, 6, 8], np.int32), np.array([[0, 3], [0, 1], [0, 2], [2, 0], [1, 0]], np.int64)),
}
SPARSE_GRAPH_LAYERS = {GraphConvolution, GraphAttention}

def _public_layer_classes() -> set[type]:
    """Every public Keras layer class defined in a module of tf_attnrec.layers."""
    classes = set()
    for module_info in pkgutil.iter_modules(tf_attnrec.layers.__path__):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"tf_attnrec.layers.{module_info.name}")
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if (
                not name.startswith("_")
                and obj.__module__ == module.__name__
                and issubclass(obj, tf.keras.layers.Layer)
            ):
                classes.add(obj)
    return classes


def _build_model() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(7)
    item_ids = tf.keras.Input(shape=(None,), dtype=tf.int32, name="item_ids")
    mask = tf.not_equal(item_ids, 0)
    x = ItemSequenceEmbedding(VOCAB, DIM, MAX_LEN, position="learned", name="embed")(item_ids)
    # Start-aligned positions count the real items with the mask (cumsum + gather).
    x = x + ItemSequenceEmbedding(
        VOCAB, DIM, MAX_LEN, position_alignment="start", name="embed_start"
    )(item_ids)
    x = x + PositionEmbedding(MAX_LEN, kind="sinusoidal", name="sinusoid")(x)
    x = TransformerBlock(num_heads=2, hidden_dim=DIM, causal=True, name="block")(x, mask=mask)
    x = GatedGraphConvolution(num_steps=2, name="ggnn")(x, session_graph(item_ids).adjacency, mask=mask)
    mixed = MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(
        x, x, query_mask=mask, value_mask=mask
    )
    attended = ScaledDotProductAttention(name="sdpa")(mixed, x, query_mask=mask, value_mask=mask)
    pooled = AttentionPooling(hidden_units=6, name="pool")(attended, mask=mask)
    most_recent = x[:, -1, :]  # left padding: the last position is the most recent item
    interest = TargetAttention(hidden_units=(8, 4), activation="dice", name="din")(
        most_recent, x, mask=mask
    )
    session = RecurrentAttentionEncoder(units=5, cell="lstm", name="narm")(x, mask=mask)
    # The history as the sampled neighbourhood of the most recent item (padding masked).
    neighbourhood = GraphSAGE(units=4, aggregator="attention", name="sage")(most_recent, x, mask=mask)
    # NAIS: the two most recent items as candidates scored against the whole history.
    candidates = tf.stack([x[:, -1, :], x[:, -2, :]], axis=1)  # [B, 2, D]: a static candidate count
    similarity = ItemSimilarityAttention("prod", attention_dim=4, name="nais")(x, candidates, mask=mask)
    # Side features derived from the ids (genre = id % 5, year = id % 4, user fields from the
    # oldest slot), so one integer input drives the ranking feature embedding too.
    genres = tf.stack([item_ids % 5, tf.zeros_like(item_ids)], axis=-1)
    side = FeatureEmbedding({"item": VOCAB, "genre": 5, "year": 4, "gender": 4, "age": 4, "occupation": 4},
                            DIM, name="side_features")({
        schema.USER_GENDER: item_ids[:, 0] % 4, schema.USER_AGE: item_ids[:, 0] % 3,
        schema.USER_OCCUPATION: item_ids[:, 0] % 2, schema.ITEM_ID: item_ids[:, -1],
        schema.ITEM_GENRES: genres[:, -1], schema.ITEM_YEAR: item_ids[:, -1] % 4,
        schema.HISTORY_ITEM_IDS: item_ids, schema.HISTORY_GENRES: genres, schema.HISTORY_YEAR: item_ids % 4,
    })
    candidate = tf.keras.layers.Flatten(name="candidate_fields")(side["candidate"])
    features = tf.keras.layers.Concatenate(name="features")(
        [pooled, interest, session, neighbourhood, similarity, candidate])
    # Multi-task mixtures of experts: one PLE level in its list form (one input per task, then
    # the shared one), and a two-level PLE stack with one task per output.
    level = ExtractionLevel(num_tasks=2, num_shared_experts=1, num_task_experts=1, expert_units=(4,),
                            output_shared=True, name="ple_level")([pooled, interest, most_recent])
    experts = MultiGateExperts(num_tasks=NUM_OUTPUTS, num_levels=2, num_shared_experts=2, num_task_experts=1,
                               expert_units=(6,), dropout=0.1, name="ple")(features)
    # Three views of the history as "modalities", fused with the session as the query; masks
    # from the ids: the all-padding row has every modality masked (output 0, weights 0).
    has_history = tf.reduce_any(mask, axis=1)
    fused, modality_weights = CrossModalAttention(
        units=4, modalities={"pooled": DIM, "interest": DIM, "most_recent": DIM},
        query_dim=int(session.shape[-1]), dropout=0.1, name="cross_modal",
    )({"pooled": pooled, "interest": interest, "most_recent": most_recent}, query=session,
      mask={"pooled": has_history, "interest": tf.greater(tf.math.count_nonzero(mask, axis=1), 4),
            "most_recent": tf.not_equal(item_ids[:, -1], 0)}, return_weights=True)
    # An item tower over a VOCAB-row id table (symbolic, so the tower is a layer of the model);
    # its catalogue content is set by `_set_catalogue` once the model is built.
    catalogue_ids = tf.math.cumsum(tf.ones_like(tf.tile(item_ids[:1, :1], [1, VOCAB])), axis=1) - 1  # [[0..VOCAB)]
    id_table = tf.keras.layers.Embedding(VOCAB, DIM, name="id_table")(catalogue_ids)[0]
    tower = FusedItemEmbedding(VOCAB, DIM, ("genres", "title", "year"), title_vocabulary=["red", "blue"],
                               genre_vocabulary=["Drama", "Comedy"], year_range=[1990, 1999], title_length=3,
                               name="item_tower")
    fused_items = tf.gather(tower(id_table), item_ids[:, -1])
    heads = tf.keras.layers.Concatenate(name="heads")([
        features, fused, modality_weights, fused_items, level["shared_output"],
        tf.keras.layers.Flatten(name="level_tasks")(level["task_outputs"]),
        tf.keras.layers.Flatten(name="ple_tasks")(experts["task_outputs"]),
    ])
    heads = ByteDropout(0.1, name="heads_dropout")(heads)  # training only: an identity when served
    scores = tf.keras.layers.Dense(NUM_OUTPUTS, name="scores")(heads)
    scores = RandomDraws(name="draws")(scores)  # draws for training only: an identity when called
    model = tf.keras.Model(item_ids, scores, name="all_layers")
    _set_catalogue(model.get_layer("item_tower"))
    return model


def _set_catalogue(tower: FusedItemEmbedding) -> None:
    """Content for every item: words, genres and years cycle; item 5 has none, ids >= 2 trained."""
    rows = np.arange(VOCAB)
    tower.set_catalogue(ItemContent(
        titles=np.array(["", "red", "blue red", "green"] * (VOCAB // 4), object)[:VOCAB],
        genres=np.array(["Drama", "Comedy|Drama", "", "Western"] * (VOCAB // 4), object)[:VOCAB],
        years=np.where(rows % 3 == 0, 0, 1990 + rows % 10).astype(np.int32)))
    tower.set_item_counts((rows >= 2) & (rows != 5))


class _GraphModel(tf.Module):
    """Node embeddings -> LightGCN-style propagation -> GCN with weights -> two-head GAT."""

    def __init__(self):
        super().__init__()
        tf.keras.utils.set_random_seed(7)
        self.embedding = tf.keras.layers.Embedding(VOCAB, DIM)
        self.layers = [GraphConvolution(name="propagate"), GraphConvolution(units=DIM, activation="relu", name="gcn"),
                       GraphAttention(units=3, num_heads=2, name="gat")]
        self(*GRAPHS["chain"])  # creates the variables

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="node_ids"),
                                  tf.TensorSpec([None, 2], tf.int64, name="edges")])
    def __call__(self, node_ids, edges):
        num_nodes = tf.cast(tf.shape(node_ids)[0], tf.int64)
        adjacency = tf.sparse.reorder(tf.SparseTensor(edges, tf.ones(tf.shape(edges)[:1]), [num_nodes, num_nodes]))
        h = self.embedding(node_ids)
        for layer in self.layers:
            h = layer(h, adjacency)
        return {"scores": h}


@pytest.fixture(scope="module")
def model() -> tf.keras.Model:
    return _build_model()


@pytest.fixture(scope="module")
def graph_model() -> _GraphModel:
    return _GraphModel()


def test_model_uses_every_layer(model, graph_model):
    used = {type(layer) for layer in model.layers} | {type(layer) for layer in graph_model.layers}
    missing = _public_layer_classes() - used
    missing_names = sorted(c.__name__ for c in missing)
    assert not missing, f"add these layers to the export test model: {missing_names}"
    assert len(_public_layer_classes()) >= 8


def test_saved_model_reloads_in_fresh_process(model, tmp_path, fresh_tensorflow):
    expected = {name: model(ids, training=False).numpy() for name, ids in BATCHES.items()}
    for name, out in expected.items():
        assert out.shape == (len(BATCHES[name]), NUM_OUTPUTS)
        assert np.all(np.isfinite(out)), name

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="item_ids")])
    def serve(item_ids):
        return {"scores": model(item_ids, training=False)}

    # Export the serving graph and the variables it reads. (Saving the Keras model object
    # itself also works, but Keras then traces every layer's call for its own metadata, which
    # costs ~30 s here and is not what a server loads.)
    export = tf.Module()
    export.model_variables = list(model.variables)
    export.serve = serve
    export_dir = tmp_path / "saved_model"
    tf.saved_model.save(export, str(export_dir), signatures={"serving_default": serve})

    for name, ids in BATCHES.items():
        reloaded = fresh_tensorflow.serve(export_dir, {"item_ids": ids})["serving_default"]["scores"]
        np.testing.assert_allclose(reloaded, expected[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_graph_layers_saved_model_reloads_in_fresh_process(graph_model, tmp_path, fresh_tensorflow):
    expected = {name: graph_model(*graph)["scores"].numpy() for name, graph in GRAPHS.items()}
    assert all(np.isfinite(out).all() for out in expected.values())  # "chain" has an isolated node
    export_dir = tmp_path / "graph_model"
    tf.saved_model.save(graph_model, str(export_dir), signatures={"serving_default": graph_model.__call__})
    for name, (node_ids, edges) in GRAPHS.items():
        reloaded = fresh_tensorflow.serve(export_dir, {"node_ids": node_ids, "edges": edges})["serving_default"]
        np.testing.assert_allclose(reloaded["scores"], expected[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_keras_config_round_trip(model):
    config = model.get_config()
    clone = tf.keras.Model.from_config(config)
    assert {type(layer) for layer in clone.layers} >= _public_layer_classes() - SPARSE_GRAPH_LAYERS
    clone.set_weights(model.get_weights())
    for name, ids in BATCHES.items():
        np.testing.assert_allclose(
            clone(ids, training=False).numpy(), model(ids, training=False).numpy(),
            rtol=1e-6, atol=1e-6, err_msg=name,
        )
    # The config is plain JSON, as a zoo card or an export would store it.
    assert tf.keras.Model.from_config(json.loads(json.dumps(config))).count_params() == (
        model.count_params()
    )
