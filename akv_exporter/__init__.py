"""akv-exporter: Prometheus exporter and health monitor for ONTAP's Azure Key Vault key managers."""

__version__ = "0.2.0"
