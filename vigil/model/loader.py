"""Load one or more YAML model files into a validated :class:`~vigil.model.types.Model`.

Every problem is collected (schema errors per entry, then references, duplicates and cycles across all
files) and raised together as one :class:`~vigil.model.errors.ModelError`, each naming file, line and field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml_rs
from pydantic import TypeAdapter, ValidationError

from vigil.gcpause import gc_paused
from vigil.model.errors import ModelError, ModelIssue, schema_issues
from vigil.model.schema import (
    PATTERN_MESSAGES,
    AllSpec,
    AnySpec,
    AtLeastSpec,
    ComponentSpec,
    DefaultsSpec,
    DomainSpec,
    RefSpec,
)
from vigil.model.types import Component, Domain, GroupMode, Model, MonitorEntry, RawSection, Requirement
from vigil.model.validate import Entry, Source, check_references
from vigil.model.yamlio import YamlSyntaxError, load_yaml

__all__ = ["find_model_files", "load_model", "load_model_texts"]

_COMPONENT = TypeAdapter(ComponentSpec)
_DOMAIN = TypeAdapter(DomainSpec)
_COMPONENTS = TypeAdapter(list[ComponentSpec])
_DOMAINS = TypeAdapter(list[DomainSpec])
_DEFAULTS = TypeAdapter(DefaultsSpec)
# `notifications` is carried raw (RawSection) and validated by vigil.notify.config (issue 4).
_TOP_KEYS = ("version", "name", "defaults", "domains", "components", "notifications")


@dataclass(slots=True)
class _Collected:
    entries: list[Entry]
    invalid_ids: set[str]  # ids of entries that failed the schema: references to them are not "unknown"
    issues: list[ModelIssue]
    name: str | None = None
    default_availability: float | None = None
    notifications: list[RawSection] = field(default_factory=list)  # raw `notifications:` sections, per file


def find_model_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[ModelIssue]]:
    """Expand directories into their ``*.yaml``/``*.yml`` files (sorted, recursive).

    Returns the files and an issue for each path that does not exist or holds no model file.
    """
    files: list[Path] = []
    issues: list[ModelIssue] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
            if not found:
                issues.append(ModelIssue(str(path), 0, "", "directory holds no .yaml or .yml file"))
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            issues.append(ModelIssue(str(path), 0, "", "no such file or directory"))
    return files, issues


def load_model(paths: Sequence[str | Path]) -> Model:
    """Load and merge model files or directories. Raises ModelError listing every problem found."""
    files, issues = find_model_files(paths)
    texts: list[tuple[str, str]] = []
    for file in files:
        try:
            texts.append((str(file), file.read_text(encoding="utf-8")))
        except UnicodeDecodeError as exc:
            issues.append(ModelIssue(str(file), 0, "", f"not UTF-8 text (byte {exc.start})"))
        except OSError as exc:
            issues.append(ModelIssue(str(file), 0, "", f"cannot read: {exc.strerror or exc}"))
    return load_model_texts(texts, issues=issues)


def load_model_texts(texts: Sequence[tuple[str, str]], *, issues: list[ModelIssue] | None = None) -> Model:
    """Load and merge ``(filename, yaml_text)`` pairs. Raises ModelError listing every problem found."""
    with gc_paused():
        return _load_texts(texts, issues)


def _load_texts(texts: Sequence[tuple[str, str]], issues: list[ModelIssue] | None) -> Model:
    collected = _Collected([], set(), list(issues or []))
    for filename, text in texts:
        _collect_file(filename, text, collected)
    collected.issues.extend(check_references(collected.entries, collected.invalid_ids))
    sources = tuple(name for name, _ in texts)
    if collected.issues:
        # The partial model lets `vigil validate` check the monitors of the valid entries in the same run.
        raise ModelError(collected.issues, partial=lambda: _build(collected, sources))
    return _build(collected, sources)


def _parse(filename: str, text: str, out: _Collected) -> Source | None:
    """Parse with the fast YAML 1.2 parser; on any complaint, parse again with the line-aware one.

    PyYAML's line-aware loading costs ~15x more (19 s against 1.2 s for 100,000 components), so it only runs
    when there is something to point at: a syntax error, a duplicate key, or (later) an invalid field.
    """
    try:
        return Source(filename, text, yaml_rs.loads(text))
    except Exception:  # any refusal sends us to the careful parser, which explains it
        pass
    try:
        data, duplicates = load_yaml(text)
    except YamlSyntaxError as exc:
        out.issues.append(ModelIssue(filename, exc.line, "", str(exc)))
        return None
    for line, key in duplicates:
        out.issues.append(ModelIssue(filename, line, key, f"key {key!r} is given twice in the same mapping"))
    return Source(filename, text, data, lined=data)


def _collect_file(filename: str, text: str, out: _Collected) -> None:
    source = _parse(filename, text, out)
    if source is None:
        return
    data = source.data
    if data is None:
        out.issues.append(ModelIssue(filename, 0, "", "the file is empty: expected 'components:' or 'domains:'"))
        return
    if not isinstance(data, dict):
        out.issues.append(ModelIssue(filename, 1, "", "the file must be a mapping with 'components:' and 'domains:'"))
        return
    for key in data:
        if key not in _TOP_KEYS:
            out.issues.append(source.issue((str(key),), f"unknown key (expected {', '.join(_TOP_KEYS)})"))
    _collect_head(source, out)
    if "notifications" in data:  # kept raw; lines (not the Source) so that the file's data is not kept alive
        out.notifications.append(RawSection(data["notifications"], ("notifications",), source.lines))
    _collect_section(source, "domains", _DOMAINS, _DOMAIN, out)
    _collect_section(source, "components", _COMPONENTS, _COMPONENT, out)


def _collect_head(source: Source, out: _Collected) -> None:
    data = source.data

    def issue(key: str, message: str) -> None:
        out.issues.append(source.issue((key,), message))

    version = data.get("version", 1)
    if version != 1 or isinstance(version, bool):
        issue("version", f"unsupported version {version!r}: this Vigil reads version 1")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        issue("name", "must be a string")
    elif name and out.name is None:
        out.name = name
    if "defaults" in data:
        try:
            defaults = _DEFAULTS.validate_python(data["defaults"])
        except ValidationError as exc:
            out.issues.extend(schema_issues(source.lines, ("defaults",), exc, patterns=PATTERN_MESSAGES))
            return
        if out.default_availability is not None and out.default_availability != defaults.availability:
            issue("defaults", "another file already set a different defaults.availability")
        out.default_availability = defaults.availability


def _collect_section(
    source: Source, section: str, many: TypeAdapter[Any], one: TypeAdapter[Any], out: _Collected
) -> None:
    items = source.data.get(section)
    if items is None:
        return
    if not isinstance(items, list):
        out.issues.append(source.issue((section,), "must be a list"))
        return
    try:
        # One call for the whole list is several times faster than one per entry; entries are validated one
        # by one only when something is wrong, so that the valid ones still take part in the checks.
        specs = many.validate_python(items)
    except ValidationError:
        pass
    else:
        out.entries.extend(Entry(spec, source, (section, i)) for i, spec in enumerate(specs))
        return
    for index, item in enumerate(items):
        path = (section, index)
        try:
            spec = one.validate_python(item)
        except ValidationError as exc:
            out.issues.extend(schema_issues(source.lines, path, exc, patterns=PATTERN_MESSAGES))
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                out.invalid_ids.add(item["id"])
            continue
        out.entries.append(Entry(spec, source, path))


def _requirement(spec: str | RefSpec | AllSpec | AnySpec | AtLeastSpec) -> Requirement:
    if isinstance(spec, str):
        return Requirement((spec,), GroupMode.ALL, 1)
    flags = (spec.optional, spec.startup_only, spec.name)
    if isinstance(spec, RefSpec):
        return Requirement((spec.id,), GroupMode.ALL, 1, *flags)
    if isinstance(spec, AllSpec):
        return Requirement(tuple(spec.all), GroupMode.ALL, len(spec.all), *flags)
    if isinstance(spec, AnySpec):
        return Requirement(tuple(spec.any), GroupMode.ANY, 1, *flags)
    return Requirement(tuple(spec.of), GroupMode.AT_LEAST, spec.at_least, *flags)


def _monitor_entries(entry: Entry, items: list[Any]) -> tuple[MonitorEntry, ...]:
    lines = entry.source.lines  # not the Source: the model must not keep every file's parsed data alive
    return tuple(MonitorEntry(item, (*entry.path, "monitors", i), lines) for i, item in enumerate(items))


def _build(collected: _Collected, sources: tuple[str, ...]) -> Model:
    default = collected.default_availability if collected.default_availability is not None else 0.999
    components: dict[str, Component] = {}
    domains: dict[str, Domain] = {}
    for entry in collected.entries:
        spec = entry.spec
        given = spec.steady_availability()
        source = "default" if given is None else ("availability" if spec.availability is not None else "mtbf/mttr")
        availability = default if given is None else given
        if isinstance(spec, DomainSpec):
            domains[spec.id] = Domain(
                spec.id, spec.kind, spec.name or spec.id, availability, source,
                tuple(spec.domains), spec.state, spec.description, entry.source.file,
            )  # fmt: skip
            continue
        components[spec.id] = Component(
            id=spec.id,
            kind=spec.kind,
            name=spec.name or spec.id,
            availability=availability,
            availability_source=source,
            owner=spec.owner,
            tier=spec.tier,
            slo=spec.slo,
            description=spec.description,
            runs_on=spec.runs_on,
            requirements=tuple(_requirement(r) for r in spec.depends_on),
            domains=tuple(spec.domains),
            state=spec.state,
            file=entry.source.file,
            # A truth test is all that a component without monitors pays.
            monitors=_monitor_entries(entry, spec.monitors) if spec.monitors else (),
        )
    name = collected.name or (Path(sources[0]).stem if sources else "model")
    return Model(name, components, domains, default, sources, tuple(collected.notifications))
