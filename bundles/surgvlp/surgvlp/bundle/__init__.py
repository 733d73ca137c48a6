"""The MONAI bundle's entry points: what its configs run, weights conversion, metadata checks, ONNX export."""
