"""Open-PSA MEF import/export: parsing, refusals (each with its file and line), round trips, and SCRAM itself.

Tests marked ``scram`` run the real SCRAM 0.16.2 binary on our exports; they skip only when it is not installed.
"""

from __future__ import annotations

import math
import random
import subprocess
from pathlib import Path

import pytest

from tests.analysis.scram import (
    MEF_MODELS,
    SCRAM,
    Algorithm,
    ReferenceBdd,
    ScramError,
    ScramTimeoutError,
    brute_force_cut_sets,
    run_scram,
    same_to_printed_digits,
    scram_available,
)
from vigil.analysis.engine import Analyzer
from vigil.analysis.faulttree import FaultTree, FaultTreeError, Gate, GateKind
from vigil.analysis.mef import MefError, export_mef, load_mef, mef_names

needs_scram = pytest.mark.skipif(
    not scram_available(), reason=f"SCRAM is not installed at {SCRAM} (apt-get install scram)"
)


def write(tmp_path: Path, text: str, name: str = "model.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def mef(body: str) -> str:
    return f'<?xml version="1.0"?>\n<opsa-mef>\n{body}\n</opsa-mef>\n'


# -- reading ------------------------------------------------------------------------------------------------------

SMALL = mef(
    """<define-fault-tree name="FT">
  <define-gate name="top">
    <label>  The   system
       fails </label>
    <or>
      <gate name="g1"/>
      <and>
        <basic-event name="b"/>
        <atleast min="2">
          <event name="a"/>
          <event name="b" type="basic-event"/>
          <basic-event name="c"/>
        </atleast>
      </and>
      <house-event name="maintenance"/>
    </or>
  </define-gate>
  <define-gate name="g1">
    <basic-event name="a"/>
  </define-gate>
  <define-gate name="unused">
    <null><gate name="g1"/></null>
  </define-gate>
  <define-basic-event name="c"><int value="0"/></define-basic-event>
</define-fault-tree>
<model-data>
  <define-basic-event name="a"><label>pump A</label><float value="1e-3"/></define-basic-event>
  <define-basic-event name="b"><parameter name="q"/></define-basic-event>
  <define-parameter name="q">
    <exponential><parameter name="rate"/><system-mission-time/></exponential>
  </define-parameter>
  <define-parameter name="rate"><float value="2e-6"/></define-parameter>
  <define-house-event name="maintenance"/>
</model-data>"""
)


def test_load_builds_gates_events_and_tops(tmp_path: Path) -> None:
    model = load_mef(write(tmp_path, SMALL), mission_time=100.0)
    tree = model.tree
    assert model.name == "FT"
    assert model.tops == ["top", "unused"]
    assert tree.gates["top"] == Gate("top", GateKind.OR, ("g1", "top/2", "maintenance"))
    assert tree.gates["top/2"] == Gate("top/2", GateKind.AND, ("b", "top/2/2"))
    assert tree.gates["top/2/2"] == Gate("top/2/2", GateKind.ATLEAST, ("a", "b", "c"), 2)
    assert tree.gates["g1"] == Gate("g1", GateKind.OR, ("a",))  # pass-through: a one-child OR
    assert tree.gates["unused"] == Gate("unused", GateKind.OR, ("g1",))
    assert tree.events["a"] == 1e-3
    assert tree.events["b"] == pytest.approx(-math.expm1(-2e-6 * 100.0), rel=1e-15)
    assert tree.events["c"] == 0.0
    assert tree.houses == {"maintenance": False}  # SCRAM's default state
    assert tree.labels == {"top": "The system fails", "a": "pump A"}


def test_mission_time_defaults_to_scrams(tmp_path: Path) -> None:
    model = load_mef(write(tmp_path, SMALL))
    assert model.tree.events["b"] == pytest.approx(1 - math.exp(-2e-6 * 8760.0), rel=1e-12)


def test_names_follow_scram_scoping(tmp_path: Path) -> None:
    """Private elements get their full path as id; lookups try the local container first (as SCRAM does)."""
    text = mef(
        """<define-fault-tree name="Plant">
  <define-gate name="top"><and><gate name="t.E1"/><gate name="E1"/><gate name="Other.shared"/></and></define-gate>
  <define-gate name="E1"><or><basic-event name="K"/><basic-event name="k"/></or></define-gate>
  <define-component name="t" role="private">
    <define-gate name="E1"><or><gate name="E2"/><basic-event name="K"/></or></define-gate>
    <define-gate name="E2"><or><event name="K"/><basic-event name="local"/></or></define-gate>
    <define-basic-event name="local"><float value="0.5"/></define-basic-event>
    <define-basic-event name="public-one" role="public"><float value="0.25"/></define-basic-event>
  </define-component>
</define-fault-tree>
<define-fault-tree name="Other">
  <define-gate name="shared" role="private"><basic-event name="public-one"/></define-gate>
</define-fault-tree>
<model-data>
  <define-basic-event name="K"><float value="0.1"/></define-basic-event>
  <define-basic-event name="k"><float value="0.2"/></define-basic-event>
</model-data>"""
    )
    model = load_mef(write(tmp_path, text))
    gates = model.tree.gates
    assert gates["top"].children == ("Plant.t.E1", "E1", "Other.shared")
    assert gates["Plant.t.E1"].children == ("Plant.t.E2", "K")
    assert gates["Plant.t.E2"].children == ("K", "Plant.t.local")
    assert gates["E1"].children == ("K", "k")  # names are case-sensitive
    assert gates["Other.shared"].children == ("public-one",)
    assert model.tree.events == {"Plant.t.local": 0.5, "public-one": 0.25, "K": 0.1, "k": 0.2}
    assert model.tops == ["top"]


def test_constants_become_house_events(tmp_path: Path) -> None:
    text = mef(
        """<define-fault-tree name="F">
  <define-gate name="top">
    <or><constant value="false"/><and><constant value="true"/><basic-event name="a"/></and></or>
  </define-gate>
  <define-basic-event name="a"><float value="0.5"/></define-basic-event>
</define-fault-tree>"""
    )
    tree = load_mef(write(tmp_path, text)).tree
    assert tree.houses == {"constant:false": False, "constant:true": True}
    assert tree.gates["top/2"].children == ("constant:true", "a")


def test_the_aralia_models_load() -> None:
    if not MEF_MODELS.is_dir():
        pytest.skip(f"the Aralia models are not in {MEF_MODELS} (set VIGIL_SHARED_DIR)")
    model = load_mef(MEF_MODELS / "baobab1.xml")
    assert (len(model.tree.events), len(model.tree.gates), model.tops) == (61, 84, ["r1"])


# -- refusals: every one names the file and the line ----------------------------------------------------------------

FT = '<define-fault-tree name="F">\n{}\n</define-fault-tree>'
A = '<define-basic-event name="a"><float value="0.1"/></define-basic-event>'
B = '<define-basic-event name="b"><float value="0.2"/></define-basic-event>'

HERE = "<!--!-->"  # marks the line the error must name
AB = '<event name="a"/><event name="b"/>'
AB_DEFS = f"{A}\n{B}"


def gate(body: str, *definitions: str) -> str:
    """A model with one fault tree holding ``body`` (gates) and ``definitions``."""
    return mef(FT.format("\n".join([body, *definitions])))


def event(body: str) -> str:
    return mef(FT.format(f'<define-basic-event name="a">{body}</define-basic-event>'))


REFUSALS = {
    "malformed XML": (f"<opsa-mef>\n<define-fault-tree name='F'>\n</opsa-mef>{HERE}", "malformed XML"),
    "entity": (
        f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e "boom">]>{HERE}\n<opsa-mef/>',
        "DTDs and entity declarations are not allowed",
    ),
    "root": (f"<?xml version='1.0'?>\n<mef/>{HERE}", "not <opsa-mef>"),
    "undefined event": (
        gate(f'<define-gate name="top">\n<or><event name="a"/>\n<event name="zz"/>{HERE}\n</or></define-gate>', A),
        "undefined event 'zz'",
    ),
    "reference of the wrong type": (
        gate(f'<define-gate name="top"><or>\n<gate name="a"/>{HERE}\n<gate name="g"/></or></define-gate>', A),
        "undefined gate 'a'",
    ),
    "private name from outside": (
        mef(
            FT.format(f'<define-component name="c" role="private">\n{A}\n</define-component>')
            + '\n<define-fault-tree name="G"><define-gate name="top"><or>\n'
            + f'<basic-event name="a"/>{HERE}\n<basic-event name="F.c.a"/></or></define-gate></define-fault-tree>'
        ),
        "undefined basic-event 'a'",
    ),
    "duplicate definition": (
        mef(FT.format(AB_DEFS) + f"\n<model-data>\n{A.replace('0.1', '0.3')}{HERE}\n</model-data>"),
        "duplicate definition of event 'a'",
    ),
    "gate and event share a name": (
        gate(A, f'<define-gate name="a"><basic-event name="a"/></define-gate>{HERE}'),
        "duplicate definition of event 'a'",
    ),
    "duplicate fault tree": (mef(FT.format(A) + f'\n<define-fault-tree name="F"/>{HERE}'), "duplicate fault tree"),
    "private at model scope": (
        mef(f'<model-data>\n<define-basic-event name="a" role="private">{HERE}\n</define-basic-event>\n</model-data>'),
        "cannot be private at model scope",
    ),
    "cycle": (
        gate(
            '<define-gate name="top"><or><gate name="g"/><basic-event name="a"/></or></define-gate>',
            f'<define-gate name="g">\n<and><gate name="h"/><basic-event name="a"/></and>{HERE}\n</define-gate>',
            '<define-gate name="h"><or><gate name="g"/><basic-event name="a"/></or></define-gate>',
            A,
        ),
        "gates form a cycle: g -> h -> g",
    ),
    "self reference": (gate(f'<define-gate name="g">\n<gate name="g"/>{HERE}\n</define-gate>'), "cycle: g -> g"),
    "probability above 1": (event(f'\n<float value="1.5"/>{HERE}\n'), "probability 1.5 is not in [0, 1]"),
    "negative probability": (event(f'\n<int value="-1"/>{HERE}\n'), "not in [0, 1]"),
    "not a number": (event(f'\n<float value="0,5"/>{HERE}\n'), "'0,5' is not a valid <float>"),
    "nan": (event(f'\n<float value="nan"/>{HERE}\n'), "'nan' is not a valid <float>"),
    "underscore": (event(f'\n<int value="1_0"/>{HERE}\n'), "'1_0' is not a valid <int>"),
    "overflow": (event(f'\n<float value="1e999"/>{HERE}\n'), "'1e999' is too large"),
    "no probability": (event(f"{HERE}\n<label>x</label>"), "basic event 'a' has no probability"),
    "unsupported expression": (
        event(f'\n<lognormal-deviate>{HERE}\n<float value="1e-3"/><float value="3"/></lognormal-deviate>'),
        "expression <lognormal-deviate> is not supported",
    ),
    "undefined parameter": (event(f'\n<parameter name="p"/>{HERE}\n'), "undefined parameter 'p'"),
    "parameter cycle": (
        gate(
            '<define-basic-event name="a"><parameter name="p"/></define-basic-event>',
            '<define-parameter name="p"><parameter name="q"/></define-parameter>',
            f'<define-parameter name="q">\n<parameter name="p"/>{HERE}\n</define-parameter>',
        ),
        "parameter cycle: F.p -> F.q -> F.p",
    ),
    "exponential of a negative rate": (
        event(f'\n<exponential>{HERE}\n<float value="-1"/><float value="5"/></exponential>'),
        "needs a rate and a time ≥ 0",
    ),
    "atleast min above the arguments": (
        gate(f'<define-gate name="g">\n<atleast min="3">{HERE}\n{AB}</atleast></define-gate>', AB_DEFS),
        "at least 3 of 2 arguments is meaningless",
    ),
    "atleast min zero": (
        gate(f'<define-gate name="g">\n<atleast min="0">{HERE}\n{AB}</atleast></define-gate>', AB_DEFS),
        "at least 0 of 2",
    ),
    "atleast min not an integer": (
        gate(f'<define-gate name="g">\n<atleast min="two">{HERE}\n{AB}</atleast></define-gate>', AB_DEFS),
        "min='two' is not an integer",
    ),
    "empty or": (gate(f'<define-gate name="g">\n<or/>{HERE}\n</define-gate>'), "<or> has no arguments"),
    "duplicate argument": (
        gate(f'<define-gate name="g"><or><event name="a"/>\n<basic-event name="a"/>{HERE}\n</or></define-gate>', A),
        "duplicate argument 'a'",
    ),
    "two formulas": (gate(f'<define-gate name="g">{HERE}\n{AB}</define-gate>', AB_DEFS), "exactly one formula, not 2"),
    "unknown formula": (
        gate(f'<define-gate name="g">\n<vote min="1">{HERE}\n<event name="a"/></vote></define-gate>', A),
        "unknown formula <vote>",
    ),
    "invalid name": (
        gate(f'<define-basic-event name="a.b">{HERE}\n<float value="0.1"/></define-basic-event>'),
        "'a.b' is not a valid MEF name",
    ),
    "bad role": (
        gate(f'<define-basic-event name="a" role="secret">{HERE}\n<float value="0.1"/></define-basic-event>'),
        "role must be 'public' or 'private'",
    ),
    "house event with a probability": (
        gate(f'<define-house-event name="h">{HERE}\n<float value="0.1"/></define-house-event>'),
        "house event 'h' must hold one <constant>",
    ),
    "not a Boolean": (
        gate(f'<define-house-event name="h">\n<constant value="yes"/>{HERE}\n</define-house-event>'),
        "'yes' is not a Boolean",
    ),
    "CCF group": (
        gate(f'<define-CCF-group name="pumps" model="beta-factor">{HERE}\n</define-CCF-group>'),
        "CCF groups are not supported",
    ),
    "substitution": (
        mef(f"<define-substitution name='s'>{HERE}\n</define-substitution>"),
        "<define-substitution> is not supported",
    ),
    "unexpected element": (mef(f"<define-thing/>{HERE}"), "unexpected <define-thing> in <opsa-mef>"),
    "vigil-kind contradicting the formula": (
        gate(
            f'<define-gate name="g">{HERE}\n<attributes><attribute name="vigil-kind" value="and"/></attributes>\n'
            f"<or>{AB}</or></define-gate>",
            AB_DEFS,
        ),
        "vigil-kind='and' contradicts the gate's formula",
    ),
}
for _connective in ("not", "xor", "nand", "nor", "iff", "imply", "cardinality"):
    REFUSALS[f"<{_connective}>"] = (
        gate(f'<define-gate name="g">\n<{_connective}>{HERE}\n<event name="a"/></{_connective}></define-gate>', A),
        f"gate 'g': <{_connective}> is not coherent",
    )


