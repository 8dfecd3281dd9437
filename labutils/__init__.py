"""Helpers for Lab 5 (TFRecords, transfer learning, Grad-CAM).

The notebooks in ``notebooks/`` import these small modules; each module has one
responsibility and is named for it (``config``, ``cifar10``, ``tfrecords``...).
Importing the package keeps TensorFlow's C++ start-up lines out of the notebooks
(:mod:`labutils.quiet_tf`); it does not import TensorFlow itself.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO and WARNING lines, once it logs

from labutils import quiet_tf  # noqa: E402

quiet_tf.install()
