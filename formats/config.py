"""Typed configs: one dataclass per component, turned into `--flags` (field docstrings become `--help`)
and saved as JSON next to the weights it produced. Stdlib only; imports nothing of ours.

A config is a dataclass whose fields are int, float, str, bool, Literal[...], X | None, tuples
(`tuple[int, ...]`, `tuple[float, str]`) of int/float/str, or another config dataclass (flattened as
`--field.sub-field`). Help text is the string literal written right after a field:

    @dataclass(frozen=True)
    class SACConfig:
        lr: float = 3e-4
        '''Adam learning rate.'''

    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, SACConfig)  # --lr FLOAT  Adam learning rate. (default: 0.0003)
    config = dataclass_from_args(SACConfig, parser.parse_args())
    save_config(config, run_dir / "sac.json")  # and later: load_config(SACConfig, run_dir / "sac.json")

Valid values are declared in field metadata, shown in --help and enforced by `dataclass_from_args` and
`from_dict` (one ValueError naming the flag, or the dotted JSON key):

    steps: int = field(default=20_000, metadata={"min": 1})  # --steps INT ... (default: 20000; >= 1)
    gamma: float = field(default=0.99, metadata={"gt": 0.0, "max": 1.0})  # "min"/"max" include the
    # limit, "gt"/"lt" exclude it; on a tuple field every item is checked

On the command line only (a saved config must load on another machine), `dataclass_from_args` also
checks paths, `metadata={"path": KIND}` with KIND one of `PATH_KINDS`, and then calls the config's
`check(self) -> None` if it has one (nested configs first), for rules across fields. Its ValueError
should name the flags (`--contact-sheet needs --obs pixels`).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import operator
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from formats.files import atomic_write

__all__ = [
    "PATH_KINDS",
    "add_dataclass_arguments",
    "dataclass_from_args",
    "from_dict",
    "load_config",
    "save_config",
    "to_dict",
]

T = TypeVar("T")

NONE_WORD = "none"
"""What a user types for None on the command line (any case)."""

_SCALARS: tuple[type, ...] = (int, float, str)

_BOUNDS = {
    "min": (">=", operator.ge),
    "gt": (">", operator.gt),
    "max": ("<=", operator.le),
    "lt": ("<", operator.lt),
}
"""Bound keys of field metadata (lower bounds first): how --help and errors write them, and the test
a value must pass."""

PATH_KINDS = {
    "existing_file": "an existing file",
    "existing_dir": "an existing directory",
    "existing_path": "an existing file or directory",
    "output_dir": "a directory, created if missing",
    "output_file": "a file to write",
}
"""Kinds of `metadata={"path": KIND}` and how --help describes them."""


@dataclasses.dataclass(frozen=True)
class _FieldType:
    """A supported field type, taken apart once. Exactly one of scalar/choices/items/nested is set."""

    optional: bool = False
    scalar: type | None = None  # int, float, str or bool
    choices: tuple[Any, ...] | None = None  # Literal values
    items: tuple[type, ...] | None = None  # tuple item types; one type when variadic
    variadic: bool = False  # tuple[X, ...]
    nested: type | None = None  # a config dataclass


@dataclasses.dataclass(frozen=True)
class _ConfigField:
    name: str
    field: dataclasses.Field
    type: _FieldType
    help: str | None
    bounds: tuple[tuple[str, Any], ...] = ()  # (metadata key, limit), lower bound first
    path: str | None = None  # a PATH_KINDS key

    def limits_text(self) -> str:
        """The valid values as --help writes them after the default: '>= 1', '> 0, <= 1', 'each >= 1'."""
        if self.path is not None:
            return PATH_KINDS[self.path]
        text = ", ".join(f"{_BOUNDS[key][0]} {_show(limit)}" for key, limit in self.bounds)
        return f"each {text}" if self.type.items is not None else text


# ---------------------------------------------------------------------------------------------------------
# Introspection (cached per class)


@functools.cache
def _config_fields(cls: type) -> tuple[_ConfigField, ...]:
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a dataclass")
    try:
        hints = typing.get_type_hints(cls)
    except Exception as e:  # NameError for an unresolvable annotation, TypeError for a bad one
        raise TypeError(f"{cls.__qualname__}: cannot resolve field types: {e}") from e
    docs = _attribute_docs(cls)
    result = []
    for f in dataclasses.fields(cls):
        if not f.init:  # not settable through __init__, so neither a flag nor a JSON key
            continue
        field_type = _parse_type(hints[f.name], cls, f.name)
        help_text = docs.get(f.name) or f.metadata.get("help")
        bounds, path = _parse_limits(f, field_type, cls)
        result.append(_ConfigField(f.name, f, field_type, help_text, bounds, path))
    return tuple(result)


def _parse_limits(f: dataclasses.Field, ft: _FieldType, owner: type) -> tuple[tuple, str | None]:
    """The field's bounds and path kind from its metadata, refusing ones its type cannot have."""
    where = f"{owner.__qualname__}.{f.name}"
    bounds = tuple((key, f.metadata[key]) for key in _BOUNDS if key in f.metadata)
    if bounds:
        numeric = (ft.scalar,) if ft.scalar is not None else ft.items or ()
        if not numeric or not all(kind in (int, float) for kind in numeric):
            raise TypeError(f"{where}: bounds need an int or float field (or a tuple of them)")
        keys = {key for key, _ in bounds}
        if {"min", "gt"} <= keys or {"max", "lt"} <= keys:
            raise TypeError(f"{where}: give one lower bound (min or gt) and one upper (max or lt)")
    path = f.metadata.get("path")
    if path is not None:
        if path not in PATH_KINDS:
            raise TypeError(f"{where}: path kind must be one of {sorted(PATH_KINDS)}, got {path!r}")
        if ft.scalar is not str or bounds:
            raise TypeError(f"{where}: a path field must be a str (or str | None) without bounds")
    return bounds, path


