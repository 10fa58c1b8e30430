"""tf_attnrec.data: readers, named datasets, vocabularies, splits and tf.data pipelines.

Flow: files, `load_dataset(name)` (registry: `DatasetSpec`, `register_dataset`) or a
`DataSource` (a named dataset or a user's log, serializable) -> interactions DataFrame ->
`leave_one_out_split` / `temporal_split` / `ratio_split` (+ `Vocabulary`) -> `next_item_dataset` /
`evaluation_dataset` / `ranking_examples_dataset`.
"""

from tf_attnrec.data.cold_items import ColdItemSplit, cold_item_split
from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.datasets import (
    DATA_DIR_ENV,
    DATASET_REGISTRY,
    DatasetLocation,
    DatasetSpec,
    FormRecipe,
    LocalForm,
    get_dataset_spec,
    list_datasets,
    load_dataset,
    locate_dataset,
    register_dataset,
)
from tf_attnrec.data.downloads import (
    CACHE_DIR_ENV,
    DATASET_SOURCES,
    ArchiveSource,
    default_cache_dir,
    download_file,
    fetch_archive,
)
from tf_attnrec.data.errors import ChecksumMismatchError, DataFormatError, DownloadError
from tf_attnrec.data.graph import InteractionGraph, NeighbourSampler
from tf_attnrec.data.item_content import ItemContent
from tf_attnrec.data.item_vectors import ItemVectors, read_item_vectors
from tf_attnrec.data.pipelines import (
    evaluation_dataset,
    item_set_dataset,
    next_item_dataset,
    pad_sequences,
    ranking_examples_dataset,
    sample_negatives,
)
from tf_attnrec.data.preprocessing import sasrec_form
from tf_attnrec.data.ratio_split import RatioSplit, ratio_split
from tf_attnrec.data.rating_split import RatingSplit, rating_split
from tf_attnrec.data.readers import (
    read_interactions,
    read_movielens_1m,
    read_movielens_100k,
    read_movielens_movies,
    read_movielens_ratings,
    read_movielens_users,
    read_sasrec_movielens_1m,
    read_sasrec_txt,
)
from tf_attnrec.data.sources import DataSource
from tf_attnrec.data.splits import (
    EvaluationInputs,
    SequenceSplit,
    TemporalSplit,
    group_sequences,
    k_core_filter,
    leave_one_out_split,
    sort_chronologically,
    temporal_split,
)
from tf_attnrec.data.vocabulary import OOV_ID, PAD_ID, Vocabulary

__all__ = [
    "ColdItemSplit",
    "ItemContent",
    "ItemVectors",
    "cold_item_split",
    "read_item_vectors",
    "InteractionGraph",
    "NeighbourSampler",
    "RatingSplit",
    "RatioSplit",
    "rating_split",
    "ratio_split",
    "CACHE_DIR_ENV",
    "DATASET_REGISTRY",
    "DATASET_SOURCES",
    "DATA_DIR_ENV",
    "ArchiveSource",
    "ChecksumMismatchError",
    "DataFormatError",
    "DataSource",
    "Dataset",
    "DatasetLocation",
    "DatasetSpec",
    "DownloadError",
    "EvaluationInputs",
    "FormRecipe",
    "LocalForm",
    "OOV_ID",
    "PAD_ID",
    "SequenceSplit",
    "TemporalSplit",
    "Vocabulary",
    "default_cache_dir",
    "download_file",
    "evaluation_dataset",
    "item_set_dataset",
    "fetch_archive",
    "get_dataset_spec",
    "group_sequences",
    "k_core_filter",
    "leave_one_out_split",
    "list_datasets",
    "load_dataset",
    "locate_dataset",
    "next_item_dataset",
    "pad_sequences",
    "ranking_examples_dataset",
    "read_interactions",
    "read_movielens_1m",
    "read_movielens_100k",
    "read_movielens_movies",
    "read_movielens_ratings",
    "read_movielens_users",
    "read_sasrec_movielens_1m",
    "read_sasrec_txt",
    "register_dataset",
    "sample_negatives",
    "sasrec_form",
    "sort_chronologically",
    "temporal_split",
]
