"""Names of the click-style ranking features, shared by the pipeline and the models.

One place defines the feature dict a ranking model reads, so the `tf.data` pipeline
(`tf_attnrec.data.ranking_examples`), the feature embedding and a later export signature cannot
drift apart. Every categorical id follows the project convention: 0 = padding / missing,
1 = out-of-vocabulary, real values from 2.
"""

from __future__ import annotations

# Per example, int32 [B].
USER_GENDER = "user_gender"
USER_AGE = "user_age"
USER_OCCUPATION = "user_occupation"
USER_FEATURES = (USER_GENDER, USER_AGE, USER_OCCUPATION)

# The candidate item: id [B], genres [B, G] (0-padded), release year [B].
ITEM_ID = "item_id"
ITEM_GENRES = "item_genres"
ITEM_YEAR = "item_year"

# The behaviour history, most recent last, left-padded with item id 0: [B, L], [B, L, G], [B, L].
HISTORY_ITEM_IDS = "history_item_ids"
HISTORY_GENRES = "history_genres"
HISTORY_YEAR = "history_year"

MODEL_FEATURES = (
    *USER_FEATURES, ITEM_ID, ITEM_GENRES, ITEM_YEAR, HISTORY_ITEM_IDS, HISTORY_GENRES, HISTORY_YEAR,
)

# Not model inputs: the click label (float32 [B]) and the user's row (int32 [B], for GAUC).
LABEL = "label"
USER_INDEX = "user_index"

# Keys of `FeatureVocabularies.sizes()`: embedding-table rows per categorical feature.
VOCABULARY_KEYS = ("item", "genre", "year", "gender", "age", "occupation")