@pytest.mark.parametrize("case", list(REFUSALS))
def test_bad_input_is_refused_with_file_and_line(tmp_path: Path, case: str) -> None:
    text, message = REFUSALS[case]
    expected_line = next(n for n, line in enumerate(text.splitlines(), 1) if HERE in line)
    path = write(tmp_path, text)
    with pytest.raises(MefError) as caught:
        load_mef(path)
    error = caught.value
    assert (error.file, error.line) == (str(path), expected_line), str(error)
    assert message in error.message
    assert str(error).startswith(f"{path}:{expected_line}: ")


def test_a_missing_file_is_an_mef_error(tmp_path: Path) -> None:
    with pytest.raises(MefError, match=r"cannot read the file") as caught:
        load_mef(tmp_path / "absent.xml")
    assert (caught.value.file, caught.value.line) == (str(tmp_path / "absent.xml"), 0)


# -- writing -------------------------------------------------------------------------------------------------------


def awkward_tree() -> FaultTree:
    """Ids MEF cannot carry, a repeated argument, degenerate gates, house events and labels."""
    tree = FaultTree()
    tree.add_event("fail:repo.anl-external.org", 0.01, label="Package mirror <anl> & co")
    tree.add_event("db/primary", 0.02)
    tree.add_event("db primary", 1 / 3)
    tree.add_event("1st", 0.04)
    tree.add_event("50%\tdone", 0.0)
    tree.add_event("ok-name_2", 1.0)
    tree.add_event("ünïcode", 0.125)
    tree.add_house("maint.on", False)
    tree.add_house("Flag", True)
    tree.add_gate("svc.web", GateKind.ATLEAST, ["db/primary", "db primary", "1st", "db/primary"], 2)
    tree.add_gate("one", GateKind.AND, ["maint.on"])
    tree.add_gate("all", GateKind.ATLEAST, ["1st", "db primary"], 2)
    tree.add_gate("any", GateKind.ATLEAST, ["1st", "ünïcode", "ok-name_2"], 1)
    tree.add_gate("top gate", GateKind.OR, ["svc.web", "fail:repo.anl-external.org", "one", "all", "any", "50%\tdone"])
    tree.add_gate("outside", GateKind.OR, ["Flag", "top gate"])
    tree.labels["top gate"] = "Web site down"
    return tree


