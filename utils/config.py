"""Typed configuration: dataclass schemas, YAML files that inherit from a base, dotted command-line overrides.

A run's configuration is built in three layers, last wins:

1. the defaults of the schema (`configs/schema.py`), defined once and typed; a value without a default must come from
   the next layers;
2. a YAML file, which may name a parent with ``base: relative/path.yaml`` and then holds only differences;
3. ``section.key=value`` overrides from the command line (values parsed as YAML scalars: ``1e-3``, ``true``, ``[1, 2]``).

Every error names the key, where the value came from (file or command line) and, for unknown keys, the closest valid
key; values are range-checked (`bounded`). Validation happens before anything is written, so a typo leaves no trace
on disk. `config_to_yaml` gives the resolved config as YAML (the scripts' --print-config).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from utils.errors import UserError

BASE_KEY = "base"
COMMAND_LINE = "the command line"


class ConfigError(UserError, ValueError):
    """A configuration problem, with a message that names the key and its source."""


# ----------------------------------------------------------------------------------------------------------------------
# Required values
# ----------------------------------------------------------------------------------------------------------------------
class _Required:
    """Sentinel for a value the user must give (no sensible default, e.g. an output folder)."""

    def __repr__(self) -> str:
        return "<required>"


REQUIRED: Any = _Required()


def required(nonempty: bool = False) -> Any:
    """Field default meaning 'must be set by a YAML file or an override' (nonempty: and not to '')."""
    return dataclasses.field(default=REQUIRED, metadata={"nonempty": True} if nonempty else {})


# ----------------------------------------------------------------------------------------------------------------------
# Ranges and checks, verified when a config is loaded (a value that divides by zero or trains backwards stops there)
# ----------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Range:
    """low <= value <= high (strict where open); None is unbounded. Applies to every item of a list or tuple."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        if value != value:  # NaN compares false with everything: it would pass every bound, it fits none
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return "a value " + " and ".join(parts)


def bounded(default: Any, low: float | None = None, high: float | None = None, *, low_open: bool = False,
            high_open: bool = False, check: Any = None, expected: str = "") -> Any:
    """A field whose value (every item of a list or tuple) must lie in the range; `check(value)` adds a condition on
    the whole value: False (described by `expected`), or a string saying what is wrong (None or True: fine)."""
    metadata = {"range": Range(low, high, low_open, high_open)}
    if check is not None:
        metadata.update(check=check, expected=expected)
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


POSITIVE = {"low": 0, "low_open": True}
PROBABILITY = {"low": 0.0, "high": 1.0}
FRACTION = {"low": 0.0, "high": 1.0, "high_open": True}  # [0, 1): a share that leaves something


def ordered_pair(value: tuple) -> bool:
    return value[0] <= value[1]


def _check_values(schema: type, config: Any, sources: dict[str, str], prefix: str = "") -> None:
    """Every field's range, non-emptiness and check, named with its key and where the value came from."""
    hints = typing.get_type_hints(schema)
    for field in dataclasses.fields(schema):
        dotted, value = f"{prefix}{field.name}", getattr(config, field.name)
        if dataclasses.is_dataclass(hints[field.name]):
            _check_values(hints[field.name], value, sources, dotted + ".")
            continue
        where = sources.get(dotted, "the defaults")
        if field.metadata.get("nonempty") and value == "":
            raise ConfigError(f"{where}: '{dotted}' is empty; give a path")
        bounds = field.metadata.get("range")
        items = value if isinstance(value, (list, tuple)) else [value]
        if bounds is not None and not all(item is None or bounds.holds(item) for item in items):
            raise ConfigError(f"{where}: '{dotted}' = {value!r} is out of range: expected {bounds.describe()}")
        check = field.metadata.get("check")
        verdict = True if check is None or value is None else check(value)
        if verdict is False or isinstance(verdict, str):  # a check says False, or what is wrong in its own words
            problem = verdict if isinstance(verdict, str) else f"expected {field.metadata['expected']}"
            raise ConfigError(f"{where}: '{dotted}' = {value!r}: {problem}")


