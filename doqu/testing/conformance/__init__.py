"""The backend conformance suite: what every doqu backend must do, as pytest tests.

Import the tests into a test module that provides a ``db`` fixture (a connected,
empty :class:`doqu.Storage`, closed after the test)::

    from doqu.testing.conformance import *  # noqa: F403

The expected answers are written out by hand from the API contract (they are
what :mod:`doqu._evaluator` answers too). The tests never assume a backend's
natural order: results are compared as sets unless the query has a total
``order_by``. They are small on purpose: the suite runs on every backend, some
of them over the network.

``__all__`` names every test and nothing else, so the ``import *`` above
collects each test once and brings no other name into your module. The tests
live in modules by subject:

- :mod:`~doqu.testing.conformance.documents`: saving and reading documents,
  primary keys, stored forms, invalid and corrupt documents, unique indexes;
- :mod:`~doqu.testing.conformance.storage`: queries by model or name,
  collections, ``clear``, version tokens, ``close``/``flush``/``reconnect``;
- :mod:`~doqu.testing.conformance.lookups`: every lookup, on values of every
  kind, and the paths they take;
- :mod:`~doqu.testing.conformance.queries`: ``Q`` composition, ordering,
  slicing, ``count``/``exists``/``first``, ``values`` and ``Query.delete``;
- :mod:`~doqu.testing.conformance.updates`: ``Query.update`` and its operators;
- :mod:`~doqu.testing.conformance.references`: ``Ref[T]`` round trips, queries
  by reference, ``prefetch`` (levels, lists, dangling targets, reads counted);
- :mod:`~doqu.testing.conformance.expressions`: field expressions
  (``Person.age >= 30``) for every lookup, sort keys, ``values()`` and
  updates, and queries checked against the model;
- :mod:`~doqu.testing.conformance.hooks`: lifecycle hooks, each write path
  and hook exactly once per document, and a hook that raises stopping the write;
- :mod:`~doqu.testing.conformance.versions`: schema versions, upgrades on
  read, ``migrate``, documents newer than the model;
- :mod:`~doqu.testing.conformance.errors`: bad operands, hostile field names
  and values, overflowing updates.

The models the tests use (``Person``, ``Trip``, ``Event`` …) and the data sets
(``KINDS``, ``PEOPLE``, ``HOSTILE_VALUES`` …) are importable from here as well.
"""

from __future__ import annotations

from ._common import KINDS as KINDS
from ._common import STRINGS as STRINGS
from ._common import Address as Address
from ._common import Code as Code
from ._common import Coded as Coded
from ._common import Color as Color
from ._common import Event as Event
from ._common import Geo as Geo
from ._common import Measure as Measure
from ._common import Person as Person
from ._common import Strict as Strict
from ._common import Trip as Trip
from ._common import _check as _check
from ._common import _kinds as _kinds
from ._common import _ordered as _ordered
from ._common import _pk as _pk
from ._common import _pks as _pks
from ._common import _store as _store
from ._common import _values_set as _values_set
from .documents import (
    test_case_distinct_pks,
    test_corrupt_document,
    test_delete_forms,
    test_duplicate_key_in_save_many,
    test_duplicate_key_nothing_written,
    test_empty_document,
    test_extra_fields,
    test_generated_pks,
    test_get_many,
    test_get_or_create,
    test_invalid_documents,
    test_nested_models_validated_again,
    test_nul_in_strings,
    test_save_and_get,
    test_save_many,
    test_stored_form_types,
    test_unicode_roundtrip,
    test_unique_exempts_null_and_missing,
)
from .errors import HOSTILE_FIELDS as HOSTILE_FIELDS
from .errors import HOSTILE_VALUES as HOSTILE_VALUES
from .errors import (
    test_hostile_field_names,
    test_hostile_values_literal,
    test_invalid_operands,
    test_update_overflow,
)
from .expressions import (
    test_expressions_every_lookup,
    test_expressions_mixed_order_values_update,
    test_model_checked_queries,
)
from .hooks import (
    test_a_hook_that_raises_stops_the_write,
    test_hooks_fire_once_per_document_on_every_write_path,
    test_registered_hook_functions,
    test_what_before_save_sets_is_written,
)
from .lookups import (
    test_all_any,
    test_between,
    test_comparisons_by_kind,
    test_contains,
    test_exact,
    test_exists_isnull,
    test_icase_ascii_only,
    test_in_nin,
    test_lookup_named_fields,
    test_matches,
    test_matches_newline_and_end,
    test_nested_paths,
    test_pk_path,
    test_size,
    test_strings_prefix_suffix,
)
from .queries import PEOPLE as PEOPLE
from .queries import (
    test_count_len_exists_first,
    test_delete_query,
    test_order_code_points,
    test_order_mixed_kinds,
    test_order_multi_key,
    test_q_composition,
    test_query_immutable,
    test_slicing,
    test_values,
    test_where_chaining_and_where_not,
)
from .references import (
    test_prefetch_costs_one_read_per_collection_and_depth,
    test_prefetch_dangling_references,
    test_prefetch_levels_lists_and_sharing,
    test_queries_by_reference,
    test_reference_round_trips,
)
from .storage import (
    test_clear_and_collections,
    test_close_then_use_raises,
    test_dict_collections,
    test_query_model_vs_objects,
    test_reconnect_and_flush,
    test_version_changes_on_every_write,
)
from .updates import (
    test_update_add_to_set,
    test_update_count_changed,
    test_update_errors,
    test_update_inc,
    test_update_nested_paths,
    test_update_push_pull,
    test_update_set_unset,
    test_update_validation_nothing_written,
)
from .versions import (
    test_a_document_newer_than_the_model_is_refused,
    test_migrate_rewrites_older_documents_once,
    test_older_documents_are_upgraded_on_read,
)

