"""Internals of the pii plugin: detection and reversible placeholders."""
