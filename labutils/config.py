"""Every path and setting of the lab, in one place.

Environment variables (read once, when this module is imported):

* ``LAB5_ROOT``: the repository to work in (default: the one holding this
  package). A grader points it at a student's copy.
* ``LAB5_PROFILE``: ``full`` (the real lab, for a GPU), ``laptop`` (a share of it, for a CPU)
  or ``smoke`` (same code path, small numbers, for tests and quick checks); unset: ``full``
  with a GPU, ``laptop`` without. A notebook's ``profile`` parameter, passed to
  :func:`use_profile`, takes precedence over it.
* ``LAB5_CIFAR10``: where CIFAR-10 comes from when not from Keras' cache: the
  official ``cifar-10-python.tar.gz`` (or an archive laid out like it), an
  extracted ``cifar-10-batches-py/`` folder, or a URL (``file://`` included).
* ``KERAS_HOME``: Keras' own cache (default ``~/.keras``); downloads land in
  ``$KERAS_HOME/datasets`` and ``$KERAS_HOME/models``.
"""
from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path

ROOT = Path(os.environ.get("LAB5_ROOT") or Path(__file__).resolve().parents[1]).resolve()
NOTEBOOKS_DIR = ROOT / "notebooks"
RECORDS_DIR = ROOT / "records"
RESULTS_DIR = RECORDS_DIR / "results"
LOGS_DIR = RECORDS_DIR / "logs"
IMG_IN = ROOT / "img_in"
IMG_OUT = ROOT / "img_out"

CIFAR10_SOURCE = os.environ.get("LAB5_CIFAR10") or None
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# SHA-256 of the official archive, the hash keras.datasets.cifar10 checks too.
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")
CAT_CLASS = 3  # CIFAR-10 class id of "cat": label 1 in this lab, every other class 0
IMAGE_SHAPE = (32, 32, 3)

SPLITS = ("train", "val", "test")
SHARDS = {"train": 12, "val": 2, "test": 4}  # 18 shards in all
VAL_FRACTION = 0.1
SEED = 42

# ImageNet class groups for Grad-CAM: "what looks like a cat / a dog here?"
IMAGENET_GROUPS = {"cat": tuple(range(281, 286)), "dog": tuple(range(151, 269))}
CAM_ALPHA = 0.4  # heatmap weight when blended over a photo (the photo gets 1 - alpha)
CAM_BATCH_SIZE = 16  # images per Grad-CAM batch
# img_in/ is open to anyone: a photo over this many pixels is skipped before it is decoded (a 292 kB
# PNG can claim 10000x10000); a readable one is kept at most this long a side (its overlays' size).
MAX_PIXELS = 40_000_000
MAX_SIDE = 2048
# The lab's two pets, compared side by side in notebook 04: the img_in/ photos whose names start so.
CAM_PAIR = {"Freya": "freya", "Artemis": "artemis"}


@dataclasses.dataclass(frozen=True)
class Profile:
    """Run settings; ``smoke`` uses the same code path as ``full`` with small numbers."""

    name: str
    train_images: int | None  # official training images used (None: all), before the train/val split
    test_images: int | None  # official test images used (None: all 10,000)
    batch_size: int
    lab4_epochs: int
    transfer_input_size: int  # 32x32 CIFAR images are upsampled to this for the backbone
    epochs_head: int
    epochs_finetune: int
    cam_backbone: str
    cam_input_size: int
    # Offline stand-ins (smoke only): missing ImageNet weights mean random weights, a missing class
    # index means labels by class number. Either is said where it happens; other profiles stop instead.
    stand_ins_if_offline: bool = False
    lab4_seeds: int = 1  # notebook 02 trains each pipeline with this many seeds (mean and spread)


PROFILES = {
    "full": Profile("full", train_images=None, test_images=None, batch_size=64,
                    lab4_epochs=40, transfer_input_size=160, epochs_head=10,
                    epochs_finetune=10, cam_backbone="vgg16", cam_input_size=224, lab4_seeds=3),
    # The whole real lab on a student's CPU in a sitting: a share of the real data, fewer epochs, a
    # smaller transfer input; benchmarks/lab_cost.py projects its minutes on a given machine. Sized on
    # a 2-core AVX2 CPU (AMD EPYC), where 20,000 training images projected 102 minutes and 5,000 projected 26.
    "laptop": Profile("laptop", train_images=5_000, test_images=None, batch_size=64,
                      lab4_epochs=12, transfer_input_size=96, epochs_head=5,
                      epochs_finetune=2, cam_backbone="vgg16", cam_input_size=224),
    "smoke": Profile("smoke", train_images=1000, test_images=400, batch_size=32,
                     lab4_epochs=1, transfer_input_size=32, epochs_head=1,
                     epochs_finetune=1, cam_backbone="mobilenet_025", cam_input_size=128,
                     stand_ins_if_offline=True),
}


