"""Fuzzing the readers of user files: mutated real inputs, one property (see README.md)."""
