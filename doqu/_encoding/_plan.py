"""How the save path validates a model again and checks its JSON text, read once
from the model's pydantic core schema (:func:`save_plan`).

The fast save path checks pydantic's JSON text of each document with cheap byte
scans instead of walking the values with :func:`doqu._json.check_json`. Those
scans look for what a model's *types* may produce: a run of 19 digits (an int
beyond 64 bits) only where an ``int`` can appear, ``NaN``/``Infinity`` only
where a ``float`` can, and too-deep nesting only where the types do not bound
it. A model whose schema this module cannot vouch for (validators or
serializers that may return anything, ``Any``, recursive or extra-allowing
nested models…) gets every scan.

Validating a ``Document`` again leaves the nested model instances pydantic
takes as they are; the plan checks those for exact types when their
validation is only type checks, and otherwise validates them in full. When the
whole model is of such types, one generated check of the instance itself
(:attr:`SavePlan.exact`) stands for validating it again and for the scans.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .._document import Document
from .._json import INT_MAX, INT_MIN, MAX_NESTING, encodable, good_key
from ._revalidate import as_is_nodes, revalidator

R = TypeVar("R")

__all__ = ["ALL_CHECKS", "SavePlan", "TextChecks", "plan_of", "save_plan"]

# Core-schema types whose JSON is a string or a bool (no number, no nesting).
_PLAIN_LEAVES = frozenset(("str", "bool", "date", "datetime", "time", "timedelta", "uuid", "url"))
_SEQUENCES = frozenset({"list", "set", "frozenset"})
_EMPTY_FACTORIES: tuple[Any, ...] = (list, dict, set, frozenset, tuple)


@dataclass(frozen=True)
class TextChecks:
    """Which scans a document's JSON text needs (``True``: scan for it)."""

    big_ints: bool = True
    #: NaN, Infinity and ``-0.0`` (stored as ``0.0``): where a float can appear.
    non_finite: bool = True
    nesting: bool = True
    #: Object keys that cannot be stored (``$…``, ``….…``): where free-form keys can appear.
    keys: bool = True


#: Every scan: for models this module cannot vouch for, and documents with extras.
ALL_CHECKS = TextChecks()


@dataclass(frozen=True)
class _Shape:
    depth: int  # containers nested, the value's own included
    ints: bool = False  # may hold an int outside the 64-bit range
    floats: bool = False  # may hold a float (so NaN, Infinity or -0.0)
    keys: bool = False  # may hold object keys not fixed by the types

    def nest(self, keys: bool = False) -> _Shape:
        return _Shape(self.depth + 1, self.ints, self.floats, self.keys or keys)


_LEAF = _Shape(0)


def _join(shapes: list[_Shape | None]) -> _Shape | None:
    if any(s is None for s in shapes):
        return None
    known = [s for s in shapes if s is not None]
    return _Shape(
        max((s.depth for s in known), default=0),
        any(s.ints for s in known),
        any(s.floats for s in known),
        any(s.keys for s in known),
    )


def _value_shape(value: Any, depth: int = 0) -> _Shape | None:
    """The shape of a constant (a default, a literal), ``None`` if it is not plain JSON."""
    if depth > MAX_NESTING:
        return None
    if value is None or isinstance(value, (bool, str)):
        return _LEAF
    if isinstance(value, int):
        return _Shape(0, ints=not INT_MIN <= value <= INT_MAX)
    if isinstance(value, float):
        return _Shape(0, floats=True)
    if isinstance(value, (list, tuple)):
        items = [_value_shape(v, depth + 1) for v in value]
    elif isinstance(value, dict) and all(isinstance(k, str) and good_key(k) for k in value):
        items = [_value_shape(v, depth + 1) for v in value.values()]
    else:
        return None
    inner = _join(items)
    return None if inner is None else inner.nest()


