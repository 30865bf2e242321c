"""``dg.nn.functional``: losses and activations, composites of primitives."""
from ..ops.composites import cross_entropy, gelu, log_softmax, mse_loss, relu, softmax
from ..ops.primitives import sigmoid, tanh

__all__ = ["cross_entropy", "gelu", "log_softmax", "mse_loss", "relu", "softmax", "sigmoid", "tanh"]
