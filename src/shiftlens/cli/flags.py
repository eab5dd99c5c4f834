"""Command-line flags generated from a settings dataclass (`shiftlens.config.setting` metadata), and back.

One field gives one flag: ``--field-name`` (or the field's ``flag``) after an optional prefix
(``--heads-top-k``), its type read from the annotation, ``choices`` from the metadata, and a help that
always ends with the default. ``bool`` fields are switches (``--x`` when off by default, ``--no-x`` when
on); an optional field also takes ``none``; ``tuple[int, ...]``/``list[int]`` fields take layer lists
like ``0,3,10-12`` and ``tuple[str, ...]`` comma-separated words. A field holding another settings
dataclass (e.g. the endpoint inside the annotation settings) is flattened into the same group, after its
own ``prefix`` (`setting(..., prefix=...)`, none by default). `settings_from` builds the settings object
back from the parsed namespace; list values are converted there, so a bad one is a `ShiftlensError`.
A renamed flag keeps its old spellings (the field's ``old_flags``, or `add_settings`' ``deprecated``):
hidden from the help, they set the same value and print one warning naming the new flag (`Deprecated`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shiftlens.errors import ShiftlensError
from shiftlens.options import parse_layers

NONE = "none"  # an optional field's None on the command line
METAVARS = {int: "N", float: "X", Path: "PATH"}  # a str field's metavar is its (unprefixed) name
Parser = argparse.ArgumentParser | argparse._ArgumentGroup


@dataclass(frozen=True)
class Option:
    """One generated flag: the field it sets (path from the root settings class), its spelling and type."""

    path: tuple[str, ...]
    flag: str
    field: dataclasses.Field
    kind: Any  # the annotation without its "| None"
    optional: bool
    default: Any
    old: tuple[str, ...] = ()  # deprecated spellings (the field's ``old_flags`` after the same prefix)

    @property
    def dest(self) -> str:
        """The namespace attribute of the flag (its name, underscored)."""
        return self.flag[2:].replace("-", "_")

    @property
    def is_list(self) -> bool:
        """A tuple or list field: parsed from a comma-separated string by `convert`."""
        return typing.get_origin(self.kind) in (tuple, list)


def _join(*parts: str) -> str:
    return "-".join(p for p in parts if p)


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """``X | None`` → (X, True), ``X | Y`` → (X, False) (the command line gives the first); others unchanged."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        return next(a for a in args if a is not type(None)), type(None) in args  # the CLI spells the first
    return hint, False