def _int_shape(schema: Mapping[str, Any]) -> _Shape:
    low = schema.get("ge", schema.get("gt"))
    high = schema.get("le", schema.get("lt"))
    bounded = isinstance(low, int) and isinstance(high, int) and low >= INT_MIN and high <= INT_MAX
    return _Shape(0, ints=not bounded)


class _Walker:
    def __init__(self) -> None:
        self.definitions: dict[str, Mapping[str, Any]] = {}
        self.active: set[str] = set()

    def shape(self, schema: Mapping[str, Any], top: bool = False) -> _Shape | None:
        if "serialization" in schema:  # a custom serializer may write anything
            return None
        kind = schema.get("type")
        ref = schema.get("ref")
        if isinstance(ref, str):
            if ref in self.active:  # a recursive model: no depth bound
                return None
            self.active.add(ref)
            try:
                return self._shape(kind, schema, top)
            finally:
                self.active.discard(ref)
        return self._shape(kind, schema, top)

    def _shape(self, kind: Any, schema: Mapping[str, Any], top: bool) -> _Shape | None:
        if kind in _PLAIN_LEAVES:
            return _LEAF
        if kind == "int":
            return _int_shape(schema)
        if kind == "float":
            return _Shape(0, floats=True)
        if kind == "literal":
            return _join([_value_shape(v) for v in schema.get("expected", ())])
        if kind == "enum":
            return _join([_value_shape(m.value) for m in schema.get("members", ())])
        if kind == "none":
            return _LEAF
        if kind == "nullable":
            return self.shape(schema["schema"])
        if kind == "default":
            return self._default(schema)
        if kind in _SEQUENCES:
            return self._nested([schema.get("items_schema")])
        if kind == "tuple":
            return self._nested(list(schema.get("items_schema") or [None]))
        if kind == "dict":
            return self._nested([schema.get("values_schema")], keys=True)
        if kind == "union":
            choices = [c[0] if isinstance(c, tuple) else c for c in schema["choices"]]
            return _join([self.shape(c) for c in choices])
        if kind == "tagged-union":
            return _join([self.shape(c) for c in schema["choices"].values()])
        if kind == "definitions":
            for definition in schema["definitions"]:
                self.definitions[definition["ref"]] = definition
            return self.shape(schema["schema"], top)
        if kind == "definition-ref":
            target = self.definitions.get(schema["schema_ref"])
            return None if target is None else self.shape(target, top)
        if kind == "model":
            return self._model(schema, top)
        return None  # any, validator functions, dataclasses, …: no promise

    def _default(self, schema: Mapping[str, Any]) -> _Shape | None:
        inner = self.shape(schema["schema"])
        if "default_factory" in schema:
            factory = schema["default_factory"]
            made = _LEAF if any(factory is f for f in _EMPTY_FACTORIES) else None
        else:
            made = _value_shape(schema.get("default"))  # defaults are not validated
        return _join([inner, made])

    def _nested(self, schemas: list[Any], keys: bool = False) -> _Shape | None:
        if any(s is None for s in schemas):
            return None  # items of any type
        inner = _join([self.shape(s) for s in schemas])
        return None if inner is None else inner.nest(keys)

    def _model(self, schema: Mapping[str, Any], top: bool) -> _Shape | None:
        config = schema.get("config") or {}
        if schema.get("root_model") or (not top and config.get("extra_fields_behavior") == "allow"):
            return None
        fields = schema.get("schema") or {}
        if fields.get("type") != "model-fields" or fields.get("computed_fields"):
            return None
        stored = {
            field.get("serialization_alias", name): field
            for name, field in fields.get("fields", {}).items()
            if not field.get("serialization_exclude")
        }
        inner = _join([self.shape(field["schema"]) for field in stored.values()])
        # A field whose stored name cannot be stored: the key scan names it.
        return None if inner is None else inner.nest(not all(map(good_key, stored)))


