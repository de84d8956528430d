"""The pieces of the Messages ↔ chat translation; import them from ``backends.messages_chat``."""
