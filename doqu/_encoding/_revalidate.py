"""Validating a model's data again, nested models and dataclasses included.

pydantic revalidates a ``Document`` passed to its own validator, but takes the
instances of nested models whose config does not ask for it as they are. Before
a write doqu validates everything again: :func:`revalidator` builds, once per
model, a validator whose every ``model`` and ``dataclass`` node validates its
instances' fields again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from pydantic_core import SchemaValidator

__all__ = ["as_is_nodes", "revalidator"]


_set = object.__setattr__


class _Model:
    """Validate the data of one model class again: instances, dicts, anything.

    pydantic-core reuses a complete model class's own validator wherever the
    class appears in a schema, and that validator takes instances as they are
    unless the class's config says ``revalidate_instances="always"``. So every
    ``model`` node of a schema is replaced by a call to one of these, which
    validates the instance's fields with the class's config (its nested models
    again through ``_Model``) and builds the instance as pydantic-core does.
    """

    def __init__(self, node: dict[str, Any], definitions: dict[str, Any]) -> None:
        self.cls: type[Any] = node["cls"]
        self.root = bool(node.get("root_model"))
        self.post_init: str | None = node.get("post_init")
        self._schema = node["schema"]
        self._config = node.get("config")
        self._definitions = definitions  # complete once the whole schema is copied
        self._validate: Callable[[Any], Any] | None = None

    def __repr__(self) -> str:
        return self.cls.__name__

    def validator(self) -> Callable[[Any], Any]:
        """The validator of the class's own fields (built on first use: a recursive
        model refers to itself)."""
        validate = self._validate
        if validate is None:
            validate = self._validate = _compile(
                self._schema, self._definitions, self._config
            ).validate_python
        return validate

    def __call__(self, value: Any) -> Any:
        validate = self._validate or self.validator()
        cls: Any = self.cls
        if self.root:
            root = validate(value.root if isinstance(value, cls) else value)
            return cls.model_construct(root)
        if isinstance(value, cls):
            fields_set = value.__pydantic_fields_set__
            extra = value.__pydantic_extra__
            data = {**value.__dict__, **extra} if extra else value.__dict__
            fields, extra, _ = validate(data)
        else:
            fields, extra, fields_set = validate(value)
        obj = cls.__new__(cls)
        _set(obj, "__dict__", fields)
        _set(obj, "__pydantic_extra__", extra)
        _set(obj, "__pydantic_private__", None)
        _set(obj, "__pydantic_fields_set__", fields_set)
        if self.post_init:
            getattr(obj, self.post_init)(None)
        return obj


class _Dataclass(_Model):
    """:class:`_Model` for a dataclass (standard or pydantic) nested in a model."""

    def __init__(self, node: dict[str, Any], definitions: dict[str, Any]) -> None:
        super().__init__(node, definitions)
        self.fields: list[str] = node["fields"]
        self.slots = bool(node.get("slots"))
        self.post_init_dc = bool(node.get("post_init"))

    def __call__(self, value: Any) -> Any:
        validate = self._validate or self.validator()
        cls: Any = self.cls
        if isinstance(value, cls):
            value = {name: getattr(value, name) for name in self.fields}
        fields, init_vars = validate(value)
        obj = cls.__new__(cls)
        if self.slots:
            for name, item in fields.items():
                _set(obj, name, item)
        else:
            obj.__dict__.update(fields)
        if self.post_init_dc:
            obj.__post_init__(*(init_vars or ()))
        return obj


def _revalidate_all(schema: Any, definitions: dict[str, Any]) -> Any:
    """A copy of a core schema in which every model and dataclass is validated again.

    Every node with a ``ref`` moves to *definitions* (a reference stays in its
    place), so that each model's own validator can be given all of them.
    """
    if isinstance(schema, (list, tuple)):
        return type(schema)(_revalidate_all(item, definitions) for item in schema)
    if not isinstance(schema, dict):
        return schema
    out = {key: _revalidate_all(value, definitions) for key, value in schema.items()}
    kind = out.get("type")
    if kind == "definitions":  # its items have moved to *definitions*
        return out["schema"]
    if kind in ("model", "dataclass"):
        check = (_Model if kind == "model" else _Dataclass)(out, definitions)
        node = {"type": "function-plain", "function": {"type": "no-info", "function": check}}
        for key in ("ref", "serialization", "metadata"):
            if key in out:
                node[key] = out[key]
        out = node
    ref = out.get("ref")
    if isinstance(ref, str) and kind != "definition-ref":
        definitions[ref] = out
        return {"type": "definition-ref", "schema_ref": ref}
    return out


def _compile(schema: Any, definitions: dict[str, Any], config: Any = None) -> SchemaValidator:
    if definitions:
        schema = {"type": "definitions", "schema": schema, "definitions": [*definitions.values()]}
    return SchemaValidator(schema, config)


def as_is_nodes(schema: Any) -> list[dict[str, Any]]:
    """The model and dataclass nodes of a core schema whose instances pass unvalidated."""
    found: list[dict[str, Any]] = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") in ("model", "dataclass"):
                config = node.get("config") or {}
                how = node.get("revalidate_instances", config.get("revalidate_instances"))
                if how != "always":
                    found.append(node)
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return found


def revalidator(model: type[BaseModel]) -> Callable[[Any], Any]:
    """Validate an instance of *model* again, nested models and dataclasses included.

    pydantic revalidates a ``Document`` passed to its own validator, but takes
    the instances of nested models whose config does not ask for it
    (``revalidate_instances="never"``, the default) as they are — with whatever
    was assigned to them since. Before a write doqu validates everything again:
    this validator is built once per model (and again after ``model_rebuild``).
    A model whose schema has no such nested model keeps its own validator.
    """
    validator = model.__pydantic_validator__
    known = model.__dict__.get("__doqu_revalidator__")  # the model's own, not a base's
    if known is not None and known[0] is validator:
        return known[1]  # type: ignore[no-any-return]
    schema = model.__pydantic_core_schema__
    validate: Callable[[Any], Any] = validator.validate_python
    if as_is_nodes(schema):
        definitions: dict[str, Any] = {}
        title = {"title": model.__name__}  # errors read "… for Person", as pydantic's
        validate = _compile(
            _revalidate_all(schema, definitions), definitions, title
        ).validate_python
    type.__setattr__(model, "__doqu_revalidator__", (validator, validate))
    return validate
