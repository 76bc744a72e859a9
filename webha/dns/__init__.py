"""The ``dns`` stack output (webha.dns/v1) and its exporters: ``python -m webha dns``."""
