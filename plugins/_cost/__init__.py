"""Pieces of the ``cost`` plugin: accounting and sinks."""
