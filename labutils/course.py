"""The course's facts, in one table: its notebooks, what each needs and saves, its deliverables.

Every other module (the notebooks' helpers, the grader, the release, the tests) reads
these names from here, so renaming a notebook or a model is a change to this file only
(``tests/test_course.py`` checks that no other module types them).

A notebook's results file is ``records/results/<stem>.json``; the test predictions of each
model it saves are ``records/results/<stem>.<model>.predictions.csv`` (``labutils.results``).
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Notebook:
    """One course notebook: ``number`` ("01"), ``stem`` (file name without ``.ipynb``), and the rest."""

    number: str
    stem: str
    needs: tuple[str, ...] = ()  # numbers of the notebooks whose outputs it reads (the grader skips it without them)
    models: tuple[str, ...] = ()  # the models whose test predictions it saves, for the grader to score
    exercises: tuple[str, ...] = ()  # the functions a student writes (marked ### BEGIN SOLUTION)
    # Files (relative to the repository) the notebooks that need it read: when they exist, those notebooks
    # run even if this one raised somewhere (an exercise wrong, its outputs written by the course's code).
    saves: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The file name, e.g. ``01_tfrecords.ipynb``."""
        return f"{self.stem}.ipynb"

    @property
    def results(self) -> str:
        """The file name of its results in ``records/results/``, e.g. ``02_lab4_retrain.json``."""
        return f"{self.stem}.json"


# The Lab 4 CNN is trained twice in notebook 02: from arrays in RAM and from the TFRecords.
RAM, TFRECORD = "ram", "tfrecord"
TRANSFER = "transfer"  # notebook 03's ResNet50 model
# The name of the pretrained backbone inside the transfer model (the deliverable asks for it).
CONV_BASE = "conv_base"

# The TFRecords manifest (labutils.tfrecords.MANIFEST in config.RECORDS_DIR) that 02 and 03 read.
RECORDS_MANIFEST = "records/manifest.json"
TFRECORDS_NB = Notebook("01", "01_tfrecords", exercises=("make_example", "parse_batch"), saves=(RECORDS_MANIFEST,))
LAB4_NB = Notebook("02", "02_lab4_retrain", needs=("01",), models=(RAM, TFRECORD),
                   exercises=("training_dataset",))
# 03's comparison table reads 02's results when they are there; it runs without them.
TRANSFER_NB = Notebook("03", "03_resnet_transfer", needs=("01",), models=(TRANSFER,),
                       exercises=("build_transfer_model", "freeze_conv_base", "unfreeze_top"))
CAM_NB = Notebook("04", "04_vgg16_cam", exercises=("make_gradcam_heatmap",))
# In grading order: the course decides what is graded, not the student's folder.
NOTEBOOKS = (TFRECORDS_NB, LAB4_NB, TRANSFER_NB, CAM_NB)


def notebook(key: str) -> Notebook:
    """The course notebook whose number, stem or file name is ``key`` ("02", "02_lab4_retrain", ...)."""
    for nb in NOTEBOOKS:
        if key in (nb.number, nb.stem, nb.name):
            return nb
    raise KeyError(f"{key!r} is not a course notebook: {', '.join(nb.name for nb in NOTEBOOKS)}")


@dataclasses.dataclass(frozen=True)
class Deliverable:
    """One of the lab's deliverables; ``discussion``: the notebook whose tagged cell holds its written part."""

    id: int
    title: str
    notebook: Notebook
    discussion: Notebook | None = None


DELIVERABLES = (
    Deliverable(1, "Lab 4 network retrained from TFRecords, compared with in-RAM training", LAB4_NB, LAB4_NB),
    Deliverable(2, f"Pre-trained model with a clearly defined {CONV_BASE}", TRANSFER_NB),
    Deliverable(3, "Final performance compared with Lab 4, discussed", TRANSFER_NB, TRANSFER_NB),
    Deliverable(4, "Top-3 labels and heatmaps for every image in img_in/, discussed", CAM_NB, CAM_NB),
)
# The tag of a discussion cell (the written part of a deliverable).
DISCUSSION_TAG = "deliverable"

# The test metrics every trained model reports (labutils.metrics.binary_metrics), in table order.
# The first three are the ones the grader recomputes from the saved predictions.
METRICS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "never_cat_accuracy", "threshold")
GRADER_METRICS = METRICS[:3]
