"""Workflows, one module each, assembling data + model + trainer: `rnnkit.tasks.language_model`."""
