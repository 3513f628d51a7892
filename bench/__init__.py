"""Benchmarks: make bench (bench.py), make bench-restore (restore.py); not part of make test."""
