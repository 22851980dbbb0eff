"""mnistlab: train, explain and use the seed CNN on MNIST.

import mnistlab
clf = mnistlab.load()                      # the bundled weights; or a run folder / .safetensors file
clf = mnistlab.load(engine="onnx")         # the same model on onnxruntime: no torch imported
clf.predict("digit.png")[0].digit          # paths, PIL images, arrays, tensors or bytes; one or a list
mnistlab.prepare("photo.jpg")              # the 28x28 image the network sees (white on black, in [0, 1])
mnistlab.read("photo.jpg").number          # every digit found and read: "2026" (boxes in .digits)

run = mnistlab.Run.create(mnistlab.Recipe(epochs=1), out="runs/first")
run.train_epoch(); run.evaluate(); run.save()
"""

__version__ = "0.2.0"

# Imported on first use, so that `mnistlab --help` does not wait for torch.
_EXPORTS = {
    "load": "mnistlab.infer.classifier",
    "Classifier": "mnistlab.infer.classifier",
    "Prediction": "mnistlab.infer.classifier",
    "Run": "mnistlab.train.run",
    "fit": "mnistlab.train.training",
    "Recipe": "mnistlab.recipes",
    "get_recipe": "mnistlab.recipes",
    "UserError": "mnistlab.errors",
    "prepare": "mnistlab.images.preprocess",
    "read": "mnistlab.reading.read",
    "Reading": "mnistlab.reading.read",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mnistlab' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
