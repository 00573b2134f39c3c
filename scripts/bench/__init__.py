"""Benchmarks: each measures one path against its reference and writes a BENCHMARKS.md section."""
