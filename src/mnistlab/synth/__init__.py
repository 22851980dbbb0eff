"""Synthetic pictures of numbers with exact labels: what the digit finder (`mnistlab.reading`) and the recogniser
of its crops train on (scenes, their sprites, a camera)."""