def cone(tree: FaultTree, top: str) -> FaultTree:
    """The part of ``tree`` that ``top`` depends on."""
    part = FaultTree()
    gates = list(tree.topological_gates([top]))
    used = {c for g in gates for c in g.children} | {top}
    part.events = {e: p for e, p in tree.events.items() if e in used}
    part.houses = {h: v for h, v in tree.houses.items() if h in used}
    part.gates = {g.id: g for g in gates}
    part.labels = {i: text for i, text in tree.labels.items() if i in used}
    return part


def test_round_trip_restores_ids_kinds_and_repeats(tmp_path: Path) -> None:
    tree = awkward_tree()
    model = load_mef(write(tmp_path, export_mef(tree, "top gate")))
    expected = cone(tree, "top gate")
    assert model.tops == ["top gate"]
    assert model.tree.gates == expected.gates
    assert model.tree.events == expected.events
    assert model.tree.houses == expected.houses
    assert model.tree.labels == expected.labels
    assert "Flag" not in model.tree.houses and "outside" not in model.tree.gates  # only the cone


def test_export_is_deterministic_and_names_are_valid() -> None:
    tree = awkward_tree()
    text = export_mef(tree, "top gate", name="my model.v2")
    shuffled = FaultTree(dict(reversed(tree.events.items())), tree.houses, dict(reversed(tree.gates.items())))
    shuffled.labels = tree.labels
    assert export_mef(shuffled, "top gate", name="my model.v2") == text
    names = mef_names(tree, "top gate")
    assert len(set(names.values())) == len(names)
    assert names["ok-name_2"] == "ok-name_2"  # valid names are kept
    assert names["fail:repo.anl-external.org"].startswith("fail_repo_anl_external_org__")
    assert names["1st"].startswith("_1st__")
    assert '<define-fault-tree name="my_model_v2">' in text
    assert 'value="50%25%09done"' in text  # the id survives as an attribute, control characters escaped


