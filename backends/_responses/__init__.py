"""Pieces of the Responses API ↔ chat completions translation; the public face is ``backends.responses_chat``."""
