"""Shared pytest set-up: markers that need real weights or data are skipped unless env vars point at them."""

import os

import pytest

_NEEDS = {
    "weights": ("SOBER_CLIP_WEIGHTS", "a local folder of pretrained weights"),
    "data": ("SOBER_CLIP_DATA", "the root of a local CounterAnimal copy"),
    "coco": ("SOBER_CLIP_COCO", "the root of a local COCO 2017 copy (annotations/, train2017/, val2017/)"),
}


def pytest_collection_modifyitems(config, items):
    for marker, (var, what) in _NEEDS.items():
        if os.environ.get(var):
            continue
        skip = pytest.mark.skip(reason=f"set {var} to {what} to run this test")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


def pytest_collection_finish(session):
    """Start the slow command-line runs of the selected modules in the background (tests/_background.py)."""
    from tests import _background

    selected = {
        f"{module.__name__}::{getattr(item, 'originalname', item.name)}"
        for item in session.items
        if (module := getattr(item, "module", None)) is not None
    }
    _background.start(selected)


def pytest_sessionfinish(session, exitstatus):
    from tests import _background

    _background.cancel()