def _parse_type(hint: Any, owner: type, name: str) -> _FieldType:
    def unsupported(why: str = "") -> TypeError:
        return TypeError(
            f"{owner.__qualname__}.{name}: unsupported config field type {hint!r}{why}; use int, float, "
            "str, bool, Literal[...], X | None, tuple[int/float/str, ...], tuple[X, Y] or a config dataclass"
        )

    tp, optional = hint, False
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = typing.get_args(tp)
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(rest) == len(args):
            raise unsupported(" (a union other than X | None)")
        tp, optional = rest[0], True
    origin = typing.get_origin(tp)

    if tp in _SCALARS:
        return _FieldType(optional=optional, scalar=tp)
    if tp is bool:
        if optional:
            raise unsupported(" (bool | None has no flag form; use Literal[...] instead)")
        return _FieldType(scalar=bool)
    if origin is Literal:
        values = typing.get_args(tp)
        if not all(isinstance(v, (str, int)) for v in values):  # bool is an int
            raise unsupported(" (Literal values must be str, int or bool)")
        return _FieldType(optional=optional, choices=values)
    if origin is tuple:
        args = typing.get_args(tp)
        variadic = len(args) == 2 and args[1] is Ellipsis
        items = args[:1] if variadic else args
        if not items or Ellipsis in items or not all(t in _SCALARS for t in items):
            raise unsupported(" (tuple items must be int, float or str)")
        return _FieldType(optional=optional, items=items, variadic=variadic)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if optional:
            raise unsupported(" (a nested config cannot be None)")
        _config_fields(tp)  # reject an unsupported field inside it now, naming that class and field
        return _FieldType(nested=tp)
    raise unsupported()


@functools.cache
def _attribute_docs(cls: type) -> dict[str, str]:
    """Field docstrings (a string literal right after the field) of `cls` and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):  # bases first so subclasses override; skip object
        docs.update(_own_attribute_docs(klass))
    return docs


def _own_attribute_docs(klass: type) -> dict[str, str]:
    try:
        source = inspect.getsource(klass)
    except (OSError, TypeError):  # defined in a REPL or exec(): no help text, but flags still work
        return {}
    if source[:1].isspace():
        # A class defined in a function is indented. Wrapping beats dedent, which fails on
        # docstring lines indented less than the class statement.
        source = "if True:\n" + source
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    class_def = next((node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)), None)
    if class_def is None:
        return {}
    docs = {}
    for statement, following in zip(class_def.body, class_def.body[1:], strict=False):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _field_default(f: dataclasses.Field) -> Any:
    """The field's default (calling its factory), or dataclasses.MISSING."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


# ---------------------------------------------------------------------------------------------------------
# Command line


def _flag(prefix: str, name: str) -> str:
    return f"--{prefix}{name.replace('_', '-')}"


def _dest(prefix: str, name: str) -> str:
    return f"{prefix}{name}".replace("-", "_")


def _show(value: Any) -> str:
    """A default written the way a user would type it."""
    if value is None:
        return NONE_WORD
    if isinstance(value, tuple):
        return " ".join(_show(v) for v in value) if value else "()"
    if isinstance(value, str) and not value:
        return "''"
    return str(value)


