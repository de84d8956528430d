"""``chaperone bench``: a load tester for OpenAI-compatible servers that also measures the gateway in front.

``run`` drives one or more targets with the same seeded workload (closed or open loop) and writes
per-request results, a summary, plots and an offline HTML report; ``sweep`` finds the knee of
throughput against latency; ``compare`` diffs two summaries with a CI-friendly exit code;
``overhead`` is the proxy-overhead harness of ``benchmarks/`` (source checkout only).
"""
