"""Any user image to MNIST-style 28x28 digits: decoding within limits, grey levels, the ink, the 20 px field."""
