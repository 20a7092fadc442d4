"""Data side of the Dassl API: datasets, samplers, transforms, loaders and the DataManager."""
from .data_manager import DataManager, DatasetWrapper
from .multitask import TaskLayout, build_task_datasets, concat_task_datasets

__all__ = ["DataManager", "DatasetWrapper", "TaskLayout", "build_task_datasets", "concat_task_datasets"]
