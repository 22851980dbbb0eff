"""mnistlab: train, explain and use the seed CNN on MNIST."""

__version__ = "0.1.0"
