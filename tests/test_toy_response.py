"""benchmarks/toy_response.py on made-up rows: what its two figures say of a student that copies its teacher, and of
one that ignores the events (docs/TOY_STUDY.md, part 1)."""

import numpy as np

from benchmarks.toy_response import class_directions, response

WINDOW = 16


def teacher_and_events(seed: int = 0):
    """Two halves of 64 s: a per-second look (random rows) plus, at each event's second, its class's embedding."""
    rng = np.random.default_rng(seed)
    classes = rng.normal(size=(3, 32)) * 3
    events, banks = {}, {}
    for half in (1, 2):
        seconds = rng.choice(np.arange(3, 60), 6, replace=False)
        events[("game", half)] = [(int(second), int(index % 3)) for index, second in enumerate(seconds)]
        banks[("game", half)] = rng.normal(size=(64, 32))
        for second, column in events[("game", half)]:
            banks[("game", half)][second] += classes[column]
    return events, (lambda game, half: (banks[(game, half)], 128))


def test_a_student_that_copies_the_bank_responds_as_it_does_and_finds_its_own_rows():
    events, bank_of = teacher_and_events()
    directions = class_directions(bank_of, events, 3)
    result = response(bank_of, bank_of, events, directions, WINDOW)
    assert result["profile"][0] > 0.4 and max(abs(result["profile"][d]) for d in (-2, -1, 1, 2)) < 0.2
    assert result["own_row"] == {"event seconds": 1.0, "other seconds": 1.0}


def test_a_student_blind_to_the_events_has_no_response():
    events, bank_of = teacher_and_events()
    directions = class_directions(bank_of, events, 3)
    _, other_world = teacher_and_events(seed=1)  # rows of its own, unrelated to this world's events
    result = response(other_world, bank_of, events, directions, WINDOW)
    assert all(abs(value) < 0.15 for value in result["profile"].values())
    assert result["own_row"]["event seconds"] < 0.5 and result["own_row"]["other seconds"] < 0.3
