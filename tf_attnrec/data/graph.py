"""The user-item interaction graph for graph recommenders (LightGCN, GAT, GraphSAGE).

`InteractionGraph` holds the bipartite graph of TRAINING interactions as deduplicated edge
lists and turns it into the sparse adjacency matrices the layers multiply by;
`NeighbourSampler` draws fixed-size neighbourhoods from it for GraphSAGE. Everything is
vectorised with numpy (no Python loop over edges), so ML-1M's million edges build in well
under a second.

Node indices are 0-based and dense: users are rows of the split (0 .. U-1) and item node
`i` is model item id `i + 2`, because ids 0 (padding) and 1 (OOV) are not items.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from typing import TYPE_CHECKING, Any, Callable, Union

import numpy as np
import tensorflow as tf

from tf_attnrec.data.splits import SequenceSplit
from tf_attnrec.data.vocabulary import FIRST_ID

if TYPE_CHECKING:
    from tf_attnrec.data.ratio_split import RatioSplit


def _node_indices(values: Any, count: int, name: str, count_name: str) -> np.ndarray:
    """`values` as a 1-D int64 array, or a ValueError naming `name` if one is out of range."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}.")
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)  # np.asarray([]) is float64; an empty list is fine
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer node indices, got dtype {array.dtype}.")
    array = array.astype(np.int64)
    bad = np.flatnonzero((array < 0) | (array >= count))
    if len(bad):
        raise ValueError(
            f"{name} has {int(array[bad[0]])} at position {int(bad[0])} ({len(bad)} out of range "
            f"in all); indices must lie in [0, {count_name}={count})."
        )
    return array


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    return int(value)


