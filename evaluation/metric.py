"""SoccerNet's average-mAP, vectorised, equal to `SoccerNet.Evaluation.ActionSpotting.evaluate` on every input, on
the grid of any dataset (a `Grid`: 2 rows per second for SoccerNet-v2, 25 for Ball Action Spotting).

The official algorithm (`SoccerNet/Evaluation/ActionSpotting.py` of the SoccerNet package 0.2.0), reproduced step by
step (the figures are SoccerNet-v2's):

1. Times map to 0.5 s bins with `int(2 * (position_ms / 1000))`, clamped to a 120-minute buffer (14,400 bins).
   Labels of one (half, class, bin) collapse to the last one in file order (its visibility wins); so do predictions.
   Predictions with a confidence below 0 (or NaN) are absent.
2. "Closest": each prediction takes the visibility (+1 / -1) of the nearest ground truth (GT) of its class in its
   half, segment boundaries at `(g_i + g_{i+1}) // 2`; -1 when the half has no GT of that class.
3. Matching per delta (frames = seconds x 2), per (game, half, class): GTs in time order each take the highest
   confidence unused prediction with |p - g| <= delta / 2; ties go to the earliest prediction (a strict `>` scan).
4. Per class, pooled over games: precision and recall at 200 thresholds `linspace(0, 1, 200)` with `score >= t`,
   0/0 = 0; visible keeps predictions with closest > 0.5, unshown those with closest < -0.5.
5. 11-point interpolated AP; mean over the 17 classes; trapezoid over deltas; the unshown a-mAP times 17/13 (the
   package's constant, applied whatever the dataset, in its multi-delta branch only).

Speed: step 3's greedy scan is sequential only within a chain of GTs whose tolerance windows overlap; all chains of
all (game, half, class) sequences advance in lockstep, one link at a time, each step a handful of array operations;
ties are broken by a precomputed priority (score, then earliest position). Steps 1-2 and the per-class sorting of step 4 are done once and shared by
every delta and metric.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
from fractions import Fraction

import numpy as np

KEY_STRIDE = 1 << 32  # > any row and window: (sequence, row) pairs flatten to sequence * KEY_STRIDE + row
THRESHOLDS = np.linspace(0, 1, 200)

METRIC_DELTAS: dict[str, np.ndarray] = {  # tolerances in seconds
    "tight": np.arange(5) * 1 + 1,
    "loose": np.arange(12) * 5 + 5,
    **{f"at{k}": np.array([k]) for k in range(1, 6)},
}
METRICS = tuple(METRIC_DELTAS)
SUBSETS = ("all", "visible", "unshown")


@dataclasses.dataclass(frozen=True)
class Grid:
    """The metric's time grid: `fps` rows per second, positions past `rows` count in its last row (the official
    120-minute buffer per half; None: no cap), and the factor of a multi-tolerance unshown a-mAP."""

    fps: Fraction = Fraction(2)
    rows: int | None = 120 * 60 * 2
    unshown_factor: Fraction = Fraction(17, 13)

    @classmethod
    def of(cls, dataset) -> Grid:
        """The grid of a dataset description (data/catalog.py)."""
        rows = None if dataset.cap_minutes is None else int(dataset.cap_minutes * 60 * dataset.label_fps)
        return cls(dataset.label_fps, rows, dataset.unshown_factor)

    def rows_of(self, position_ms: np.ndarray) -> np.ndarray:
        """The evaluator's `min(int(fps * (position / 1000)), rows - 1)`, with the same floating-point operations."""
        rows = (float(self.fps) * (position_ms.astype(np.float64) / 1000)).astype(np.int64)
        return rows if self.rows is None else np.minimum(rows, self.rows - 1)


