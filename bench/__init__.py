"""Benchmarks of akv-exporter against baselines measured in the same run (`make bench`)."""
