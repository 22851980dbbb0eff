"""Explaining a network and a run: the receptive-field table, input gradients, and the pictures of a run."""
