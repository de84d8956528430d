"""Chaperone's benchmark harness: a reference proxy, no-op plugins and the load runner (see README.md)."""