def _converter(kind: type, optional: bool) -> Callable[[str], Any]:
    if not optional:
        return kind

    def convert(text: str) -> Any:
        return None if text.lower() == NONE_WORD else kind(text)

    convert.__name__ = kind.__name__  # argparse says "invalid int value: 'x'"
    return convert


def _literal_converter(choices: tuple[Any, ...], optional: bool) -> Callable[[str], Any]:
    by_text = {str(v): v for v in choices}

    def convert(text: str) -> Any:
        if optional and text.lower() == NONE_WORD:
            return None
        if text not in by_text:
            allowed = ", ".join(list(by_text) + ([NONE_WORD] if optional else []))
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {allowed})")
        return by_text[text]

    return convert


class _TupleAction(argparse.Action):
    """Stores a tuple, converting each value by its position's type; `none` alone for an optional one."""

    def __init__(
        self, option_strings, dest, *, items: tuple[type, ...], variadic: bool, optional: bool, **kw
    ) -> None:
        self.items, self.variadic, self.optional = items, variadic, optional
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        values = list(values)
        if self.optional and len(values) == 1 and values[0].lower() == NONE_WORD:
            setattr(namespace, self.dest, None)
            return
        if not self.variadic and len(values) != len(self.items):
            raise argparse.ArgumentError(self, f"expected {len(self.items)} values, got {len(values)}")
        kinds = self.items * len(values) if self.variadic else self.items
        converted = []
        for kind, text in zip(kinds, values, strict=True):
            try:
                converted.append(kind(text))
            except ValueError:
                raise argparse.ArgumentError(self, f"invalid {kind.__name__} value: {text!r}") from None
        setattr(namespace, self.dest, tuple(converted))


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    prefix: str = "",
    defaults: object | None = None,
) -> None:
    """Add `--{prefix}{field-name}` for every field of the dataclass `cls` (nested configs as
    `--{prefix}{field}.{sub-field}`). Help is the field's docstring (else `metadata["help"]`) plus its
    default; the defaults are the dataclass's own, or `defaults`'s values when given. A field with no
    default becomes a required flag. Raises TypeError naming the class and field of an unsupported type."""
    fields = _config_fields(cls)
    if defaults is not None and not isinstance(defaults, cls):
        raise TypeError(f"defaults must be a {cls.__qualname__}, got {type(defaults).__qualname__}")
    for cf in fields:
        default = getattr(defaults, cf.name) if defaults is not None else _field_default(cf.field)
        ft = cf.type
        if ft.nested is not None:
            nested_defaults = None if default is dataclasses.MISSING else default
            nested_prefix = f"{prefix}{cf.name.replace('_', '-')}."
            add_dataclass_arguments(parser, ft.nested, prefix=nested_prefix, defaults=nested_defaults)
            continue

        required = default is dataclasses.MISSING
        suffix = "required" if required else f"default: {_show(default)}"
        suffix = f"({suffix}; {cf.limits_text()})" if cf.bounds or cf.path else f"({suffix})"
        help_text = f"{cf.help} {suffix}" if cf.help else suffix
        kwargs: dict[str, Any] = {"dest": _dest(prefix, cf.name), "required": required}
        if not required:
            kwargs["default"] = default
        none = f"|{NONE_WORD}" if ft.optional else ""

        if ft.scalar is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif ft.scalar is not None:
            kwargs["type"] = _converter(ft.scalar, ft.optional)
            kwargs["metavar"] = ft.scalar.__name__.upper() + none
        elif ft.choices is not None:
            kwargs["type"] = _literal_converter(ft.choices, ft.optional)
            kwargs["choices"] = ft.choices + ((None,) if ft.optional else ())
            kwargs["metavar"] = (
                "{" + ",".join([str(v) for v in ft.choices] + ([NONE_WORD] if none else [])) + "}"
            )
        else:
            assert ft.items is not None
            kwargs.update(action=_TupleAction, items=ft.items, variadic=ft.variadic, optional=ft.optional)
            if ft.variadic:
                kwargs["nargs"] = "*"
                kwargs["metavar"] = ft.items[0].__name__.upper()
            elif ft.optional:
                # argparse has no "N values or one word" nargs: take one or more, check in the action.
                kwargs["nargs"] = "+"
                kwargs["metavar"] = "VALUE"
                types_text = " ".join(t.__name__.upper() for t in ft.items)
                help_text = f"{cf.help} " if cf.help else ""
                help_text += f"Takes {types_text} or {NONE_WORD}. {suffix}"
            else:
                kwargs["nargs"] = len(ft.items)
                kwargs["metavar"] = tuple(t.__name__.upper() for t in ft.items)
        if cf.field.metadata.get("positional"):
            action = _add_positional(parser, cf, kwargs)
        else:
            action = parser.add_argument(_flag(prefix, cf.name), **kwargs)
        # Set after construction: argparse would treat "%" as a format and, on some versions, append
        # its own "(default: ...)" to boolean flags.
        action.help = help_text.replace("%", "%%")