def test_export_keeps_a_valid_name_that_a_sanitised_one_would_take() -> None:
    tree = FaultTree()
    tree.add_event("a.b", 0.1)
    names = mef_names(tree, tree.add_gate("top", GateKind.OR, ["a.b"]).id)
    tree.add_event(names["a.b"], 0.2)  # an id equal to the name "a.b" got: that id keeps its name
    tree.gates["top"] = Gate("top", GateKind.OR, ("a.b", names["a.b"]))
    renamed = mef_names(tree, "top")
    assert renamed[names["a.b"]] == names["a.b"]
    assert renamed["a.b"] != names["a.b"]


def test_export_refuses_what_it_cannot_write() -> None:
    tree = FaultTree()
    tree.add_event("e", 0.1)
    tree.add_gate("g", GateKind.OR, ["e", "missing"])
    with pytest.raises(ValueError, match="needs a gate"):
        export_mef(tree, "e")
    with pytest.raises(FaultTreeError, match="unknown node 'missing'"):
        export_mef(tree, "g")


def random_tree(rng: random.Random, n_events: int, n_gates: int, *, scram_safe: bool = False) -> tuple[FaultTree, str]:
    """A random coherent tree with shared sub-gates, k-of-n gates and awkward ids.

    Unless ``scram_safe``, gates may repeat an argument, have a single one, and use house events. SCRAM 0.16.2 gets
    ``atleast(2; x, x, y)`` wrong (it answers y: ``Gate::ProcessVoteGateDuplicateArg`` in its pdag.cc erases x
    instead of y), and its preprocessing creates such repeats from one-argument gates and constants; the trees
    compared with SCRAM avoid all three.
    """
    tree = FaultTree()
    for i in range(n_events):
        tree.add_event(rng.choice(["e{}", "svc.{}", "host/{}", "fail:{}.example.org"]).format(i), rng.random())
    for i in range(0 if scram_safe else rng.randint(0, 2)):
        tree.add_house(f"house {i}", rng.random() < 0.3)
    nodes = [*tree.events, *tree.houses]
    for i in range(n_gates):
        # rng.choices may repeat a node; rng.sample never does
        pick = rng.sample if scram_safe else rng.choices
        children = list(pick(nodes, k=min(len(nodes), rng.randint(2 if scram_safe else 1, 4))))
        gate_id = f"g{i}" if i % 2 else f"gate {i}"
        tree.add_gate(gate_id, rng.choice(list(GateKind)), children, rng.randint(1, len(children)))
        nodes.append(gate_id)
    return tree, nodes[-1]


