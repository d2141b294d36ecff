"""A mypy plugin: ``Person.age`` is a ``Field[int]``, ``Person.address.city`` a ``Field[str]``.

Enable it next to pydantic's (in either order, or alone)::

    [mypy]
    plugins = pydantic.mypy, doqu.mypy

At runtime the metaclass of :class:`~doqu.Document` turns a declared field read
on the class into a :class:`~doqu.Field`; without this plugin mypy reads the
plain annotation (``Person.age`` is an ``int``, so ``Person.age >= 30`` is a
``bool``). With it:

* ``Model.name`` (and ``cls.name`` in a classmethod), for a declared pydantic
  field of a ``Document`` subclass or of one of its bases, is
  ``Field[<declared type>]``; methods, properties, ``ClassVar``\\ s and
  assignments are left alone, and instances keep their plain values;
* a sub-field ``Field[X].name`` follows the declared types the way the runtime
  does: through ``None`` in a union, into the elements of a list, tuple or set
  and into the values of a dict, to the field ``name`` of a pydantic model
  (``Field[<its declared type>]``); a name the model does not declare is an
  error unless the model keeps extra fields, and so is a sub-field of a scalar
  (``Person.age.gtee``). Whatever the types do not pin down (``Any``, custom
  classes, type variables) gives ``Field[Any]``, as it does at runtime;
* a method or operator for other kinds of fields is an error
  (``Person.age.startswith("x")``, ``Person.name.inc(1)``, ``Person.tags > 1``):
  mypy itself does not check the bound of ``_S`` in ``self: Field[_S]``.

This module imports mypy: only mypy loads it, ``import doqu`` does not.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Final

# mypy.types first: imported before it, mypy.expandtype is a circular import.
from mypy.types import (
    AnyType,
    FunctionLike,
    Instance,
    LiteralType,
    NoneType,
    ProperType,
    TupleType,
    Type,
    TypedDictType,
    TypeOfAny,
    TypeVarType,
    UnionType,
    get_proper_type,
)

# isort: split
from mypy.errorcodes import ARG_TYPE, ATTR_DEFINED
from mypy.expandtype import expand_type_by_instance
from mypy.maptype import map_instance_to_supertype
from mypy.messages import best_matches, format_type
from mypy.nodes import (
    ARG_STAR,
    ARG_STAR2,
    AssignmentStmt,
    CallExpr,
    ClassDef,
    Decorator,
    DictExpr,
    Expression,
    MemberExpr,
    NameExpr,
    StrExpr,
    TypeInfo,
    Var,
)
from mypy.plugin import (
    AttributeContext,
    ClassDefContext,
    MethodContext,
    MethodSigContext,
    Plugin,
)
from mypy.subtypes import is_subtype
from mypy.typeops import make_simplified_union

__all__ = ["DoquPlugin", "plugin"]

DOCUMENT: Final = "doqu._document.Document"
FIELD: Final = "doqu._expr.Field"
BASE_MODEL: Final = "pydantic.main.BaseModel"
#: The classes of pydantic itself: what they declare is no field of a user's model.
_PYDANTIC_BASES: Final = frozenset({BASE_MODEL, "pydantic.root_model.RootModel"})
#: Where this plugin records, per model class, what the class body says (kept in mypy's cache).
META_KEY: Final = "doqu"
#: Types whose stored form is a number or a string: no sub-fields (as ``doqu._schema``).
_SCALARS: Final = (
    "builtins.int", "builtins.float", "builtins.str", "builtins.bytes", "decimal.Decimal",
    "datetime.date", "datetime.time", "datetime.timedelta", "uuid.UUID", "pathlib.PurePath",
    "enum.Enum",
)  # fmt: skip
#: Containers whose sub-fields are those of their elements (dicts are handled before).
_ARRAYS: Final = frozenset({
    "builtins.list", "builtins.tuple", "builtins.set", "builtins.frozenset", "typing.Sequence",
    "typing.MutableSequence", "typing.AbstractSet", "typing.MutableSet", "typing.Collection",
    "typing.Iterable",
})  # fmt: skip
_MAPPING: Final = "typing.Mapping"
_BOOL: Final = "builtins.bool"
#: Nesting beyond this (recursive aliases) is left unchecked.
_MAX_DEPTH: Final = 16


def plugin(version: str) -> type[Plugin]:
    """The entry point mypy calls (``plugins = doqu.mypy``)."""
    return DoquPlugin


class DoquPlugin(Plugin):
    """``Model.field`` and ``Model.field.sub`` as the typed :class:`~doqu.Field` they are."""

    def get_class_attribute_hook(self, fullname: str) -> Callable[[AttributeContext], Type] | None:
        owner, _, name = fullname.rpartition(".")
        if not owner or name.startswith("_"):
            return None
        sym = self.lookup_fully_qualified(owner)  # classes in functions too: "mod.Local@12"
        if sym is None or not isinstance(sym.node, TypeInfo):
            return None
        if not sym.node.has_base(DOCUMENT) or not declares_field(sym.node, name):
            return None
        return self._class_attribute

    def get_attribute_hook(self, fullname: str) -> Callable[[AttributeContext], Type] | None:
        owner, _, name = fullname.rpartition(".")
        if owner != FIELD:
            return None
        sym = self.lookup_fully_qualified(FIELD)
        if sym is None or not isinstance(sym.node, TypeInfo) or sym.node.get(name) is not None:
            return None  # a real attribute of Field (``path``), not one of ``__getattr__``
        return partial(_sub_field, name=name)

    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        owner, _, name = fullname.rpartition(".")
        if owner != FIELD:
            return None
        sym = self.lookup_fully_qualified(FIELD)
        if sym is None or not isinstance(sym.node, TypeInfo):
            return None
        bounds = _self_bounds(sym.node, name)
        if not bounds:
            return None  # a method for any field (``desc``, ``in_``, ``set``)
        return partial(_check_self, name=name, field=sym.node, bounds=bounds)

    def get_method_signature_hook(
        self, fullname: str
    ) -> Callable[[MethodSigContext], FunctionLike] | None:
        owner, _, name = fullname.rpartition(".")
        if owner == FIELD and name in _REF_OPERANDS:
            return partial(_reference_operands, iterable=name in ("in_", "nin"))
        return None

    def get_customize_class_mro_hook(
        self, fullname: str
    ) -> Callable[[ClassDefContext], None] | None:
        # Called for each class once its MRO is known, while its body is at hand:
        # the only moment the body's ``model_config`` can be read (a class loaded
        # from mypy's cache has no body). pydantic's plugin uses no such hook.
        sym = self.lookup_fully_qualified(fullname)
        if sym is None or not isinstance(sym.node, TypeInfo) or not _is_model(sym.node):
            return None
        return _record_model_config

    def _class_attribute(self, ctx: AttributeContext) -> Type:
        """``Model.name`` read (``get_class_attribute_hook`` found it a declared field)."""
        if ctx.is_lvalue:
            return ctx.default_attr_type
        sym = self.lookup_fully_qualified(FIELD)
        if sym is None or not isinstance(sym.node, TypeInfo):
            return ctx.default_attr_type
        return Instance(sym.node, [ctx.default_attr_type])


# ------------------------------------------------------------ reference fields
#: Field methods whose operand is a value of the field: on a ``Ref[X]`` field, also an X or a pk.
_REF_OPERANDS: Final = frozenset({"__eq__", "__ne__", "in_", "nin"})
REF: Final = "doqu._refs.Ref"


def _reference_operands(ctx: MethodSigContext, *, iterable: bool) -> FunctionLike:
    """``Book.author == frank``: a reference field takes its target, a ``Ref`` or a pk string."""
    sig = ctx.default_signature
    typ = get_proper_type(ctx.type)
    if not (isinstance(typ, Instance) and typ.args and sig.arg_types):
        return sig
    declared = get_proper_type(typ.args[0])
    items = declared.items if isinstance(declared, UnionType) else [declared]
    widened: list[Type] = []
    for item in map(get_proper_type, items):
        widened.append(item)
        if isinstance(item, Instance) and item.type.fullname == REF and item.args:
            widened.extend([item.args[0], ctx.api.named_generic_type("builtins.str", [])])
    if len(widened) == len(items):
        return sig  # no reference in the declared type
    operand: Type = make_simplified_union(widened)
    if iterable:
        operand = ctx.api.named_generic_type("typing.Iterable", [operand])
    return sig.copy_modified(arg_types=[operand, *sig.arg_types[1:]])


# ------------------------------------------------- methods for some fields only
def _self_bounds(field: TypeInfo, name: str) -> list[Type]:
    """The bounds of ``self: Field[_S]`` of each signature of method *name* (empty: no such)."""
    sym = field.names.get(name)
    typ = get_proper_type(sym.type) if sym is not None else None
    if not isinstance(typ, FunctionLike):
        return []
    bounds: list[Type] = []
    for item in typ.items:
        if not item.arg_types:
            return []
        selfarg = get_proper_type(item.arg_types[0])
        if not (isinstance(selfarg, Instance) and selfarg.type is field and selfarg.args):
            return []
        arg = get_proper_type(selfarg.args[0])
        if not isinstance(arg, TypeVarType):
            return []
        bound = get_proper_type(arg.upper_bound)
        if isinstance(bound, Instance) and bound.type.fullname == "builtins.object":
            return []
        bounds.append(bound)
    return bounds


def _check_self(ctx: MethodContext, *, name: str, field: TypeInfo, bounds: list[Type]) -> Type:
    """``Person.age.startswith("x")``: a lookup for another type of field is an error.

    ``self: Field[_S]`` alone does not make it one: mypy binds ``self`` without
    checking the bound of ``_S`` (``checkmember.check_self_arg`` compares with
    ``Field[Any]``, the annotation with its type variables erased).
    """
    typ = ctx.type
    if not isinstance(typ, Instance) or field not in typ.type.mro:
        return ctx.default_return_type
    mapped = map_instance_to_supertype(typ, field)
    if len(mapped.args) != 1:
        return ctx.default_return_type
    declared = get_proper_type(mapped.args[0])
    if isinstance(declared, AnyType | TypeVarType):
        return ctx.default_return_type
    items = [declared]
    if isinstance(declared, UnionType):  # as at runtime: one kind of value that fits is enough
        items = [
            i for i in map(get_proper_type, declared.items) if not isinstance(i, NoneType)
        ] or items
    if any(_fits(i, b, name) for i in items for b in bounds):
        return ctx.default_return_type
    kind = "operator" if name.startswith("__") else "method"
    wanted = " or ".join(format_type(b, ctx.api.options) for b in bounds)
    ctx.api.fail(
        f'Field {kind} "{name}" is for fields of type {wanted},'
        f" not {format_type(declared, ctx.api.options)}",
        ctx.context,
        code=ARG_TYPE,
    )
    return ctx.default_return_type


def _fits(declared: ProperType, bound: Type, name: str) -> bool:
    if name == "inc" and isinstance(declared, Instance) and declared.type.fullname == _BOOL:
        return False  # a bool is stored as one, not as a number: no inc (as at runtime)
    return is_subtype(declared, bound)


# ----------------------------------------------------------- declared fields
def _is_model(info: TypeInfo) -> bool:
    return info.has_base(BASE_MODEL) and info.fullname not in _PYDANTIC_BASES


def _is_field_var(node: object, implicit: bool) -> bool:
    return (
        isinstance(node, Var)
        and not implicit
        and not node.is_classvar
        and not node.is_property
        and not node.is_final
        and not node.is_inferred  # ``x = 1`` without an annotation is no pydantic field
    )


def declares_field(info: TypeInfo, name: str) -> bool:
    """Whether ``info.name`` is a declared pydantic field that the class does not hide.

    The nearest definition must be an annotated class variable of a model; a
    method, property or class variable of that name further up the MRO, or an
    attribute of the metaclass (``mro``, ``register``), is what the class
    attribute is at runtime instead.
    """
    if name.startswith("_"):
        return False
    found = False
    for base in info.mro:
        sym = base.names.get(name)
        if sym is None:
            continue
        if not found:
            if not (_is_model(base) and _is_field_var(sym.node, sym.implicit)):
                return False
            found = True
        elif not (isinstance(sym.node, Var) and not sym.node.is_classvar):
            return False
    meta = info.metaclass_type
    if found and meta is not None and meta.type.get(name) is not None:
        return False
    return found


# ---------------------------------------------------------------- sub-fields
class _Missing:
    """No such sub-field; ``owners`` are the models that were asked (for the message)."""

    def __init__(self, owners: list[TypeInfo] | None = None) -> None:
        self.owners = owners or []


def _field_info(ctx: AttributeContext) -> TypeInfo | None:
    """The TypeInfo of ``doqu._expr.Field``, from the field type mypy built for ``__getattr__``."""
    default = get_proper_type(ctx.default_attr_type)
    if isinstance(default, Instance) and default.type.fullname == FIELD:
        return default.type
    typ = ctx.type
    if isinstance(typ, Instance):
        for base in typ.type.mro:
            if base.fullname == FIELD:
                return base
    return None


def _sub_field(ctx: AttributeContext, *, name: str) -> Type:
    typ = ctx.type
    info = _field_info(ctx)
    if ctx.is_lvalue or info is None or not isinstance(typ, Instance):
        return ctx.default_attr_type
    field = map_instance_to_supertype(typ, info)
    if len(field.args) != 1:
        return ctx.default_attr_type
    if name.startswith("_"):  # ``Field.__getattr__`` raises AttributeError for these
        found: Type | _Missing | None = _Missing()
    else:
        found = _child(field.args[0], name, 0)
    if found is None:
        return ctx.default_attr_type  # Field[Any], what ``__getattr__`` is declared to return
    if isinstance(found, _Missing):
        ctx.api.fail(_missing_message(ctx, typ, info, name, found), ctx.context, code=ATTR_DEFINED)
        return AnyType(TypeOfAny.from_error)
    return Instance(info, [found])


def _missing_message(
    ctx: AttributeContext, typ: Instance, field_info: TypeInfo, name: str, missing: _Missing
) -> str:
    if missing.owners and not name.startswith("_"):
        owners = " | ".join(dict.fromkeys(o.name for o in missing.owners))
        if any(_any_base(o, "excluded", name) for o in missing.owners):
            return f'"{owners}" has no stored field "{name}" (it is excluded)'
        names: list[str] = []
        for owner in missing.owners:
            names.extend(n for n in _model_fields(owner) if n not in names)
        near = best_matches(name, names, n=3)
        hint = f"; maybe {_quoted(near)}?" if near else ""
        return f'"{owners}" has no field "{name}"{hint}'
    methods = [n for n in field_info.names if not n.startswith("_")]
    near = best_matches(name, methods, n=3) if not name.startswith("_") else []
    hint = f"; maybe {_quoted(near)}?" if near else ""
    return f'{format_type(typ, ctx.api.options)} has no attribute "{name}"{hint}'


def _quoted(names: list[str]) -> str:
    return " or ".join(f'"{n}"' for n in names)


def _model_fields(info: TypeInfo) -> list[str]:
    names: list[str] = []
    for base in info.mro:
        if _is_model(base):
            names.extend(
                n
                for n in base.names
                if n not in names and declares_field(info, n) and not _any_base(info, "excluded", n)
            )
    return names


def _child(typ: Type, name: str, depth: int) -> Type | _Missing | None:
    """The declared type of sub-field *name* of a value of *typ*.

    ``None`` means "not known" (``Field[Any]``), :class:`_Missing` "cannot exist".
    """
    if depth > _MAX_DEPTH:
        return None
    t = get_proper_type(typ)
    if isinstance(t, AnyType):
        return None
    if isinstance(t, NoneType | LiteralType):
        return _Missing()
    if isinstance(t, UnionType | TupleType):
        return _merged([_child(i, name, depth + 1) for i in t.items])
    if isinstance(t, TypedDictType):
        return t.items.get(name)  # unknown keys: stored dicts may hold anything
    if not isinstance(t, Instance):
        return None  # type variables, callables, ...: not pinned down
    info = t.type
    if info.has_base(BASE_MODEL):
        return _model_child(t, name)
    if info.has_base(_MAPPING):
        mapping = _supertype(t, _MAPPING)
        if mapping is None or len(mapping.args) != 2:
            return None
        return mapping.args[1]  # ``dict[str, V]``: every name is a key, its value a V
    if any(info.has_base(s) for s in _SCALARS):
        return _Missing()
    if info.fullname in _ARRAYS or any(info.has_base(a) for a in _ARRAYS if a.startswith("b")):
        iterable = _supertype(t, "typing.Iterable")
        if iterable is None or len(iterable.args) != 1:
            return None
        return _child(iterable.args[0], name, depth + 1)
    return None  # a custom class: its stored form is not known here


def _supertype(t: Instance, fullname: str) -> Instance | None:
    for base in t.type.mro:
        if base.fullname == fullname:
            return map_instance_to_supertype(t, base)
    return None


def _merged(parts: list[Type | _Missing | None]) -> Type | _Missing | None:
    if any(p is None for p in parts):
        return None
    types = [p for p in parts if not isinstance(p, _Missing) and p is not None]
    if types:
        return make_simplified_union(types)
    owners: list[TypeInfo] = []
    for p in parts:
        if isinstance(p, _Missing):
            owners.extend(o for o in p.owners if o not in owners)
    return _Missing(owners)


def _model_child(t: Instance, name: str) -> Type | _Missing | None:
    info = t.type
    if not _is_model(info) or META_KEY not in info.metadata:
        return None  # pydantic's own classes, or a model this plugin did not see defined
    if _any_base(info, "serializer"):
        return None  # a model serializer decides what is stored
    if declares_field(info, name) and not _any_base(info, "excluded", name):
        sym = info.get(name)
        if sym is None or not isinstance(sym.node, Var) or sym.node.type is None:
            return None  # not analysed yet
        var = sym.node
        owner = var.info if var.info in info.mro else info
        return expand_type_by_instance(sym.node.type, map_instance_to_supertype(t, owner))
    if _extra(info, 0) not in (None, "ignore", "forbid"):
        return None  # extra fields are kept (or it cannot be told): anything goes
    return _Missing([info])


# ------------------------------------------------------------ a model's config
def _recorded(info: TypeInfo) -> dict[str, object]:
    data = info.metadata.get(META_KEY)
    return data if isinstance(data, dict) else {}


def _any_base(info: TypeInfo, key: str, name: str | None = None) -> bool:
    """Whether a class of the MRO recorded *key* (a model serializer; *name* excluded)."""
    for base in info.mro:
        value = _recorded(base).get(key)
        if value and (name is None or (isinstance(value, list) and name in value)):
            return True
    return False


def _extra(info: TypeInfo, depth: int) -> str | None:
    """The ``extra`` setting of a model, merged as pydantic does: own, else the last base's."""
    own = _recorded(info).get("extra")
    if isinstance(own, str):
        return own
    found: str | None = None
    if depth < _MAX_DEPTH:
        for base in info.bases:
            inherited = _extra(base.type, depth + 1)
            if inherited is not None:
                found = inherited
    return found


