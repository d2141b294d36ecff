"""Schema versions: documents stored by older models, upgraded on read or by ``migrate``.

A model with ``class Meta: version = N`` stores each document with its version
under the key :data:`VERSION_KEY` (outside the model's fields: pydantic never
declares a name with a leading underscore). A document without one is at
version 1. Reading an older document runs its upgrades (``@Model.migration``,
or ``Meta.migrations``), each a function from the stored dict of version *n* to
version *n + 1*, before validation; the stored copy is left as it is. A
document of a *newer* version than the model is a
:class:`~doqu.CorruptDocument` saying so, never silently downgraded.
:func:`doqu._migrations.migrate` rewrites the older ones.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._errors import CorruptDocument

if TYPE_CHECKING:
    from ._document import Document

__all__ = ["VERSION_KEY", "stamp", "stamp_text", "upgraded", "version_of"]

#: The stored key holding a versioned model's document version.
VERSION_KEY = "_v"

Data = dict[str, Any]
Upgrade = Callable[[Data], Data]


def version_of(model: type[Any] | None) -> int | None:
    """The model's ``Meta.version`` (``None``: not versioned)."""
    return None if model is None else getattr(model, "__doqu_version__", None)


def stamp(model: type[Any] | None, data: Data, *, sort: bool = False) -> Data:
    """*data* with the model's version in it (keys kept sorted with *sort*)."""
    version = version_of(model)
    if version is None:
        return data
    out = {**data, VERSION_KEY: version}
    return dict(sorted(out.items())) if sort else out


def stamp_text(model: type[Any] | None, text: str) -> str:
    """A document's JSON text (an object) with the model's version first in it."""
    version = version_of(model)
    if version is None:
        return text
    head = f'{{"{VERSION_KEY}":{version}'
    return head + ("}" if text.strip() == "{}" else "," + text.lstrip()[1:])


def upgraded(model: type[Document], collection: str, pk: str, stored: Any) -> Data:
    """The stored document (data or JSON text) as the model's current version, not
    yet validated: its upgrades run, its version key removed."""
    # A copy: an upgrade may change nested values in place, and the caller may still
    # need what is stored (migrate compares against it when it writes).
    data: Data = json.loads(stored) if isinstance(stored, (str, bytes)) else copy.deepcopy(stored)
    current = version_of(model)
    assert current is not None
    at = data.pop(VERSION_KEY, 1)
    if type(at) is not int or at < 1:
        raise CorruptDocument(collection, pk, ValueError(f"its version {at!r} is not a version"))
    if at > current:
        raise CorruptDocument(
            collection,
            pk,
            ValueError(
                f"it is stored at version {at}, newer than {model.__name__}'s version {current}"
                " (a newer model wrote it: run that code, a document is never downgraded)"
            ),
        )
    steps: dict[int, Upgrade] = model.__doqu_migrations__
    for version in range(at, current):
        upgrade = steps.get(version)
        if upgrade is None:
            raise CorruptDocument(
                collection,
                pk,
                ValueError(
                    f"it is at version {version} and {model.__name__} has no migration"
                    f" from version {version} (@{model.__name__}.migration(from_version={version}))"
                ),
            )
        data = upgrade(data)
        if not isinstance(data, dict):
            raise TypeError(f"the migration from version {version} returned {data!r}, not a dict")
    return data
