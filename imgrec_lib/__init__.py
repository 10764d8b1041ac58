"""imgrec_lib: the small library that the imgrec course builds, lesson by lesson.

Each module holds the clean version of what a lesson has the learner write, so later lessons can
import it (``from imgrec_lib.conv import conv2d``) instead of copying code forward:

- ``conv``, ``pooling``, ``dense``, ``activations``, ``losses``: from-scratch NumPy layers with their
  backward passes (lessons 01-05); ``gradcheck``: numeric gradient checking (lesson 05);
  ``optim``: SGD with momentum and Adam as step functions (lesson 06).
- ``data``: the embedded MNIST digits (no download), coloured shapes, torchvision data sets, your
  own folder of images.
- ``device``: CUDA / MPS / CPU selection, seeding, mixed precision.
- ``models``: the course CNN and LeNet-5; ``training``: ``fit`` / ``evaluate``;
  ``checkpoint``: safe saving and loading.
- ``inference``: predictions on image files; ``numpy_net``: a trained checkpoint run by the NumPy
  layers, without PyTorch (how ``predict`` starts fast); ``plots`` and ``widgets``: figures and sliders.
- ``distributed``: data-parallel training under ``torchrun`` (one process per device).
- ``cli``: ``python -m imgrec_lib train | evaluate | predict``.
"""

__version__ = "0.1.0"
