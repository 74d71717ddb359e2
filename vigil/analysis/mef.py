"""Open-PSA MEF (Model Exchange Format) import and export for Vigil's coherent fault trees.

:func:`load_mef` reads the fault-tree layer of an MEF file (https://open-psa.github.io/mef/) into a
:class:`~vigil.analysis.faulttree.FaultTree`; :func:`export_mef` writes the cone of one gate as a file SCRAM 0.16.2
accepts. Together they let Vigil be checked against SCRAM on SCRAM's own models and on Vigil's trees.

Name resolution follows SCRAM 0.16.2 (its ``Initializer``), since SCRAM's inputs are what we must read: names are
case-sensitive; an element is public unless it (or its enclosing component) says ``role="private"``; a reference is
first looked up in the referring gate's own container (``base.path.ref``), then, if it has no dot, among public
names, else as a full path (``FaultTree.component.name``). A public element's Vigil id is its name, a private one's
its full path (SCRAM's id). Nested anonymous formulas become gates named ``<gate>/<argument position>``.

Refused with :class:`MefError` (file and line): non-coherent connectives (not, xor, nand, nor, iff, imply,
cardinality), CCF groups and substitutions (they change the logic), probability expressions other than float, int,
parameter, exponential and system-mission-time, and anything malformed. Event trees, rules, alignments and extern
definitions are ignored: they do not change a fault tree.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from vigil.analysis.faulttree import FaultTree, FaultTreeError, Gate, GateKind
from vigil.analysis.mef_export import (
    ALIAS_ATTRIBUTE,
    ID_ATTRIBUTE,
    K_ATTRIBUTE,
    KIND_ATTRIBUTE,
    decode_id,
    export_mef,
    mef_names,
)

__all__ = ["MefError", "MefModel", "export_mef", "load_mef", "mef_names"]

# Attributes Vigil writes so that load_mef(export_mef(...)) restores the tree exactly.

_IDENTIFIER = re.compile(r"[^\W\d]\w*(?:-\w+)*\Z")  # SCRAM's schema: an NCName without dots or "--"
_REFERENCE = re.compile(r"[^\W\d]\w*(?:-\w+)*(?:\.[^\W\d]\w*(?:-\w+)*)*\Z")
_EVENT_KINDS = ("gate", "basic-event", "house-event")
_REFERENCE_TAGS = frozenset({"event", *_EVENT_KINDS})
_NON_COHERENT = frozenset({"not", "xor", "nand", "nor", "iff", "imply", "cardinality"})
# Elements that do not change a fault tree: the event-tree layer, and extern functions (only expressions use them).
_EVENT_TREE_LAYER = ("define-event-tree", "define-initiating-event", "define-rule", "define-alignment")
_IGNORED = frozenset({"label", "attributes", "define-extern-library", "define-extern-function", *_EVENT_TREE_LAYER})
_NUMBER = {  # XML Schema's lexical forms: Python's float() and int() also take "1_000", "infinity", spaces...
    "float": re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z"),
    "int": re.compile(r"[+-]?\d+\Z"),
}
_DEFAULT_MISSION_TIME = 8760.0  # hours; SCRAM's default for <system-mission-time/>


class MefError(ValueError):
    """An MEF file could not be read: ``file``, ``line`` (0 = the whole file) and what is wrong."""

    def __init__(self, file: str, line: int, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


@dataclass(slots=True)
class MefModel:
    """A loaded MEF model: the tree, its top gates (not referenced by any gate, in document order), its name."""

    tree: FaultTree
    tops: list[str]
    name: str


@dataclass(slots=True)
class _Node:
    tag: str
    attrs: dict[str, str]
    line: int
    children: list[_Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def body(self) -> list[_Node]:
        """Children other than the descriptive <label> and <attributes>."""
        return [c for c in self.children if c.tag not in ("label", "attributes")]

    def label(self) -> str:
        for child in self.children:
            if child.tag == "label":
                return " ".join("".join(child.text).split())
        return ""

    def attribute(self, name: str) -> str | None:
        """The value of ``<attributes><attribute name=... value=.../>``, if present."""
        for child in self.children:
            if child.tag == "attributes":
                for attribute in child.children:
                    if attribute.attrs.get("name") == name:
                        return attribute.attrs.get("value")
        return None


def _parse_xml(data: bytes, file: str) -> _Node:
    """Parse with expat (the only stdlib parser reporting lines), refusing DTDs and entities like defusedxml."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    stack: list[_Node] = []
    roots: list[_Node] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        node = _Node(tag, attrs, parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        if stack and stack[-1].tag == "label":
            stack[-1].text.append(data)

    def refuse(*_args: object) -> None:
        raise MefError(file, parser.CurrentLineNumber, "DTDs and entity declarations are not allowed")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise MefError(file, exc.lineno, f"malformed XML: {expat.ErrorString(exc.code)}") from None
    return roots[0]


@dataclass(slots=True)
class _Def:
    kind: str  # "gate", "basic-event", "house-event" or "parameter"
    name: str
    base: str  # the container's path; "" at model scope
    public: bool
    node: _Node
    id: str = ""

    @property
    def path(self) -> str:
        return f"{self.base}.{self.name}" if self.base else self.name


class _Loader:
    def __init__(self, file: str, mission_time: float) -> None:
        self.file = file
        self.mission_time = mission_time
        self.public: dict[str, dict[str, _Def]] = {k: {} for k in (*_EVENT_KINDS, "parameter")}
        self.paths: dict[str, dict[str, _Def]] = {k: {} for k in (*_EVENT_KINDS, "parameter")}
        self.defs: list[_Def] = []
        self.taken: set[str] = set()
        self.lines: dict[str, int] = {}  # Vigil gate id -> line, for cycle errors
        self.gates: list[Gate] = []
        self.aliases: dict[str, str] = {}
        self.values: dict[str, float] = {}  # parameter path -> value
        self.constants: dict[bool, str] = {}  # <constant> value -> the house event standing for it

    def error(self, node: _Node, message: str) -> MefError:
        return MefError(self.file, node.line, message)

    def need(self, node: _Node, attribute: str) -> str:
        value = node.attrs.get(attribute)
        if value is None:
            raise self.error(node, f"<{node.tag}> needs a {attribute!r} attribute")
        return value

    # -- definitions -----------------------------------------------------------------------------------------

    def container(self, node: _Node, base: str, public: bool) -> None:
        """Register the definitions of a fault tree or component (recursively)."""
        local: dict[str, _Def] = {}  # SCRAM: names are unique within a container, whatever their role
        components: set[str] = set()
        for child in node.children:
            tag = child.tag
            if tag in ("label", "attributes"):
                continue
            if tag == "define-component":
                name = self.name_of(child)
                if name in components:
                    raise self.error(child, f"duplicate component {name!r} in {base!r}")
                components.add(name)
                self.container(child, f"{base}.{name}", self.role(child, public))
            elif tag in ("define-gate", "define-basic-event", "define-house-event", "define-parameter"):
                self.define(child, base, self.role(child, public), local)
            elif tag == "define-CCF-group":
                raise self.error(child, "CCF groups are not supported (expand them into basic events and gates)")
            else:
                raise self.error(child, f"unexpected <{tag}> in <{node.tag}>")

    def role(self, node: _Node, inherited: bool) -> bool:
        role = node.attrs.get("role")
        if role is None:
            return inherited
        if role not in ("public", "private"):
            raise self.error(node, f"role must be 'public' or 'private', not {role!r}")
        return role == "public"

    def name_of(self, node: _Node) -> str:
        name = self.need(node, "name")
        if not _IDENTIFIER.match(name):
            raise self.error(node, f"{name!r} is not a valid MEF name")
        return name

    def define(self, node: _Node, base: str, public: bool, local: dict[str, _Def]) -> None:
        kind = node.tag.removeprefix("define-")
        if not public and not base:
            raise self.error(node, "elements cannot be private at model scope")
        name = self.name_of(node)
        scope = "parameter" if kind == "parameter" else "event"
        key = f"{scope}:{name}"
        first = local.get(key)
        if first is None and public:
            kinds = ("parameter",) if kind == "parameter" else _EVENT_KINDS
            first = next((self.public[k][name] for k in kinds if name in self.public[k]), None)
        if first is not None:
            raise self.error(
                node, f"duplicate definition of {scope} {name!r} (first defined on line {first.node.line})"
            )
        d = _Def(kind, name, base, public, node)
        local[key] = d
        if public:
            self.public[kind][name] = d
        self.paths[kind][d.path] = d
        if kind != "parameter":
            self.defs.append(d)

    def resolve(self, node: _Node, kinds: tuple[str, ...], base: str) -> _Def:
        """Find the element a reference names, in SCRAM's order: local scope, then public name or full path."""
        ref = self.need(node, "name")
        if not _REFERENCE.match(ref):
            raise self.error(node, f"{ref!r} is not a valid MEF reference")
        if base:
            for kind in kinds:
                if found := self.paths[kind].get(f"{base}.{ref}"):
                    return found
        table = self.public if "." not in ref else self.paths
        for kind in kinds:
            if found := table[kind].get(ref):
                return found
        what = "event" if len(kinds) > 1 else kinds[0]
        raise self.error(node, f"undefined {what} {ref!r}" + (f" (referenced in {base!r})" if base else ""))

    def assign_ids(self) -> None:
        for d in self.defs:
            stored = d.node.attribute(ID_ATTRIBUTE)
            try:
                d.id = decode_id(stored) if stored else (d.name if d.public else d.path)
            except ValueError:
                raise self.error(d.node, f"{ID_ATTRIBUTE}={stored!r} is not a valid encoded id") from None
            if d.id in self.taken:
                raise self.error(d.node, f"two elements have the id {d.id!r}")
            self.taken.add(d.id)

    def fresh(self, wanted: str) -> str:
        candidate, n = wanted, 1
        while candidate in self.taken:
            n += 1
            candidate = f"{wanted}~{n}"
        self.taken.add(candidate)
        return candidate

    # -- gates -----------------------------------------------------------------------------------------------

    def define_gate(self, d: _Def) -> None:
        body = d.node.body()
        if len(body) != 1:
            raise self.error(d.node, f"gate {d.id!r} must have exactly one formula, not {len(body)}")
        if d.node.attribute(ALIAS_ATTRIBUTE) == "true":
            if body[0].tag not in _REFERENCE_TAGS:
                raise self.error(d.node, f"alias gate {d.id!r} must refer to exactly one event")
            self.aliases[d.id] = self.argument(body[0], d, "")
            return
        self.formula(body[0], d.id, d, declared=d.node)

    def formula(self, node: _Node, gate_id: str, owner: _Def, declared: _Node | None = None) -> None:
        """Add gate ``gate_id`` for formula ``node``; nested formulas become gates of their own."""
        tag = node.tag
        if tag in _REFERENCE_TAGS or tag == "constant":
            args, kind, k = [node], GateKind.OR, 0  # a pass-through gate
        elif tag in ("and", "or", "null"):
            args, kind, k = node.body(), GateKind.AND if tag == "and" else GateKind.OR, 0
            if tag == "null" and len(args) != 1:
                raise self.error(node, f"gate {owner.id!r}: <null> takes exactly one argument")
        elif tag == "atleast":
            args, kind = node.body(), GateKind.ATLEAST
            try:
                k = int(self.need(node, "min"))
            except ValueError:
                raise self.error(node, f"gate {owner.id!r}: min={node.attrs['min']!r} is not an integer") from None
            if args and not 1 <= k <= len(args):
                raise self.error(node, f"gate {owner.id!r}: at least {k} of {len(args)} arguments is meaningless")
        elif tag in _NON_COHERENT:
            raise self.error(
                node, f"gate {owner.id!r}: <{tag}> is not coherent; Vigil's engine supports only and, or and atleast"
            )
        else:
            raise self.error(node, f"gate {owner.id!r}: unknown formula <{tag}>")
        if not args:
            raise self.error(node, f"gate {owner.id!r}: <{tag}> has no arguments")
        children: list[str] = []
        for position, arg in enumerate(args, 1):
            child = self.argument(arg, owner, f"{gate_id}/{position}")
            if child in children:
                raise self.error(arg, f"gate {owner.id!r}: duplicate argument {child!r}")
            children.append(child)
        if declared is not None:
            kind, k = self.declared_kind(declared, kind, k, len(children))
        self.lines[gate_id] = node.line
        self.gates.append(Gate(gate_id, kind, tuple(children), k if kind is GateKind.ATLEAST else 0))

    def argument(self, arg: _Node, owner: _Def, nested_id: str) -> str:
        if arg.tag in _REFERENCE_TAGS:
            kinds: tuple[str, ...] = _EVENT_KINDS
            if arg.tag != "event":
                kinds = (arg.tag,)
            elif "type" in arg.attrs:
                if arg.attrs["type"] not in _EVENT_KINDS:
                    raise self.error(arg, f"unknown event type {arg.attrs['type']!r}")
                kinds = (arg.attrs["type"],)
            return self.resolve(arg, kinds, owner.base).id
        if arg.tag == "constant":
            value = self.boolean(arg)
            if value not in self.constants:
                self.constants[value] = self.fresh(f"constant:{str(value).lower()}")
            return self.constants[value]
        gate_id = self.fresh(nested_id)
        self.formula(arg, gate_id, owner)
        return gate_id

    def boolean(self, node: _Node) -> bool:
        value = self.need(node, "value").strip()
        if value not in ("true", "false", "1", "0"):
            raise self.error(node, f"{value!r} is not a Boolean")
        return value in ("true", "1")

    def declared_kind(self, node: _Node, kind: GateKind, k: int, n: int) -> tuple[GateKind, int]:
        """Apply a Vigil export's vigil-kind/vigil-k if they mean the same as the formula (else refuse)."""
        stored = node.attribute(KIND_ATTRIBUTE)
        if stored is None:
            return kind, k
        try:
            declared = GateKind(stored)
            declared_k = int(node.attribute(K_ATTRIBUTE) or 0) if declared is GateKind.ATLEAST else 0
        except ValueError:
            raise self.error(node, f"bad {KIND_ATTRIBUTE}/{K_ATTRIBUTE} attributes") from None

        def threshold(kind: GateKind, k: int) -> int:
            return {GateKind.OR: 1, GateKind.AND: n}.get(kind, k)

        if threshold(declared, declared_k) != threshold(kind, k):
            raise self.error(node, f"{KIND_ATTRIBUTE}={stored!r} contradicts the gate's formula")
        return declared, declared_k

    # -- probabilities ---------------------------------------------------------------------------------------

    def probability(self, d: _Def) -> float:
        body = d.node.body()
        if not body:
            raise self.error(d.node, f"basic event {d.id!r} has no probability")
        if len(body) > 1:
            raise self.error(body[1], f"basic event {d.id!r} has more than one expression")
        p = self.value(body[0], d.base, ())
        if not 0.0 <= p <= 1.0:
            raise self.error(body[0], f"basic event {d.id!r}: probability {p} is not in [0, 1]")
        return p

    def value(self, node: _Node, base: str, visiting: tuple[str, ...]) -> float:
        tag = node.tag
        if tag in ("float", "int"):
            raw = self.need(node, "value").strip()
            if not _NUMBER[tag].match(raw):
                raise self.error(node, f"{raw!r} is not a valid <{tag}>")
            number = float(raw)
            if not math.isfinite(number):
                raise self.error(node, f"{raw!r} is too large")
            return number
        if tag == "parameter":
            d = self.resolve(node, ("parameter",), base)
            if d.path in visiting:
                raise self.error(node, f"parameter cycle: {' -> '.join((*visiting, d.path))}")
            if d.path not in self.values:
                body = d.node.body()
                if len(body) != 1:
                    raise self.error(d.node, f"parameter {d.path!r} must have exactly one expression")
                self.values[d.path] = self.value(body[0], d.base, (*visiting, d.path))
            return self.values[d.path]
        if tag == "exponential":
            args = node.body()
            if len(args) != 2:
                raise self.error(node, "<exponential> takes a failure rate and a time")
            rate, time = (self.value(a, base, visiting) for a in args)
            if rate < 0 or time < 0:
                raise self.error(node, f"<exponential> needs a rate and a time ≥ 0, not {rate} and {time}")
            return -math.expm1(-rate * time)  # 1 - exp(-λt) without cancellation for small λt
        if tag == "system-mission-time":
            return self.mission_time
        raise self.error(
            node, f"expression <{tag}> is not supported (float, int, parameter, exponential, system-mission-time)"
        )


def load_mef(path: Path | str, *, mission_time: float = _DEFAULT_MISSION_TIME) -> MefModel:
    """Read the fault trees of an Open-PSA MEF file. Raises :class:`MefError` (with file and line) on bad input.

    ``mission_time`` (hours) is the value of ``<system-mission-time/>``; the default is SCRAM's.
    """
    file = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise MefError(file, 0, f"cannot read the file: {exc.strerror or exc}") from None
    root = _parse_xml(data, file)
    loader = _Loader(file, mission_time)
    if root.tag != "opsa-mef":
        raise loader.error(root, f"the root element is <{root.tag}>, not <opsa-mef>")
    names: list[str] = []
    trees: set[str] = set()
    for child in root.children:
        if child.tag == "define-fault-tree":
            name = loader.name_of(child)
            if name in trees:
                raise loader.error(child, f"duplicate fault tree {name!r}")
            trees.add(name)
            names.append(name)
            loader.container(child, name, True)
        elif child.tag == "model-data":
            for node in child.children:
                if node.tag not in ("define-basic-event", "define-house-event", "define-parameter"):
                    raise loader.error(node, f"unexpected <{node.tag}> in <model-data>")
                loader.define(node, "", loader.role(node, True), {})
        elif child.tag in ("define-CCF-group", "define-substitution"):
            raise loader.error(child, f"<{child.tag}> is not supported: it changes the fault tree's logic")
        elif child.tag not in _IGNORED:
            raise loader.error(child, f"unexpected <{child.tag}> in <opsa-mef>")
    loader.assign_ids()

    tree = FaultTree()
    for d in loader.defs:
        try:
            if d.kind == "basic-event":
                tree.add_event(d.id, loader.probability(d))
            elif d.kind == "house-event":
                body = d.node.body()
                if len(body) > 1 or (body and body[0].tag != "constant"):
                    raise loader.error(d.node, f"house event {d.id!r} must hold one <constant>")
                tree.add_house(d.id, loader.boolean(body[0]) if body else False)  # SCRAM's default is false
            else:
                loader.define_gate(d)
        except FaultTreeError as exc:
            raise loader.error(d.node, str(exc)) from None
    for value, constant_id in loader.constants.items():
        tree.add_house(constant_id, value)
    _add_gates(loader, tree)
    for d in loader.defs:
        label = d.node.label()
        if label and d.id not in loader.aliases:
            tree.labels[d.id] = label
    referenced = {c for g in tree.gates.values() for c in g.children}
    tops = [d.id for d in loader.defs if d.kind == "gate" and d.id in tree.gates and d.id not in referenced]
    return MefModel(tree, tops, root.attrs.get("name") or (names[0] if names else Path(file).stem))


def _add_gates(loader: _Loader, tree: FaultTree) -> None:
    """Add the collected gates with alias gates inlined, then refuse cycles (naming the gate's line)."""

    def target(child: str) -> str:
        for _ in range(len(loader.aliases) + 1):
            if child not in loader.aliases:
                return child
            child = loader.aliases[child]
        raise MefError(loader.file, 0, f"alias gates refer to each other in a cycle through {child!r}")

    for gate in loader.gates:
        try:
            tree.add_gate(gate.id, gate.kind, [target(c) for c in gate.children], gate.k)
        except FaultTreeError as exc:
            raise MefError(loader.file, loader.lines[gate.id], str(exc)) from None
    cycle = _find_cycle(tree)
    if cycle:
        raise MefError(loader.file, loader.lines[cycle[0]], f"gates form a cycle: {' -> '.join(cycle)}")


def _find_cycle(tree: FaultTree) -> list[str]:
    """A cycle of gates (first gate repeated at the end), or [] — iterative, as trees can be deep."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in tree.gates:
        if start in state:
            continue
        path: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        while path:
            gid, index = path[-1]
            children = tree.gates[gid].children
            if index == len(children):
                path.pop()
                state[gid] = 2
                continue
            path[-1] = (gid, index + 1)
            child = children[index]
            if child not in tree.gates or state.get(child) == 2:
                continue
            if state.get(child) == 1:
                ids = [g for g, _ in path]
                return [*ids[ids.index(child) :], child]
            state[child] = 1
            path.append((child, 0))
    return []
