"""Slow, obviously-correct references (plain Python loops) for the evaluation metrics.

Definitions are written out literally from the metric descriptions, independent of the
vectorised implementations (e.g. Gini via mean absolute difference, AUC via all pairs).
"""

from __future__ import annotations

import math


def rank(scores_row, target, excluded=()):
    """1 + number of other candidates (ids >= 2, not excluded) scoring >= the target."""
    excluded = set(int(i) for i in excluded) - {int(target)}
    better = 0
    for item in range(2, len(scores_row)):
        if item == target or item in excluded:
            continue
        if scores_row[item] >= scores_row[target]:
            better += 1
    return better + 1


def ranking_metrics(ranks, ks):
    out = {}
    n = len(ranks)
    for k in ks:
        hr = ndcg = mrr = 0.0
        for r in ranks:
            if r <= k:
                hr += 1.0
                ndcg += 1.0 / math.log2(r + 1)
                mrr += 1.0 / r
        out[f"hr@{k}"] = hr / n
        out[f"ndcg@{k}"] = ndcg / n
        out[f"mrr@{k}"] = mrr / n
        out[f"precision@{k}"] = hr / n / k
    out["mrr"] = sum(1.0 / r for r in ranks) / n
    return out


def top_k_scores(scores_row, target, excluded, k):
    """Scores of the best k candidates, best first (the candidate set of `rank`)."""
    excluded = set(int(i) for i in excluded) - {int(target)}
    candidates = [i for i in range(2, len(scores_row)) if i not in excluded]
    return sorted((scores_row[i] for i in candidates), reverse=True)[:k], set(candidates)


def _recommended(top_k, k):
    return [[int(i) for i in row[:k] if i >= 2] for row in top_k]


def coverage(top_k, vocab_size, k):
    seen = set()
    for row in _recommended(top_k, k):
        seen.update(row)
    return len(seen) / (vocab_size - 2)


def novelty(top_k, counts, k):
    total = sum(counts)
    values = []
    for row in _recommended(top_k, k):
        for item in row:
            values.append(-math.log2(max(counts[item], 1) / total))
    return sum(values) / len(values)


def mean_popularity(top_k, counts, k):
    values = [counts[item] for row in _recommended(top_k, k) for item in row]
    return sum(values) / len(values)


def gini_of_exposure(top_k, vocab_size, k):
    exposure = {item: 0 for item in range(2, vocab_size)}
    for row in _recommended(top_k, k):
        for item in row:
            exposure[item] += 1
    values = list(exposure.values())
    n, total = len(values), sum(values)
    if total == 0:
        return 0.0
    abs_diff = sum(abs(a - b) for a in values for b in values)
    return abs_diff / (2 * n * total)


def _jaccard(a, b):
    set_a = {f for f, v in enumerate(a) if v != 0}
    set_b = {f for f, v in enumerate(b) if v != 0}
    union = set_a | set_b
    return len(set_a & set_b) / len(union) if union else 0.0


def _cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na > 0 and nb > 0 else 0.0


def intra_list_diversity(top_k, features, similarity, k):
    sim = _jaccard if similarity == "jaccard" else _cosine
    per_user = []
    for row in _recommended(top_k, k):
        distances = [
            1.0 - sim(list(features[row[i]]), list(features[row[j]]))
            for i in range(len(row)) for j in range(i + 1, len(row))
        ]
        if distances:
            per_user.append(sum(distances) / len(distances))
    return sum(per_user) / len(per_user)


def auc(labels, scores):
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    total = 0.0
    for p in pos:
        for q in neg:
            total += 1.0 if p > q else 0.5 if p == q else 0.0
    return total / (len(pos) * len(neg))


def gauc(users, labels, scores):
    groups = {}
    for u, y, s in zip(users, labels, scores):
        groups.setdefault(u, ([], []))
        groups[u][0].append(y)
        groups[u][1].append(s)
    weighted = weight = 0.0
    used = skipped = 0
    for ys, ss in groups.values():
        if len(set(ys)) < 2:
            skipped += 1
            continue
        used += 1
        weighted += len(ys) * auc(ys, ss)
        weight += len(ys)
    return weighted / weight, used, skipped


def log_loss(labels, probabilities, eps=1e-7):
    total = 0.0
    for y, p in zip(labels, probabilities):
        p = min(max(p, eps), 1 - eps)
        total += -(y * math.log(p) + (1 - y) * math.log(1 - p))
    return total / len(labels)
