"""Backends, one module per URL family: memory, sql, mongodb, tinydb."""
