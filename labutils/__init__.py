"""Helpers for Lab 5 (TFRecords, transfer learning, Grad-CAM).

The notebooks in ``notebooks/`` import these small modules; each module has one
responsibility and is named for it (``config``, ``cifar10``, ``tfrecords``...).
Importing the package changes nothing in the process (no environment variable, no import
hook); a notebook that wants TensorFlow's C++ start-up lines kept out of its outputs calls
:func:`labutils.quiet_tf.import_tensorflow` before importing Keras.
"""