def _sparse(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> tf.SparseTensor:
    """A float32 SparseTensor from entries the caller already put in row-major order."""
    indices = np.stack([rows, cols], axis=1).astype(np.int64).reshape(-1, 2)
    return tf.SparseTensor(indices, values.astype(np.float32), dense_shape=shape)


@dataclasses.dataclass(frozen=True, eq=False)
class InteractionGraph:
    """The bipartite user-item graph of training interactions, one edge per (user, item) pair.

    Edges are deduplicated (a repeated interaction is one edge: LightGCN's adjacency is 0/1)
    and sorted by user, then item. The index arrays are read-only, so the frozen graph can be
    shared. Equality is identity (`eq=False`): comparing arrays element-wise has no single
    truth value.

    Args:
        num_users: U, the number of user nodes (users without edges included).
        num_items: I, the number of item nodes (items without edges included).
        user_index: int32 [E], the user node of each edge, in [0, U).
        item_index: int32 [E], the item node of each edge, in [0, I).

    Construct with `from_pairs` or `from_sequence_split`; the constructor validates,
    deduplicates and sorts whatever it is given, so the invariants hold either way.

    Example:
        ```python
        graph = InteractionGraph.from_sequence_split(leave_one_out_split(ratings))
        adjacency = graph.adjacency()  # tf.SparseTensor [U + I, U + I], D^-1/2 A D^-1/2
        ```
    """

    num_users: int
    num_items: int
    user_index: np.ndarray
    item_index: np.ndarray

    def __post_init__(self):
        num_users = _count(self.num_users, "num_users")
        num_items = _count(self.num_items, "num_items")
        users = _node_indices(self.user_index, num_users, "user_index", "num_users")
        items = _node_indices(self.item_index, num_items, "item_index", "num_items")
        if len(users) != len(items):
            raise ValueError(
                f"user_index and item_index must have one entry per edge; got {len(users)} and {len(items)}."
            )
        # One int64 key per pair; sorting the keys orders edges by (user, item) and puts
        # repeats side by side. (np.unique does the same but, with NumPy's hash-based unique,
        # takes about 1 s on ML-1M where sort + compare takes 20 ms.)
        width = max(num_items, 1)
        keys = np.sort(users * width + items)
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys
        users, items = (keys // width).astype(np.int32), (keys % width).astype(np.int32)
        users.setflags(write=False)
        items.setflags(write=False)
        # A frozen dataclass normalises its own fields through object.__setattr__.
        object.__setattr__(self, "num_users", num_users)
        object.__setattr__(self, "num_items", num_items)
        object.__setattr__(self, "user_index", users)
        object.__setattr__(self, "item_index", items)

    @classmethod
    def from_pairs(cls, users: Any, items: Any, num_users: int, num_items: int) -> "InteractionGraph":
        """Builds the graph from aligned arrays of user and item node indices.

        Args:
            users: int [N], the user node of each interaction, in [0, num_users).
            items: int [N], the item node of each interaction, in [0, num_items).
            num_users: U.
            num_items: I.

        Returns:
            The `InteractionGraph`; repeated pairs become one edge.

        Raises:
            ValueError: an index is negative or not below its count (the message names
                `user_index` or `item_index`), or the arrays differ in length.

        Example:
            ```python
            graph = InteractionGraph.from_pairs([0, 0, 1], [2, 2, 0], num_users=2, num_items=3)
            graph.num_edges  # 2
            ```
        """
        return cls(num_users, num_items, users, items)

    @classmethod
    def from_sequence_split(cls, split: Union[SequenceSplit, "RatioSplit"]) -> "InteractionGraph":
        """Builds the graph from the training items of a split (leave-one-out or ratio).

        Only `split.train` is read, never `validation_target` or `test_target`, so no held-out
        interaction becomes an edge (message passing would otherwise leak the answer into the
        user's embedding). User node = row of the split; item node = model id - 2. OOV ids
        (1, items unknown to the vocabulary) are left out: one node for many different unknown
        items would join users who share nothing.

        Args:
            split: a `SequenceSplit` (`leave_one_out_split`) or a `RatioSplit` (`ratio_split`,
                whose `validation` and `test` items are never read either).

        Returns:
            The `InteractionGraph` with U = `split.num_users` and I = `split.vocabulary.num_items`.

        Example:
            ```python
            graph = InteractionGraph.from_sequence_split(leave_one_out_split(read_sasrec_txt(path)))
            graph.num_users, graph.num_items  # (6040, 3416) on ML-1M
            ```
        """
        lengths = np.fromiter((len(s) for s in split.train), dtype=np.int64, count=len(split.train))
        users = np.repeat(np.arange(len(split.train), dtype=np.int64), lengths)
        ids = np.concatenate(split.train).astype(np.int64) if len(split.train) else np.zeros(0, np.int64)
        known = ids >= FIRST_ID
        return cls(split.num_users, split.vocabulary.num_items, users[known], ids[known] - FIRST_ID)

    def save(self, path: Union[str, os.PathLike]) -> pathlib.Path:
        """Writes the edge lists and node counts to one `.npz` file (a run stores its graph)."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(path.name + ".partial.npz")
        np.savez_compressed(staging, num_users=self.num_users, num_items=self.num_items,
                            user_index=self.user_index, item_index=self.item_index)
        os.replace(staging, path)  # atomic: a reader sees the old file or the whole new one
        return path

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "InteractionGraph":
        """Reads a graph written by `save` (FileNotFoundError / ValueError naming the file)."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the run has no saved training graph.")
        with np.load(path) as stored:
            missing = {"num_users", "num_items", "user_index", "item_index"} - set(stored.files)
            if missing:
                raise ValueError(f"{path}: not an InteractionGraph file (missing {sorted(missing)}).")
            return cls(int(stored["num_users"]), int(stored["num_items"]), stored["user_index"], stored["item_index"])

    @property
    def num_edges(self) -> int:
        """E, the number of distinct (user, item) edges."""
        return len(self.user_index)

    def user_degree(self) -> np.ndarray:
        """int64 [U]: the number of distinct items of each user (0 for users without edges)."""
        return np.bincount(self.user_index, minlength=self.num_users)

    def item_degree(self) -> np.ndarray:
        """int64 [I]: the number of distinct users of each item (0 for items without edges)."""
        return np.bincount(self.item_index, minlength=self.num_items)

    @functools.cached_property
    def _by_item(self) -> np.ndarray:
        """The edge order sorted by item, then user (edges are stored by user, then item).

        A stable sort on the item alone keeps users ascending within each item. Cached: the
        adjacency blocks and `NeighbourSampler` all need it (cached_property writes the
        instance __dict__ directly, which a frozen dataclass allows).
        """
        return np.argsort(self.item_index, kind="stable")

    def neighbour_lists(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        """CSR form of one side's neighbours: node n's are `neighbours[indptr[n]:indptr[n + 1]]`.

        Args:
            side: "users" (each user's items, ascending) or "items" (each item's users, ascending).

        Returns:
            (indptr int64 [n + 1], neighbours int32 [E]).
        """
        if side == "users":  # edges are already sorted by user
            return np.concatenate([[0], np.cumsum(self.user_degree())]).astype(np.int64), self.item_index
        if side == "items":
            return np.concatenate([[0], np.cumsum(self.item_degree())]).astype(np.int64), self.user_index[self._by_item]
        raise ValueError(f"side must be 'users' or 'items'; got {side!r}.")

    def _edge_values(self, normalize: bool) -> np.ndarray:
        """float64 [E]: 1/sqrt(d_u d_i) per edge, or 1 without normalisation.

        Every node on an edge has degree >= 1, so the division is safe; isolated nodes have no
        edge and so no value at all.
        """
        if not normalize:
            return np.ones(self.num_edges)
        du = self.user_degree()[self.user_index].astype(np.float64)
        di = self.item_degree()[self.item_index].astype(np.float64)
        return 1.0 / np.sqrt(du * di)

    def adjacency(self, normalize: bool = True) -> tf.SparseTensor:
        """The symmetric (U+I) x (U+I) adjacency of the bipartite graph, users first (LightGCN).

        Args:
            normalize: True gives D^-1/2 A D^-1/2 (value 1/sqrt(d_u d_i) at (u, U+i) and
                (U+i, u)); False gives the 0/1 matrix A.

        Returns:
            float32 `tf.SparseTensor` with 2E entries in canonical (row-major) order; rows of
            isolated nodes are empty.

        Example:
            ```python
            embeddings = tf.sparse.sparse_dense_matmul(graph.adjacency(), embeddings)
            ```
        """
        values = self._edge_values(normalize)
        by_item = self._by_item
        # Canonical order without a sort of 2E entries: user rows (< U) come first, already
        # sorted by (user, item); item rows (>= U) follow in (item, user) order.
        users = self.user_index.astype(np.int64)
        items = self.item_index.astype(np.int64) + self.num_users
        size = self.num_users + self.num_items
        return _sparse(
            np.concatenate([users, items[by_item]]),
            np.concatenate([items, users[by_item]]),
            np.concatenate([values, values[by_item]]),
            (size, size),
        )

    def user_item_adjacency(self, normalize: bool = True) -> tf.SparseTensor:
        """The [U, I] user-to-item block of `adjacency`, for layers that attend users over items.

        Args:
            normalize: as in `adjacency`; False gives 0/1 values (an attention mask).

        Returns:
            float32 `tf.SparseTensor` [U, I] in canonical order.
        """
        return _sparse(  # edges are stored in (user, item) order, which is canonical here
            self.user_index, self.item_index, self._edge_values(normalize), (self.num_users, self.num_items)
        )

    def item_user_adjacency(self, normalize: bool = True) -> tf.SparseTensor:
        """The [I, U] transpose of `user_item_adjacency`, for layers that attend items over users.

        Args:
            normalize: as in `adjacency`.

        Returns:
            float32 `tf.SparseTensor` [I, U] in canonical order.
        """
        by_item = self._by_item
        return _sparse(
            self.item_index[by_item], self.user_index[by_item],
            self._edge_values(normalize)[by_item], (self.num_items, self.num_users),
        )


class NeighbourSampler:
    """Fixed-size neighbour sampling over an `InteractionGraph`, for GraphSAGE.

    Each node gets `num_samples` (S) neighbours drawn uniformly without replacement; a node
    with fewer than S neighbours gets all of them (in random order) and then padding
    (neighbour 0, mask False); a node without neighbours gets an all-False mask. Draws come
    from one numpy Generator seeded once, so the same seed and the same sequence of calls give
    the same samples.

    Args:
        graph: the `InteractionGraph` to sample from.
        num_samples: S >= 1, the neighbours per node.
        seed: the random seed.

    Example:
        ```python
        sampler = NeighbourSampler(graph, num_samples=10, seed=0)
        items, mask = sampler.sample_items_of_users(np.array([0, 5, 7]))  # [3, 10] each
        ```
    """

    def __init__(self, graph: InteractionGraph, num_samples: int, seed: int):
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}.")
        self.graph = graph
        self.num_samples = int(num_samples)
        self._rng = np.random.default_rng(seed)
        # CSR layouts, built once.
        self._user_indptr, self._user_neighbours = graph.neighbour_lists("users")
        self._item_indptr, self._item_neighbours = graph.neighbour_lists("items")

    def sample_items_of_users(self, user_indices: Any) -> tuple[np.ndarray, np.ndarray]:
        """Samples S item neighbours of each user.

        Args:
            user_indices: int [B], user nodes in [0, U) (repeats allowed; each is drawn anew).

        Returns:
            (neighbours, mask): int32 [B, S] item nodes and bool [B, S], True where the entry
            is a real neighbour.
        """
        nodes = _node_indices(user_indices, self.graph.num_users, "user_indices", "num_users")
        return self._sample(nodes, self._user_indptr, self._user_neighbours)

    def sample_users_of_items(self, item_indices: Any) -> tuple[np.ndarray, np.ndarray]:
        """Samples S user neighbours of each item.

        Args:
            item_indices: int [B], item nodes in [0, I) (model id - 2).

        Returns:
            (neighbours, mask): int32 [B, S] user nodes and bool [B, S], as in
            `sample_items_of_users`.
        """
        nodes = _node_indices(item_indices, self.graph.num_items, "item_indices", "num_items")
        return self._sample(nodes, self._item_indptr, self._item_neighbours)

    def _sample(self, nodes: np.ndarray, indptr: np.ndarray, neighbours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Give every neighbour of every node in the batch a uniform random key and keep each
        # node's S smallest keys: that is a uniform draw without replacement, for all nodes in
        # one sort, with work proportional to the batch's neighbours (not B x max degree).
        starts = indptr[nodes]
        degrees = indptr[nodes + 1] - starts
        owner = np.repeat(np.arange(len(nodes), dtype=np.int64), degrees)
        first = np.cumsum(degrees) - degrees  # where each node's run starts in `owner`
        rank = np.arange(len(owner)) - first[owner]  # 0, 1, ... within each node's run
        # Owner in the high 32 bits, a random 32-bit key in the low ones: one integer argsort
        # orders by (owner, key), several times faster than np.lexsort on the two arrays.
        random_keys = self._rng.integers(0, 2**32, size=len(owner), dtype=np.int64)
        order = np.argsort((owner << 32) | random_keys)  # runs stay in place
        # After sorting, position p still belongs to owner[p] (owner is sorted), and rank[p] is
        # its place in that node's random order.
        keep = rank < self.num_samples
        picked = order[keep]  # positions (in the unsorted runs) of the kept neighbours
        sampled = np.zeros((len(nodes), self.num_samples), dtype=np.int32)
        mask = np.zeros((len(nodes), self.num_samples), dtype=bool)
        rows, cols = owner[keep], rank[keep]
        sampled[rows, cols] = neighbours[starts[owner[picked]] + rank[picked]]
        mask[rows, cols] = True
        return sampled, mask


def sample_with_replacement(indptr: tf.Tensor, neighbours: tf.Tensor, nodes: tf.Tensor,
                            num_samples: int, uniform: Callable = tf.random.uniform) -> tuple[tf.Tensor, tf.Tensor]:
    """In-graph neighbour sampling for training steps: S draws with replacement per node.

    What GraphSAGE's reference sampler does (fixed-size lists drawn with replacement); as
    TensorFlow ops it runs inside the compiled step, where `NeighbourSampler` (NumPy, without
    replacement) would need a Python call per batch. A node without neighbours gets an
    all-False mask. Draws come from `uniform`: a model passes its `RandomDraws.uniform`, whose
    state a training backup restores (`tf.random.uniform`, the default, is repeatable under
    `tf.keras.utils.set_random_seed`, but not across a resume).

    Args:
        indptr: int64 [n + 1] and
        neighbours: int32 [E + 1], the CSR lists of `InteractionGraph.neighbour_lists` with one
            trailing entry, so an empty graph or a last node without neighbours still has an
            index to read (it is masked).
        nodes: int [B] nodes to sample for.
        num_samples: S.
        uniform: `uniform(shape, dtype=...)`, floats in [0, 1).

    Returns:
        (sampled int32 [B, S], mask bool [B, S]).
    """
    nodes = tf.cast(nodes, tf.int64)
    starts = tf.gather(indptr, nodes)
    degrees = tf.gather(indptr, nodes + 1) - starts
    draws = uniform(tf.stack([tf.shape(nodes)[0], num_samples]), dtype=tf.float32)
    offsets = tf.cast(draws * tf.cast(degrees, tf.float32)[:, tf.newaxis], tf.int64)
    offsets = tf.minimum(offsets, tf.maximum(degrees - 1, 0)[:, tf.newaxis])  # float rounding at 1.0
    sampled = tf.gather(neighbours, starts[:, tf.newaxis] + offsets)
    mask = tf.broadcast_to((degrees > 0)[:, tf.newaxis], tf.shape(sampled))
    return sampled, mask