__all__ = [
    "test_a_document_newer_than_the_model_is_refused",
    "test_migrate_rewrites_older_documents_once",
    "test_older_documents_are_upgraded_on_read",
    "test_a_hook_that_raises_stops_the_write",
    "test_hooks_fire_once_per_document_on_every_write_path",
    "test_registered_hook_functions",
    "test_what_before_save_sets_is_written",
    "test_all_any",
    "test_between",
    "test_case_distinct_pks",
    "test_clear_and_collections",
    "test_close_then_use_raises",
    "test_comparisons_by_kind",
    "test_contains",
    "test_corrupt_document",
    "test_count_len_exists_first",
    "test_delete_forms",
    "test_delete_query",
    "test_dict_collections",
    "test_duplicate_key_in_save_many",
    "test_duplicate_key_nothing_written",
    "test_empty_document",
    "test_exact",
    "test_exists_isnull",
    "test_expressions_every_lookup",
    "test_expressions_mixed_order_values_update",
    "test_extra_fields",
    "test_generated_pks",
    "test_get_many",
    "test_get_or_create",
    "test_hostile_field_names",
    "test_hostile_values_literal",
    "test_icase_ascii_only",
    "test_in_nin",
    "test_invalid_documents",
    "test_invalid_operands",
    "test_lookup_named_fields",
    "test_matches",
    "test_matches_newline_and_end",
    "test_model_checked_queries",
    "test_nested_models_validated_again",
    "test_nested_paths",
    "test_nul_in_strings",
    "test_order_code_points",
    "test_order_mixed_kinds",
    "test_order_multi_key",
    "test_pk_path",
    "test_prefetch_costs_one_read_per_collection_and_depth",
    "test_prefetch_dangling_references",
    "test_prefetch_levels_lists_and_sharing",
    "test_q_composition",
    "test_queries_by_reference",
    "test_query_immutable",
    "test_query_model_vs_objects",
    "test_reconnect_and_flush",
    "test_reference_round_trips",
    "test_save_and_get",
    "test_save_many",
    "test_size",
    "test_slicing",
    "test_stored_form_types",
    "test_strings_prefix_suffix",
    "test_unicode_roundtrip",
    "test_unique_exempts_null_and_missing",
    "test_update_add_to_set",
    "test_update_count_changed",
    "test_update_errors",
    "test_update_inc",
    "test_update_nested_paths",
    "test_update_overflow",
    "test_update_push_pull",
    "test_update_set_unset",
    "test_update_validation_nothing_written",
    "test_values",
    "test_version_changes_on_every_write",
    "test_where_chaining_and_where_not",
]
