"""Building blocks of the ``pii`` plugin: detection (``detect``) and placeholder masking and restoration."""
