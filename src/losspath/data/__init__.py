"""Data sets as in-memory (or streamed) train/test splits: `load_dataset(name, root)`."""
from .base import Dataset, Split
from .registry import DEFAULT_DATASET, dataset_names, default_data_root, load_dataset

__all__ = ["DEFAULT_DATASET", "Dataset", "Split", "dataset_names", "default_data_root", "load_dataset"]