@pytest.mark.parametrize("seed", range(40))
def test_random_trees_round_trip(tmp_path: Path, seed: int) -> None:
    tree, top = random_tree(random.Random(seed), 8, 8)
    model = load_mef(write(tmp_path, export_mef(tree, top)))
    expected = cone(tree, top)
    assert (model.tree.gates, model.tree.events, model.tree.houses) == (
        expected.gates,
        expected.events,
        expected.houses,
    )
    assert model.tops == [top]


# -- SCRAM ---------------------------------------------------------------------------------------------------------


def scram_sets(
    tree: FaultTree, top: str, tmp_path: Path, algorithm: Algorithm = "bdd", limit_order: int | None = None
) -> tuple[set[frozenset[str]], float]:
    """SCRAM's minimal cut sets (in Vigil's ids) and printed probability for the export of ``top``."""
    path = write(tmp_path, export_mef(tree, top), "export.xml")
    back = {name: id for id, name in mef_names(tree, top).items()}
    result = run_scram(path, algorithm=algorithm, limit_order=limit_order, cut_sets=True, names=back)
    assert list(result) == [mef_names(tree, top)[top]]
    (only,) = result.values()
    assert only.cut_sets is not None and only.probability is not None
    return set(only.cut_sets), only.probability


@pytest.mark.scram
@needs_scram
def test_scram_accepts_and_agrees_with_our_awkward_export(tmp_path: Path) -> None:
    tree = awkward_tree()
    sets, probability = scram_sets(tree, "top gate", tmp_path)
    assert sets == brute_force_cut_sets(tree, "top gate")
    assert frozenset(["fail:repo.anl-external.org"]) in sets and frozenset(["ok-name_2"]) in sets
    assert same_to_printed_digits(ReferenceBdd(tree, "top gate").probability(), probability)