# ----------------------------------------------------------------------------------------------------------------------
# YAML reading: duplicate keys are errors, `base:` chains are followed
# ----------------------------------------------------------------------------------------------------------------------
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping_no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    mapping: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            raise ConfigError(
                f"{loader.name}: duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                f"(first defined earlier in the same mapping); keep one"
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_no_duplicates)
# PyYAML follows YAML 1.1, where `yes`, `no`, `on` and `off` are booleans: a typo'd string value would silently
# become a bool. Booleans follow YAML 1.2 here: true and false only.
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
# PyYAML follows YAML 1.1, where `1e-3` (no dot) is a string. Learning rates are written that way, so floats follow
# YAML 1.2 here: an optional dot and an optional exponent.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def _load_yaml_text(text: str, name: str) -> Any:
    loader = _StrictLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = _load_yaml_text(path.read_text(encoding="utf-8"), str(path))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 1}} -> {'optim.lr': 1}. Lists and tuples are leaves."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def load_yaml_chain(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, str]]:
    """Read a YAML file and its `base:` ancestors. Returns flat values and, per key, the file that set it."""
    path = Path(path).resolve()
    chain: dict[Path, dict] = {}  # each file of the chain, read once, the named file first
    while True:
        if path in chain:
            cycle = " -> ".join(str(p) for p in [*chain, path])
            raise ConfigError(f"config files inherit in a cycle: {cycle}")
        data = chain[path] = _read_yaml(path)
        parent = data.pop(BASE_KEY, None)
        if parent is None:
            break
        if not isinstance(parent, str):
            raise ConfigError(f"{path}: '{BASE_KEY}' must be a path to the parent YAML file, got {parent!r}")
        path = (path.parent / parent).resolve()

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for file, data in reversed(chain.items()):  # root ancestor first, the named file last
        for key, value in flatten(data).items():
            values[key] = value
            sources[key] = str(file)
    return values, sources


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """['optim.lr=1e-3', 'data.root=/x'] -> {'optim.lr': 0.001, 'data.root': '/x'}."""
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} from {COMMAND_LINE} is not of the form section.key=value")
        try:
            parsed[key] = _load_yaml_text(text, COMMAND_LINE) if text.strip() else ""
        except yaml.YAMLError as error:
            raise ConfigError(f"override {item!r}: the value is not a valid YAML scalar or list: {error}") from error
    return parsed


