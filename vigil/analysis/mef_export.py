"""Open-PSA MEF export: the cone of one top event as XML that SCRAM 0.16.2 accepts.

Vigil ids may hold characters an MEF name cannot (dots, colons, spaces); they are mapped to unique MEF names
deterministically, and the original id travels in a ``vigil-id`` attribute so that :func:`vigil.analysis.mef.
load_mef` restores it.
"""

from __future__ import annotations

import hashlib
import re
from xml.sax.saxutils import escape, quoteattr

from vigil.analysis.faulttree import FaultTree, Gate, GateKind

__all__ = ["ALIAS_ATTRIBUTE", "ID_ATTRIBUTE", "KIND_ATTRIBUTE", "K_ATTRIBUTE", "decode_id", "export_mef", "mef_names"]

ID_ATTRIBUTE = "vigil-id"  # the original id, when it is not a valid MEF name
KIND_ATTRIBUTE = "vigil-kind"  # the gate's kind, when the emitted connective differs (1-child AND, k=n ATLEAST...)
K_ATTRIBUTE = "vigil-k"
ALIAS_ATTRIBUTE = "vigil-alias"  # a pass-through gate standing for a repeated argument (SCRAM refuses duplicates)
_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*\Z")  # what the exporter keeps unchanged


def _encode_id(id: str) -> str:
    """Percent-encode what an MEF attribute value cannot carry verbatim, and '%' itself.

    That is control characters, non-characters and (as SCRAM's validator rejects a value of only spaces) leading
    and trailing spaces.
    """
    out = []
    last = len(id) - 1
    for index, char in enumerate(id):
        code = ord(char)
        if (
            char == "%"
            or code < 0x20
            or 0x7F <= code <= 0x9F
            or 0xD800 <= code <= 0xDFFF
            or code in (0xFFFE, 0xFFFF)
            or (char == " " and index in (0, last))
        ):
            out.append("".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass")))
        else:
            out.append(char)
    return "".join(out)


def decode_id(value: str) -> str:
    """Undo :func:`_encode_id`; raises UnicodeDecodeError (a ValueError) for escapes that are not UTF-8."""

    def decode(match: re.Match[str]) -> str:
        return bytes.fromhex(match.group().replace("%", "")).decode("utf-8", "surrogatepass")

    return re.sub(r"(?:%[0-9A-F]{2})+", decode, value)


def _sanitise(id: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_]+", "_", id).strip("_") or "id"
    return f"_{base}" if base[0].isdigit() else base


def _mef_names(ids: list[str]) -> dict[str, str]:
    """Map ids to unique MEF names: safe ids stay, others get a sanitised name plus a hash of the id.

    Safe ids are reserved first so a sanitised name never takes one; ids are sorted so the mapping depends only on
    the set of ids, not on traversal order.
    """
    names = {i: i for i in ids if _SAFE_NAME.match(i)}
    used = set(names)
    for i in sorted(ids):
        if i in names:
            continue
        stem = f"{_sanitise(i)}__{hashlib.sha1(i.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
        candidate, n = stem, 1
        while candidate in used:
            n += 1
            candidate = f"{stem}_{n}"
        used.add(candidate)
        names[i] = candidate
    return names


def _label(text: str) -> str:
    """A label as MEF allows it: one line of XML-legal characters."""
    legal = "".join(c if c.isprintable() or c == " " else " " for c in text)
    return " ".join(legal.split())


def _cone(tree: FaultTree, top: str) -> tuple[list[Gate], dict[str, str]]:
    """The gates under ``top``, parents first, and the events and house events they use (id -> kind)."""
    if tree.kind_of(top) != "gate":
        raise ValueError(f"MEF export needs a gate as top, {top!r} is a {tree.kind_of(top)}")
    gates = list(tree.topological_gates([top]))[::-1]  # parents first, so the top gate is defined first
    leaves: dict[str, str] = {}
    for gate in gates:
        for child in gate.children:
            kind = tree.kind_of(child)
            if kind != "gate":
                leaves.setdefault(child, kind)
    if "" in leaves or any(not g.id for g in gates):
        raise ValueError("an empty id cannot be exported to MEF")
    return gates, leaves


def mef_names(tree: FaultTree, top: str) -> dict[str, str]:
    """The MEF name :func:`export_mef` gives each id of the cone of ``top`` (to read SCRAM's reports back)."""
    gates, leaves = _cone(tree, top)
    return _mef_names([g.id for g in gates] + list(leaves))


def export_mef(tree: FaultTree, top: str, *, name: str = "vigil") -> str:
    """The MEF XML of the cone of gate ``top``: one fault tree, basic and house events in model-data.

    Ids that are not valid MEF names are renamed (see :func:`mef_names`) and kept in a ``vigil-id`` attribute, so
    :func:`load_mef` restores the tree exactly (labels are folded onto one line). Raises FaultTreeError for an
    unknown node or a cycle and ValueError if ``top`` is not a gate or an id is empty.
    """
    gates, leaves = _cone(tree, top)
    names = _mef_names([g.id for g in gates] + list(leaves))
    used = set(names.values())
    tag = {"gate": "gate", "event": "basic-event", "house": "house-event"}
    tree_name = name if _SAFE_NAME.match(name) else _sanitise(name)
    out = ['<?xml version="1.0" encoding="UTF-8"?>', f"<opsa-mef name={quoteattr(tree_name)}>"]
    out.append(f"  <define-fault-tree name={quoteattr(tree_name)}>")
    aliases: list[tuple[str, str]] = []
    for gate in gates:
        args: list[str] = []
        seen: set[str] = set()
        for child in gate.children:
            if child in seen:  # SCRAM refuses a repeated argument: route it through a pass-through gate
                alias, n = f"{names[gate.id]}__repeat", len(aliases) + 1
                while f"{alias}{n}" in used:
                    n += 1
                used.add(f"{alias}{n}")
                aliases.append((f"{alias}{n}", child))
                args.append(f'<gate name="{alias}{n}"/>')
            else:
                seen.add(child)
                args.append(f'<{tag[tree.kind_of(child)]} name="{names[child]}"/>')
        n = len(args)
        k = gate.k if gate.kind is GateKind.ATLEAST else (1 if gate.kind is GateKind.OR else n)
        extra: dict[str, str] = {}
        if n == 1 or k == 1:
            connective, natural = ("" if n == 1 else "or"), (GateKind.OR, 0)
        elif k == n:
            connective, natural = "and", (GateKind.AND, 0)
        else:
            connective, natural = f'atleast min="{k}"', (GateKind.ATLEAST, k)
        if (gate.kind, gate.k) != natural:
            extra[KIND_ATTRIBUTE] = gate.kind.value
            if gate.kind is GateKind.ATLEAST:
                extra[K_ATTRIBUTE] = str(gate.k)
        out.extend(_definition("define-gate", gate.id, names, tree, extra))
        if connective:
            out.append(f"      <{connective}>")
            out.extend(f"        {a}" for a in args)
            out.append(f"      </{connective.split()[0]}>")
        else:
            out.append(f"      {args[0]}")
        out.append("    </define-gate>")
    for alias, child in aliases:
        out.append(f'    <define-gate name="{alias}">')
        out.append(f'      <attributes><attribute name="{ALIAS_ATTRIBUTE}" value="true"/></attributes>')
        out.append(f'      <{tag[tree.kind_of(child)]} name="{names[child]}"/>')
        out.append("    </define-gate>")
    out.append("  </define-fault-tree>")
    out.append("  <model-data>")
    for leaf, kind in leaves.items():
        element = "define-basic-event" if kind == "event" else "define-house-event"
        out.extend(_definition(element, leaf, names, tree, {}, indent="    "))
        if kind == "event":
            out.append(f'      <float value="{tree.events[leaf]!r}"/>')
        else:
            out.append(f'      <constant value="{str(tree.houses[leaf]).lower()}"/>')
        out.append(f"    </{element}>")
    out.append("  </model-data>")
    out.append("</opsa-mef>")
    return "\n".join(out) + "\n"


def _definition(
    element: str, id: str, names: dict[str, str], tree: FaultTree, extra: dict[str, str], indent: str = "    "
) -> list[str]:
    """The opening tag of a definition with its label and attributes (in the order SCRAM's schema wants)."""
    lines = [f'{indent}<{element} name="{names[id]}">']
    label = _label(tree.labels.get(id, ""))
    if label:
        lines.append(f"{indent}  <label>{escape(label)}</label>")
    attributes = dict(extra)
    if names[id] != id:
        attributes[ID_ATTRIBUTE] = _encode_id(id)
    if attributes:
        lines.append(f"{indent}  <attributes>")
        lines.extend(f'{indent}    <attribute name="{k}" value={quoteattr(v)}/>' for k, v in attributes.items())
        lines.append(f"{indent}  </attributes>")
    return lines
