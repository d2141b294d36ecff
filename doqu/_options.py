"""Connect options: checked once, here, against what each backend declares.

A backend lists the options it takes itself in :attr:`Storage.accepted_options`
(name → what it does) and may pass others on to its driver
(:meth:`Storage._driver_options`: SQLAlchemy's ``create_engine`` keywords,
libpq's URL parameters, pymongo's client options, …). An option in neither,
given as a keyword or in the URL query, raises :class:`ConfigError` naming the
accepted ones.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from ._errors import ConfigError

if TYPE_CHECKING:
    from ._storage import Storage

__all__ = [
    "READ_ONLY",
    "check_options",
    "flag",
    "query_options",
    "shown_url",
    "strip_query",
    "unknown_option",
]

#: The option every backend takes.
READ_ONLY = {
    "read_only": "never create or write anything; a missing store is an error"
    " and a missing collection reads as empty",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def flag(name: str, value: Any) -> bool:
    """A boolean option given as ``True``/``False`` or as URL text (``true``, ``0``, …)."""
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ConfigError(f"option {name}={value!r} is not a boolean (use true or false)")


def query_options(url: str) -> dict[str, str]:
    """The URL's query parameters (the last value of a key given twice)."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def shown_url(url: str) -> str:
    """*url* as errors show it: no password, no query."""
    scheme, sep, rest = url.partition("://")
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    return f"{scheme}{sep}{netloc}{slash}{path}"


def strip_query(url: str, names: Iterable[str]) -> str:
    """*url* without the query parameters *names* (the others are kept as written)."""
    base, sep, query = url.partition("?")
    if not sep:
        return url
    drop = set(names)
    kept = [
        item
        for item in query.split("&")
        if item and unquote_plus(item.partition("=")[0]) not in drop
    ]
    return f"{base}?{'&'.join(kept)}" if kept else base


def unknown_option(cls: type[Storage], url: str, name: str, *, query: bool) -> ConfigError:
    """The error for an option *cls* does not take (the one message for every backend)."""
    accepted = sorted(cls.accepted_options or READ_ONLY)
    _, passed = cls._driver_options(url, query=query)
    also = f", and {passed}" if passed else ""
    return ConfigError(
        f"unknown option {name!r} for {shown_url(url)}; accepted: {', '.join(accepted)}{also}"
    )


def check_options(cls: type[Storage], url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The doqu options given (keywords over URL query); unknown ones raise ``ConfigError``.

    A backend whose :attr:`~Storage.accepted_options` is ``None`` checks its
    options itself: only ``read_only`` is picked out for it.
    """
    query = query_options(url) if "?" in url else {}
    accepted: Container[str] | None = cls.accepted_options
    if accepted is None:
        given: dict[str, Any] = {}
        if "read_only" in query:
            given["read_only"] = query["read_only"]
        if "read_only" in options:
            given["read_only"] = options["read_only"]
        return given
    given = {}
    for where, names in ((True, query), (False, options)):
        driver: Container[str] | None = None
        for name in names:
            if name in accepted:
                given[name] = names[name]
                continue
            if driver is None:
                driver = cls._driver_options(url, query=where)[0]
            if name not in driver:
                raise unknown_option(cls, url, name, query=where)
    return given
