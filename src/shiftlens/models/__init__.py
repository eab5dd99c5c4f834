"""Models: name one (`ModelSpec`), load it (`load_model`), open its weights per tensor (`weight_source`).

Modules: `spec` (the spec), `load` (loading, dtypes), `files` (built-in names, GGUF conversion, the
cache), `checks` (a name, its files and the hub checked before anything loads), `sources` (per-tensor
readers), `fingerprint` (the one ``weight_hash`` rule, tokenizer fingerprints), `device` (device names
checked once), `errors`. The names below are imported on first use: `ModelSpec` and the checks need no torch.
"""

from shiftlens.lazy import lazy_names

_NAMES = {
    **dict.fromkeys(("BUILTIN_MODELS", "cache_root"), "shiftlens.models.files"),
    **dict.fromkeys(("DEVICES", "check_device", "compute_device"), "shiftlens.models.device"),
    **dict.fromkeys(("DTYPES", "LoadedModel", "load_config", "load_model", "load_tokenizer"), "shiftlens.models.load"),
    **dict.fromkeys(
        ("ModuleWeights", "OpenedWeights", "SafetensorsWeights", "weight_source"), "shiftlens.models.sources"
    ),
    "ModelLoadError": "shiftlens.models.errors",
    "ModelSpec": "shiftlens.models.spec",
    "weight_hash": "shiftlens.models.fingerprint",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES)