@pytest.mark.scram
@needs_scram
@pytest.mark.parametrize("seed", range(30))
def test_random_trees_agree_with_scram_and_brute_force(tmp_path: Path, seed: int) -> None:
    """SCRAM, a brute force and Vigil's engine: the same minimal cut sets; probabilities to 1e-9 / SCRAM's digits."""
    tree, top = random_tree(random.Random(1000 + seed), 10, 9, scram_safe=True)
    expected = brute_force_cut_sets(tree, top)
    sets, printed = scram_sets(tree, top, tmp_path, algorithm="bdd")
    assert sets == expected
    exact = ReferenceBdd(tree, top).probability()
    assert same_to_printed_digits(exact, printed)
    analyzer = Analyzer(tree)
    assert set(analyzer.cut_sets(top, max_order=None)) == expected
    probability = analyzer.probability(top)
    assert probability.exact
    assert probability.value == pytest.approx(exact, rel=1e-9, abs=1e-300)
    limited = {s for s in expected if len(s) <= 2}
    assert set(analyzer.cut_sets(top, max_order=2)) == limited
    assert scram_sets(tree, top, tmp_path, algorithm="mocus", limit_order=2)[0] == limited


@pytest.mark.scram
@needs_scram
@pytest.mark.parametrize("model", ["chinese.xml", "das9202.xml"])
def test_exported_aralia_models_give_scram_the_same_answers(tmp_path: Path, model: str) -> None:
    source = MEF_MODELS / model
    if not source.is_file():
        pytest.skip(f"{source} is absent (set VIGIL_SHARED_DIR)")
    loaded = load_mef(source)
    (original,) = run_scram(source).values()
    (exported,) = run_scram(write(tmp_path, export_mef(loaded.tree, loaded.tops[0]))).values()
    assert (exported.products, exported.distribution, exported.probability) == (
        original.products,
        original.distribution,
        original.probability,
    )