# ------------------------------------------------------- nested models' values
# pydantic takes nested model instances as they are (unless their config asks for
# ``revalidate_instances="always"``), so their fields may hold anything assigned
# since. For nested models whose validation is nothing but type checks, a value
# whose Python type is *exactly* the declared one is what validating it would
# return: checking that stands for validating it again. Anything else (a
# constraint, a validator, a config option, a union…) gets the full revalidation.
# The same holds for a whole ``Document`` of such types, checked (with the
# bounds the text scans look for) by one generated function.
Check = Callable[[Any], bool]
_SCALARS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
_PURE_CONFIG = frozenset(("title", "extra_fields_behavior", "revalidate_instances"))
_PURE_MODEL = frozenset(("type", "cls", "schema", "config", "ref", "metadata", "custom_init",
                         "root_model"))  # fmt: skip
_PURE_FIELD = frozenset(("type", "schema", "metadata", "validation_alias", "serialization_alias"))
_TOP_CONFIG = _PURE_CONFIG | {"ser_json_inf_nan"}
_TOP_FIELD = _PURE_FIELD | {"serialization_exclude"}  # the Document's pk


class _Unsupported(Exception):
    """Raised while building a check for a schema this module does not vouch for."""


class _Source:
    """The text of one generated function, and the objects it names.

    It checks a value (``return False`` on the first miss, ``True`` at the end),
    or with *convert* builds its sorted stored form (``None`` on a miss).
    Only variable names, the names of the objects it is given, numbers and
    ``repr`` of field names (identifiers) are written into the text.
    """

    def __init__(self, bounded: bool, convert: bool = False) -> None:
        self.bounded = bounded or convert
        self.convert = convert
        self.fail = "return None" if convert else "return False"
        self.lines: list[str] = []
        self.names: dict[str, Any] = {}
        self.count = 0
        #: With *convert*: the most bytes the converted value can take (compact JSON).
        self.size = 0

    def add(self, indent: int, text: str) -> None:
        self.lines.append(" " * indent + text)

    def var(self) -> str:
        self.count += 1
        return f"v{self.count}"

    def name(self, obj: Any) -> str:
        """The name the function knows *obj* by."""
        for known, value in self.names.items():
            if value is obj:
                return known
        known = f"c{len(self.names)}"
        self.names[known] = obj
        return known

    def compile(self, result: str) -> Callable[[Any], Any]:
        """The function, returning *result* when every check passed."""
        miss = "None" if self.convert else "False"
        text = "\n".join(
            ["def check(value):", " try:", *self.lines, f"  return {result}",
             " except (KeyError, TypeError):", f"  return {miss}"]
        )  # fmt: skip
        builtins = {"type": type, "len": len, "sorted": sorted, "KeyError": KeyError,
                    "TypeError": TypeError}  # fmt: skip
        scope: dict[str, Any] = {"__builtins__": builtins, **self.names}
        try:
            exec(compile(text, "<doqu exact-type check>", "exec"), scope)
        except (SyntaxError, RecursionError, MemoryError):  # deeper than Python nests blocks
            raise _Unsupported from None
        made: Callable[[Any], Any] = scope["check"]
        return made


def _plain_model_fields(
    schema: dict[str, Any], config_keys: frozenset[str], field_keys: frozenset[str]
) -> dict[str, Any]:
    """The fields of a model node with nothing but plain fields, config and keys
    (a root model, computed fields, a custom serializer… raise ``_Unsupported``)."""
    fields = schema.get("schema") or {}
    declared: dict[str, Any] = fields.get("fields", {})
    if (
        not set(schema) <= _PURE_MODEL
        or schema.get("root_model")
        or not set(schema.get("config") or {}) <= config_keys
        or fields.get("type") != "model-fields"
        or fields.get("computed_fields")
        or not set(fields) <= {"type", "fields", "model_name", "computed_fields", "ref"}
        or not all(set(f) <= field_keys for f in declared.values())
    ):
        raise _Unsupported
    return declared


