"""Multi-task models: one user stack, gated experts, and three task heads (retrieval, rating, click).

    user id -> embedding -> MultiGateExperts -> one user vector per task
        retrieval: <P u_retrieval, item embedding>, in-batch softmax (`tfrs.tasks.Retrieval`)
        rating:    MLP([u_rating, item embedding]) -> rating, MSE (`tfrs.tasks.Ranking`)
        click:     MLP([u_click, item embedding]) -> logit, BCE on "rated >= threshold"

The experts sit on the user side because retrieval must stay a two-tower dot product: a
user's top-k over the catalogue is then one matmul (or one ScaNN index), and every task's gate
reads only the user. Experts end in a ReLU, so the retrieval query is a linear projection P of
the retrieval mixture (a query in the positive orthant could not point away from an item);
with identity experts (no layers) the query is the user embedding itself, as in the
tutorial. The item meets each task's user vector in that task's own head, as the
rating model of the TFRS multi-task tutorial meets the concatenated user and movie
embeddings. The families differ only in their experts (`tf_attnrec.layers.MultiGateExperts`):

| model | experts | each task's gate |
|---|---|---|
| `shared_bottom` | one shared network (none by default: the TFRS tutorial's model) | fixed at 1 |
| `mmoe` (Ma et al., KDD 2018) | `num_experts` shared | softmax over all experts |
| `ple` (Tang et al., RecSys 2020) | shared + per-task experts, `num_levels` levels | softmax over its own and the shared ones |

The loss is `retrieval_weight * L_retrieval + rating_weight * L_rating + click_weight * L_click`;
the weights are config keys. `call` returns every head's output and the gate weights
(`"task_gates"`, `[B, 3, experts per gate]`: which experts each task attends to).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs

from tf_attnrec.data.rating_split import CLICK, ITEM, RATING, USER
from tf_attnrec.data.vocabulary import FIRST_ID
from tf_attnrec.layers.checks import check_positive_int
from tf_attnrec.layers.experts import MultiGateExperts
from tf_attnrec.models.base import RecommenderModel
from tf_attnrec.models.registry import register_model

#: The tasks, in the order of the experts' outputs and gates.
TASKS = ("retrieval", "rating", "click")


def _mlp(units: Sequence[int], name: str) -> tf.keras.Sequential:
    """ReLU layers of `units`, then one linear output."""
    return tf.keras.Sequential([*(tf.keras.layers.Dense(u, activation="relu") for u in units),
                                tf.keras.layers.Dense(1)], name=name)


class MultiTaskModel(RecommenderModel):
    """Base class: user and item embeddings, gated experts over the user, three task heads.

    Subclasses choose the experts and add their own config keys.

    Args:
        vocab_size: item ids including padding and OOV (`num_items + 2`).
        num_users: known users (the user table has `num_users + 2` rows: padding, OOV, users).
        experts: `MultiGateExperts` arguments besides `num_tasks` (from the subclass).
        embedding_dim: D, the user and item embedding size (and the retrieval query's).
        rating_units: hidden layers of the rating head.
        click_units: hidden layers of the click head.
        retrieval_weight, rating_weight, click_weight: the tasks' weights in the loss (>= 0).
        logq_correction: subtract log(item frequency in training) from the in-batch logits
            (Yi et al., RecSys 2019, sampling-bias-corrected softmax): an item is an in-batch
            negative as often as it is popular, so without it the loss pushes popular items down
            more than a softmax over the whole catalogue would. Off in the TFRS tutorial.
        **kwargs: `tf.keras.Model` arguments.

    Features: `{"user", "item": int32 [B], "rating", "click": float32 [B]}`
    (`tf_attnrec.data.rating_split.RatingSplit.dataset`).
    """

    max_length = 0  # no history: users are known by id

    def __init__(self, vocab_size: int, num_users: int, experts: Mapping[str, Any], embedding_dim: int = 32,
                 rating_units: Sequence[int] = (256, 128), click_units: Sequence[int] = (256, 128),
                 retrieval_weight: float = 1.0, rating_weight: float = 1.0, click_weight: float = 1.0,
                 logq_correction: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.vocab_size = check_positive_int(owner, "`vocab_size` (num_items + 2)", vocab_size, minimum=FIRST_ID + 1)
        self.num_users = check_positive_int(owner, "`num_users`", num_users)
        self.embedding_dim = check_positive_int(owner, "`embedding_dim`", embedding_dim)
        self.rating_units = tuple(check_positive_int(owner, "`rating_units` entries", u) for u in rating_units)
        self.click_units = tuple(check_positive_int(owner, "`click_units` entries", u) for u in click_units)
        weights = {"retrieval_weight": retrieval_weight, "rating_weight": rating_weight, "click_weight": click_weight}
        for key, value in weights.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{owner}: `{key}` must be a number >= 0; got {value!r}.")
        if not any(weights.values()):
            raise ValueError(f"{owner}: every task weight is 0, so nothing would be trained; set one above 0.")
        self.retrieval_weight, self.rating_weight, self.click_weight = (float(v) for v in weights.values())
        if not isinstance(logq_correction, bool):
            raise ValueError(f"{owner}: `logq_correction` must be a bool; got {logq_correction!r}.")
        self.logq_correction = logq_correction

        self.user_embedding = tf.keras.layers.Embedding(self.num_users + FIRST_ID, embedding_dim, name="user_embedding")
        self.item_embedding = tf.keras.layers.Embedding(self.vocab_size, embedding_dim, name="item_embedding")
        self.experts = MultiGateExperts(num_tasks=len(TASKS), name="experts", **experts)
        self.query_projection = (tf.keras.layers.Dense(embedding_dim, use_bias=False, name="query_projection")
                                 if tuple(experts.get("expert_units", ())) else None)
        self.rating_head = _mlp(self.rating_units, "rating_head")
        self.click_head = _mlp(self.click_units, "click_head")
        self.retrieval_task = tfrs.tasks.Retrieval(name="retrieval")
        # The rating and click losses per example, averaged in `compute_loss` (Keras refuses its
        # batch-averaging reductions in a custom training step under a tf.distribute strategy).
        per_example = tf.keras.losses.Reduction.NONE
        self.rating_task = tfrs.tasks.Ranking(loss=tf.keras.losses.MeanSquaredError(reduction=per_example),
                                              metrics=[tf.keras.metrics.RootMeanSquaredError(name="rmse")],
                                              name="rating")
        self.click_task = tfrs.tasks.Ranking(loss=tf.keras.losses.BinaryCrossentropy(from_logits=True,
                                                                                     reduction=per_example),
                                             metrics=[tf.keras.metrics.AUC(from_logits=True, name="auc")],
                                             name="click")
        # What serving answers for a user (or item) it has never seen: the training rows'
        # item counts (the most popular items), mean rating and click rate. Set from the
        # training rows by `set_priors`, saved with the weights.
        self.item_counts = self.add_weight("item_counts", shape=[self.vocab_size], initializer="zeros",
                                           trainable=False)
        self.rating_prior = self.add_weight("rating_prior", shape=[], initializer="zeros", trainable=False)
        self.click_prior = self.add_weight("click_prior", shape=[], initializer="zeros", trainable=False)

    def set_priors(self, item_counts: Any, mean_rating: float, click_rate: float) -> None:
        """Stores the training rows' item counts [vocab_size], mean rating and click rate."""
        counts = tf.convert_to_tensor(item_counts, tf.float32)
        if tuple(counts.shape) != (self.vocab_size,):
            raise ValueError(f"set_priors: item_counts must have shape [{self.vocab_size}]; got {tuple(counts.shape)}.")
        self.item_counts.assign(counts)
        self.rating_prior.assign(float(mean_rating))
        self.click_prior.assign(float(click_rate))

    # ------------------------------------------------------------------ the towers
    def user_vectors(self, users: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        """`{"task_outputs": [B, 3, U], "task_gates": [B, 3, n]}` for user ids [B]."""
        return self.experts(self.user_embedding(users), training=training)

    def query(self, task_vectors: tf.Tensor) -> tf.Tensor:
        """[B, D] retrieval queries from the users' task vectors [B, 3, U]."""
        retrieval = task_vectors[:, 0]
        return retrieval if self.query_projection is None else self.query_projection(retrieval)

    def heads(self, task_vectors: tf.Tensor, items: tf.Tensor) -> dict[str, tf.Tensor]:
        """Every head's output for users' task vectors [B, 3, U] and item ids [B]."""
        item_vectors = self.item_embedding(items)
        rating = self.rating_head(tf.concat([task_vectors[:, 1], item_vectors], axis=-1))[:, 0]
        click_logit = self.click_head(tf.concat([task_vectors[:, 2], item_vectors], axis=-1))[:, 0]
        return {"retrieval_score": tf.reduce_sum(self.query(task_vectors) * item_vectors, axis=-1),
                "rating": rating, "click_logit": click_logit, "click_probability": tf.sigmoid(click_logit)}

    def call(self, features: Mapping[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        """Every head's output and the gates for `{"user", "item"}` ids [B]."""
        users = self.user_vectors(features[USER], training=training)
        return {**self.heads(users["task_outputs"], features[ITEM]), "task_gates": users["task_gates"]}

    def item_vectors(self) -> tf.Tensor:
        """[vocab_size, D]: the retrieval candidates (rows 0 and 1 are padding and OOV)."""
        return self.item_embedding.embeddings

    def catalogue_scores(self, task_vectors: tf.Tensor) -> tf.Tensor:
        """[B, vocab_size] retrieval scores of every item id from users' task vectors [B, 3, U]."""
        return tf.matmul(self.query(task_vectors), self.item_vectors(), transpose_b=True)

    def retrieval_scores(self, users: tf.Tensor) -> tf.Tensor:
        """[B, vocab_size] retrieval scores of every item id for user ids [B]."""
        return self.catalogue_scores(self.user_vectors(users)["task_outputs"])

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        users = self.user_vectors(features[USER], training=training)
        vectors = users["task_outputs"]
        outputs = self.heads(vectors, features[ITEM])
        loss = tf.constant(0.0)
        # A task of weight 0 adds nothing to the gradient: skip its loss in training (the
        # in-batch softmax is most of a step), keep it in validation for its metrics. Its
        # output still enters as 0 * sum, so its variables get zero gradients rather than none
        # (which Keras would warn about at every trace).
        query = self.query(vectors)
        if self.retrieval_weight or not training:
            sampling_probability = None
            if self.logq_correction:  # the training rows' item frequencies (`set_priors`)
                counts = tf.gather(self.item_counts, features[ITEM])
                sampling_probability = tf.maximum(counts, 1.0) / tf.maximum(tf.reduce_sum(self.item_counts), 1.0)
            # In-batch softmax over the batch's items, as the TFRS tutorial trains it; the
            # full-catalogue top-k accuracy is measured after training (`evaluate_multitask`).
            retrieval = self.retrieval_task(query, self.item_embedding(features[ITEM]),
                                            candidate_sampling_probability=sampling_probability,
                                            compute_metrics=False)
            # A sum over the batch (TFRS's reduction); `train_step` divides each replica's loss
            # by the replicas, which is right for means: times replicas keeps the global sum.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            loss += self.retrieval_weight * retrieval * replicas
        else:
            loss += 0.0 * tf.reduce_sum(query)
        if self.rating_weight or not training:
            rating = self.rating_task(labels=features[RATING], predictions=outputs["rating"],
                                      compute_metrics=not training)
            loss += self.rating_weight * tf.reduce_mean(rating)
        else:
            loss += 0.0 * tf.reduce_sum(outputs["rating"])
        if self.click_weight or not training:
            click = self.click_task(labels=features[CLICK], predictions=outputs["click_logit"],
                                    compute_metrics=not training)
            loss += self.click_weight * tf.reduce_mean(click)
        else:
            loss += 0.0 * tf.reduce_sum(outputs["click_logit"])
        return loss

    def build_variables(self) -> None:
        ids = tf.constant([FIRST_ID], tf.int32)
        self({USER: ids, ITEM: ids})

    def get_config(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size, "num_users": self.num_users, "embedding_dim": self.embedding_dim,
                "rating_units": list(self.rating_units), "click_units": list(self.click_units),
                "retrieval_weight": self.retrieval_weight, "rating_weight": self.rating_weight,
                "click_weight": self.click_weight, "logq_correction": self.logq_correction}


def _units(owner: str, name: str, units: Sequence[int]) -> tuple[int, ...]:
    return tuple(check_positive_int(owner, f"`{name}` entries", u) for u in units)


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class SharedBottomModel(MultiTaskModel):
    """One shared user network under the three heads; with no layers, the TFRS tutorial's model.

    Args:
        bottom_units: layers of the shared network; `()` uses the user embedding as it is.
        **kwargs: `MultiTaskModel` arguments.
    """

    def __init__(self, vocab_size: int, num_users: int, bottom_units: Sequence[int] = (), **kwargs: Any) -> None:
        units = _units(type(self).__name__, "bottom_units", bottom_units)
        experts = {"num_shared_experts": 1, "num_task_experts": 0, "num_levels": 1, "expert_units": units}
        super().__init__(vocab_size, num_users, experts, **kwargs)
        self.bottom_units = units

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bottom_units": list(self.bottom_units)}


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class MMoEModel(MultiTaskModel):
    """Multi-gate mixture of experts (Ma et al., KDD 2018): shared experts, one softmax gate per task.

    Args:
        num_experts: shared experts.
        expert_units: each expert's layers.
        expert_dropout: dropout after each expert layer, in training.
        **kwargs: `MultiTaskModel` arguments.
    """

    def __init__(self, vocab_size: int, num_users: int, num_experts: int = 4, expert_units: Sequence[int] = (64, 32),
                 expert_dropout: float = 0.0, **kwargs: Any) -> None:
        units = _units(type(self).__name__, "expert_units", expert_units)
        experts = {"num_shared_experts": num_experts, "num_task_experts": 0, "num_levels": 1,
                   "expert_units": units, "dropout": expert_dropout}
        super().__init__(vocab_size, num_users, experts, **kwargs)
        self.num_experts, self.expert_units, self.expert_dropout = num_experts, units, float(expert_dropout)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_experts": self.num_experts, "expert_units": list(self.expert_units),
                "expert_dropout": self.expert_dropout}


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class PLEModel(MultiTaskModel):
    """Progressive layered extraction (Tang et al., RecSys 2020): shared and per-task experts, stacked.

    Args:
        num_levels: extraction levels (the last one's gates are `"task_gates"`).
        num_shared_experts: shared experts per level.
        num_task_experts: experts per task and level.
        expert_units: each expert's layers.
        expert_dropout: dropout after each expert layer, in training.
        **kwargs: `MultiTaskModel` arguments.
    """

    def __init__(self, vocab_size: int, num_users: int, num_levels: int = 2, num_shared_experts: int = 2,
                 num_task_experts: int = 1, expert_units: Sequence[int] = (64, 32), expert_dropout: float = 0.0,
                 **kwargs: Any) -> None:
        units = _units(type(self).__name__, "expert_units", expert_units)
        experts = {"num_shared_experts": num_shared_experts, "num_task_experts": num_task_experts,
                   "num_levels": num_levels, "expert_units": units, "dropout": expert_dropout}
        super().__init__(vocab_size, num_users, experts, **kwargs)
        self.num_levels, self.num_shared_experts, self.num_task_experts = num_levels, num_shared_experts, num_task_experts
        self.expert_units, self.expert_dropout = units, float(expert_dropout)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_levels": self.num_levels, "num_shared_experts": self.num_shared_experts,
                "num_task_experts": self.num_task_experts, "expert_units": list(self.expert_units),
                "expert_dropout": self.expert_dropout}


_TINY = {"embedding_dim": 8, "rating_units": [8], "click_units": [8]}


@register_model("multitask", (SharedBottomModel,), tiny=_TINY)
def shared_bottom(vocab_size: int, num_users: int, **config: Any) -> SharedBottomModel:
    """Shared bottom: retrieval, rating and click heads over one user network (the TFRS multi-task tutorial)."""
    return SharedBottomModel(vocab_size, num_users, name="shared_bottom", **config)


@register_model("multitask", (MMoEModel,), tiny={**_TINY, "num_experts": 2, "expert_units": [8]})
def mmoe(vocab_size: int, num_users: int, **config: Any) -> MMoEModel:
    """MMoE: each task's softmax gate attends over shared user experts (retrieval, rating, click)."""
    return MMoEModel(vocab_size, num_users, name="mmoe", **config)


@register_model("multitask", (PLEModel,),
                tiny={**_TINY, "num_shared_experts": 1, "num_task_experts": 1, "expert_units": [8]})
def ple(vocab_size: int, num_users: int, **config: Any) -> PLEModel:
    """PLE: progressive extraction with shared and per-task user experts, gated per task."""
    return PLEModel(vocab_size, num_users, name="ple", **config)


__all__ = ["TASKS", "MMoEModel", "MultiTaskModel", "PLEModel", "SharedBottomModel"]