# -- the harness itself --------------------------------------------------------------------------------------------


def test_printed_digits_comparison() -> None:
    assert same_to_printed_digits(0.0011705818107586692, 0.00117058)
    assert not same_to_printed_digits(0.0011705868, 0.00117058)
    assert same_to_printed_digits(9.495101853730964e-07, 9.4951e-07)
    assert not same_to_printed_digits(1e-300, 0.0) and same_to_printed_digits(0.0, 0.0)


@pytest.mark.scram
@needs_scram
def test_constant_tops_are_read_as_the_empty_set_or_nothing(tmp_path: Path) -> None:
    tree = FaultTree()
    tree.add_event("e", 0.5)
    tree.add_house("on", True)
    tree.add_house("off", False)
    tree.add_gate("always", GateKind.OR, ["e", "on"])
    tree.add_gate("never", GateKind.AND, ["e", "off"])
    always = run_scram(write(tmp_path, export_mef(tree, "always")), cut_sets=True)["always"]
    assert (always.products, always.distribution, always.cut_sets, always.probability) == (
        1,
        {0: 1},
        [frozenset()],
        1.0,
    )
    never = run_scram(write(tmp_path, export_mef(tree, "never")), cut_sets=True)["never"]
    assert (never.products, never.distribution, never.cut_sets, never.probability) == (0, {}, [], 0.0)


@pytest.mark.scram
@needs_scram
def test_scram_failures_and_timeouts_are_reported(tmp_path: Path) -> None:
    broken = write(tmp_path, mef(FT.format('<define-gate name="g"><or><event name="nowhere"/></or></define-gate>')))
    with pytest.raises(ScramError, match="exited with"):
        run_scram(broken)
    tree, top = random_tree(random.Random(7), 10, 9, scram_safe=True)
    with pytest.raises(ScramTimeoutError, match="ran over"):
        run_scram(write(tmp_path, export_mef(tree, top)), timeout=1e-4)


WEIRD = "aB_-.:/ %\t\n\x01é€😀\x7f\u2028<>&\"'0"


def weird_tree(rng: random.Random) -> tuple[FaultTree, str]:
    """A small tree whose ids and labels are drawn from characters MEF or XML cannot carry as they are."""
    ids: set[str] = {" "}  # SCRAM's validator refuses an attribute of only spaces
    while len(ids) < 12:
        ids.add("".join(rng.choice(WEIRD) for _ in range(rng.randint(1, 8))))
    order = sorted(ids)
    rng.shuffle(order)
    tree = FaultTree()
    for i in order[:6]:
        tree.add_event(i, rng.random(), label="".join(rng.choices(WEIRD, k=5)))
    tree.add_house(order[6], rng.random() < 0.5)
    nodes = order[:7]
    for gate_id in order[7:]:
        children = rng.choices(nodes, k=rng.randint(2, 4))
        tree.add_gate(gate_id, rng.choice(list(GateKind)), children, rng.randint(1, len(children)))
        nodes.append(gate_id)
    return tree, nodes[-1]


@pytest.mark.parametrize("seed", range(20))
def test_weird_ids_round_trip(tmp_path: Path, seed: int) -> None:
    tree, top = weird_tree(random.Random(seed))
    model = load_mef(write(tmp_path, export_mef(tree, top)))
    expected = cone(tree, top)
    assert (model.tree.gates, model.tree.events, model.tree.houses) == (
        expected.gates,
        expected.events,
        expected.houses,
    )
    assert set(model.tree.labels) == set(expected.labels)


@pytest.mark.scram
@needs_scram
@pytest.mark.parametrize("seed", range(5))
def test_scram_validates_weird_ids(tmp_path: Path, seed: int) -> None:
    tree, top = weird_tree(random.Random(seed))
    path = write(tmp_path, export_mef(tree, top))
    checked = subprocess.run([str(SCRAM), "--validate", str(path)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
