"""Experiments: end-to-end jobs (the demo) and the paper's tables and figures."""
