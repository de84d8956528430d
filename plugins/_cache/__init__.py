"""The ``cache`` plugin's pieces: config, request keys, false-hit guards, the semantic index, SSE replay."""
