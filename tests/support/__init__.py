"""Helpers shared by test modules: fakes, tiny generated models, data sets and checkpoints."""
