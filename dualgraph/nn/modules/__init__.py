"""The layers of ``dg.nn`` (one module per family, as torch.nn.modules)."""
from .activation import (CELU, ELU, GELU, SELU, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, LogSigmoid,
                         LogSoftmax, Mish, MultiheadAttention, ReLU, ReLU6, Sigmoid, SiLU, Softmax, Softplus,
                         Softsign, Tanh)
from .container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .conv import Conv1d, Conv2d, ConvTranspose2d
from .dropout import Dropout
from .flatten import Flatten, Unflatten
from .linear import Bilinear, Identity, Linear
from .loss import (BCELoss, BCEWithLogitsLoss, CosineSimilarity, CrossEntropyLoss, HuberLoss, KLDivLoss,
                   L1Loss, MSELoss, NLLLoss, SmoothL1Loss)
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm, RMSNorm
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell
from .sparse import Embedding
from .transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "CELU", "ELU", "GELU", "SELU", "Hardsigmoid", "Hardswish", "Hardtanh", "LeakyReLU", "LogSigmoid",
    "LogSoftmax", "Mish", "MultiheadAttention", "ReLU", "ReLU6", "Sigmoid", "SiLU", "Softmax", "Softplus",
    "Softsign", "Tanh", "ModuleDict", "ModuleList", "ParameterDict", "ParameterList", "Sequential", "Conv1d",
    "Conv2d", "ConvTranspose2d", "Dropout", "Flatten", "Unflatten", "Bilinear", "Identity", "Linear",
    "BCELoss", "BCEWithLogitsLoss", "CosineSimilarity", "CrossEntropyLoss", "HuberLoss", "KLDivLoss",
    "L1Loss", "MSELoss", "NLLLoss", "SmoothL1Loss", "BatchNorm1d", "BatchNorm2d", "GroupNorm",
    "InstanceNorm2d", "LayerNorm", "RMSNorm", "AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d", "GRU", "LSTM",
    "RNN", "GRUCell", "LSTMCell", "RNNBase", "RNNCell", "Embedding", "TransformerEncoder", "TransformerEncoderLayer",
]
