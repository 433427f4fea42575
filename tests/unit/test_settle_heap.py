"""`settle_heap`: start-up's objects leave the collector's sight, later ones do not."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from scaffolder.server import settle_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the suite collects as usual


@pytest.mark.usefixtures("unfrozen")
def test_start_up_objects_are_frozen_and_new_ones_are_collected() -> None:
    built_at_start_up = [{"n": n} for n in range(1000)]
    assert gc.get_freeze_count() == 0

    settle_heap()

    frozen = gc.get_freeze_count()
    assert frozen >= len(built_at_start_up)
    # A full collection no longer walks them: they are in no generation.
    tracked = {id(obj) for obj in gc.get_objects()}
    assert not any(id(obj) in tracked for obj in built_at_start_up)

    # Garbage made afterwards is still found: a cycle created after the freeze is freed.
    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2
    # Collecting adds nothing to the frozen objects (reference counting may free some).
    assert gc.get_freeze_count() <= frozen
