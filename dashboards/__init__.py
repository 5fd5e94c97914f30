"""Grafana dashboards for akv-exporter, written as plain Python dictionaries.

`python -m dashboards.generate` renders them to `dashboards/*.json`; see docs/dashboards.md.
"""
