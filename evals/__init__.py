"""``chaperone eval`` and ``chaperone rollout``: score models on a JSONL set, gate a release, move a canary.

- ``evals.run``: ``eval run`` (generate through an OpenAI-compatible URL, score, gate, report).
- ``evals.compare``: ``eval compare`` (paired rows of two runs or models, bootstrap CI, a verdict).
- ``evals.guards``: ``eval plugins`` (a policy's own pii/injection steps scored on labelled data).
- ``evals.rollout``: ``rollout`` (edit a route's ``split:`` weights, validated before it is written).
"""
