"""The mapping view: ``db.dict(...)``, a ``MutableMapping`` over one collection.

Each item is one document ``{"value": <stored>}`` whose pk is the key (a model
view stores the model's own document instead). Everything goes through the
storage's primitives, so the view works on every backend. Caching is a layer
the view consults (:class:`_NoCache`, :class:`_LRUCache`, :class:`_MirrorCache`),
never a second store: writes always reach the store at once.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import pickle
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    ValuesView,
)
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, overload

from ._bridge import rlock
from ._document import Document
from ._encoding import check_pk, checked_value, encode_model
from ._errors import ConfigError, CorruptDocument, InvalidDocument, UnstorableValue
from ._hooks import has_hooks
from ._json import MISSING, check_json
from ._tree import QuerySpec

if TYPE_CHECKING:
    from ._storage import Collection

__all__ = ["MappingView"]

V = TypeVar("V")
T = TypeVar("T")

#: Stream items in key order, so iteration is deterministic on every backend.
_BY_KEY = QuerySpec(order=((("pk",), False),))
#: Pickle protocol 5 is readable by every Python doqu supports.
_PICKLE_PROTOCOL = 5


class _Unset:
    """The version of a cache whose state is not known to match any store version."""

    def __repr__(self) -> str:
        return "UNSET"


_UNSET = _Unset()
_NO_DEFAULT: Any = object()


# ----------------------------------------------------------------------- values
def _copy(item: Any) -> Any:
    """A deep copy of a JSON value (scalars are immutable and returned as they are)."""
    kind = type(item)
    if kind is dict:
        return {k: _copy(v) for k, v in item.items()}
    if kind is list:
        return [_copy(v) for v in item]
    return item


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _Codec(Protocol):
    """How the view turns user values into stored items and back."""

    #: Items are stored as the values themselves (JSON, uncompressed): queries see them.
    native: bool

    def dump(self, value: Any) -> Any:
        """The stored item for *value*; ``TypeError`` if it cannot be encoded."""

    def load(self, key: str, item: Any) -> Any:
        """The user's value for a stored *item* (which the caller may hand out)."""

    def wrap(self, item: Any) -> dict[str, Any]:
        """The document that stores *item*."""

    def unwrap(self, data: dict[str, Any]) -> Any:
        """The item stored in a document."""

    def stored(self, key: str, value: Any) -> None:
        """Called after *value* was stored under *key*."""


class _ValueCodec:
    """Base of the codecs that store a value in the document's ``"value"`` field."""

    native = False

    def wrap(self, item: Any) -> dict[str, Any]:
        return {"value": item}

    def unwrap(self, data: dict[str, Any]) -> Any:
        # A document written some other way may lack the field: it reads as None.
        return data.get("value")

    def stored(self, key: str, value: Any) -> None:
        pass


class _JSONCodec(_ValueCodec):
    """Values stored natively as JSON, so queries see them."""

    native = True

    def dump(self, value: Any) -> Any:
        return checked_value(value)[0]

    def load(self, key: str, item: Any) -> Any:
        return item


_parse: Final = json.JSONDecoder().raw_decode


class _EncodedCodec(_ValueCodec):
    """Values stored as a string: a codec's text, or base64 of its bytes or of zlib output."""

    def __init__(
        self,
        name: str,
        encode: Callable[[Any], Any],
        decode: Callable[[Any], Any],
        *,
        binary: bool,
        compress: bool,
        collection: str,
    ) -> None:
        self.name = name
        self._encode = encode
        self._decode = decode
        self.binary = binary
        self.compress = compress
        self._collection = collection

    def dump(self, value: Any) -> Any:
        try:
            raw = self._encode(value)
        except TypeError:
            raise
        except Exception as exc:  # any encoder failure means "cannot encode"
            raise TypeError(
                f"codec {self.name} cannot encode {type(value).__name__}: {exc}"
            ) from exc
        if self.binary:
            if not isinstance(raw, (bytes, bytearray, memoryview)):
                raise TypeError(f"codec {self.name} is binary but encode() returned {type(raw)}")
            data = bytes(raw)
            return _b64(zlib.compress(data) if self.compress else data)
        if not isinstance(raw, str):
            raise TypeError(
                f"codec {self.name} returned {type(raw).__name__}, not str"
                " (a codec whose encode() returns bytes needs binary = True)"
            )
        if self.compress:
            return _b64(zlib.compress(raw.encode("utf-8")))
        return check_json(raw, error=UnstorableValue)

    def load(self, key: str, item: Any) -> Any:
        try:
            if not isinstance(item, str):
                raise ValueError(f"expected an encoded string, found {type(item).__name__}")
            if self.compress or self.binary:
                data: Any = base64.b64decode(item.encode("ascii"), validate=True)
                if self.compress:
                    data = zlib.decompress(data)
                    if not self.binary:
                        data = data.decode("utf-8")
            else:
                data = item
            return self._decode(data)
        except Exception as exc:  # pickle and custom decoders raise anything
            raise CorruptDocument(self._collection, key, exc) from exc


