"""A trained network for other runtimes: an ONNX file, and the drawing page as a static site."""
