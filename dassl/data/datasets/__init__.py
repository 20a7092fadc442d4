"""Dataset base classes, registry and the few-shot cache helpers shared by every dataset."""
from .base_dataset import Datum, DatumMT, DatasetBase, DatasetBaseMT
from .build import DATASET_REGISTRY, build_dataset
from .fewshot_cache import load_fewshot_cache, restricted_pickle_load, save_fewshot_cache

__all__ = [
    "Datum", "DatumMT", "DatasetBase", "DatasetBaseMT", "DATASET_REGISTRY", "build_dataset",
    "load_fewshot_cache", "save_fewshot_cache", "restricted_pickle_load",
]
