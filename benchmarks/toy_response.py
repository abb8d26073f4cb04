"""Part 1's last question (docs/TOY_STUDY.md): does stage 2's student respond to the events its teacher encodes?

    python -m benchmarks.toy_study --quickstart quickstart --parts response [--projector NAME=CHECKPOINT ...]

The probes say how well a linear layer reads the events off a stage's features; this says what stage 2's student
reproduces of its teacher, in the space its loss compares them (the bank's rows and the projector's output, both
L2-normalised, one row per second). Two figures per set of rows, on the valid split:

- the event response: for every event (its second s, its class c) and each offset d in -2..2 s, the projection of
  row s + d, minus its half's mean row, on class c's direction in the bank (the mean training bank row at c's
  events minus the mean training row, normalised), averaged over events. The bank itself shows how strongly its rows
  encode the events; a student that learned them would show a peak at d = 0 too;
- the own-row share: in each 16-s block of a half (the stage-2 window), the share of seconds whose nearest bank row
  among the block's is their own, which is what the loss's positive term asks (chance: 1 in 16); for event seconds
  and for the others.
"""

from __future__ import annotations

import numpy as np

OFFSETS = tuple(range(-2, 3))  # seconds around an event


def normalised(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def event_seconds(labels: dict[str, list], halves) -> dict[tuple[str, int], list[tuple[int, int]]]:
    """(game, half) -> [(second, column)] of every annotation of `labels` (data.catalog.checked_labels: game ->
    scored annotations), second = the 1-fps bank row holding it."""
    events = {(game, half): [] for game in labels for half in halves}
    for game, annotations in labels.items():
        for annotation in annotations:
            events[(game, annotation.half)].append((annotation.position_ms // 1000, annotation.label))
    return events


def class_directions(bank_of, events: dict, columns: int) -> np.ndarray:
    """(columns, D): per column, the mean normalised bank row at its events minus the mean row, normalised (a column
    without a training event: zeros)."""
    rows, classes = [], []
    for (game, half), half_events in events.items():
        bank = normalised(bank_of(game, half)[0])  # (T, D)
        rows.append(bank)
        classes.append(np.full(len(bank), -1))
        for second, column in half_events:
            if second < len(bank):
                classes[-1][second] = column
    rows, classes = np.concatenate(rows), np.concatenate(classes)
    directions = np.zeros((columns, rows.shape[1]))
    for column in range(columns):
        if (classes == column).any():
            directions[column] = rows[classes == column].mean(0) - rows.mean(0)
    return normalised(directions)


def response(rows_of, bank_of, events: dict, directions: np.ndarray, window: int) -> dict:
    """{"profile": {offset: mean projection}, "own_row": {"event seconds": share, "other seconds": share}}."""
    profile, own = {d: [] for d in OFFSETS}, {"event seconds": [], "other seconds": []}
    for (game, half), half_events in events.items():
        rows, bank = normalised(rows_of(game, half)[0]), normalised(bank_of(game, half)[0])
        count = min(len(rows), len(bank))
        rows, bank = rows[:count], bank[:count]
        centred = rows - rows.mean(0)
        for second, column in half_events:
            if second + OFFSETS[0] >= 0 and second + OFFSETS[-1] < count:
                for d in OFFSETS:
                    profile[d].append(float(centred[second + d] @ directions[column]))
        is_event = np.zeros(count, bool)
        is_event[[second for second, _ in half_events if second < count]] = True
        for start in range(0, count - window + 1, window):
            nearest = (rows[start:start + window] @ bank[start:start + window].T).argmax(1) == np.arange(window)
            own["event seconds"] += nearest[is_event[start:start + window]].tolist()
            own["other seconds"] += nearest[~is_event[start:start + window]].tolist()
    return {"profile": {d: float(np.mean(values)) for d, values in profile.items()},
            "own_row": {kind: float(np.mean(values)) for kind, values in own.items()}}


def response_table(results: dict, window: int) -> str:
    """Markdown: a row per set of rows, the event response at each offset, then the own-row shares."""
    lines = ["| rows (one per second) | " + " | ".join(f"response at {d:+d} s" for d in OFFSETS)
             + " | own row, event seconds | own row, other seconds |", "|---|" + "---|" * (len(OFFSETS) + 2)]
    for name, result in results.items():
        cells = [f"{result['profile'][d]:.3f}" for d in OFFSETS]
        cells += [f"{result['own_row'][kind]:.2f}" for kind in ("event seconds", "other seconds")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n(own row by chance: 1 in {window}, {1 / window:.2f})"