class _Checks:
    """Builds the checks of one model's schema (``definition-ref`` nodes resolved)."""

    def __init__(self, schema: Any) -> None:
        self.definitions: dict[str, Any] = {}
        if isinstance(schema, dict) and schema.get("type") == "definitions":
            for definition in schema["definitions"]:
                self.definitions[definition["ref"]] = definition
            schema = schema["schema"]
        self.top = schema
        self.active: set[str] = set()

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, dict) and schema.get("type") == "definition-ref":
            ref = schema["schema_ref"]
            if ref in self.active or ref not in self.definitions:
                raise _Unsupported  # recursive: no check of a bounded cost
            return self.definitions[ref]
        return schema

    def through(self, ref_node: dict[str, Any], build: Callable[[Any], R]) -> R:
        """*build* of a ``definition-ref``'s target (a recursive type is refused)."""
        ref = ref_node["schema_ref"]
        target = self.resolve(ref_node)
        self.active.add(ref)
        try:
            return build(target)
        finally:
            self.active.discard(ref)

    def escapes(self, schema: Any) -> bool:
        """Whether *schema* holds a model whose instances validation takes as they are."""
        schema = self.resolve(schema)
        if as_is_nodes(schema):
            return True
        refs = _refs(schema)
        if not refs:
            return False
        for ref in refs:
            if ref in self.active:
                raise _Unsupported
        self.active.update(refs)
        try:
            return any(self.escapes(self.definitions.get(ref)) for ref in refs)
        finally:
            self.active.difference_update(refs)

    def exact(self, schema: Any, *, bounded: bool = False, top: bool = False) -> Check:
        """A check that a value is already exactly what validating it returns.

        *bounded*: and that it holds no int beyond 64 bits, no NaN or infinity and
        no extras, so its JSON text needs no scan but for depth. *top*: *schema* is
        the ``Document``'s own model node (its config and the excluded ``pk``).
        The check is one generated function: a type test per value, loops over
        containers, no call per value.
        """
        return self.generate(schema, _Source(bounded), top)

    def generate(self, schema: Any, out: _Source, top: bool = False) -> Callable[[Any], Any]:
        """The function *out* makes of *schema*: the check, or with ``out.convert`` the
        sorted-form converter (its bound on the stored size set on *out*)."""
        out.add(2, "v = value")
        made, size = self.write(schema, "v", 2, out, top)
        out.size = size
        return out.compile(made if out.convert else "True")

    def write(
        self, schema: Any, x: str, indent: int, out: _Source, top: bool = False
    ) -> tuple[str, int]:
        """Lines of *out* that fail unless the value named *x* is exact; the expression
        of its stored form (with ``out.convert``) and the most bytes that can take."""
        if isinstance(schema, dict) and schema.get("type") == "definition-ref":
            return self.through(schema, lambda target: self.write(target, x, indent, out))
        if not isinstance(schema, dict):
            raise _Unsupported
        kind = schema.get("type")
        rest = set(schema) - {"type", "ref", "metadata"}
        line, fail = out.add, out.fail
        if kind in _SCALARS and not rest:
            line(indent, f"if type({x}) is not {out.name(_SCALARS[kind])}: {fail}")
            if out.bounded and kind == "int":
                line(indent, f"if not {INT_MIN} <= {x} <= {INT_MAX}: {fail}")
            elif out.bounded and kind == "float":
                sign = out.name(math.copysign)  # -0.0 is stored as 0.0: the slow path
                line(indent, f"if {x} - {x} != 0.0 or ({x} == 0.0 and {sign}(1.0, {x}) < 0.0):")
                line(indent + 1, fail)  # NaN, infinities, -0.0
            elif out.convert and kind == "str":
                fits = out.name(encodable)
                line(
                    indent,
                    f"if len({x}) > {_MAX_STR} or '\\x00' in {x}"
                    f" or not ({x}.isascii() or {fits}({x})): {fail}",
                )
            return x, _LEAF_SIZES[kind]
        if kind == "nullable" and rest == {"schema"}:
            line(indent, f"if {x} is not None:")
            inner, size = self.write(schema["schema"], x, indent + 1, out)
            if inner == x or not out.convert:
                return x, size
            made = out.var()
            line(indent + 1, f"{made} = {inner}")
            line(indent, "else:")
            line(indent + 1, f"{made} = None")
            return made, size
        if kind == "default" and rest <= {"schema", "default", "default_factory"}:
            return self.write(schema["schema"], x, indent, out)
        if kind == "list" and rest == {"items_schema"}:
            item, made = out.var(), out.var()
            line(indent, f"if type({x}) is not {out.name(list)}: {fail}")
            if out.convert:
                line(indent, f"if len({x}) > {_MAX_ITEMS}: {fail}")
            start = len(out.lines)
            line(indent, f"for {item} in {x}:")
            inner, size = self.write(schema["items_schema"], item, indent + 1, out)
            if not out.convert:
                return x, 0
            if inner == item:
                line(indent, f"{made} = {x}[:]")  # a copy: the stored form shares nothing
            else:
                out.lines.insert(start, " " * indent + f"{made} = []")
                line(indent + 1, f"{made}.append({inner})")
            return made, _MAX_ITEMS * (size + 8) + 8
        if (
            kind == "dict"
            and rest == {"keys_schema", "values_schema"}
            and schema["keys_schema"] == {"type": "str"}
        ):
            key, value, made = out.var(), out.var(), out.var()
            line(indent, f"if type({x}) is not {out.name(dict)}: {fail}")
            if not out.convert:
                line(indent, f"for {key}, {value} in {x}.items():")
                good, text = out.name(good_key), out.name(str)
                line(indent + 1, f"if type({key}) is not {text} or not {good}({key}): {fail}")
                self.write(schema["values_schema"], value, indent + 1, out)
                return x, 0
            line(indent, f"if len({x}) > {_MAX_ITEMS}: {fail}")
            line(indent, f"{made} = {{}}")
            line(indent, f"for {key} in sorted({x}):")  # keys of mixed types: TypeError
            good = out.name(_good_key)
            line(indent + 1, f"if type({key}) is not {out.name(str)} or not {good}({key}): {fail}")
            line(indent + 1, f"{value} = {x}[{key}]")
            inner, size = self.write(schema["values_schema"], value, indent + 1, out)
            line(indent + 1, f"{made}[{key}] = {inner}")
            return made, _MAX_ITEMS * (_LEAF_SIZES["str"] + size + 8) + 8
        if kind == "model":
            return self.write_model(schema, x, indent, out, top)
        raise _Unsupported

    def write_model(
        self, schema: dict[str, Any], x: str, indent: int, out: _Source, top: bool
    ) -> tuple[str, int]:
        """:meth:`write` for a model node whose validation is only type checks."""
        if top:
            declared = _plain_model_fields(schema, _TOP_CONFIG, _TOP_FIELD)
        else:
            declared = _plain_model_fields(schema, _PURE_CONFIG, _PURE_FIELD)
        extras = (schema.get("config") or {}).get("extra_fields_behavior") == "allow"
        if out.convert and extras and not top:
            raise _Unsupported  # nested extras: the text path
        values, made = out.var(), out.var()
        out.add(indent, f"if type({x}) is not {out.name(schema['cls'])}: {out.fail}")
        if out.bounded and extras:
            out.add(indent, f"if {x}.__pydantic_extra__: {out.fail}")
        out.add(indent, f"{values} = {x}.__dict__")
        out.add(indent, f"if len({values}) != {len(declared)}: {out.fail}")
        stored: list[tuple[str, str]] = []
        total = 8
        for field_name, field in declared.items():
            value = out.var()
            out.add(indent, f"{value} = {values}[{field_name!r}]")  # absent: KeyError, a miss
            inner, size = self.write(field["schema"], value, indent, out)
            if out.convert and not field.get("serialization_exclude"):
                if "serialization_alias" in field or not _good_key(field_name):
                    raise _Unsupported
                stored.append((field_name, inner))
                total += len(field_name) + 2 + size
        if out.convert:
            items = ", ".join(f"{name!r}: {inner}" for name, inner in sorted(stored))
            out.add(indent, f"{made} = {{{items}}}")
        return made, total

    def escaping(self, schema: Any) -> Check | None:
        """A check of the instances inside a *validated* value that validation took as
        they are; ``None`` if there are none."""
        if not self.escapes(schema):
            return None
        schema = self.resolve(schema)
        kind = schema.get("type")
        if kind == "model":
            config = schema.get("config") or {}
            how = schema.get("revalidate_instances", config.get("revalidate_instances"))
            if how != "always":
                return self.exact(schema)  # taken as it is: every value must be exact
            fields = schema.get("schema") or {}
            if fields.get("type") != "model-fields" or schema.get("root_model"):
                raise _Unsupported
            checks = [
                (name, check)
                for name, field in fields.get("fields", {}).items()
                if (check := self.escaping(field["schema"])) is not None
            ]
            if len(checks) == 1:  # the common case, without a loop
                [(name, check)] = checks
                return lambda v: check(v.__dict__.get(name))
            return lambda v: all(check(v.__dict__.get(name)) for name, check in checks)
        if kind == "nullable":
            inner = self.escaping(schema["schema"])
            return None if inner is None else lambda v: v is None or inner(v)
        if kind == "default":
            return self.escaping(schema["schema"])
        if kind == "list":
            item = self.escaping(schema["items_schema"])
            return None if item is None else lambda v: all(map(item, v))
        if kind == "dict" and not self.escapes(schema.get("keys_schema")):
            value = self.escaping(schema["values_schema"])
            return None if value is None else lambda v: all(map(value, v.values()))
        raise _Unsupported  # unions, tuples, sets, functions… around such a model


