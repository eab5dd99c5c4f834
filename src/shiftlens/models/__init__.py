"""Models: name one (`ModelSpec`), load it (`load_model`), open its weights per tensor (`weight_source`).

Modules: `spec` (the spec), `load` (loading, dtypes), `files` (built-in names, GGUF conversion, the
cache), `checks` (a name, its files and the hub checked before anything loads), `sources` (per-tensor
readers), `fingerprint` (the one ``weight_hash`` rule, tokenizer fingerprints), `device` (device names
checked once), `errors`.
"""

from shiftlens.models.device import DEVICES, check_device, compute_device
from shiftlens.models.errors import ModelLoadError
from shiftlens.models.files import BUILTIN_MODELS, cache_root
from shiftlens.models.fingerprint import weight_hash
from shiftlens.models.load import DTYPES, LoadedModel, load_config, load_model, load_tokenizer
from shiftlens.models.sources import ModuleWeights, OpenedWeights, SafetensorsWeights, weight_source
from shiftlens.models.spec import ModelSpec

__all__ = [
    "BUILTIN_MODELS",
    "DEVICES",
    "DTYPES",
    "LoadedModel",
    "ModelLoadError",
    "ModelSpec",
    "ModuleWeights",
    "OpenedWeights",
    "SafetensorsWeights",
    "cache_root",
    "check_device",
    "compute_device",
    "load_config",
    "load_model",
    "load_tokenizer",
    "weight_hash",
    "weight_source",
]
