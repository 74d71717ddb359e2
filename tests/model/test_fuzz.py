"""Random YAML, and random mutations of a good model, never escape as an uncaught exception."""

from __future__ import annotations

import random

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.model.test_loader import GOOD
from vigil.model.errors import ModelError
from vigil.model.loader import load_model_texts

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True), st.text(max_size=12),
    st.sampled_from(["a", "b", "web", "vm1", "8760h", "99.9%", "any", "all", "at_least", "of", "id", "site"]),
)  # fmt: skip
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.sampled_from(["id", "kind", "components", "domains", "depends_on", "runs_on", "any", "all", "of",
                             "at_least", "mtbf", "mttr", "availability", "slo", "tier", "state", "name", "x",
                             "monitors", "type", "url"]),
            children, max_size=6,
        ),
    ),
    max_leaves=30,
)  # fmt: skip


def _load(text: str) -> None:
    try:
        load_model_texts([("fuzz.yaml", text)])
    except ModelError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.file == "fuzz.yaml" and issue.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_random_structures(data: object) -> None:
    _load(yaml.safe_dump(data))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=":-{}[]#&*!|>'\"%@`, \n\tabc123", max_size=80))
def test_random_text(text: str) -> None:
    _load(text)


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False))
def test_mutations_of_a_good_model(rnd: random.Random) -> None:
    lines = GOOD.splitlines()
    for _ in range(rnd.randint(1, 4)):
        i = rnd.randrange(len(lines))
        op = rnd.choice(["drop", "dup", "swap", "garble"])
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = rnd.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        else:
            pos = rnd.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:pos] + rnd.choice(["x", ":", "- ", "  ", "{", "0"]) + lines[i][pos:]
        if not lines:
            break
    _load("\n".join(lines) + "\n")
