"""Input data: readers for each format, preprocessing (docs/method.md §1), the prepared-dataset format."""

from distill.data.dataset import PreparedDataset, Split
from distill.data.prepare import PrepareOptions, prepare_dataset
from distill.data.reference import export_reference

__all__ = ["PrepareOptions", "PreparedDataset", "Split", "export_reference", "prepare_dataset"]
