"""Prediction on images, folders and whole-slide images, and writers for its outputs.

:class:`Nuclei` is the record that flows from prediction to the writers.
:func:`plan_prediction` and :func:`predict_nuclei` stream the nuclei of one image or
slide (TensorFlow is imported only with the model); :func:`predict_to_folder` runs
``stardist-hier predict``. :class:`PredictOptions` holds a run's settings as one
validated object (its messages name parameters; the command line names its flags).
"""

from .nuclei import Nuclei
from .options import PredictOptions
from .pipeline import PredictionPlan, PredictStats, list_inputs, load_model, plan_prediction, predict_all, predict_nuclei
from .runner import RunSummary, predict_to_folder

__all__ = ["Nuclei", "PredictOptions", "PredictionPlan", "PredictStats", "plan_prediction", "predict_nuclei", "predict_all",
           "list_inputs", "load_model", "RunSummary", "predict_to_folder"]
