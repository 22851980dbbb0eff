"""Training: `Run` and `fit` (the loop), what a recipe builds, the run folder, the runtime, torchrun, TensorBoard."""