def gpu_present() -> str | None:
    """The first NVIDIA GPU device this machine shows (``/dev/nvidia0``...), or None.

    Read from the device files, not from TensorFlow (whose import takes seconds): what a
    profile's default needs to know is whether the machine has a GPU at all.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return None  # GPUs hidden on purpose
    devices = sorted(glob.glob("/dev/nvidia[0-9]*"))
    return devices[0] if devices else None


def resolve_profile(name: str | None = None) -> tuple[Profile, str]:
    """The profile ``name`` stands for, and why: the name given, else ``$LAB5_PROFILE``, else the
    machine's (``full`` with a GPU, ``laptop`` without one)."""
    if name:
        why = "chosen explicitly"
    elif os.environ.get("LAB5_PROFILE"):
        name, why = os.environ["LAB5_PROFILE"], "from $LAB5_PROFILE"
    else:
        gpu = gpu_present()
        name = "full" if gpu else "laptop"
        why = (f"a GPU was found ({gpu})" if gpu else "no GPU found") + "; set LAB5_PROFILE or pass a profile to choose"
    try:
        return PROFILES[name], why
    except KeyError:
        raise ValueError(f"Unknown profile {name!r}: set LAB5_PROFILE (or the notebook's "
                         f"`profile` parameter) to one of {sorted(PROFILES)}.") from None


def profile(name: str | None = None) -> Profile:
    """The settings of profile ``name`` (default: ``$LAB5_PROFILE``, else ``full`` with a GPU, ``laptop`` without)."""
    return resolve_profile(name)[0]


# The profile a notebook chose with use_profile(); None until one does.
_active: Profile | None = None


def use_profile(name: str | None = None) -> tuple[Profile, str]:
    """Make profile ``name`` (resolved as :func:`resolve_profile` does) the one every ``labutils``
    call of this process acts on, and return it with the reason it was chosen.

    A notebook calls it once, with its ``profile`` parameter: the backbones' offline stand-ins,
    the transfer model's input size and the CIFAR-10 splits then follow the notebook's choice,
    whatever ``$LAB5_PROFILE`` says.
    """
    global _active
    chosen, why = resolve_profile(name)
    _active = chosen
    return chosen, why


def current_profile() -> Profile:
    """The profile chosen by :func:`use_profile`; before any choice, :func:`profile`'s default."""
    return _active or profile()


# Seconds without an answer before a download is given up (Keras' own fetch has no time limit).
DOWNLOAD_TIMEOUT_S = 30

# Training (notebooks 02 and 03, labutils.training). Checkpoints hold the best weights of a run.
CHECKPOINTS_DIR = RECORDS_DIR / "checkpoints"
# Best model = highest validation ROC-AUC: threshold-free and, with only ~10 % cats in the validation
# split, much less noisy from epoch to epoch than PR-AUC (which the reports show too).
MONITOR = "val_roc_auc"
PATIENCE = 8  # EarlyStopping: epochs without a better MONITOR before stopping...
MIN_EPOCHS = 12  # ...but never before this many: a from-scratch CNN can look flat for its first epochs
AUGMENT = {"flip": "horizontal", "translate": 0.1}  # Lab 4 CNN: random mirror and shifts of up to 10 %
LEARNING_RATES = {"lab4": 1e-3, "head": 1e-3, "finetune": 1e-5}  # Adam; fine-tuning 100x lower
# Halve the learning rate when MONITOR has not improved for 3 epochs, never below the fine-tuning rate
# (so fine-tuning keeps its rate, as in the Keras guide). Watching validation loss instead (patience 2) cut
# the Lab 4 rate below 1e-5 by epoch ~20: the class-weighted loss on the subset's 466 validation images is
# noisy and rises as the network grows confident, while ROC-AUC still improves. On the shared subset (full
# profile, RAM, the Lab 4 network then with a Flatten + Dense head), test ROC-AUC went from 0.798 / 0.810 to
# 0.841 / 0.827 (seeds 42 / 43).
LR_PLATEAU = {"factor": 0.5, "patience": 3, "min_lr": LEARNING_RATES["finetune"]}
# Phase 2 unfreezes the conv_base layers whose name matches (BatchNormalization excepted);
# a backbone not listed here unfreezes its last 10 % of layers.
FINETUNE_LAYERS = {
    "resnet50": r"^conv5_", "resnet101": r"^conv5_", "resnet152": r"^conv5_",
    "vgg16": r"^block5_", "vgg19": r"^block5_",
    "mobilenet": r"^conv_(dw|pw)_13", "mobilenet_025": r"^conv_(dw|pw)_13",
}
