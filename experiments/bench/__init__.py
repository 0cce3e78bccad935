"""Benchmarks and measurement binaries (what BUILD_NOTES records)."""