# ----------------------------------------------------------------------------------------------------------------------
# Schema walking and type checking
# ----------------------------------------------------------------------------------------------------------------------
def schema_fields(schema: type, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a dataclass schema as {dotted key: resolved type}."""
    hints = typing.get_type_hints(schema)
    leaves: dict[str, Any] = {}
    for field in dataclasses.fields(schema):
        kind = hints[field.name]
        dotted = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(kind):
            leaves.update(schema_fields(kind, dotted + "."))
        else:
            leaves[dotted] = kind
    return leaves


def _type_name(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(kind))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(kind))
    if origin in (list, tuple):
        args = typing.get_args(kind)
        inner = ", ".join(_type_name(arg) for arg in args if arg is not Ellipsis)
        return f"{origin.__name__}[{inner}]"
    return getattr(kind, "__name__", str(kind))


def _coerce(value: Any, kind: Any) -> Any:
    """Return value converted to `kind`, or raise TypeError. Only lossless conversions (int -> float, list -> tuple)."""
    origin = typing.get_origin(kind)
    if kind is Any:
        return value
    if kind is type(None):
        if value is None:
            return None
        raise TypeError
    if origin is Literal:
        if value in typing.get_args(kind):
            return value
        raise TypeError
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(kind):
            try:
                return _coerce(value, arg)
            except TypeError:
                continue
        raise TypeError
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise TypeError
        args = typing.get_args(kind)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise TypeError
            return tuple(_coerce(item, arg) for item, arg in zip(value, args))
        inner = args[0] if args else Any
        items = [_coerce(item, inner) for item in value]
        return tuple(items) if origin is tuple else items
    # YAML already parsed true/false: "yes" strings or 0/1 are refused on purpose, as a bool is refused for a number
    accepted = {float: (int, float), int: (int,)}.get(kind, (kind,))
    if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
        raise TypeError
    return float(value) if kind is float else value


def did_you_mean(word: str, choices: list[str], cutoff: float = 0.6) -> str:
    """"; did you mean 'x'?" with the closest of `choices`, or "" when none is close."""
    close = difflib.get_close_matches(str(word), [str(choice) for choice in choices], n=1, cutoff=cutoff)
    return f"; did you mean {close[0]!r}?" if close else ""


def _closest(key: str, valid: list[str]) -> str:
    """A 'did you mean' hint: closest full dotted key, else closest last component within the same section."""
    matches = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if not matches:
        section, _, leaf = key.rpartition(".")
        siblings = [v for v in valid if v.rpartition(".")[0] == section]
        leaves = difflib.get_close_matches(leaf, [s.rpartition(".")[2] for s in siblings], n=1, cutoff=0.5)
        matches = [f"{section}.{leaves[0]}" if section else leaves[0]] if leaves else []
    if matches:
        return f"; did you mean '{matches[0]}'?"
    section = key.rpartition(".")[0]
    siblings = [v.rpartition(".")[2] for v in valid if v.rpartition(".")[0] == section]
    if section and siblings:  # a key of another stage, most often: say what this stage's section holds
        return f"; this config's '{section}' section holds: {', '.join(siblings)}"
    return f"; valid keys start with: {sorted({v.split('.')[0] for v in valid})}"


def _build(schema: type, values: dict[str, Any], prefix: str = "", base: Any = None) -> Any:
    """`base` (default: the schema's defaults, nested default factories included) with `values` applied."""
    base = schema() if base is None else base
    hints = typing.get_type_hints(schema)
    changes = {}
    for field in dataclasses.fields(schema):
        dotted = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(hints[field.name]):
            changes[field.name] = _build(hints[field.name], values, dotted + ".", getattr(base, field.name))
        elif dotted in values:
            changes[field.name] = values[dotted]
    return dataclasses.replace(base, **changes)


def known_values(schema: type, values: dict[str, Any], sources: dict[str, str]) -> dict[str, Any]:
    """`values` without empty sections; an unknown key (with the closest valid one) or a section given a value is an
    error naming where it came from."""
    valid = sorted(schema_fields(schema))
    sections = {v.rsplit(".", 1)[0] for v in valid if "." in v}
    known = {}
    for key, value in values.items():
        source = sources.get(key, COMMAND_LINE)
        if key in valid:
            known[key] = value
        elif key in sections and value not in (None, {}):
            raise ConfigError(f"{source}: '{key}' is a section, give its keys (e.g. '{key}.<name>: value')")
        elif key not in sections:  # an empty section ('optim:' with all keys commented out) is skipped
            raise ConfigError(f"{source}: unknown key '{key}'{_closest(key, valid)}")
    return known


def build_config(schema: type, values: dict[str, Any], sources: dict[str, str]) -> Any:
    """Validate flat `values` against `schema` and build the typed config. `sources` names where each value came from."""
    leaves = schema_fields(schema)
    valid = sorted(leaves)
    checked: dict[str, Any] = {}
    for key, value in known_values(schema, values, sources).items():
        source = sources.get(key, COMMAND_LINE)
        try:
            checked[key] = _coerce(value, leaves[key])
        except TypeError:
            choices = typing.get_args(leaves[key]) if typing.get_origin(leaves[key]) is Literal else []
            raise ConfigError(
                f"{source}: '{key}' expects {_type_name(leaves[key])}, got {value!r} ({type(value).__name__})"
                + did_you_mean(value, choices, cutoff=0.5)) from None
    config = _build(schema, checked)
    missing = [key for key in valid if _get(config, key) is REQUIRED]
    if missing:
        listed = ", ".join(f"'{key}'" for key in missing)
        raise ConfigError(f"missing required value(s) {listed}: set them in the YAML file or as key=value on {COMMAND_LINE}")
    _check_values(schema, config, sources)
    return config


def _get(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def load_config(schema: type, path: str | os.PathLike | None, overrides: list[str] | None = None) -> Any:
    """Defaults of `schema` <- YAML chain at `path` (optional) <- dotted overrides. Raises ConfigError on any problem."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if path is not None:
        values, sources = load_yaml_chain(path)
    for key, value in parse_overrides(overrides or []).items():
        values[key] = value
        sources[key] = COMMAND_LINE
    return build_config(schema, values, sources)


def config_to_dict(config: Any) -> dict:
    """Plain nested dict (tuples become lists) for YAML output and checkpoints loaded with weights_only=True."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        return value

    return plain(dataclasses.asdict(config))


def config_to_yaml(config: Any) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)

