"""One config mechanism: YAML file + ``key=value`` overrides -> a typed dataclass.

YAML is parsed with a ``yaml.SafeLoader`` (data, never code) that refuses a key given twice; a file that is not
UTF-8 is a one-line error naming the byte. Every field of a config dataclass documents
itself with ``field(metadata={"help": ...})``; unknown keys and values of the wrong type are errors that
name the key and where it came from (the file, the command-line override, or the Python argument of the
notebook API). Nested dataclasses are addressed with dots (``lora.r=16``). A config class may define ``config_problems()``, yielding
``(key, problem)`` for values out of range; the first one is an error that names its source, raised while
the config is loaded (before any model or output).

Numbers and strings: a value written in quotes is a string, by the writer's choice, so ``factor: "0.5"`` for a
number setting is an error naming the file and key (and a string given from Python is never read as a number).
A value written without quotes is read as YAML reads it, except that ``5e-4`` (which YAML 1.1 reads as a string,
lacking a dot) is the number for a number setting, in a file and in a ``key=value`` override alike.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sicl.errors import ConfigError

T = TypeVar("T")


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None, *,
                values: typing.Mapping[str, Any] | None = None, caller: str = "Python") -> T:
    """Build ``cls`` from a YAML file (optional), ``key=value`` overrides (values parsed as YAML), then ``values``:
    keys set from Python (``{"max_steps": 50, "lora.r": 16}``), taken as given and never parsed as YAML; their
    errors name ``argument KEY of CALLER``."""
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_marked(path)
    # key -> (source of a bad value, source of a bad key), for messages
    cli: dict[str, tuple[str, str]] = {}
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"command line: {item!r}: expected key=value")
        try:
            value = yaml.load(raw, Loader=_StrictLoader) if raw != "" else ""
        except _DuplicateKey as e:
            raise ConfigError(f"override {item}: {e.problem}; keep one") from None
        except yaml.YAMLError:
            value = raw
        _set_dotted(data, key.strip(), value)
        cli[key.strip()] = (f"override {item}", "command line")
    for key, value in (values or {}).items():
        _set_dotted(data, key, copy.deepcopy(value))
        cli[key] = (f"argument {key} of {caller}",) * 2
    where = str(path) if path else "config"
    for key, why in getattr(cls, "IGNORED_KEYS", {}).items():
        # a value other than the default would be silently ignored (a saved, resolved config holds the default)
        if _has_dotted(data, key) and _get_dotted(data, key) != _default_of(cls, key):
            source = next((s[1] for c, s in cli.items() if key == c or key.startswith(c + ".")), where)
            raise ConfigError(f"{source}: {key} is not used here ({why})")
    token = _CLI_KEYS.set(types.MappingProxyType(cli))
    try:
        return _build(cls, data, where=where)
    finally:
        _CLI_KEYS.reset(token)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a mapping (empty file: ``{}``). Every problem is a one-line :class:`ConfigError`
    naming the file (and line where there is one): unreadable, not UTF-8, invalid YAML, a key given twice in
    one mapping, or a top level that is not a mapping."""
    return _unmark(_read_marked(path))


def _read_marked(path: str | Path) -> dict[str, Any]:
    """:func:`read_config_file`, its unquoted number-like strings kept as :class:`_PlainNumber` (for
    :func:`_coerce`)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{path}: not valid UTF-8 (bad byte 0x{raw[e.start]:02x} at line {line}, byte "
                          f"{e.start})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass (no Python tags)
    except _DuplicateKey as e:
        raise ConfigError(f"{path}:{e.problem_mark.line + 1}: {e.problem} ({e.note}); keep one") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML ({getattr(e, 'problem', None) or e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys to values")
    return data


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A key given twice in one YAML mapping (PyYAML keeps the last one silently)."""


class _PlainNumber(str):
    """A YAML scalar written without quotes that YAML 1.1 reads as a string and Python as a number (``5e-4``,
    ``1e3``: no dot): the number for a number setting (:func:`_coerce`), the text for anything else. A quoted
    ``"5e-4"`` is a plain ``str``: a string by the writer's choice."""

    __slots__ = ()