def _mentions(schema: Any, kinds: frozenset[str]) -> bool:
    """Whether a core schema has a node of one of *kinds* anywhere (definitions too)."""
    seen: set[int] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            if node.get("type") in kinds:
                return True
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return False


_TEMPORAL = frozenset({"datetime", "any"})


def _refs(schema: Any) -> set[str]:
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "definition-ref":
                found.add(node["schema_ref"])
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return found


# ---------------------------------------------------------- the sorted form
# For models of plain types, the stored data with object keys sorted (what a
# backend that compares objects member by member in order, such as MongoDB,
# takes: :attr:`Storage.stores_sorted`), values checked as the JSON text path
# checks them, is built straight from the instance by a function
# :meth:`_Checks.write` generates, which checks what the exact check does on the
# way: without validating a copy, without writing and parsing JSON. Anything
# else (and anything long) makes it give up; the document is then validated, and
# what it still gives up on takes the JSON text path, which decides.
Convert = Callable[[Any], Any]
_MAX_STR = 1024  # characters of one string or key on this path
_MAX_ITEMS = 256  # items of one list or object on this path
_LEAF_SIZES: dict[str, int] = {"str": 4 * _MAX_STR + 8, "int": 16, "float": 16, "bool": 8}


def _good_key(key: str) -> bool:
    """An object key that can be stored, of a length the bounds allow."""
    return len(key) <= _MAX_STR and good_key(key)


