# The course image: JupyterLab with the lab, its pinned packages and every download
# already inside, so students never wait for (or lack) a download.
#
#   docker build -t lab5 .
#   docker run --rm -p 8888:8888 lab5                      # open the printed URL (it carries the token)
#   docker run --rm -v "$PWD/submissions:/subs:ro" -v "$PWD/graded:/graded" lab5 \
#       python -m grader run --submissions /subs --out /graded
#
# The base is the official TensorFlow image with Jupyter, at the tag of the
# tensorflow== pin in requirements.txt (tests/test_repo.py checks they agree);
# for NVIDIA GPU nodes use the same version's -gpu-jupyter tag.
FROM tensorflow/tensorflow:2.21.0-jupyter

# KERAS_HOME outside /root: a cluster may run the container as another user.
ENV KERAS_HOME=/opt/keras \
    PYTHONPATH=/lab5 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /lab5

# Packages first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN python -m pip install -r requirements.txt

# The downloads (CIFAR-10, ResNet50, VGG16, ImageNet class index: ~820 MB, hashes
# checked), rebuilt only when the asset list changes, not on every notebook edit.
COPY labutils/__init__.py labutils/config.py labutils/atomic.py labutils/assets.py labutils/
# The cache's files are read-only for students; its top folder stays writable (sticky), because Keras
# writes keras.json there and treats a read-only cache as absent (it would download into /tmp).
RUN python -m labutils.assets fetch && chmod -R a+rX,go-w "$KERAS_HOME" && chmod a+rwxt "$KERAS_HOME"

COPY . .
# Any user may run the lab, but writes only where a student works: the notebooks, the photos, what
# the notebooks produce, the grader's and the release's outputs. The course code stays read-only.
RUN mkdir -p graded release && chmod -R a+rX,go-w /lab5 \
    && chmod -R a+rwX notebooks records img_in img_out graded release

WORKDIR /lab5/notebooks
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--allow-root", "--ServerApp.root_dir=/lab5/notebooks"]
