"""Chaperone's engine launcher: vLLM, TGI and llama.cpp started, watched and stopped by the proxy.

A policy backend with a ``launch:`` block (``proxy.launchconfig``) is served by engines the
proxy starts itself (``backends.launch.backend.LaunchedBackend``); ``chaperone launch``
(``backends.launch.cli``) starts one from the command line. ``commands`` turns options into exact
command lines, ``engine`` runs one replica's process, ``metrics`` reads an engine's Prometheus page.
This package's own import stays light (the policy schema imports ``config`` from it).
"""

from backends.launch.bench import bench_engine

__all__ = ["bench_engine"]
