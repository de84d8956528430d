"""Anthropic Messages API provider adapter: the chat ↔ Messages translations (see ``backends.anthropic``)."""
