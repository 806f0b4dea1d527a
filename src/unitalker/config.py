"""Typed, frozen dataclass configs from YAML/JSON, with ``--set a.b=value`` overrides.

Unknown keys and values of the wrong type are errors that name the key, so a typo in a
training config fails before any work starts.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

T = TypeVar("T")


class ConfigError(ValueError):
    """A config that does not match its dataclass."""


def check_range(
    name: str,
    value: float | None,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
) -> None:
    """Raise ValueError naming ``name`` unless ``lo <= value <= hi`` (``lo < value`` when
    ``lo_open``); None passes (an optional field left unset). For ``__post_init__`` checks of
    config dataclasses: :func:`from_dict` turns the error into a ConfigError with the key path.
    """
    if value is None:
        return
    bad = (value != value) or (  # NaN is in no range
        (lo is not None and (value <= lo if lo_open else value < lo))
        or (hi is not None and value > hi)
    )
    if bad:
        if lo is not None and hi is not None:
            want = f"in {'(' if lo_open else '['}{lo}, {hi}]"
        elif lo is not None:
            want = f"{'>' if lo_open else '>='} {lo}"
        else:
            want = f"<= {hi}"
        raise ValueError(f"{name} must be {want}, got {value!r}")


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain JSON-able dict (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from a plain dict, checking keys and types recursively."""
    return _convert(cls, data, where or cls.__name__)


# Kept over dacite / cattrs: both take ``true`` as an int (cattrs also 1.5 -> 1), dacite
# drops the key path of unknown keys and __post_init__ errors, cattrs hides the latter.
def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {tp}"
        )
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        unknown = set(value) - set(fields)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {sorted(map(str, unknown))}; known: {sorted(fields)}"
            )
        kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in value.items()}
        try:
            return tp(**kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: {e}") from e
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        item = args[0] if args else Any
        seq = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(seq) if origin is tuple else seq
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {args}")
        return value
    if tp is float:
        if isinstance(value, str) and value.strip().lower() in ("nan", "+nan", "-nan"):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, str):
            # YAML 1.1 reads "3e-4" (no dot) as a string; accept what float() accepts.
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


# --------------------------------------------------------------------------------------
# Reading YAML safely. A config is plain data: mappings, lists, strings, numbers, booleans
# and null. Anything else is refused with the file and the line: other tags (!!binary,
# !!set, !!python/...), alias bombs ("billion laughs": a few hundred bytes whose aliases
# expand to billions of nodes once copied), nesting deep enough to exhaust the stack,
# files too large to be a config, and bytes that are not UTF-8.

MAX_CONFIG_BYTES = 1024 * 1024
MAX_ALIASES = 100  # references to anchors (&x ... *x) per document
MAX_NODES = 100_000  # values after expanding aliases
MAX_DEPTH = 32

_PLAIN_TAGS = {
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")
}


def _loader_class() -> type:
    import yaml

    class ConfigLoader(yaml.SafeLoader):
        """SafeLoader limited to plain data, with alias counting."""

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.aliases = 0
            self.depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            # Events are parsed lazily: stopping here keeps deep nesting from ever
            # reaching Python's recursion limit (slow, and a RecursionError).
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    mark = self.peek_event().start_mark
                    raise ConfigError(
                        f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels: refused"
                    )
                return self._compose_counted(parent, index)
            finally:
                self.depth -= 1

        def _compose_counted(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    mark = self.peek_event().start_mark
                    raise ConfigError(
                        f"line {mark.line + 1}: more than {MAX_ALIASES} aliases (*name): "
                        "refused (an alias bomb?)"
                    )
            return super().compose_node(parent, index)

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            if node.tag not in _PLAIN_TAGS:
                name = node.tag.replace("tag:yaml.org,2002:", "!!")
                raise ConfigError(
                    f"line {node.start_mark.line + 1}: tag {name} is not allowed in a config "
                    "(only plain strings, numbers, booleans, null, lists and mappings)"
                )
            return super().construct_object(node, deep)

    # A date-like value (2024-01-01) stays a string instead of becoming a timestamp.
    ConfigLoader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return ConfigLoader


def _check_size(data: Any) -> None:
    """Refuse data that expands to more than MAX_NODES values or MAX_DEPTH levels."""
    count = 0
    stack = [(data, 0)]
    while stack:
        obj, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigError(f"more than {MAX_NODES} values once aliases are expanded: refused")
        if depth > MAX_DEPTH:
            raise ConfigError(f"nested deeper than {MAX_DEPTH} levels: refused")
        if isinstance(obj, dict):
            stack.extend((v, depth + 1) for v in obj.values())
        elif isinstance(obj, list):
            stack.extend((v, depth + 1) for v in obj)


def load_yaml_text(text: str, source: str = "config") -> Any:
    """Parse YAML (or JSON) text as plain data, within the limits above.

    Raises:
        ConfigError: naming ``source`` and, where known, the line.
    """
    import yaml

    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: {len(text)} characters is too large for a config")
    loader = None
    try:
        loader = _loader_class()(text)  # the reader refuses control characters at once
        data = loader.get_single_data()
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested deeper than {MAX_DEPTH} levels: refused") from None
    except (ValueError, OverflowError) as e:  # e.g. an integer of 5000 digits
        raise ConfigError(f"{source}: unreadable value: {e}") from None
    finally:
        if loader is not None:
            loader.dispose()
    try:
        _check_size(data)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return data


def read_yaml_file(path: str | Path) -> Any:
    """Read a YAML/JSON config file as plain data (size, encoding and content checked)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"config file not found: {p}")
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder, not a config file")
    try:
        size = p.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{p}: {size} bytes is too large for a config file (limit {MAX_CONFIG_BYTES})"
            )
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte {e.start}: {raw[e.start : e.start + 1]!r}); "
            "save the config as UTF-8"
        ) from None
    return load_yaml_text(text.removeprefix("\ufeff"), str(p))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` -> (["train", "lr"], 0.0003); values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key.path=value")
    key, raw = text.split("=", 1)
    value = load_yaml_text(raw, f"override {text!r}") if raw != "" else ""
    path = key.strip().split(".")
    if not all(path):
        raise ConfigError(f"override {text!r}: empty key in {key!r}")
    return path, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides to a plain dict (types are checked by from_dict)."""
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for k in path[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {k} is not a section")
        node[path[-1]] = value
    return data


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None
) -> T:
    """Load ``cls`` from a YAML/JSON file (or defaults when None) with overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        data = read_yaml_file(p)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping at top level")
    if not data:
        data = to_dict(cls())
    data = apply_overrides(data, overrides or [])
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}{e}") from e
