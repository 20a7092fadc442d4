"""Data side of the Dassl API: datasets, samplers, transforms, loaders and the DataManager."""
from .data_manager import DataManager, DatasetWrapper

__all__ = ["DataManager", "DatasetWrapper"]