def _number_like(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _unmark(value: Any) -> Any:
    """``value`` with every :class:`_PlainNumber` (in lists and mappings too) a plain ``str``."""
    if isinstance(value, _PlainNumber):
        return str(value)
    if isinstance(value, dict):
        return {_unmark(k): _unmark(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unmark(v) for v in value]
    return value


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (plain data, never Python objects) that refuses a key given twice in one mapping:
    ``max_steps: 2`` then ``max_steps: 3`` is an error, not "the last one wins". An unquoted string that reads as a
    number (``5e-4``) is a :class:`_PlainNumber`, so that a config tells it from a quoted one."""

    def construct_yaml_str(self, node: yaml.Node) -> Any:
        value = super().construct_yaml_str(node)
        if isinstance(node, yaml.ScalarNode) and node.style is None and _number_like(value):
            return _PlainNumber(value)
        return value

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: merged keys may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: SafeLoader's own error follows
                    continue
                if first is not None:
                    raise _DuplicateKey(None, None, f"key {key!r} is given twice", key_node.start_mark,
                                        note=f"first on line {first + 1}")
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor("tag:yaml.org,2002:str", _StrictLoader.construct_yaml_str)


# Keys given on the command line or from Python while a config is built (key -> (source of a bad value, source
# of a bad key)), so an error names the right source.
_CLI_KEYS: contextvars.ContextVar[typing.Mapping[str, tuple[str, str]]] = contextvars.ContextVar(
    "sicl_cli_keys", default=types.MappingProxyType({}))


def _bad(where: str, key: str, problem: str) -> ConfigError:
    """``KEY PROBLEM``, attributed to the override or argument that set ``key`` (``override max_steps=ten: ...``),
    else to the file ``where``."""
    cli = _CLI_KEYS.get()
    for k, (source, _) in cli.items():  # `lora={r: 0}` sets lora.r, `tasks=[...]` tasks[0].pool
        if key == k or key.startswith((k + ".", k + "[")):
            return ConfigError(f"{source}: {key} {problem}")
    return ConfigError(f"{where}: {key} {problem}")


def _get_dotted(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        node = node[part]
    return node


def _default_of(cls: type, key: str) -> Any:
    node: Any = cls()
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _has_dotted(data: dict[str, Any], key: str) -> bool:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def to_dict(config: Any) -> dict[str, Any]:
    """Plain dict (for writing the resolved config next to a run's results)."""
    return dataclasses.asdict(config)


def changed_settings(before: Any, now: Any, may_change: typing.Collection[str] = ()) -> dict[str, tuple[Any, Any]]:
    """``{key: (before, now)}`` for every setting on which two configs (or their dicts) differ, nested ones by dotted
    key (``lora.r``, ``mix.adult``, ``tasks[1].weight``) so a message names the very key; keys whose top-level name
    is in ``may_change`` are left out. For ``--resume``: a run goes on only with the settings it started with."""
    a = _flat(before if isinstance(before, dict) else to_dict(before))
    b = _flat(now if isinstance(now, dict) else to_dict(now))
    return {k: (a.get(k), b.get(k)) for k in sorted({*a, *b})
            if k.split(".")[0].split("[")[0] not in may_change and a.get(k) != b.get(k)}


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            out[f"{key}.count"] = len(v)
            for i, x in enumerate(v):
                out.update(_flat(x, f"{key}[{i}]."))
        else:
            out[key] = v
    return out


def dump_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")


def field_help(cls: type) -> dict[str, str]:
    """``{name: help}`` for documentation and ``--help`` listings."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


def _build(cls: type[T], data: dict[str, Any], where: str, prefix: str = "") -> T:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        cli = _CLI_KEYS.get()
        # an override sets the key itself, a key below it (`foo.bar=1`), or a section above it (`tasks=[{...}]`)
        source = next((cli[c][1] for k in unknown for full in [prefix + k] for c in cli
                       if c == full or c.startswith(full + ".") or full.startswith((c + ".", c + "["))), where)
        raise ConfigError(f"{source}: unknown key(s) {', '.join(prefix + k for k in unknown)} for "
                          f"{cls.__name__} (known: {', '.join(fields)})")
    missing = [n for n, f in fields.items() if n not in data and f.init and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:  # named like a bad value (the override that set the section, else the file), not as a TypeError
        raise _bad(where, prefix + missing[0], "is missing")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{prefix}{name}", where)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None
    check = getattr(obj, "config_problems", None)
    for key, problem in check() if check is not None else ():
        raise _bad(where, prefix + key, problem)
    return obj


def _coerce(tp: Any, value: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key, where)
            except ConfigError as e:
                errors.append(str(e))
        if errors:
            raise ConfigError(errors[0])
        raise _bad(where, key, "has a bad value")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _bad(where, key, "must be a mapping")
        return _build(tp, value, where, prefix=key + ".")
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if dataclasses.is_dataclass(item_tp) and not (isinstance(value, list | tuple) and
                                                      all(isinstance(v, dict) for v in value)):
            names = ", ".join(f.name for f in dataclasses.fields(item_tp))
            raise _bad(where, key, f"must be a list of mappings ([{{{names}}}, ...]), got {value!r}")
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            value = [value]  # `k=3` for a list field means [3]
        if not isinstance(value, list | tuple):
            raise _bad(where, key, "must be a list")
        # an entry of a list of mappings is named by its index (targets[2].factor), as config_problems names it
        items = [_coerce(item_tp, v, f"{key}[{i}]" if dataclasses.is_dataclass(item_tp) else key, where)
                 for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _bad(where, key, "must be a mapping")
        return _unmark(value)
    if tp is Any:
        return _unmark(value)
    plain = isinstance(value, _PlainNumber)  # written without quotes (a number for a number setting)
    value = _unmark(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _bad(where, key, f"must be true or false, got {value!r}")
    if isinstance(value, bool) and typing.get_origin(tp) is not typing.Literal:
        # bool is an int subclass: `max_steps: true` must not read as 1
        raise _bad(where, key, f"must be {getattr(tp, '__name__', tp)}, got {value!r}")
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is float and plain:  # YAML 1.1 reads an unquoted 3e-4 (no dot) as a string: it is the number
        return float(value)
    if tp is float and isinstance(value, str):  # a quoted value (or a Python str) is a string by choice
        hint = "; a quoted value is text: write it without quotes" if _number_like(value) else ""
        raise _bad(where, key, f"must be a number (float), got the string {value!r}{hint}")
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    if typing.get_origin(tp) is typing.Literal:
        if any(value == a and type(value) is type(a) for a in typing.get_args(tp)):
            return value
        raise _bad(where, key, f"must be one of {typing.get_args(tp)}, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _bad(where, key, f"must be {getattr(tp, '__name__', tp)}, got {value!r}")
