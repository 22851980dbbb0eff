"""Reading every digit of a picture: the learned digit finder (frame, finder, finder_onnx), then finder -> crops ->
`Net` (read); the scenes it trains on are in `mnistlab.synth`."""
