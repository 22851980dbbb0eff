"""The datasets: their specs, the data folder and its integrity, mirrors, your own image folders, the loaders
and the on-device augmentation that feed training."""