def _add_positional(parser, cf: _ConfigField, kwargs: dict[str, Any]) -> argparse.Action:
    """A field with `metadata={"positional": True}` is a positional argument (e.g. a directory);
    with a default it may be left out."""
    if cf.type.scalar is None or cf.type.scalar is bool:
        raise TypeError(f"positional config field {cf.name!r} must be an int, float or str")
    positional = {"type": kwargs["type"], "metavar": cf.name.upper()}
    if not kwargs["required"]:
        positional.update(nargs="?", default=kwargs["default"])
    return parser.add_argument(kwargs["dest"], **positional)


def dataclass_from_args(cls: type[T], namespace: argparse.Namespace, *, prefix: str = "") -> T:
    """Rebuild the (nested) config `cls` from arguments parsed after `add_dataclass_arguments` with the
    same prefix. Flags not given keep the defaults that were registered with them; fields with no
    attribute in the namespace at all keep the dataclass's defaults. Then checks bounds and paths and
    calls `check()`: a bad value raises ValueError naming its flag (`--steps must be >= 1, got 0`)."""
    config = _from_args(cls, namespace, prefix, dataclasses.MISSING)
    _validate(config, prefix, command_line=True)
    return config


def _from_args(cls: type, namespace: argparse.Namespace, prefix: str, base: Any) -> Any:
    kwargs: dict[str, Any] = {}
    for cf in _config_fields(cls):
        if cf.type.nested is not None:
            nested_prefix = f"{prefix}{cf.name.replace('_', '-')}."
            if any(key.startswith(_dest(nested_prefix, "")) for key in vars(namespace)):
                kwargs[cf.name] = _from_args(cf.type.nested, namespace, nested_prefix, _nested_base(cf, base))
            continue
        dest = _dest(prefix, cf.name)
        if hasattr(namespace, dest):
            value = getattr(namespace, dest)
            kwargs[cf.name] = tuple(value) if isinstance(value, list) else value
    return _build(cls, kwargs, base, prefix)


def _nested_base(cf: _ConfigField, base: Any) -> Any:
    """What a nested config starts from: the enclosing base's value, else the field's default."""
    return getattr(base, cf.name) if base is not dataclasses.MISSING else _field_default(cf.field)


def _build(cls: type, kwargs: dict[str, Any], base: Any, where: str) -> Any:
    """`base` with `kwargs` replaced, or `cls(**kwargs)` when there is no base instance."""
    if base is not dataclasses.MISSING:
        return dataclasses.replace(base, **kwargs)
    missing = [
        where + cf.name
        for cf in _config_fields(cls)
        if cf.name not in kwargs and _field_default(cf.field) is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"missing required {cls.__qualname__} value(s): {', '.join(missing)}")
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------------------
# Valid values


def _validate(config: object, prefix: str, *, command_line: bool) -> None:
    """Raise ValueError at the first field out of its bounds (nested configs first), naming it as the
    user wrote it: `--agent.critic-lr` on the command line, `agent.critic_lr` in JSON. On the
    command line also check path fields, then call `config.check()` if the class defines one."""
    for cf in _config_fields(type(config)):
        value = getattr(config, cf.name)
        if cf.type.nested is not None:
            nested = cf.name.replace("_", "-") if command_line else cf.name
            _validate(value, f"{prefix}{nested}.", command_line=command_line)
            continue
        if cf.field.metadata.get("positional") and command_line:
            name = cf.name.upper()  # its metavar
        else:
            name = _flag(prefix, cf.name) if command_line else prefix + cf.name
        _check_bounds(cf, value, name)
        if command_line and cf.path is not None and value is not None:
            problem = _path_problem(value, cf.path)
            if problem:
                raise ValueError(f"{name} {value}: {problem}")
    check = getattr(config, "check", None)
    if command_line and callable(check):
        check()


