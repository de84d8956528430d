"""Pieces of the ``retry`` plugin: its config, delay arithmetic (backoff, Retry-After) and context-window fitting."""
