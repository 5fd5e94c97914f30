"""The exporter's HTTP surfaces: /metrics, health, reload (and the status page and /probe)."""
