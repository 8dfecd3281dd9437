"""Helpers for Lab 5 (TFRecords, transfer learning, Grad-CAM).

The notebooks in ``notebooks/`` import these small modules; each module has one
responsibility and is named for it (``config``, ``cifar10``, ``tfrecords``...).
"""
