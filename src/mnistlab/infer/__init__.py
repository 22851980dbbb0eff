"""Using a trained network: `load` weights into a `Classifier` on torch or onnxruntime, and what it writes."""
