"""Smoothing strategies under comparison, one file per procedure (PEFT variants are entries of one file)."""
