"""Harness for checking what real, third-party feed clients see of the served feeds."""