def _is_settings(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _selected(path: tuple[str, ...], only: Collection[str] | None, exclude: Collection[str]) -> bool:
    """Whether the field at ``path`` (or a nested one below it) is in ``only`` and not in ``exclude``."""
    dotted = ".".join(path)
    if dotted in exclude:
        return False
    return only is None or any(o == dotted or o.startswith(dotted + ".") or dotted.startswith(o + ".") for o in only)


def options(
    cls: type,
    prefix: str = "",
    *,
    only: Collection[str] | None = None,
    exclude: Collection[str] = (),
    defaults: Any = None,
) -> list[Option]:
    """The flags of settings class ``cls``; ``only``/``exclude`` name fields by dotted path ("endpoint.model")."""
    return list(_walk(cls, prefix, (), only, frozenset(exclude), defaults))


def _walk(cls: type, prefix: str, path: tuple[str, ...], only: Any, exclude: Any, base: Any) -> Iterator[Option]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        here = (*path, f.name)
        kind, optional = _unwrap(hints[f.name])
        if not _selected(here, only, exclude) or not ("help" in f.metadata or _is_settings(kind)):
            continue
        default = getattr(base, f.name) if base is not None else _field_default(f)
        if _is_settings(kind):
            nested = default if default is not dataclasses.MISSING else None
            yield from _walk(kind, _join(prefix, f.metadata.get("prefix", "")), here, only, exclude, nested)
        else:
            name = (f.metadata["flag"] or "--" + f.name.replace("_", "-"))[2:]
            old = tuple("--" + _join(prefix, o[2:]) for o in f.metadata.get("old_flags", ()))
            yield Option(here, "--" + _join(prefix, name), f, kind, optional, default, old)


def renamed(cls: type, old_prefix: str, *, under: tuple[str, ...] = (), **select: Any) -> dict[str, list[str]]:
    """The flags ``cls`` had under ``old_prefix``, by dotted path (below ``under``): `add_settings`' ``deprecated``."""
    return {".".join((*under, *o.path)): [o.flag] for o in options(cls, old_prefix, **select)}


def show(value: Any) -> str:
    """A default as the help shows it: none, on/off, 0,3,10 or the value."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) or NONE
    return str(value)


def _scalar(option: Option) -> Callable[[str], Any]:
    """The argparse ``type`` of a scalar option: the annotation's class, ``none`` → None when optional."""
    kind = option.kind if callable(option.kind) else str
    if not option.optional:
        return kind

    def parse(text: str) -> Any:
        return None if text == NONE else kind(text)

    parse.__name__ = getattr(kind, "__name__", "value")  # argparse names it in "invalid int value"
    return parse


class Deprecated(argparse.Action):
    """An old spelling of a flag: hidden from the help, sets the same value and warns, naming the new flag."""

    def __init__(self, option_strings: list[str], dest: str, *, replacement: str, switch: Any = None, **kw: Any):
        self.replacement, self.switch = replacement, switch
        super().__init__(option_strings, dest, nargs=0 if switch is not None else None, **kw)

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: Any = None) -> None:
        print(f"shiftlens: warning: {option_string} is deprecated; use {self.replacement}", file=sys.stderr)
        setattr(namespace, self.dest, self.switch if self.switch is not None else values)


