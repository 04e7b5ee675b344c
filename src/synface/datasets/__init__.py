"""Datasets: verification pair lists (LFW, CSV benchmarks) and identity folders."""
