"""Model catalogue, loading, device choice and forward capture."""

import os

# A hub id on a machine without internet must fail within seconds, not hang on default timeouts.
# (Read by huggingface_hub at import, so set before transformers is imported.)
os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from explorer.models.anatomy import Anatomy, anatomy_of
from explorer.models.capture import Capture, capture
from explorer.models.catalogue import CATALOGUE, DEFAULT_MODEL_ID, PICKER_IDS
from explorer.models.loading import LoadedModel, ModelCard, load_model

__all__ = [
    "Anatomy",
    "CATALOGUE",
    "DEFAULT_MODEL_ID",
    "PICKER_IDS",
    "Capture",
    "LoadedModel",
    "anatomy_of",
    "ModelCard",
    "capture",
    "load_model",
]