def _generated(schema: Any, *, convert: bool) -> tuple[Callable[[Any], Any] | None, int]:
    """For a ``Document``'s core schema: :attr:`SavePlan.exact` (or, with *convert*,
    :attr:`SavePlan.sorted_form`) and, with *convert*, the bound on the stored size;
    ``None`` if the model's types do not allow it."""
    try:
        builder = _Checks(schema)
        top = builder.top
        if not isinstance(top, dict) or top.get("type") != "model":
            return None, 0
        out = _Source(bounded=True, convert=convert)
        return builder.generate(top, out, top=True), out.size
    except (_Unsupported, KeyError, TypeError, AttributeError):
        return None, 0


@dataclass(frozen=True)
class SavePlan:
    """How the save path validates a model again and what it scans its JSON text for."""

    #: Returns a validated copy of an instance.
    validate: Callable[[Any], Any]
    checks: TextChecks
    #: For a copy made by pydantic's own validator: whether the nested model
    #: instances it took as they are hold exactly the validated types
    #: (``None``: it took none). ``False`` sends the document to the full revalidation.
    nested: Check | None = None
    #: No declared field is stored under the reserved name ``_id``.
    plain_keys: bool = True
    #: An instance as checked stored data, object keys sorted, made only if the
    #: instance passes what :attr:`exact` checks and the length bounds (so it needs
    #: no validating again); it returns ``None`` otherwise. ``None`` when the
    #: model's types do not allow it.
    sorted_form: Convert | None = None
    #: The most bytes a document :attr:`sorted_form` makes can take (as compact JSON).
    sorted_size: int = 0
    #: For models of plain types: whether an instance already holds exactly what
    #: validating it again returns (so it is valid as it is), with no int beyond
    #: 64 bits, no NaN or infinity and no extras, so that of the text scans only
    #: the depth one (``checks.nesting``) is left. ``False`` sends the instance to
    #: :attr:`validate`. ``None`` when the model's types do not allow it.
    exact: Check | None = None
    #: The model's types may hold a datetime (a ``datetime`` or ``Any`` somewhere), so
    #: its stored form is pydantic's JSON form with datetimes rewritten
    #: (:func:`doqu._json.with_stored_datetimes`), not pydantic's JSON text as it is.
    temporal: bool = False


