"""Benchmarks of image-agent against plain tools on the same deployment."""
