"""Files mnistlab keeps: written whole (atomic), checkpoints in safetensors, trained weights and the bundled ones."""
