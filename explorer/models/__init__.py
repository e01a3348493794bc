"""Model catalogue, loading, device choice and forward capture."""

from explorer.models.capture import Capture, capture
from explorer.models.catalogue import CATALOGUE, DEFAULT_MODEL_ID, PICKER_IDS
from explorer.models.loading import LoadedModel, ModelCard, load_model

__all__ = [
    "CATALOGUE",
    "DEFAULT_MODEL_ID",
    "PICKER_IDS",
    "Capture",
    "LoadedModel",
    "ModelCard",
    "capture",
    "load_model",
]
