"""Pieces of the ``budget`` plugin: config, context windows, fitting, and store-backed meters."""