def _record_model_config(ctx: ClassDefContext) -> None:
    """Record what a model's body says: its ``extra`` setting, a model serializer, excluded fields.

    ``info.metadata`` is kept in mypy's cache, unlike the body of the class.
    """
    info = ctx.cls.info
    if not _is_model(info):
        return
    extra = _setting(ctx.cls.keywords.get("extra"))  # class Model(BaseModel, extra="allow")
    serializer = False
    excluded: list[str] = []
    for stmt in ctx.cls.defs.body:
        if isinstance(stmt, AssignmentStmt) and len(stmt.lvalues) == 1:
            target = stmt.lvalues[0]
            if not isinstance(target, NameExpr):
                continue
            if target.name == "model_config":
                extra = _config_extra(stmt.rvalue) or extra
            elif stmt.unanalyzed_type is not None and _excluded(stmt.rvalue):
                excluded.append(target.name)
        elif isinstance(stmt, ClassDef) and stmt.name == "Config":  # pydantic v1 style
            for inner in stmt.defs.body:
                if (
                    isinstance(inner, AssignmentStmt)
                    and len(inner.lvalues) == 1
                    and isinstance(inner.lvalues[0], NameExpr)
                    and inner.lvalues[0].name == "extra"
                ):
                    extra = _setting(inner.rvalue) or extra
        elif isinstance(stmt, Decorator):
            serializer = serializer or any(
                _refers_to(d, "model_serializer") for d in stmt.original_decorators
            )
    info.metadata[META_KEY] = {"extra": extra, "serializer": serializer, "excluded": excluded}


