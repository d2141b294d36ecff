"""Backends by URL scheme: a table of ``"module:Class"`` strings, imported lazily.

Third-party backends register with :func:`register_backend` or under the
``doqu.backends`` entry-point group (name = URL scheme, value = ``module:attr``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Union

from ._errors import ConfigError

if TYPE_CHECKING:
    from ._storage import Storage

__all__ = ["DEFAULT_URL", "connect", "missing_driver", "register_backend"]

DEFAULT_URL = "sqlite:///doqu.sqlite3"

Factory = Callable[..., "Storage"]
_Entry = Union[str, Factory]

_SQL = "doqu.ext.sql:SQLStorage"
_BACKENDS: dict[str, _Entry] = {
    "memory": "doqu.ext.memory:MemoryStorage",
    "sqlite": _SQL,
    "postgresql": _SQL,
    "postgresql+psycopg": _SQL,
    "mysql+pymysql": _SQL,
    "mariadb+pymysql": _SQL,
    "mongodb": "doqu.ext.mongodb:MongoStorage",
    "mongodb+srv": "doqu.ext.mongodb:MongoStorage",
    "tinydb": "doqu.ext.tinydb:TinyDBStorage",
    "file": "doqu.ext.tinydb:TinyDBStorage",
}

#: Which extra of doqu (``python -m pip install '.[extra]'`` in a checkout) brings a
#: scheme's driver.
EXTRAS: dict[str, str] = {
    "sqlite": "sql",
    "postgresql": "postgres",
    "postgresql+psycopg": "postgres",
    "mysql+pymysql": "mysql",
    "mariadb+pymysql": "mysql",
    "mongodb": "mongo",
    "mongodb+srv": "mongo",
    "tinydb": "tinydb",
    "file": "tinydb",
}


def missing_driver(scheme: str, exc: BaseException) -> ConfigError:
    """The ``ConfigError`` for a driver that is not installed, naming the extra to install."""
    extra = EXTRAS.get(scheme, scheme)
    name = getattr(exc, "name", None) or str(exc)
    return ConfigError(
        f"the {scheme}:// backend needs a driver that is not installed ({name}): install the"
        f" extra doqu[{extra}], python -m pip install '.[{extra}]' in a doqu checkout"
        " (docs/install.rst)"
    )


def register_backend(scheme: str, factory: Factory | str) -> None:
    """Serve URLs of *scheme* with *factory* (a callable ``(url, **options) -> Storage``
    or a ``"module:attr"`` string, imported on first use)."""
    if not scheme or "://" in scheme:
        raise ConfigError(f"not a URL scheme: {scheme!r}")
    _BACKENDS[scheme.lower()] = factory


def _scheme(url: str) -> str:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"not a doqu URL: {url!r} (expected scheme://…, e.g. sqlite:///app.db)")
    return url.split("://", 1)[0].lower()


def _resolve(scheme: str) -> Factory:
    entry = _BACKENDS.get(scheme)
    if entry is None:
        found = [ep for ep in entry_points(group="doqu.backends") if ep.name == scheme]
        if not found:
            known = ", ".join(sorted(_BACKENDS))
            raise ConfigError(f"no backend for {scheme}:// URLs (known: {known})")
        entry = found[0].value
    if not isinstance(entry, str):
        return entry
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("doqu"):
            raise missing_driver(scheme, exc) from exc
        raise ConfigError(f"the {scheme}:// backend {module_name!r} cannot be imported") from exc
    try:
        factory: Factory = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"the {scheme}:// backend {entry!r} has no {attr!r}") from None
    return factory


def connect(url: str | None = None, **options: Any) -> Storage:
    """Open the storage at *url* (default: ``$DOQU_URL``, else ``sqlite:///doqu.sqlite3``)."""
    url = url or os.environ.get("DOQU_URL") or DEFAULT_URL
    return _resolve(_scheme(url))(url, **options)
