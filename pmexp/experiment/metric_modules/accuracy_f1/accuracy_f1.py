"""Accuracy and F1 as a Hugging Face `evaluate` metric module, shipped inside pmexp.

Loaded by path (`evaluate.load(<this file>)`), so it works offline; the test suite checks it
against scikit-learn. F1 is binary (positive label 1) for two classes and macro-averaged otherwise.
"""

import datasets
import evaluate

_DESCRIPTION = "Accuracy and F1 (binary for 2 classes, else macro) of integer predictions."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): true labels.
    num_labels (int): classes in the task; 2 means binary F1 with positive label 1. Default 2.
Returns:
    accuracy (float): fraction of predictions equal to their reference.
    f1 (float): binary F1 of label 1 (2 classes) or the mean F1 over the classes seen (more).
"""


def _f1(predictions, references, label):
    tp = sum(1 for p, r in zip(predictions, references, strict=True) if p == label and r == label)
    fp = sum(1 for p, r in zip(predictions, references, strict=True) if p == label and r != label)
    fn = sum(1 for p, r in zip(predictions, references, strict=True) if p != label and r == label)
    # No positives predicted nor present: F1 is undefined; 0.0 as scikit-learn's zero_division=0.
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AccuracyF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, num_labels=2):
        n = len(references)
        accuracy = sum(1 for p, r in zip(predictions, references, strict=True) if p == r) / n if n else 0.0
        if num_labels == 2:
            f1 = _f1(predictions, references, 1)
        else:
            labels = sorted(set(predictions) | set(references))
            f1 = sum(_f1(predictions, references, c) for c in labels) / len(labels) if labels else 0.0
        return {"accuracy": float(accuracy), "f1": float(f1)}
