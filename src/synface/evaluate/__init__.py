"""Embeddings and the verification protocol (LFW 10-fold and any pair list)."""