def _json_text(value: Any) -> str:
    copy, text = checked_value(value)
    if text is None:
        text = json.dumps(copy, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text


def _pickle(value: Any) -> bytes:
    return pickle.dumps(value, protocol=_PICKLE_PROTOCOL)


class _ModelCodec:
    """A model view: each document is a model instance stored under the key."""

    native = False

    def __init__(self, collection: Collection[Any], model: type[Document]) -> None:
        self.load: Callable[[str, Any], Any] = collection.load
        self.model = model
        self.hooks = has_hooks(model, "save")

    def dump(self, value: Any) -> Any:
        if not isinstance(value, self.model):
            raise TypeError(
                f"this view holds {self.model.__name__} instances, not {type(value).__name__}"
            )
        if self.hooks:
            value.before_save()
        return encode_model(value)

    def wrap(self, item: Any) -> dict[str, Any]:
        return dict(item)

    def unwrap(self, data: dict[str, Any]) -> Any:
        return data

    def stored(self, key: str, value: Any) -> None:
        value.__dict__["pk"] = key  # as Storage.save() does
        if self.hooks:
            value.after_save()


def _make_codec(collection: Collection[Any], codec: Any, compress: bool) -> _Codec:
    model, name = collection.model, collection.name
    if model is not None:
        if codec != "json" or compress:
            raise ConfigError(
                f"db.dict({model.__name__}) stores the model's documents as they are:"
                " codec= and compress= do not apply"
            )
        return _ModelCodec(collection, model)
    if not isinstance(compress, bool):
        raise ConfigError(f"compress= takes True or False, not {compress!r}")
    if codec == "json":
        if not compress:
            return _JSONCodec()
        return _EncodedCodec(
            "'json'", _json_text, json.loads, binary=False, compress=True, collection=name
        )
    if codec == "pickle":
        return _EncodedCodec(
            "'pickle'", _pickle, pickle.loads, binary=True, compress=compress, collection=name
        )
    if isinstance(codec, str):
        raise ConfigError(f"unknown codec {codec!r}: use 'json', 'pickle' or an object")
    encode, decode = getattr(codec, "encode", None), getattr(codec, "decode", None)
    if not callable(encode) or not callable(decode):
        raise ConfigError(f"a codec needs encode() and decode() methods; {codec!r} lacks them")
    return _EncodedCodec(
        repr(codec),
        encode,
        decode,
        binary=bool(getattr(codec, "binary", False)),
        compress=compress,
        collection=name,
    )


# ----------------------------------------------------------------------- caches
Loader = Callable[[str], Any]


class _NoCache:
    """Every read goes to the store."""

    #: Held around each write (and reload) so the store and the local state change together.
    lock: AbstractContextManager[Any] = contextlib.nullcontext()

    def get(self, key: str, load: Loader) -> Any:
        return load(key)

    def snapshot(self) -> dict[str, Any] | None:
        return None

    def wrote(self, changes: Mapping[str, Any], moved: bool | None = None) -> None:
        pass

    def cleared(self, wrote: bool) -> None:
        pass

    def sync(self) -> None:
        pass

    def describe(self) -> str:
        return "cache=None"


class _VersionedCache(_NoCache):
    """Shared bookkeeping: which store version the local state is known to match."""

    def __init__(
        self, version: Callable[[], Any], autosync: bool, ttl: float | None, asynchronous: bool
    ) -> None:
        self.lock = rlock(asynchronous)
        self._now = version
        self._autosync = autosync
        self._ttl = ttl
        self._seen: Any = _UNSET

    def _after_write(self, moved: bool | None = None) -> None:
        """Keep the local state valid across our own write, if nobody else wrote meanwhile.

        Our write bumped the version, unless the store says it did not (*moved*
        is ``False``: the data was already there). When the token is a counter that
        moved by no more than our bump since the state was last known good, the
        local state (already updated) still matches the store; otherwise the next
        check reloads.
        """
        now = self._now()
        seen = self._seen
        if (
            type(seen) is int
            and type(now) is int
            and (now == seen or (moved is not False and now == seen + 1))
        ):
            self._seen = now
        else:
            self._seen = _UNSET


class _LRUCache(_VersionedCache):
    """The last *size* items read or written, each kept at most *ttl* seconds."""

    def __init__(
        self,
        size: int,
        version: Callable[[], Any],
        autosync: bool,
        ttl: float | None,
        asynchronous: bool,
    ) -> None:
        super().__init__(version, autosync, ttl, asynchronous)
        self._seen = version()
        self._size = size
        self._entries: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self._state = threading.Lock()
        # Bumped whenever entries are dropped or written: a load that started
        # before then may carry older data and must not be remembered.
        self._epoch = 0

    def _check(self) -> None:
        now = self._now()
        with self._state:
            if now != self._seen:
                self._entries.clear()
                self._epoch += 1
                self._seen = now

    def _remember(self, key: str, item: Any, born: float) -> None:
        entries = self._entries
        entries[key] = (item, born)
        entries.move_to_end(key)
        while len(entries) > self._size:
            entries.popitem(last=False)

    def get(self, key: str, load: Loader) -> Any:
        if self._autosync:
            self._check()
        ttl = self._ttl
        born = time.monotonic() if ttl is not None else 0.0
        with self._state:
            entry = self._entries.get(key)
            if entry is not None:
                if ttl is None or born - entry[1] < ttl:
                    self._entries.move_to_end(key)
                    return _copy(entry[0])
                del self._entries[key]
            epoch = self._epoch
        item = load(key)
        with self._state:
            if epoch == self._epoch:
                self._remember(key, _copy(item), born)
        return item

    def wrote(self, changes: Mapping[str, Any], moved: bool | None = None) -> None:
        born = time.monotonic() if self._ttl is not None else 0.0
        with self._state:
            self._epoch += 1
            for key, item in changes.items():
                self._remember(key, item, born)
        self._after_write(moved)

    def cleared(self, wrote: bool) -> None:
        with self._state:
            self._epoch += 1
            self._entries.clear()
        if wrote:
            self._after_write()

    def sync(self) -> None:
        self._check()

    def describe(self) -> str:
        ttl = "" if self._ttl is None else f" ttl={self._ttl}"
        return f"cache={self._size}{ttl} autosync={self._autosync}"


class _MirrorCache(_VersionedCache):
    """A full local copy, reloaded only when the store's version has moved."""

    def __init__(
        self,
        version: Callable[[], Any],
        rows: Callable[[], Iterator[tuple[str, Any]]],
        autosync: bool,
        ttl: float | None,
        asynchronous: bool,
    ) -> None:
        super().__init__(version, autosync, ttl, asynchronous)
        self._rows = rows
        #: The local copy; replaced whole on reload, so lock-free readers see a consistent dict.
        self.data: dict[str, Any] | None = None
        #: Hand out the local copy's own objects (the lean mode), not copies of them.
        self.shared = False
        self._checked = 0.0

    def refresh(self) -> dict[str, Any]:
        """Reload if the version moved (or nothing is loaded yet); return the local copy."""
        now = self._now()
        data = self.data
        if data is None or now != self._seen:
            with self.lock:
                # Read the version before the rows: a write in between makes the
                # next check reload again rather than leave the copy stale.
                now = self._now()
                data = self.data
                if data is None or now != self._seen:
                    data = dict(self._rows())
                    self.data = data
                    self._seen = now
        self._checked = time.monotonic()
        return data

    def snapshot(self) -> dict[str, Any]:
        data = self.data
        if data is None or self._autosync:
            return self.refresh()
        if self._ttl is not None and time.monotonic() - self._checked >= self._ttl:
            return self.refresh()
        return data

    def get(self, key: str, load: Loader) -> Any:
        item = self.snapshot().get(key, MISSING)
        return item if self.shared else _copy(item)

    def wrote(self, changes: Mapping[str, Any], moved: bool | None = None) -> None:
        data = self.data
        if data is not None:
            for key, item in changes.items():
                if item is MISSING:
                    data.pop(key, None)
                else:
                    data[key] = item
        self._after_write(moved)

    def cleared(self, wrote: bool) -> None:
        if self.data is not None:
            self.data = {}
        if wrote:
            self._after_write()

    def sync(self) -> None:
        self.refresh()

    def describe(self) -> str:
        ttl = "" if self._ttl is None else f" ttl={self._ttl}"
        return f"cache='mirror'{ttl} autosync={self._autosync}"


# ------------------------------------------------------------------------- view
class _ItemsView(ItemsView[str, Any]):
    _mapping: MappingView[Any]

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return self._mapping._iter_items()


class _ValuesView(ValuesView[Any]):
    _mapping: MappingView[Any]

    def __iter__(self) -> Iterator[Any]:
        for _, value in self._mapping._iter_items():
            yield value


class MappingView(MutableMapping[str, V]):
    """A persistent, shared ``MutableMapping`` over one collection: ``db.dict(...)``.

    Keys are ``str``; each item is a document ``{"value": …}`` whose pk is the
    key (``db.dict(Model)`` maps pks to model instances instead). Reads and
    iteration go to the store unless a cache says otherwise; writes always reach
    the store at once. Iteration streams keys in code-point order (a mirror
    iterates its local copy). A key that is not a ``str`` is never stored: reading
    it is a ``KeyError``, writing it a ``TypeError``. Safe to share between the
    threads of one process.

    Args:
        collection: the collection (``db.collection(x)``); a model view when it has a
            ``Document`` class.
        codec: ``"json"`` (values stored natively), ``"pickle"`` (unsafe on stores
            others can write), or an object with ``encode(value) -> str | bytes``
            and ``decode(data) -> value`` (``binary = True`` when it uses bytes).
        compress: zlib-compress the encoded form (stored as base64 text).
        cache: ``None`` (no cache), an ``int`` N (LRU of N items) or ``"mirror"``
            (a full local copy).
        ttl: seconds a cached item (or the mirror) is trusted before it is checked again.
        autosync: with a cache, check the store's version before each read.
    """

    def __init__(
        self,
        collection: Collection[Any],
        *,
        codec: Any = "json",
        compress: bool = False,
        cache: int | str | None = None,
        ttl: float | None = None,
        autosync: bool = True,
    ) -> None:
        self._collection = collection
        self._storage = collection.storage
        self._codec: _Codec = _make_codec(collection, codec, compress)
        if not isinstance(autosync, bool):
            raise ConfigError(f"autosync= takes True or False, not {autosync!r}")
        if ttl is not None:
            if type(ttl) not in (int, float) or not ttl > 0 or not math.isfinite(ttl):
                raise ConfigError(f"ttl= takes a positive number of seconds, not {ttl!r}")
            if cache is None:
                raise ConfigError("ttl= needs a cache (cache=N or cache='mirror')")
        self._cache: _NoCache
        # The lean read path: set only for a JSON mirror read without version checks.
        self._fast: _MirrorCache | None = None
        if cache is None:
            self._cache = _NoCache()
        elif cache == "mirror":
            mirror = _MirrorCache(
                self._store_version, self._stored_items, autosync, ttl, self._storage.asynchronous
            )
            self._cache = mirror
            if self._codec.native and not autosync and ttl is None:
                # Reads as cheap as a dict's: the local copy's objects are handed
                # out as they are (documented as read-only), not copied.
                mirror.shared = True
                self._fast = mirror
        elif type(cache) is int and cache > 0:
            self._cache = _LRUCache(
                cache, self._store_version, autosync, ttl, self._storage.asynchronous
            )
        else:
            raise ConfigError(f"cache= takes None, a positive int or 'mirror', not {cache!r}")

    # ------------------------------------------------------------ plumbing
    def _store_version(self) -> Any:
        self._collection.check_open()
        return self._collection.version()

    def _fetch_item(self, key: str) -> Any:
        data = self._collection.fetch_one(key)
        if data is None:
            return MISSING
        if isinstance(data, str):
            data = _parse(data)[0]  # stored text: no surrounding whitespace to skip
        elif isinstance(data, bytes):
            data = json.loads(data)
        return self._codec.unwrap(data)

    def _stored_items(self) -> Iterator[tuple[str, Any]]:
        unwrap = self._codec.unwrap
        rows = self._collection.select(_BY_KEY)
        try:
            for key, data in rows:
                yield key, unwrap(data)
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()

    def _item(self, key: Any) -> Any:
        """The stored item under *key*, through the cache; ``MISSING`` if absent."""
        self._collection.check_open()
        try:
            check_pk(key)
        except (TypeError, InvalidDocument):
            return MISSING  # could never have been stored
        return self._cache.get(key, self._fetch_item)

    def _iter_items(self) -> Iterator[tuple[str, Any]]:
        self._collection.check_open()
        load = self._codec.load
        snap = self._cache.snapshot()
        if snap is not None:
            for key, item in list(snap.items()):
                yield key, load(key, item if self._fast else _copy(item))
            return
        for key, item in self._stored_items():
            yield key, load(key, item)

    def _write(self, items: dict[str, Any], texts: list[str] | None = None) -> None:
        put = [(key, self._codec.wrap(item)) for key, item in items.items()]
        with self._cache.lock:
            moved = self._collection.write(put, texts)
            self._cache.wrote(items, moved)

    # ------------------------------------------------------------ mapping
    def __getitem__(self, key: str) -> V:
        fast = self._fast
        if fast is not None:
            data = fast.data
            if data is not None and not self._storage.closed:
                try:
                    item = data[key]
                except (KeyError, TypeError):
                    raise KeyError(key) from None
                return item  # type: ignore[no-any-return]
        item = self._item(key)
        if item is MISSING:
            raise KeyError(key)
        return self._codec.load(key, item)  # type: ignore[no-any-return]

    @overload
    def get(self, key: str) -> V | None: ...
    @overload
    def get(self, key: str, default: V | T) -> V | T: ...
    def get(self, key: str, default: Any = None) -> Any:
        """The value under *key*, else *default*."""
        item = self._item(key)
        return default if item is MISSING else self._codec.load(key, item)

    def __contains__(self, key: object) -> bool:
        return self._item(key) is not MISSING

    def __setitem__(self, key: str, value: V) -> None:
        self._collection.check_writable("dict item assignment")
        check_pk(key)
        codec = self._codec
        if type(codec) is _JSONCodec:
            item, text = checked_value(value)
            # The document's text, when at hand, saves the backend a second encoding.
            self._write({key: item}, None if text is None else [f'{{"value":{text}}}'])
            return
        self._write({key: codec.dump(value)})
        codec.stored(key, value)

    def __delitem__(self, key: str) -> None:
        self._collection.check_writable("dict item deletion")
        try:
            check_pk(key)
        except (TypeError, InvalidDocument):
            raise KeyError(key) from None
        if has_hooks(self._collection.model, "delete"):  # the hooks need the document
            self.pop(key)
            return
        with self._cache.lock:
            if not self._collection.remove([key]):
                raise KeyError(key)
            self._cache.wrote({key: MISSING})

    def __iter__(self) -> Iterator[str]:
        self._collection.check_open()
        snap = self._cache.snapshot()
        if snap is not None:
            yield from list(snap)
            return
        for key, _ in self._stored_items():
            yield key

    def __len__(self) -> int:
        self._collection.check_open()
        snap = self._cache.snapshot()
        if snap is not None:
            return len(snap)
        return self._collection.count(None)

    def items(self) -> ItemsView[str, V]:
        """The items, streamed in one query (not one read per key)."""
        return _ItemsView(self)

    def values(self) -> ValuesView[V]:
        """The values, streamed in one query (not one read per key)."""
        return _ValuesView(self)

    def _take(self, key: str, data: dict[str, Any]) -> Any:
        """Remove *key* if it still holds *data*; its value, or ``MISSING`` if it changed."""
        value = self._codec.load(key, self._codec.unwrap(data))
        self._collection.check_writable("pop")
        hooked = has_hooks(self._collection.model, "delete")
        if hooked:
            value.before_delete()
        with self._cache.lock:
            if not self._collection.swap(key, data, None):
                return MISSING
            self._cache.wrote({key: MISSING})
        if hooked:
            value.after_delete()
        return value

    @overload
    def pop(self, key: str) -> V: ...
    @overload
    def pop(self, key: str, default: V | T) -> V | T: ...
    def pop(self, key: str, default: Any = _NO_DEFAULT) -> Any:
        """Remove *key* and return its value (atomic: the value returned is the one removed)."""
        self._collection.check_open()
        try:
            check_pk(key)
        except (TypeError, InvalidDocument):
            if default is _NO_DEFAULT:
                raise KeyError(key) from None
            return default
        while True:
            data = self._collection.fetch([key]).get(key)
            if data is None:
                if default is _NO_DEFAULT:
                    raise KeyError(key)
                return default
            value = self._take(key, data)
            if value is not MISSING:
                return value

    def popitem(self) -> tuple[str, V]:
        """Remove and return some ``(key, value)`` pair; ``KeyError`` when empty."""
        self._collection.check_open()
        while True:
            rows = list(self._collection.select(QuerySpec(limit=1)))
            if not rows:
                raise KeyError("popitem(): the mapping is empty")
            key, data = rows[0]
            value = self._take(key, data)
            if value is not MISSING:
                return key, value

    @overload
    def setdefault(self: MappingView[T | None], key: str, default: None = None) -> T | None: ...
    @overload
    def setdefault(self, key: str, default: V) -> V: ...
    def setdefault(self, key: str, default: Any = None) -> Any:
        """The value under *key*; if there is none, store *default* (atomically) and return it."""
        while True:
            item = self._item(key)
            if item is not MISSING:
                return self._codec.load(key, item)
            check_pk(key)
            new = self._codec.dump(default)
            self._collection.check_writable("setdefault")
            with self._cache.lock:
                created = self._collection.swap(key, None, self._codec.wrap(new))
                if created:
                    self._cache.wrote({key: new})
            if created:
                self._codec.stored(key, default)
                return self._codec.load(key, _copy(new))
            data = self._collection.fetch([key]).get(key)
            if data is not None:
                return self._codec.load(key, self._codec.unwrap(data))

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Store many items in one batch; all keys and values are checked before any is written."""
        self._collection.check_writable("dict update")
        pairs: Iterable[tuple[Any, Any]]
        if isinstance(other, Mapping):
            pairs = other.items()
        elif hasattr(other, "keys"):
            pairs = [(k, other[k]) for k in other.keys()]  # noqa: SIM118 - the dict protocol
        else:
            pairs = other
        given: dict[str, Any] = {}
        for key, value in [*pairs, *kwargs.items()]:
            given[check_pk(key)] = value
        if not given:
            return
        items = {key: self._codec.dump(value) for key, value in given.items()}
        self._write(items)
        for key, value in given.items():
            self._codec.stored(key, value)

    def clear(self) -> None:
        """Delete every item (every document of the collection), in one operation."""
        self._collection.check_writable("dict clear")
        with self._cache.lock:
            removed = self._collection.delete_where(None)
            self._cache.cleared(removed > 0)

    # ------------------------------------------------------------ extras
    def increment(self, key: str, by: int | float = 1) -> Any:
        """Add *by* to the number under *key* atomically in the store; return the new value.

        A missing key starts from 0. Only for JSON views: another codec, or a
        stored value that is not a number, raises ``TypeError``.
        """
        self._collection.check_writable("increment")
        if type(by) not in (int, float):
            raise TypeError(f"increment() adds an int or a float, not {type(by).__name__}")
        if not math.isfinite(by):
            raise InvalidDocument(f"cannot increment by {by}")
        if not self._codec.native:
            raise TypeError("increment() needs a JSON view (codec='json', not compressed)")
        check_pk(key)
        with self._cache.lock:
            new = self._collection.increment(key, ("value",), by)
            self._cache.wrote({key: new})
        return new

    def sync(self) -> None:
        """Refresh the local cache now if the store changed (nothing to do without a cache)."""
        self._collection.check_open()
        self._cache.sync()

    def last_updated(self) -> Any:
        """The collection's version token: comparable, and changed by every write of any process."""
        return self._store_version()

    @property
    def collection(self) -> str:
        """The name of the collection behind the view."""
        return self._collection.name

    def __repr__(self) -> str:
        model = self._collection.model
        what = model.__name__ if model is not None else repr(self._collection.name)
        codec = getattr(self._codec, "name", "'json'")
        if getattr(self._codec, "compress", False):
            codec += " compress=True"
        storage = self._collection.storage
        return f"<MappingView {what} of {storage!r} codec={codec} {self._cache.describe()}>"