def _check_bounds(cf: _ConfigField, value: Any, name: str) -> None:
    if value is None or not cf.bounds:
        return
    for item in value if isinstance(value, tuple) else (value,):
        # `not passes` rather than `fails`: NaN passes no comparison, so it is out of every bound.
        if not all(_BOUNDS[key][1](item, limit) for key, limit in cf.bounds):
            what = f"every {name} value" if isinstance(value, tuple) else name
            valid = " and ".join(f"{_BOUNDS[key][0]} {_show(limit)}" for key, limit in cf.bounds)
            raise ValueError(f"{what} must be {valid}, got {_show(item)}")


def _path_problem(path: str | os.PathLike[str], kind: str) -> str | None:
    """What is wrong with `path` as a `kind` path (a PATH_KINDS key), or None. An output may exist (a
    directory for output_dir, not one for output_file); otherwise its nearest existing ancestor must
    be a directory, so that it can be created."""
    path = Path(path)
    if kind == "existing_file":
        return None if path.is_file() else "not a file" if path.exists() else "no such file"
    if kind == "existing_dir":
        return None if path.is_dir() else "not a directory" if path.exists() else "no such directory"
    if kind == "existing_path":
        return None if path.exists() else "no such file or directory"
    if path.exists():
        if kind == "output_dir" and not path.is_dir():
            return "exists and is not a directory"
        if kind == "output_file" and path.is_dir():
            return "is a directory"
        return None
    ancestor = next((p for p in path.absolute().parents if p.exists()), None)
    if ancestor is not None and not ancestor.is_dir():
        return f"cannot be created: {ancestor} is not a directory"
    return None


# ---------------------------------------------------------------------------------------------------------
# JSON


def to_dict(obj: object) -> dict[str, Any]:
    """The config as JSON-safe data: nested configs become dicts, tuples become lists."""
    if isinstance(obj, type) or not dataclasses.is_dataclass(obj):
        raise TypeError(f"expected a dataclass instance, got {obj!r}")
    return _to_json(obj)


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {cf.name: _to_json(getattr(value, cf.name)) for cf in _config_fields(type(value))}
    if isinstance(value, (tuple, list)):
        return [_to_json(v) for v in value]
    return value


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Inverse of `to_dict`, checking each value against its field's type and bounds. Missing keys keep
    their defaults; unknown keys or wrong values raise ValueError naming them (dotted for nested
    configs). Paths and `check()` are left to the command line."""
    config = _from_json_object(cls, data, "", dataclasses.MISSING)
    _validate(config, "", command_line=False)
    return config


def _from_json_object(cls: type, data: Any, where: str, base: Any) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where.rstrip('.') or cls.__qualname__}: expected an object, got {data!r}")
    fields = _config_fields(cls)
    names = {cf.name for cf in fields}
    unknown = [where + str(key) for key in data if key not in names]
    if unknown:
        raise ValueError(f"unknown {cls.__qualname__} key(s): {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for cf in fields:
        if cf.name not in data:
            continue
        value, path = data[cf.name], where + cf.name
        if cf.type.nested is not None:
            kwargs[cf.name] = _from_json_object(cf.type.nested, value, path + ".", _nested_base(cf, base))
        else:
            kwargs[cf.name] = _from_json_value(cf.type, value, path)
    return _build(cls, kwargs, base, where)


def _from_json_value(ft: _FieldType, value: Any, where: str) -> Any:
    if value is None and ft.optional:
        return None
    if ft.choices is not None:
        if not any(type(v) is type(value) and v == value for v in ft.choices):  # True is not 1 here
            raise ValueError(f"{where}: {value!r} is not one of {list(ft.choices)}")
        return value
    if ft.items is not None:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        if not ft.variadic and len(value) != len(ft.items):
            raise ValueError(f"{where}: expected {len(ft.items)} values, got {len(value)}")
        kinds = ft.items * len(value) if ft.variadic else ft.items
        return tuple(
            _scalar_from_json(kind, v, f"{where}[{i}]")
            for i, (kind, v) in enumerate(zip(kinds, value, strict=True))
        )
    assert ft.scalar is not None
    return _scalar_from_json(ft.scalar, value, where)


def _scalar_from_json(kind: type, value: Any, where: str) -> Any:
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if type(value) is not kind:  # exact: True is not an int here, 1.0 is not an int
        raise ValueError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def save_config(obj: object, path: str | os.PathLike[str]) -> None:
    """Write the config as indented JSON, atomically: a crash leaves the old file or the new one."""
    payload = (json.dumps(to_dict(obj), indent=2) + "\n").encode("utf-8")
    atomic_write(path, lambda f: f.write(payload))


def load_config(cls: type[T], path: str | os.PathLike[str]) -> T:
    """Read a config written by `save_config`. Bad JSON or bad values raise ValueError naming the file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from e
    try:
        return from_dict(cls, data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