def _setting(expr: Expression | None) -> str | None:
    """``"allow"`` or ``Extra.allow``: ``"allow"``; any other expression: ``"unknown"``."""
    if expr is None:
        return None
    if isinstance(expr, StrExpr):
        return expr.value
    if isinstance(expr, MemberExpr):
        return expr.name
    return "unknown"


def _config_extra(rvalue: Expression) -> str | None:
    """The ``extra`` of ``model_config = ConfigDict(...)`` or ``{...}``, if it sets one."""
    if isinstance(rvalue, CallExpr):  # ConfigDict(extra="allow")
        if any(kind in (ARG_STAR, ARG_STAR2) for kind in rvalue.arg_kinds):
            return "unknown"  # ConfigDict(**base): cannot be told
        for arg_name, arg in zip(rvalue.arg_names, rvalue.args):
            if arg_name == "extra":
                return _setting(arg)
        return None
    if isinstance(rvalue, DictExpr):  # {"extra": "allow"}
        for key, value in rvalue.items:
            if key is None:
                return "unknown"  # {**base}
            if isinstance(key, StrExpr) and key.value == "extra":
                return _setting(value)
        return None
    return "unknown"


def _excluded(rvalue: Expression) -> bool:
    """``Field(..., exclude=True)``: not part of the stored form, so no sub-field path."""
    if not isinstance(rvalue, CallExpr):
        return False
    return any(
        n == "exclude" and isinstance(a, NameExpr) and a.name == "True"
        for n, a in zip(rvalue.arg_names, rvalue.args)
    )


def _refers_to(expr: Expression, name: str) -> bool:
    if isinstance(expr, CallExpr):  # @model_serializer(mode="wrap")
        expr = expr.callee
    return isinstance(expr, NameExpr | MemberExpr) and expr.name == name