def plan_of(cls: type[Any]) -> SavePlan | None:
    """:func:`save_plan` of *cls* if it is a ``Document`` class, else ``None``.

    Cheap once the plan is made: one look in the class's own ``__dict__``.
    """
    known = cls.__dict__.get("__doqu_plan__")
    if known is not None and known[0] is cls.__pydantic_validator__:
        return known[1]  # type: ignore[no-any-return]
    return save_plan(cls) if issubclass(cls, Document) else None


def save_plan(model: type[Any]) -> SavePlan:
    """The :class:`SavePlan` of a ``Document`` class (built once, again after a rebuild).

    pydantic's own validator, with a check of the nested model instances it
    takes as they are when there are some and they can be checked; otherwise
    :func:`doqu._document.revalidator`'s, which validates those too.
    """
    validator = model.__pydantic_validator__
    known = model.__dict__.get("__doqu_plan__")  # the model's own, not a base class's
    if known is not None and known[0] is validator:
        return known[1]  # type: ignore[no-any-return]
    schema = model.__pydantic_core_schema__
    try:
        shape = _Walker().shape(schema, top=True)
    except (KeyError, TypeError, AttributeError):
        shape = None
    if shape is None:
        checks = ALL_CHECKS
    else:
        checks = TextChecks(
            big_ints=shape.ints,
            non_finite=shape.floats,
            nesting=shape.depth > MAX_NESTING,
            keys=shape.keys,
        )
    fields = model.model_fields.items()
    plain = all("_id" not in (name, f.alias, f.serialization_alias) for name, f in fields)
    temporal = _mentions(schema, _TEMPORAL)
    sorted_form, sorted_size = _generated(schema, convert=True)
    try:
        builder = _Checks(schema)
        nested = builder.escaping(builder.top)
        plan = SavePlan(
            validator.validate_python,
            checks,
            nested,
            plain,
            sorted_form=sorted_form,
            sorted_size=sorted_size,
            exact=_generated(schema, convert=False)[0],
            temporal=temporal,
        )
    except (_Unsupported, KeyError, TypeError, AttributeError):
        plan = SavePlan(revalidator(model), checks, None, plain, temporal=temporal)
    type.__setattr__(model, "__doqu_plan__", (validator, plan))
    return plan