def _deprecated(names: list[str], kwargs: dict[str, Any], old: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """The hidden `Deprecated` argument for the ``old`` spellings of the flag ``names[0]``."""
    action = kwargs.get("action")
    switch = {"store_true": True, "store_false": False}.get(action) if action else None
    if switch is False:  # an on-by-default switch: its old spelling is --no-OLD too
        old = ["--no-" + o[2:] for o in old]
    hidden = {k: v for k, v in kwargs.items() if k not in ("action", "help", "default")}
    hidden.update(action=Deprecated, replacement=names[0], switch=switch)
    return list(old), {**hidden, "help": argparse.SUPPRESS, "default": argparse.SUPPRESS}


def _argument(option: Option, aliases: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """The name(s) and keyword arguments of ``add_argument`` for one option."""
    meta = option.field.metadata
    text = meta["help"] if "(default" in meta["help"] else f"{meta['help']} (default: {show(option.default)})"
    text = text.replace("%", "%%")  # argparse formats help
    kwargs: dict[str, Any] = {"dest": option.dest, "default": option.default, "help": text}
    if option.kind is bool:
        if option.default is True:
            return ["--no-" + option.flag[2:], *aliases], {**kwargs, "action": "store_false"}
        return [option.flag, *aliases], {**kwargs, "action": "store_true"}
    allowed = meta["choices"]
    if option.is_list:
        element = typing.get_args(option.kind)[0]
        listing = ",".join(map(str, allowed)) if allowed else ("0,3,10-12" if element is int else "A,B")
        kwargs["metavar"] = meta["metavar"] or listing
    else:
        kwargs["type"] = _scalar(option)
        if allowed:
            kwargs["choices"] = (*allowed, None) if option.optional else allowed
            spelt = [*map(str, allowed), *([NONE] if option.optional else [])]
            kwargs["metavar"] = meta["metavar"] or "{" + ",".join(spelt) + "}"
        else:
            kwargs["metavar"] = meta["metavar"] or METAVARS.get(option.kind, option.field.name.upper())
    return [option.flag, *aliases], kwargs


def add_settings(
    parser: Parser,
    cls: type,
    prefix: str = "",
    *,
    title: str | None = None,
    only: Collection[str] | None = None,
    exclude: Collection[str] = (),
    defaults: Any = None,
    aliases: Mapping[str, Sequence[str]] | None = None,
    deprecated: Mapping[str, Sequence[str]] | None = None,
) -> list[Option]:
    """Add the flags of ``cls`` (in a group ``title``); ``defaults`` (an instance) replaces the shown defaults.

    On a parser, each nested settings field's flags form a group of their own, titled by the field's help.
    ``aliases`` maps a dotted field path to extra spellings of its flag (e.g. ``{"top_k": ["--top-k"]}``);
    ``deprecated`` to old spellings that still work, hidden, with a warning naming the flag (with the
    field's own ``old_flags``).
    """
    generated = options(cls, prefix, only=only, exclude=exclude, defaults=defaults)
    groups: dict[str | None, Parser] = {}
    for option in generated:
        outer = option.path[0] if len(option.path) > 1 else None
        if outer not in groups:
            name = title if outer is None else cls.__dataclass_fields__[outer].metadata.get("help", outer)
            grouped = isinstance(parser, argparse.ArgumentParser) and (name or outer)
            groups[outer] = parser.add_argument_group(name) if grouped else parser
        dotted = ".".join(option.path)
        names, kwargs = _argument(option, (aliases or {}).get(dotted, ()))
        groups[outer].add_argument(*names, **kwargs)
        old = [o for o in (*option.old, *(deprecated or {}).get(dotted, ())) if o != option.flag]
        if old:
            old_names, old_kwargs = _deprecated(names, kwargs, old)
            groups[outer].add_argument(*old_names, **old_kwargs)
    return generated


def convert(option: Option, value: Any) -> Any:
    """A parsed value as the field's type: list options arrive as text (``0,3,10-12``, ``a,b``)."""
    if not option.is_list or not isinstance(value, str):
        return value
    if option.optional and value == NONE:
        return None
    container, element = typing.get_origin(option.kind), typing.get_args(option.kind)[0]
    if element is int:
        return container(parse_layers(value, option.flag) or ())
    items = [part.strip() for part in value.split(",") if part.strip()]
    allowed = option.field.metadata["choices"]
    if allowed and any(item not in allowed for item in items):
        raise ShiftlensError(f"{option.flag} must be among {', '.join(map(str, allowed))}, got {value!r}")
    return container(items)


def settings_from(
    args: argparse.Namespace,
    cls: type,
    prefix: str = "",
    *,
    only: Collection[str] | None = None,
    exclude: Collection[str] = (),
    defaults: Any = None,
    **overrides: Any,
) -> Any:
    """The ``cls`` object of the flags `add_settings` added (same arguments); ``overrides`` set top-level fields."""
    generated = options(cls, prefix, only=only, exclude=exclude, defaults=defaults)
    parsed = {o.path: convert(o, getattr(args, o.dest)) for o in generated}
    return _build(cls, (), parsed, defaults, overrides)


def _build(cls: type, path: tuple[str, ...], parsed: dict[tuple[str, ...], Any], base: Any, overrides: Any) -> Any:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        here = (*path, f.name)
        current = getattr(base, f.name) if base is not None else dataclasses.MISSING
        kind, _ = _unwrap(hints[f.name])
        if f.name in overrides:
            values[f.name] = overrides[f.name]
        elif here in parsed:
            values[f.name] = parsed[here]
        elif _is_settings(kind) and any(p[: len(here)] == here for p in parsed):
            nested = current if current is not dataclasses.MISSING else _field_default(f)
            values[f.name] = _build(kind, here, parsed, None if nested is dataclasses.MISSING else nested, {})
        elif current is not dataclasses.MISSING:
            values[f.name] = current
    return cls(**values)
