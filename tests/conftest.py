from __future__ import annotations

from pathlib import Path

import pytest

from vigil.model.loader import load_model, load_model_texts
from vigil.model.types import Model

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def example() -> object:
    def load(name: str) -> Model:
        return load_model([EXAMPLES / f"{name}.yaml"])

    return load


def model_from(text: str) -> Model:
    return load_model_texts([("test.yaml", text)])
