"""Test kit for doqu and third-party backends.

- :mod:`doqu.testing.conformance`: the conformance suite (``from … import *`` into a
  test module that defines a ``db`` fixture).
- :mod:`doqu.testing.differential`: hypothesis tests against the reference evaluator.
- :mod:`doqu.testing.strategies`: the random documents and query trees they use.
- :mod:`doqu.testing.servers`: test servers and per-test database namespaces.

Importing this package needs the ``test`` extra (pytest, hypothesis).
"""
