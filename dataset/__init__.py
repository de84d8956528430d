"""``chaperone dataset``: list, show and export what the ``capture`` plugin stored, as fine-tuning files.

Reads the capture store (``plugins._capture.schema``) and writes OpenAI chat fine-tuning JSONL, OpenAI
preference (DPO) JSONL, TRL ``prompt/chosen/rejected`` and ShareGPT, after clean-up (errors, exact and
near duplicates, length, language), a leakage check against an eval set and a hash-stable split, with a
``manifest.json`` beside each export.
"""
