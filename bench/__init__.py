"""Benchmarks (`make bench`): numbers and ratios against floors measured in the same run."""