def _last_wins(keys: np.ndarray) -> np.ndarray:
    """Indices of the last occurrence of each key, sorted by key."""
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(keys[::-1], kind="stable")  # equal keys keep reversed file order: the last one comes first
    sorted_keys = keys[::-1][order]
    first = np.ones(len(keys), bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return len(keys) - 1 - order[first]


@dataclasses.dataclass
class SpottingSet:
    """Every GT and prediction of an evaluation, flattened over (game, half, class) sequences and sorted by key."""

    gt_key: np.ndarray  # (G,) sequence * KEY_STRIDE + bin
    gt_value: np.ndarray  # (G,) +1 visible, -1 not shown
    pred_key: np.ndarray  # (P,)
    pred_score: np.ndarray  # (P,) float64, >= 0
    pred_closest: np.ndarray  # (P,) +1 / -1
    pred_priority: np.ndarray  # (P,) int rank: higher score first, then the earlier prediction
    num_classes: int  # columns: classes, or classes x teams
    grid: Grid

    @property
    def gt_class(self) -> np.ndarray:
        return (self.gt_key // KEY_STRIDE) % self.num_classes

    @property
    def pred_class(self) -> np.ndarray:
        return (self.pred_key // KEY_STRIDE) % self.num_classes


@dataclasses.dataclass
class GameKeys:
    """One game's GTs and predictions after the evaluator's binning, de-duplication and 'closest' map.

    Keys are local to the game: (half - 1) * num_classes + class, times KEY_STRIDE, plus the bin. Built per game so that
    this work can run in the processes that read the files.
    """

    gt_key: np.ndarray
    gt_value: np.ndarray
    pred_key: np.ndarray
    pred_score: np.ndarray
    pred_closest: np.ndarray


def game_keys(gt: tuple, predictions: tuple, num_classes: int, grid: Grid) -> GameKeys:
    """gt: (half, position_ms, column, visible) arrays; predictions: (half, position_ms, column, confidence) arrays,
    both in file order (the last of a (half, column, row) wins)."""
    g_half, g_pos, g_label, g_visible = gt
    p_half, p_pos, p_label, p_conf = predictions
    gt_key = ((np.asarray(g_half, np.int64) - 1) * num_classes + np.asarray(g_label, np.int64)) * KEY_STRIDE \
        + grid.rows_of(np.asarray(g_pos, np.int64))
    gt_value = np.where(np.asarray(g_visible, bool), 1.0, -1.0)
    keep = _last_wins(gt_key)
    gt_key, gt_value = gt_key[keep], gt_value[keep]

    pred_key = ((np.asarray(p_half, np.int64) - 1) * num_classes + np.asarray(p_label, np.int64)) * KEY_STRIDE \
        + grid.rows_of(np.asarray(p_pos, np.int64))
    pred_score = np.asarray(p_conf, np.float64)
    keep = _last_wins(pred_key)
    pred_key, pred_score = pred_key[keep], pred_score[keep]
    present = pred_score >= 0  # the official "-1 = no prediction" sentinel: negatives and NaN are absent
    pred_key, pred_score = pred_key[present], pred_score[present]
    return GameKeys(gt_key, gt_value, pred_key, pred_score, _closest(gt_key, gt_value, pred_key))


def build_spotting_set(games: list[GameKeys], num_classes: int, grid: Grid) -> SpottingSet:
    """Concatenate games (game g's sequences start at g * 2 * num_classes, so keys stay sorted) and rank scores."""
    offsets = [index * 2 * num_classes * KEY_STRIDE for index in range(len(games))]
    gt_key = np.concatenate([g.gt_key + o for g, o in zip(games, offsets)] + [np.zeros(0, np.int64)])
    pred_key = np.concatenate([g.pred_key + o for g, o in zip(games, offsets)] + [np.zeros(0, np.int64)])
    gt_value = np.concatenate([g.gt_value for g in games] + [np.zeros(0)])
    pred_score = np.concatenate([g.pred_score for g in games] + [np.zeros(0)])
    pred_closest = np.concatenate([g.pred_closest for g in games] + [np.zeros(0)])
    # The official scan keeps the first maximum (strict '>'), so among equal scores the earliest prediction wins.
    # A stable sort of the reversed scores puts equal scores in descending position order.
    num_preds = len(pred_key)
    priority = np.empty(num_preds, np.int64)
    priority[(num_preds - 1) - np.argsort(pred_score[::-1], kind="stable")] = np.arange(num_preds)
    return SpottingSet(gt_key, gt_value, pred_key, pred_score, pred_closest, priority, num_classes, grid)


def _closest(gt_key: np.ndarray, gt_value: np.ndarray, pred_key: np.ndarray) -> np.ndarray:
    """Visibility of the nearest GT of the same sequence, with the evaluator's floor-midpoint boundaries; -1 if none."""
    closest = np.full(len(pred_key), -1.0)
    if len(gt_key) == 0 or len(pred_key) == 0:
        return closest
    gt_seq, pred_seq = gt_key // KEY_STRIDE, pred_key // KEY_STRIDE
    seq_start = np.searchsorted(gt_seq, pred_seq, side="left")
    has_gt = seq_start < np.searchsorted(gt_seq, pred_seq, side="right")
    # boundary between consecutive GTs a < b of one sequence: bins >= (a + b) // 2 belong to b
    same_seq = gt_seq[1:] == gt_seq[:-1]
    gt_bin = gt_key % KEY_STRIDE
    boundary_key = (gt_seq[1:] * KEY_STRIDE + (gt_bin[:-1] + gt_bin[1:]) // 2)[same_seq]
    passed = (np.searchsorted(boundary_key, pred_key, side="right")
              - np.searchsorted(boundary_key, pred_seq * KEY_STRIDE, side="left"))
    closest[has_gt] = gt_value[(seq_start + passed)[has_gt]]
    return closest


def match_predictions(data: SpottingSet, delta_frames: float) -> np.ndarray:
    """(P,) bool: which predictions are true positives at this tolerance, by the evaluator's greedy matching."""
    num_preds = len(data.pred_key)
    used = np.zeros(num_preds, bool)
    if num_preds == 0 or len(data.gt_key) == 0:
        return used
    half_window = delta_frames / 2
    low = np.searchsorted(data.pred_key, data.gt_key - np.floor(half_window), side="left")
    high = np.searchsorted(data.pred_key, data.gt_key + np.floor(half_window), side="right")
    width = int((high - low).max())
    if width == 0:
        return used
    priority = data.pred_priority
    # GTs whose candidate ranges intersect form a chain that must be scanned in time order; different chains (and
    # different sequences) share no prediction, so all chains advance together, one link per step.
    gt_seq = data.gt_key // KEY_STRIDE
    linked = np.zeros(len(gt_seq), bool)
    linked[1:] = (gt_seq[1:] == gt_seq[:-1]) & (low[1:] < high[:-1])
    chain_start = np.maximum.accumulate(np.where(linked, 0, np.arange(len(gt_seq))))
    rank = np.arange(len(gt_seq)) - chain_start  # position of the GT in its chain
    by_rank = np.argsort(rank, kind="stable")
    rank_bounds = np.searchsorted(rank[by_rank], np.arange(rank.max() + 2))
    offsets = np.arange(width)
    for k in range(rank.max() + 1):
        rows = by_rank[rank_bounds[k]:rank_bounds[k + 1]]
        rows = rows[high[rows] > low[rows]]
        if len(rows) == 0:
            continue
        candidates = low[rows, None] + offsets  # (R, width) prediction indices
        valid = candidates < high[rows, None]
        candidates = np.minimum(candidates, num_preds - 1)
        scores = np.where(valid & ~used[candidates], priority[candidates], -1)
        best = scores.argmax(axis=1)
        hit = scores[np.arange(len(rows)), best] >= 0
        used[candidates[hit, best[hit]]] = True
    return used


@dataclasses.dataclass
class _Curves:
    """The predictions of one subset sorted by (class, score), with the 200 threshold cut points of every class."""

    order: np.ndarray  # (N,) prediction indices, grouped by class, ascending score within a class
    class_end: np.ndarray  # (C,) end of each class's group in `order`
    cut: np.ndarray  # (200, C) first position in `order` with score >= threshold, per class
    num_gt: np.ndarray  # (C,) GT count of the subset


def _subset_curves(data: SpottingSet) -> dict[str, _Curves]:
    pred_class, gt_class = data.pred_class, data.gt_class
    masks = {"all": np.ones(len(data.pred_key), bool), "visible": data.pred_closest > 0.5,
             "unshown": data.pred_closest < -0.5}
    gt_masks = {"all": np.ones(len(gt_class), bool), "visible": data.gt_value > 0, "unshown": data.gt_value < 0}
    curves = {}
    for subset in SUBSETS:
        index = np.flatnonzero(masks[subset])
        order = index[np.lexsort((data.pred_score[index], pred_class[index]))]
        sorted_class = pred_class[order]
        class_start = np.searchsorted(sorted_class, np.arange(data.num_classes), side="left")
        class_end = np.searchsorted(sorted_class, np.arange(data.num_classes), side="right")
        # per class, the first position whose score reaches each threshold (offset by the class's group start)
        cut = np.empty((len(THRESHOLDS), data.num_classes), np.int64)
        for c in range(data.num_classes):
            scores = data.pred_score[order[class_start[c]:class_end[c]]]
            cut[:, c] = class_start[c] + np.searchsorted(scores, THRESHOLDS, side="left")
        curves[subset] = _Curves(order, class_end, cut,
                                 np.bincount(gt_class[gt_masks[subset]], minlength=data.num_classes))
    return curves


def _precision_recall(curves: _Curves, true_positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(200, C) precision and recall, as the evaluator computes them (0/0 -> 0)."""
    tp_sorted = true_positive[curves.order].astype(np.float64)
    prefix = np.concatenate([[0.0], np.cumsum(tp_sorted)])  # exact: sums of ones
    tp = prefix[curves.class_end][None, :] - prefix[curves.cut]  # TPs at or above each threshold
    selected = curves.class_end[None, :] - curves.cut
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(tp / selected), np.nan_to_num(tp / curves.num_gt[None, :])


def _mean_ap(precision: np.ndarray, recall: np.ndarray) -> tuple[float, np.ndarray]:
    """11-point interpolated AP per class (accumulated in the evaluator's order) and their mean."""
    ap = np.zeros(precision.shape[1])
    for level in np.arange(11) / 10:
        ap += np.where(recall >= level, precision, 0.0).max(axis=0)
    per_class = ap / 11
    return float(np.mean(per_class)), per_class


def _trapezoid(values: list) -> float | np.ndarray:
    """The evaluator's average over deltas: sum of (v_i + v_{i+1}) / 2 over (n - 1)."""
    if len(values) == 1:
        return values[0]
    integral = 0.0
    for i in range(len(values) - 1):
        integral = integral + (values[i] + values[i + 1]) / 2
    return integral / (len(values) - 1)


_FORKED_SET: SpottingSet | None = None  # the set a forked worker inherits (no pickling of large arrays)
_FORKED_CURVES: dict | None = None


def _delta_scores(data: SpottingSet, curves: dict[str, _Curves], delta: int) -> dict[str, tuple[float, np.ndarray]]:
    """mAP and per-class AP of every subset at one tolerance (seconds)."""
    true_positive = match_predictions(data, float(delta * data.grid.fps))
    return {subset: _mean_ap(*_precision_recall(curves[subset], true_positive)) for subset in SUBSETS}


def _forked_delta_scores(delta: int) -> dict[str, tuple[float, np.ndarray]]:
    return _delta_scores(_FORKED_SET, _FORKED_CURVES, delta)


def average_map(data: SpottingSet, metrics: tuple[str, ...] = ("tight", "loose"), workers: int = 0) -> dict[str, dict]:
    """{metric: {"a_mAP", "a_mAP_per_class", "a_mAP_visible", "a_mAP_per_class_visible", "a_mAP_unshown",
    "a_mAP_per_class_unshown"}}, fractions in [0, 1], per-class values as lists in class order.

    workers > 1 spreads the tolerances over that many forked processes (each delta is independent).
    """
    global _FORKED_SET, _FORKED_CURVES
    unknown = [metric for metric in metrics if metric not in METRIC_DELTAS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; expected some of {list(METRIC_DELTAS)}")
    curves = _subset_curves(data)
    deltas = sorted({int(d) for metric in metrics for d in METRIC_DELTAS[metric]})
    if workers > 1 and len(deltas) > 1 and "fork" in multiprocessing.get_all_start_methods():
        _FORKED_SET, _FORKED_CURVES = data, curves
        try:
            context = multiprocessing.get_context("fork")
            with concurrent.futures.ProcessPoolExecutor(min(workers, len(deltas)), mp_context=context) as pool:
                # largest tolerances first: they cost the most, so the pool finishes evenly
                computed = dict(zip(deltas[::-1], pool.map(_forked_delta_scores, deltas[::-1])))
        finally:
            _FORKED_SET = _FORKED_CURVES = None
    else:
        computed = {delta: _delta_scores(data, curves, delta) for delta in deltas}

    results = {}
    for metric in metrics:
        metric_deltas = [int(d) for d in METRIC_DELTAS[metric]]
        entry = {}
        for subset, suffix in zip(SUBSETS, ("", "_visible", "_unshown")):
            overall = _trapezoid([computed[d][subset][0] for d in metric_deltas])
            per_class = _trapezoid([computed[d][subset][1] for d in metric_deltas])
            if subset == "unshown" and len(metric_deltas) > 1:  # the official 17/13 fix, only in its multi-delta branch
                overall = overall * data.grid.unshown_factor.numerator / data.grid.unshown_factor.denominator
            entry[f"a_mAP{suffix}"] = float(overall)
            entry[f"a_mAP_per_class{suffix}"] = [float(v) for v in per_class]
        results[metric] = entry
    return results
