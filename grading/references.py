"""Find answers that hand a graded exercise to the code it asks the learner to write.

An exercise such as lesson 01's ``conv2d`` is void when the answer calls ``imgrec_lib.conv.conv2d``
(the library's clean copy of the exercise) or ``torch.nn.functional.conv2d`` (the function it
re-implements). ``REFERENCES`` lists, per exercise (the grade_id of its answer cell), the names whose
use makes that exercise pointless; ``find_reference_copies`` reads a submitted notebook without
running it and says which answers use one of them, and where. The autograde report shows the
findings per exercise; a config switch can score such an answer 0. The reader runs in a child
process with limits on size, time and memory (``MAX_CELL_BYTES``, ``MAX_CODE_BYTES``,
``READ_SECONDS``, ``READ_MEMORY_BYTES``): a notebook it gives up on is reported for every exercise.

How it reads a notebook (static analysis with ``ast``; IPython magics become Python first):

- every code cell, in order, binds names: imports (``import torch.nn.functional as F``,
  ``from imgrec_lib import conv``, ``from imgrec_lib.conv import conv2d as c``, ``import
  imgrec_lib.conv``, ``from m import *``), assignments (``ref = F.conv2d``), functions and classes;
  what code stores into an object makes the object's name stand for it too (``np.linalg.xx =
  helper``, ``setattr(np, "xx", helper)``, ``vars(np).update(...)``, ``tools.append(helper)``, in a
  loop, inside a function of the cell's, or one it hands the object to). The release's own cells
  (the lesson's set-up, demos and tests) count for these names, but what they call is never a
  finding in itself;
- the roots of an exercise are its answer cell and the names its test cells grade (``conv2d``,
  ``MyCNN``, ``trained_model``), as bound when the first test cell runs;
- a root's code is searched for the exercise's references through aliases, attribute chains,
  assignments in other cells, and functions or lambdas defined elsewhere in the notebook that it
  uses (followed ``MAX_DEPTH`` levels deep); through run-time lookups whose names fold to literals:
  ``getattr`` / ``inspect.getattr_static`` / ``operator.attrgetter`` of a module, a module's
  namespace (``m.__dict__``, ``vars(m)``, ``dict(inspect.getmembers(m))``, ``globals()``) indexed or
  ``.get`` with a name, ``__import__`` / ``importlib.import_module`` / ``sys.modules[...]`` of a module
  name, ``pkgutil.resolve_name("imgrec_lib.conv:conv2d")``; and through the re-exports of the
  library and of torchvision.models (``torchvision.models.resnet18`` is
  ``torchvision.models.resnet.resnet18``). A string in the student's code that names a reference
  (``"imgrec_lib.conv.conv2d"``, ``"imgrec_lib.conv:conv2d"``) is a use of it;
- in an answer cell, or in a helper of the student's that an answer uses, these are reported for
  review by hand: code that hides what it calls (``eval``, ``exec``, ``compile``, ``__import__``,
  ``getattr`` with a computed name, ``globals()`` / ``vars()`` / ``__dict__`` lookups,
  ``sys.modules``, ...), any run-time lookup by name (``inspect.getattr_static``,
  ``inspect.getmembers``, ``pkgutil.resolve_name``, ``operator.attrgetter``, ``importlib.*``,
  ``torch.hub.load``, ``torchvision.models.get_model``), a string that names a module holding a
  reference (``"imgrec_lib.conv"``, ``"torchvision.models.resnet"``), a string that is a reference's
  own name (``"conv2d"``) in a cell that looks names up at run time, the class of an object made
  by the library, torchvision or torch.nn (``type(resnet18().layer1[0])``, ``obj.__class__``; a
  reference use when what made it is a reference), a change to ``sys.path``, ``getattr`` handed to
  other code (``map(getattr, ...)``, ``functools.partial(getattr, F)``), and in an exercise answered
  with NumPy any torch, scipy.signal, scipy.ndimage or skimage.filters code (their C functions go by
  many names: ``torch.convolution``, ``torch._C._nn.im2col``);
- in every cell of the student's, used by an answer or not, code that blinds the second layer below
  (``ESCAPES``, one rule per kind): switching the record off (``map(sys.setprofile, [None])``,
  torch's dispatch-mode stack), replacing functions of sys, builtins, os or threading, making or
  relabelling code objects (``types.FunctionType(code, g)``, ``code.replace(co_filename=...)``),
  reaching into frames, ``gc`` or a scan of ``sys.modules``, starting a thread or a process, looking
  a function of sys up by a name built at run time (literal ``exec``/``eval`` code included); and
  what could answer a test in the test cell's place (each test cell carries a secret word for the
  grader, grading/worker.Run): reaching into how IPython runs a cell or into the cells' source
  (event hooks, input or AST transformers, the shell's ``run_cell``, compiler or history manager, the
  input history ``In`` / ``_ih`` / ``_i``, an audit hook, ``linecache``), a socket or the grader's socket
  named, binding ``globals`` or ``__import__``, which each test cell calls, or changing the import
  machinery (``sys.meta_path``), which its import of grading.serve goes through. The output history (``_``,
  ``Out``) is not among them: the grading kernel keeps none. It is
  reported for every exercise, naming the cell; inside a function of an answer cell, for the
  exercises whose answers reach it;
- an import of a module that is not installed where grading runs, and a use of a name from one,
  are reported for review by hand only when some cell of the student's could make such a module at
  run time: a file opened for writing, written, moved or unpacked (``open(..., "w")``,
  ``Path.write_text``, ``shutil``, ``%%writefile``), a shell command (``!``, ``os.system``,
  ``subprocess``), a change to ``sys.path``, ``sys.modules`` or the import machinery, a module made
  in memory (``types.ModuleType``, ``importlib``). Without one the import can only fail (a typo such
  as ``import torchvisionx``): no finding.

What it cannot see: methods reached through objects whose type it does not know
(``self.helper()``, ``obj.method()``; only the torch.Tensor methods named in ``REFERENCES`` are caught
on any object), an object that reaches the function storing into it through more than one call (one
call, ``install(np)``, is followed), a reference class reached inside a network made by code outside
the packages above, code that a cell no answer uses writes to a file under the name of an installed
module and puts first on ``sys.path``, names built at run time that it cannot fold into a literal
(reported as obfuscation instead), helpers deeper than ``MAX_DEPTH``, and answers that copy a
reference's source text instead of calling it. So a second layer looks at what runs: while the
tests call the answers, grading/recorder.py notes in the kernel where the student's code enters
torch, torchvision, scipy, scikit-learn, scikit-image or the library, each aten operator torch runs,
and the ways around that record; ``runtime_findings`` turns those names into findings per exercise,
in the same report. The kernel is the student's process: that record can be removed or made to say
nothing (``_grader_touched`` reports code that names ``grading``). A finding is a reason to look,
not a verdict: the instructor decides.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import nbformat  # the reader's child imports no nbformat (~0.2 s): it reads plain JSON (_Node)

MAX_DEPTH = 3  # answer -> helper -> helper's helper -> one more

_AUTOGRAD = ("torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward",
             "torch.func.grad", "torch.func.grad_and_value", "torch.func.vjp", "torch.func.jvp",
             "torch.func.jacrev", "torch.func.jacfwd", "torch.func.hessian", "torch.autograd.functional.vjp",
             "torch.autograd.functional.jvp", "torch.autograd.functional.jacobian",
             "torch.autograd.functional.hessian")
_LOGSUMEXP = ("imgrec_lib.activations.logsumexp", "scipy.special.logsumexp", "torch.logsumexp",
              "torch.special.logsumexp")
_CONV = ("imgrec_lib.conv.conv2d", "imgrec_lib.conv.conv2d_naive", "imgrec_lib.conv.im2col",
         "torch.nn.functional.conv2d", "torch.conv2d", "torch.nn.Conv2d", "torch.nn.functional.unfold",
         "torch.nn.Unfold", "scipy.signal.correlate", "scipy.signal.correlate2d", "scipy.signal.convolve",
         "scipy.signal.convolve2d", "scipy.signal.fftconvolve", "scipy.signal.oaconvolve",
         "scipy.ndimage.correlate", "scipy.ndimage.convolve", "scipy.ndimage.correlate1d", "scipy.ndimage.convolve1d",
         "scipy.ndimage._nd_image.correlate", "scipy.ndimage._nd_image.correlate1d", "scipy.signal._sigtools",
         "skimage.filters.correlate_sparse", "skimage.feature.match_template")  # the C modules run the same loops

# grade_id of the answer cell -> names that compute what the exercise asks for. A name is here only
# when using it makes the exercise pointless: lesson 08's predict uses torch.softmax and
# inference.load_image on purpose, lesson 04's cross_entropy may use activations.log_softmax, and
# lesson 07's trained_model is meant to be trained with the library's code.
REFERENCES: dict[str, tuple[str, ...]] = {
    # lesson 00: images and tensors
    "to_chw": ("torchvision.transforms.functional.to_tensor", "torchvision.transforms.ToTensor",
               "torchvision.transforms.v2.functional.to_image", "torchvision.transforms.v2.ToImage"),
    "normalize_batch": ("torchvision.transforms.functional.normalize", "torchvision.transforms.Normalize",
                        "torchvision.transforms.v2.functional.normalize", "torchvision.transforms.v2.Normalize",
                        "torch.nn.functional.batch_norm", "torch.nn.BatchNorm2d",
                        "sklearn.preprocessing.StandardScaler", "sklearn.preprocessing.scale"),
    "make_grid": ("torchvision.utils.make_grid", "skimage.util.montage"),
    # lesson 01: convolution
    "conv_output_size": ("imgrec_lib.conv.conv_output_size", "imgrec_lib.pooling.conv_output_size"),
    "conv2d_naive": _CONV,
    "conv2d": _CONV,
    # lesson 02: pooling
    "max_pool2d": ("imgrec_lib.pooling.max_pool2d", "torch.nn.functional.max_pool2d", "torch.max_pool2d",
                   "torch.nn.functional.max_pool2d_with_indices", "torch.nn.MaxPool2d",
                   "skimage.measure.block_reduce", "scipy.ndimage.maximum_filter",
                   "scipy.ndimage._nd_image.min_or_max_filter"),
    "avg_pool2d": ("imgrec_lib.pooling.avg_pool2d", "torch.nn.functional.avg_pool2d", "torch.avg_pool2d",
                   "torch.nn.AvgPool2d", "skimage.measure.block_reduce", "scipy.ndimage.uniform_filter",
                   "scipy.ndimage._nd_image.uniform_filter1d"),
    # lesson 03: dense layers and activations
    "linear": ("imgrec_lib.dense.linear", "torch.nn.functional.linear", "torch.nn.Linear"),
    "relu": ("imgrec_lib.activations.relu", "torch.relu", "torch.nn.functional.relu", "torch.nn.ReLU",
             "torch.Tensor.relu"),
    "softmax": ("imgrec_lib.activations.softmax", "imgrec_lib.losses.softmax",
                "imgrec_lib.activations.log_softmax", "imgrec_lib.losses.log_softmax",
                "torch.softmax", "torch.nn.functional.softmax", "torch.special.softmax", "torch.nn.Softmax",
                "torch.Tensor.softmax", "torch.log_softmax", "torch.nn.functional.log_softmax",
                "scipy.special.softmax", "scipy.special.log_softmax", *_LOGSUMEXP),
    # lesson 04: loss functions
    "mse": ("imgrec_lib.losses.mse", "torch.nn.functional.mse_loss", "torch.nn.MSELoss",
            "sklearn.metrics.mean_squared_error"),
    "log_softmax": ("imgrec_lib.activations.log_softmax", "imgrec_lib.losses.log_softmax",
                    "torch.log_softmax", "torch.nn.functional.log_softmax", "torch.special.log_softmax",
                    "torch.nn.LogSoftmax", "torch.Tensor.log_softmax", "scipy.special.log_softmax",
                    "numpy.logaddexp", *_LOGSUMEXP),
    "cross_entropy": ("imgrec_lib.losses.cross_entropy", "torch.nn.functional.cross_entropy",
                      "torch.nn.CrossEntropyLoss", "torch.nn.functional.nll_loss", "torch.nn.NLLLoss",
                      "sklearn.metrics.log_loss"),
    "cross_entropy_grad": ("imgrec_lib.losses.cross_entropy_backward", *_AUTOGRAD),
    # lesson 05: backpropagation
    "numeric_gradient": ("imgrec_lib.gradcheck.numeric_gradient", "scipy.optimize.approx_fprime",
                         "scipy.differentiate.jacobian", "torch.autograd.gradcheck.get_numerical_jacobian"),
    "linear_backward": ("imgrec_lib.dense.linear_backward", *_AUTOGRAD),
    "relu_backward": ("imgrec_lib.activations.relu_backward", "imgrec_lib.activations.leaky_relu_backward",
                      "torch.ops.aten.threshold_backward", *_AUTOGRAD),
    "max_pool2d_backward": ("imgrec_lib.pooling.max_pool2d_backward", "torch.nn.functional.max_unpool2d",
                            "torch.nn.MaxUnpool2d", *_AUTOGRAD),
    "conv2d_backward": ("imgrec_lib.conv.conv2d_backward", "imgrec_lib.conv.col2im", "torch.nn.grad.conv2d_input",
                        "torch.nn.grad.conv2d_weight", "torch.nn.functional.conv_transpose2d",
                        "torch.conv_transpose2d", "torch.nn.ConvTranspose2d", "torch.nn.functional.fold",
                        "torch.nn.Fold", *_AUTOGRAD),
    # lesson 06: optimization
    "sgd_momentum_step": ("imgrec_lib.optim.sgd_momentum_step", "torch.optim.SGD", "torch.optim.sgd.sgd",
                          "torch.optim._functional.sgd"),
    "adam_step": ("imgrec_lib.optim.adam_step", "torch.optim.Adam", "torch.optim.AdamW", "torch.optim.adam.adam",
                  "torch.optim._functional.adam"),
    # lesson 07: training a CNN (torch itself is the point here; only a ready-made network or loop voids it)
    "my_cnn": ("imgrec_lib.models.CourseCNN", "imgrec_lib.models.LeNet5", "imgrec_lib.models.build_model",
               "imgrec_lib.models.MODELS", "imgrec_lib.checkpoint.load_model"),
    "train_step": ("imgrec_lib.training.fit",),
    "trained_model": (),
    # lesson 08: inference and evaluation
    "predict": ("imgrec_lib.inference.predict_files", "imgrec_lib.inference.predict_tensor",
                "imgrec_lib.inference._predict_batch", "imgrec_lib.training.predict_batches"),
    "confusion_matrix": ("imgrec_lib.plots.confusion_matrix", "sklearn.metrics.confusion_matrix",
                         "torchmetrics.functional.confusion_matrix", "torchmetrics.ConfusionMatrix",
                         "pandas.crosstab"),
    # lesson 09: modern CNN blocks (the NumPy layers against their library copies and torch's; the
    # residual block may use nn.Conv2d and nn.BatchNorm2d, only a ready-made block voids it)
    "batchnorm_forward": ("imgrec_lib.normalization.batchnorm_forward", "torch.nn.functional.batch_norm",
                          "torch.batch_norm", "torch.nn.BatchNorm2d", "torch.nn.BatchNorm1d"),
    "batchnorm_backward": ("imgrec_lib.normalization.batchnorm_backward", "torch.nn.functional.batch_norm",
                           "torch.batch_norm", "torch.nn.BatchNorm2d", "torch.nn.BatchNorm1d", *_AUTOGRAD),
    "dropout_forward": ("imgrec_lib.normalization.dropout_forward", "torch.nn.functional.dropout",
                        "torch.dropout", "torch.nn.Dropout"),
    "dropout_backward": ("imgrec_lib.normalization.dropout_backward", "torch.nn.functional.dropout",
                         "torch.dropout", "torch.nn.Dropout", *_AUTOGRAD),
    "residual_block": ("imgrec_lib.models.ResidualBlock", "imgrec_lib.models.SmallResNet",
                       "torchvision.models.resnet.BasicBlock", "torchvision.models.resnet.Bottleneck",
                       # the modules whole: resnet18() is made of BasicBlocks
                       "torchvision.models.resnet", "torchvision.models.quantization.resnet",
                       "torchvision.models.video.resnet"),
}

# Packages whose functions are matched by their last name too (torch.nn.modules.conv.Conv2d is
# torch.nn.Conv2d): a name under one of these with the last component of a reference counts.
_SAME_NAME_PACKAGES = {"imgrec_lib", "torch", "torchvision", "scipy", "sklearn", "skimage", "torchmetrics"}

# Callables that hide what they call: name -> what the reason says.
_OBFUSCATION = {
    "builtins.__import__": "__import__", "importlib.__import__": "importlib.__import__",
    "importlib.import_module": "importlib.import_module", "builtins.eval": "eval", "builtins.exec": "exec",
    "builtins.compile": "compile", "builtins.globals": "globals()", "builtins.vars": "vars()",
    "builtins.locals": "locals()", "operator.attrgetter": "operator.attrgetter",
    "operator.methodcaller": "operator.methodcaller", "runpy.run_path": "runpy.run_path",
    "runpy.run_module": "runpy.run_module", "importlib.util.spec_from_file_location": "importlib.util",
    "importlib.util.module_from_spec": "importlib.util", "pickle.loads": "pickle.loads",
    "marshal.loads": "marshal.loads", "types.FunctionType": "types.FunctionType",
    "importlib.reload": "importlib.reload", "importlib.machinery.SourceFileLoader": "importlib.machinery",
    "importlib.machinery.SourcelessFileLoader": "importlib.machinery", "zipimport.zipimporter": "zipimport",
}
# Callables that look a name up at run time: getattr's kind (object, name), and a dotted name in a string.
_GETATTR_LIKE = {"builtins.getattr", "inspect.getattr_static", "builtins.object.__getattribute__",
                 "builtins.type.__getattribute__"}
_LOOKUPS = {"inspect.getattr_static": "inspect.getattr_static", "inspect.getmembers": "inspect.getmembers",
            "inspect.getmembers_static": "inspect.getmembers_static", "pkgutil.resolve_name": "pkgutil.resolve_name",
            "operator.itemgetter": "operator.itemgetter", "torch.hub.load": "torch.hub.load",
            "torchvision.models.get_model": "torchvision.models.get_model",
            "torchvision.models.get_model_builder": "torchvision.models.get_model_builder"}
# Code that can make a module importable at run time (so that an import of a module that is not
# installed may work): calls by name, and methods by their name on any object.
_MODULE_MAKERS = {"builtins.open", "io.open", "os.open", "os.system", "os.popen", "os.rename", "os.replace",
                  "os.symlink", "os.link", "os.write", "site.addsitedir", "types.ModuleType",
                  "importlib.util.module_from_spec", "urllib.request.urlretrieve"}
_MODULE_MAKER_PACKAGES = ("shutil.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "importlib.")
_MODULE_MAKER_METHODS = {"write_text", "write_bytes", "symlink_to", "hardlink_to", "extractall", "extract",
                         "unpack_archive", "system", "getoutput"}
# Where a ready-made network comes from: the class of one of its parts (``type(resnet18().layer1[0])``) is
# somebody else's code.
_MODEL_PACKAGES = ("torchvision.", "imgrec_lib.", "torch.nn.", "torch.hub.", "timm.")
_MODULE_MAKER_MAGICS = {"writefile", "file", "bash", "sh", "script", "system", "sx", "pip", "conda", "run", "load"}
_SYS_PATH_CHANGES = {"insert", "append", "extend", "__setitem__", "__iadd__"}
_DUNDER_ATTRIBUTES = {"__dict__", "__globals__", "__builtins__", "__getattribute__", "__code__", "__subclasses__",
                      "__loader__", "__closure__"}
_IPYTHON_RUNNERS = {"run_cell", "ex", "ev", "safe_execfile", "safe_run_module", "run_code"}
_HARMLESS_MAGICS = {"matplotlib", "config", "load_ext", "autoreload", "aimport", "precision", "pdb", "xmode",
                    "who", "whos"}
_TIMING_MAGICS = {"time", "timeit", "capture", "prun"}  # their code runs as written: analysed inline


# ----------------------------------------------------------------------------- canonical names


def _library_aliases() -> dict[str, str]:
    """``imgrec_lib.M.name`` -> where it comes from, read from the library's own imports (no import)."""
    spec = importlib.util.find_spec("imgrec_lib")
    folder = (Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations
              else Path(__file__).resolve().parent.parent / "imgrec_lib")
    aliases: dict[str, str] = {}
    for path in sorted(folder.glob("*.py")):
        module = f"imgrec_lib.{path.stem}"
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            continue
        for stmt in tree.body:
            if isinstance(stmt, ast.Import):
                for a in stmt.names:
                    if a.asname:
                        aliases[f"{module}.{a.asname}"] = a.name
            elif isinstance(stmt, ast.ImportFrom):
                base = stmt.module or ""
                if stmt.level:
                    base = ".".join(["imgrec_lib", *([base] if base else [])])
                for a in stmt.names:
                    if a.name != "*":
                        aliases[f"{module}.{a.asname or a.name}"] = f"{base}.{a.name}"
    return aliases


def _star_exports(package: str) -> dict[str, str]:
    """``package.name`` -> ``package.module.name`` for what an installed package's ``__init__.py``
    re-exports from its modules (``from .resnet import *`` with the module's ``__all__``, ``from ._api
    import get_model``), read without importing: torchvision.models.resnet18 is
    torchvision.models.resnet.resnet18."""
    try:
        spec = importlib.util.find_spec(package.split(".")[0])
    except (ImportError, ValueError):
        return {}
    if not spec or not spec.submodule_search_locations:
        return {}
    folder = Path(next(iter(spec.submodule_search_locations)), *package.split(".")[1:])

    def read(path: Path) -> ast.Module | None:
        try:
            return ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            return None

    aliases: dict[str, str] = {}
    for stmt in getattr(read(folder / "__init__.py"), "body", []):
        if not (isinstance(stmt, ast.ImportFrom) and stmt.level == 1 and stmt.module):
            continue
        for a in stmt.names:
            if a.name != "*":
                aliases[f"{package}.{a.asname or a.name}"] = f"{package}.{stmt.module}.{a.name}"
                continue
            for inner in getattr(read(folder / f"{stmt.module}.py"), "body", []):
                if (isinstance(inner, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in inner.targets)
                        and isinstance(inner.value, (ast.List, ast.Tuple))):
                    for element in inner.value.elts:
                        if isinstance(element, ast.Constant) and isinstance(element.value, str):
                            aliases[f"{package}.{element.value}"] = f"{package}.{stmt.module}.{element.value}"
    return aliases


_ALIASES: dict[str, str] | None = None


def _aliases() -> dict[str, str]:
    """Every re-export ``canonical`` follows. Reading them parses some 60 files (~0.25 s): done once in
    the grader, which hands them to each reader child (``find_reference_copies``)."""
    global _ALIASES
    if _ALIASES is None:
        from grading import PARSING  # the workers' threads parse in turns (grading/__init__.py says why)

        with PARSING:
            if _ALIASES is None:
                _ALIASES = {**{alias: name for package in ("torchvision.models", "torchvision.models.quantization",
                                                           "torchvision.models.video", "torchvision.models.segmentation",
                                                           "torchvision.models.detection")
                               for alias, name in _star_exports(package).items()},
                            **_library_aliases()}
    return _ALIASES


def canonical(name: str) -> str:
    """A dotted name with the library's re-exports followed: imgrec_lib.losses.softmax -> imgrec_lib.activations.softmax."""
    aliases = _aliases()
    for _ in range(10):
        parts = name.split(".")
        for i in range(len(parts), 1, -1):
            target = aliases.get(".".join(parts[:i]))
            if target is not None:
                name = ".".join([target, *parts[i:]])
                break
        else:
            return name
    return name


@functools.cache
def _installed(module: str) -> bool:
    """Whether the top-level package of a dotted module name can be imported where grading runs (a
    module the notebook wrote to a file at run time cannot)."""
    top = module.split(".")[0]
    if not top or top in sys.builtin_module_names or top == "builtins":
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return True  # a module it cannot look up without importing: no finding


def _known_installed(names: set[str]) -> bool:
    """Each of `names` is an attribute path in an installed package that is not the course's
    (``numpy.maximum``): getattr with a literal name that folds to one hides nothing."""
    return bool(names) and all("." in n and not n.startswith("imgrec_lib") and _installed(n.split(".")[0])
                               for n in names)


def _matches(name: str, reference: str) -> bool:
    name, reference = canonical(name), canonical(reference)
    if name == reference or name.startswith(reference + "."):
        return True
    top, ref_top = name.split(".")[0], reference.split(".")[0]
    return (top == ref_top and top in _SAME_NAME_PACKAGES and "." in name
            and name.rsplit(".", 1)[1] == reference.rsplit(".", 1)[1])


# ----------------------------------------------------------------------------- notebook model


@dataclass
class _Cell:
    index: int  # 0-based position in the notebook
    tree: ast.Module
    release: bool  # identical to a cell of the release: context only
    answer_of: str | None  # the grade_id when this is an answer cell
    number: int = 0  # 1-based among the notebook's code cells: markdown cells are not counted
    puts: list | None = None  # how the cell stores into objects, read once (_puts)

    def where(self) -> str:
        """For "(answer cell, line 3)", "(code cell 12, line 3)"."""
        return "answer cell" if self.answer_of else f"code cell {self.number}"

    def phrase(self) -> str:
        """For "defined in the answer cell"."""
        return "the answer cell" if self.answer_of else f"code cell {self.number}"


@dataclass
class _Binding:
    kind: str  # "name" (a dotted name), "expr", "holds" (an expression stored inside it), "def", "unknown"
    cell: _Cell | None = None
    node: ast.AST | None = None
    dotted: str = ""  # of "name": what it names; of "holds": where in it the expression is (``linalg.xx``)


@dataclass
class _Env:
    names: dict[str, list[_Binding]] = field(default_factory=dict)
    star: list[str] = field(default_factory=list)

    def bind(self, name: str, binding: _Binding, replace: bool) -> None:
        if replace:
            self.names[name] = [binding]
        else:
            self.names.setdefault(name, []).append(binding)


def _const_str(node: ast.AST | None) -> str | None:
    """A string the code spells out, also as "a" + "b" or f"{'a'}b"; None when it is computed."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id == "__name__":  # a notebook's own module: sys.modules[__name__]
        return "__main__"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _const_str(node.left)
        right = None if left is None else _const_str(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = [_const_str(v.value if isinstance(v, ast.FormattedValue) else v) for v in node.values]
        return None if None in parts else "".join(parts)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join"
            and len(node.args) == 1 and isinstance(node.args[0], (ast.List, ast.Tuple))):  # "".join(["conv", "2d"])
        glue, parts = _const_str(node.func.value), [_const_str(e) for e in node.args[0].elts]
        return None if glue is None or None in parts else glue.join(parts)
    return None


@functools.lru_cache(maxsize=4096)
def _transform(source: str) -> str:
    """IPython syntax (magics, ``!cmd``, ``x?``) as the Python that IPython runs."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _parse(source: str) -> ast.Module | None:
    try:
        tree = ast.parse(_transform(source))
    except (SyntaxError, ValueError):
        return None
    body = []
    for stmt in tree.body:  # %time / %%timeit code runs as written: splice it in
        body.append(stmt)
        magic = _magic_call(stmt)
        if magic and magic[0] in _TIMING_MAGICS and magic[1] is not None:
            code = magic[1]
            while code.lstrip().startswith("-"):  # %timeit -n 10 -r 3 code
                code = code.lstrip().split(None, 2)[-1] if len(code.split()) > 2 else ""
            try:
                inner = ast.parse(code)
            except SyntaxError:
                continue
            for node in ast.walk(inner):
                if hasattr(node, "lineno"):
                    node.lineno = stmt.lineno
            body.extend(inner.body)
    tree.body = body
    return tree


def _magic_call(stmt: ast.AST) -> tuple[str, str | None] | None:
    """(magic name, its code) for ``get_ipython().run_line_magic/run_cell_magic(...)``, else None."""
    call = stmt.value if isinstance(stmt, ast.Expr) else getattr(stmt, "value", None)
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and call.func.attr in ("run_line_magic", "run_cell_magic") and call.args):
        return None
    name = _const_str(call.args[0])
    if name is None:
        return ("?", None)
    index = 1 if call.func.attr == "run_line_magic" else 2
    code = _const_str(call.args[index]) if len(call.args) > index else None
    return (name, code)


# ----------------------------------------------------------------------------- binding names


def _bind_target(target: ast.AST, value: ast.AST | None, env: _Env, cell: _Cell | None, replace: bool) -> None:
    if isinstance(target, ast.Name):
        env.bind(target.id, _Binding("expr", cell, value) if value is not None else _Binding("unknown", cell), replace)
    elif isinstance(target, (ast.Tuple, ast.List)):
        values = value.elts if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts) else None
        for i, t in enumerate(target.elts):
            _bind_target(t, values[i] if values else None, env, cell, replace)
    elif isinstance(target, ast.Starred):
        _bind_target(target.value, None, env, cell, replace)
    elif isinstance(target, ast.Subscript) and _is_own_namespace(target.value):  # globals()["conv2d"] = F.conv2d
        key = _const_str(target.slice)
        if key:
            env.bind(key, _Binding("expr", cell, value) if value is not None else _Binding("unknown", cell), replace)
    elif isinstance(target, (ast.Attribute, ast.Subscript)) and value is not None:
        _bind_put(target, value, env, cell)  # table["k"] = helper, np.linalg.xx = helper, a.b.c = helper
        if isinstance(target, ast.Attribute) and {canonical(n) for n in _resolve(target.value, _Scope(_Env(), env))} & {
                "builtins", "__main__"}:
            env.bind(target.attr, _Binding("expr", cell, value), False)  # builtins.xx = helper: a bare xx is helper


def _is_own_namespace(node: ast.AST) -> bool:
    """``globals()``, ``locals()``, ``vars()``: the notebook's own names."""
    return (isinstance(node, ast.Call) and not node.args and isinstance(node.func, ast.Name)
            and node.func.id in ("globals", "locals", "vars"))


def _root_name(node: ast.AST) -> str | None:
    """The name under an attribute or item chain: ``np`` of ``np.linalg.xx``, ``vars(np)["xx"]`` or
    ``np.__dict__``, ``table`` of ``table["k"][0]``; None when there is no name there."""
    for _ in range(50):
        if isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
            node = node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args
              and node.func.id in ("vars", "getattr")):
            node = node.args[0]
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None
    return None


def _attr_path(node: ast.AST) -> str:
    """The attributes between the name under a chain and the chain's end: ``linalg.xx`` of
    ``np.linalg.xx`` and of ``vars(np.linalg)["xx"]``; those before the last item taken (``b`` of
    ``a.b[0].c``), for what follows an item is not an attribute of the name's."""
    parts: list[str] = []
    for _ in range(50):
        if isinstance(node, ast.Attribute):
            if node.attr != "__dict__":
                parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript):
            key = _const_str(node.slice)
            namespace = (isinstance(node.value, ast.Attribute) and node.value.attr == "__dict__"
                         or isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                         and node.value.func.id == "vars")
            parts = parts + [key] if key and namespace else []
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args and node.func.id in (
                "vars", "getattr"):
            name = _const_str(node.args[1]) if node.func.id == "getattr" and len(node.args) > 1 else ""
            parts = parts + [name] if name is not None else []
            parts = [p for p in parts if p]
            node = node.args[0]
        else:
            break
    return ".".join(reversed(parts))


def _same_place(stored: str, used: str) -> bool:
    """Whether a use of ``name.<used>`` may reach what was stored at ``name.<stored>``: one path starts
    the other (``np.linalg`` and ``np.linalg.xx``; an empty path is the whole object)."""
    a, b = stored.split(".") if stored else [], used.split(".") if used else []
    return a[:len(b)] == b[:len(a)]


def _bind_put(container: ast.AST, value: ast.AST, env: _Env, cell: _Cell | None, name: str | None = "") -> None:
    """``value`` was stored somewhere inside ``container`` (at attribute ``name`` of it, when given):
    the name under the container may stand for the value there from then on (``np.xx = helper`` makes
    ``np.xx(...)`` a call of helper, not ``np.zeros``). Not a replacement: the name keeps what it was."""
    root = _root_name(container)
    if root is not None:
        path = ".".join(p for p in (_attr_path(container), name or "") if p)
        env.bind(root, _Binding("holds", cell, value, path), False)
        for b in env.names.get(root, []):  # a module is one object under every name: import numpy as xp
            if b.kind == "name" and path:
                env.bind(_module_store(b.dotted), _Binding("holds", cell, value, path), False)


def _module_store(module: str) -> str:
    """The name under which the environment keeps what code stored into a module (not a valid identifier)."""
    return f"<stored in {module}>"


def _stored(names: set[str], scope: _Scope) -> list[_Binding]:
    """What code stored into a module at the place a dotted name points to: ``xp.linalg.xx`` and
    ``from numpy.linalg import xx`` reach what ``np.linalg.xx = helper`` stored."""
    found = []
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts)):
            for b in scope.glob.names.get(_module_store(".".join(parts[:i])), []):
                if _same_place(b.dotted, ".".join(parts[i:])):
                    found.append(b)
    return found


# A container's methods that put an object in it: ``tools.append(helper)`` makes ``tools[0]`` the helper.
_PUTS = {"append", "extend", "insert", "add", "update", "setdefault", "__setitem__", "appendleft"}


def _put_by_call(call: ast.Call) -> tuple[ast.AST, ast.AST] | None:
    """(container, value) for a call that stores an object in another: ``setattr(np, "xx", helper)``,
    ``object.__setattr__(np, "xx", helper)``, ``np.__setattr__("xx", helper)``, ``tools.append(helper)``,
    ``vars(np).update(xx=helper)``; None for any other call."""
    func, args = call.func, [*call.args, *(k.value for k in call.keywords)]
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if name in ("setattr", "setitem") and len(call.args) >= 3:  # and operator.setitem(table, "k", helper)
        return call.args[0], call.args[2]
    if (name in _PUTS and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            and func.value.id in ("dict", "list", "set", "object") and len(call.args) >= 2):
        return call.args[0], call.args[-1]  # dict.__setitem__(table, "k", helper)
    if name == "__setattr__" and isinstance(func, ast.Attribute):
        if len(call.args) >= 3:  # object.__setattr__(np, "xx", helper)
            return call.args[0], call.args[2]
        if len(call.args) == 2:  # np.__setattr__("xx", helper)
            return func.value, call.args[1]
    if name in _PUTS and isinstance(func, ast.Attribute) and args:
        return func.value, args[-1]
    return None


def _exec_literal(node: ast.AST) -> ast.Module | None:
    """The code of ``exec("np.xx = helper")`` (or ``eval``, ``get_ipython().run_cell("...")``) when it is a
    literal string, its lines numbered as the call's; None for any other node."""
    if not (isinstance(node, ast.Call) and node.args and (
            isinstance(node.func, ast.Name) and node.func.id in ("exec", "eval")
            or isinstance(node.func, ast.Attribute) and node.func.attr == "run_cell"
            and _is_get_ipython(node.func.value))):
        return None
    code = _const_str(node.args[0])
    try:
        tree = ast.parse(_transform(code)) if code else None
    except (SyntaxError, ValueError):
        return None
    for sub in ast.walk(tree) if tree else ():
        if hasattr(sub, "lineno"):
            sub.lineno = node.lineno
    return tree


def _puts(node: ast.AST, cell: _Cell | None, local: frozenset | None = None) -> list[Callable[[_Env], None]]:
    """What code anywhere in a cell stores into an object that lives outside the function doing it
    (``setattr(np, "xx", helper)``; ``np.linalg.xx = helper`` inside ``def install()``; a loop of
    ``tools.append``), as steps that bind it in an environment, so that a use of that object reaches
    the value. ``local``: the names of the function around ``node`` (None at a cell's top level, where
    ``_bind_statements`` binds assignments). Read once per cell: the steps are replayed per exercise."""
    steps: list[Callable[[_Env], None]] = []
    for child in ast.iter_child_nodes(node):
        inner = local
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inner = (local or frozenset()) | _local_names(child)
        put = None
        inner_code = _exec_literal(child)
        if inner_code is not None:  # exec("np.xx = helper"): bound as if the cell said it
            if local is None:
                steps.append(lambda env, body=inner_code.body: _bind_statements(body, env, cell, False))
            steps += _puts(inner_code, cell, local)
        if isinstance(child, ast.Call):
            put = _put_by_call(child)
            key = _const_str(child.args[1]) if put and len(child.args) == 3 else None
            if key:  # setattr(builtins, "xx", helper): a bare xx
                steps.append(lambda env, key=key, put=put: env.bind(key, _Binding("expr", cell, put[1]), False) if {
                    canonical(n) for n in _resolve(put[0], _Scope(_Env(), env))} & {"builtins", "__main__"} else None)
            if put and _is_own_namespace(put[0]) and isinstance(child.func, ast.Attribute):
                for k in child.keywords:  # globals().update(conv2d=F.conv2d)
                    if k.arg:
                        steps.append(lambda env, k=k: env.bind(k.arg, _Binding("expr", cell, k.value), False))
                key = _const_str(child.args[0]) if len(child.args) == 2 else None
                if key:  # globals().__setitem__("conv2d", F.conv2d), globals().setdefault(...)
                    steps.append(lambda env, key=key, v=child.args[1]: env.bind(key, _Binding("expr", cell, v), False))
                put = None
        elif local is not None and isinstance(child, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and child.value:
            for target in child.targets if isinstance(child, ast.Assign) else [child.target]:
                for t in ast.walk(target):
                    if isinstance(t, (ast.Attribute, ast.Subscript)) and isinstance(t.ctx, ast.Store) \
                            and _root_name(t) not in local:
                        steps.append(lambda env, t=t, v=child.value: _bind_put(t, v, env, cell))
        if put and _root_name(put[0]) not in (local or ()):
            is_setattr = isinstance(child.func, ast.Name) and child.func.id == "setattr" or getattr(
                child.func, "attr", "") == "__setattr__"
            name = _const_str(child.args[-2]) if is_setattr and len(child.args) >= 2 else None
            steps.append(lambda env, put=put, name=name: _bind_put(put[0], put[1], env, cell, name))
        if isinstance(child, ast.Call) and isinstance(child.func, ast.Name) and any(
                isinstance(a, ast.Name) and a.id not in (local or ()) for a in child.args):
            steps.append(lambda env, call=child: _bind_passed(call, env, cell))  # install(np)
        steps += _puts(child, cell, inner)
    return steps


@functools.lru_cache(maxsize=4096)
def _stores(function: ast.AST) -> list[tuple[ast.AST, ast.AST, str | None]]:
    """(container, value, attribute name or None) for each store into an object in a function's code."""
    stores: list[tuple[ast.AST, ast.AST, str | None]] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and (put := _put_by_call(node)):
            setattr_like = len(node.args) >= 2 and (getattr(node.func, "id", "") == "setattr"
                                                     or getattr(node.func, "attr", "") == "__setattr__")
            stores.append((put[0], put[1], _const_str(node.args[-2]) if setattr_like else None))
        elif isinstance(node, ast.Assign):
            stores += [(t, node.value, None) for t in node.targets if isinstance(t, (ast.Attribute, ast.Subscript))]
    return stores


def _bind_passed(call: ast.Call, env: _Env, cell: _Cell | None) -> None:
    """``install(np)`` where the notebook's ``def install(m)`` stores into ``m`` (``setattr(m, "xx",
    helper)``, ``m.linalg.xx = helper``): ``np`` holds what it stored."""
    for b in env.names.get(call.func.id, []):
        if b.kind != "def" or not isinstance(b.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        params = [a.arg for a in (*b.node.args.posonlyargs, *b.node.args.args)]
        for container, value, name in _stores(b.node):
            root = _root_name(container)
            if root not in params or params.index(root) >= len(call.args):
                continue
            arg = call.args[params.index(root)]
            if isinstance(value, ast.Name) and value.id in params and params.index(value.id) < len(call.args):
                value = call.args[params.index(value.id)]  # install(np, helper): the value came in too
            if isinstance(arg, ast.Name):
                path = ".".join(p for p in (_attr_path(container), name or "") if p)
                _bind_put(ast.Attribute(value=arg, attr=path, ctx=ast.Store()) if path else arg, value, env, cell)


def _local_names(function: ast.AST) -> frozenset:
    """The names a function binds for itself (its parameters, what it assigns, imports or defines, not
    what it declares global); a name only stored into (``np.xx = ...``) is not one."""
    names, declared = set(), set()
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) or isinstance(node, ast.arg):
            names.add(node.id if isinstance(node, ast.Name) else node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not function:
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
    return frozenset(names - declared)


def _bind_cell(cell: _Cell, env: _Env, replace: bool) -> None:
    """Bind the names a cell defines, and what it stores into objects (``_puts``)."""
    _bind_statements(cell.tree.body, env, cell, replace)
    if cell.puts is None:
        cell.puts = _puts(cell.tree, cell)
    for step in cell.puts:
        step(env)


def _bind_statements(stmts: list[ast.stmt], env: _Env, cell: _Cell | None, replace: bool) -> None:
    """Bind the names a block of statements defines; ``replace`` is False inside if/for/try (maybe run)."""
    for stmt in stmts:
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                name = a.asname or a.name.split(".")[0]
                env.bind(name, _Binding("name", cell, stmt, a.name if a.asname else name), replace)
        elif isinstance(stmt, ast.ImportFrom):
            for a in stmt.names:
                if stmt.level or not stmt.module:
                    if a.name != "*":
                        env.bind(a.asname or a.name, _Binding("unknown", cell), replace)
                elif a.name == "*":
                    env.star.append(stmt.module)
                else:
                    env.bind(a.asname or a.name, _Binding("name", cell, stmt, f"{stmt.module}.{a.name}"), replace)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            env.bind(stmt.name, _Binding("def", cell, stmt), replace)
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                _bind_target(target, stmt.value, env, cell, replace)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            _bind_target(stmt.target, stmt.value, env, cell, replace)
        elif isinstance(stmt, ast.AugAssign):
            _bind_target(stmt.target, stmt.value, env, cell, False)
        elif isinstance(stmt, ast.Delete) and replace:
            for t in stmt.targets:
                if isinstance(t, ast.Name):
                    env.names.pop(t.id, None)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):  # each name may be any element of what is looped over
            for name in ast.walk(stmt.target):
                if isinstance(name, ast.Name):
                    env.bind(name.id, _Binding("holds", cell, stmt.iter), False)
            _bind_statements(stmt.body + stmt.orelse, env, cell, False)
        elif isinstance(stmt, (ast.While, ast.If)):
            _bind_statements(stmt.body + stmt.orelse, env, cell, False)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                if item.optional_vars is not None:
                    _bind_target(item.optional_vars, None, env, cell, False)
            _bind_statements(stmt.body, env, cell, False)
        elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            blocks = stmt.body + stmt.orelse + stmt.finalbody
            for handler in stmt.handlers:
                blocks += handler.body
            _bind_statements(blocks, env, cell, False)
        for node in ast.walk(stmt):  # (y := F.conv2d) anywhere
            if isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
                env.bind(node.target.id, _Binding("expr", cell, node.value), False)


def _local_env(code: ast.AST, cell: _Cell | None) -> _Env:
    """The names a function (or lambda, or statement) binds for itself, flow-insensitively."""
    env = _Env()
    body = code.body if isinstance(code, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else []
    if isinstance(body, list):
        _bind_statements(body, env, cell, False)
    declared_global: set[str] = set()
    for node in ast.walk(code):
        if node is code:
            continue
        if isinstance(node, ast.arg):
            env.bind(node.arg, _Binding("unknown", cell), False)
        elif isinstance(node, ast.comprehension):
            _bind_target(node.target, None, env, cell, False)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            env.bind(node.name, _Binding("unknown", cell), False)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared_global.update(node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            _bind_statements(node.body, env, cell, False)
            env.bind(node.name, _Binding("def", cell, node), False)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id not in env.names:
            env.bind(node.id, _Binding("unknown", cell), False)
    if isinstance(code, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        for a in (*code.args.posonlyargs, *code.args.args, *code.args.kwonlyargs,
                  *(x for x in (code.args.vararg, code.args.kwarg) if x)):
            env.bind(a.arg, _Binding("unknown", cell), False)
    for name in declared_global:
        env.names.pop(name, None)
    return env


# ----------------------------------------------------------------------------- resolving names


@dataclass
class _Scope:
    local: _Env
    glob: _Env

    def lookup(self, name: str) -> list[_Binding] | None:
        if name in self.local.names:
            return self.local.names[name]
        return self.glob.names.get(name)


def _resolve(node: ast.AST, scope: _Scope, depth: int = 0) -> set[str]:
    """The dotted names an expression may stand for (empty when not a known module or function)."""
    if depth > 12:
        return set()
    if isinstance(node, ast.Name):
        if node.id == "__builtins__":
            return {"builtins"}
        bindings = scope.lookup(node.id)
        if bindings is None:
            if hasattr(builtins, node.id):
                return {f"builtins.{node.id}"}
            return {f"{m}.{node.id}" for m in scope.local.star + scope.glob.star}
        out: set[str] = set()
        for b in bindings:
            if b.kind == "name":
                out.add(b.dotted)
            elif b.kind == "expr" and b.node is not None:
                own = scope if node.id in scope.local.names else _Scope(_Env(), scope.glob)
                out |= _resolve(b.node, own, depth + 1)
        return out
    if isinstance(node, ast.Attribute):
        return _attribute(_resolve(node.value, scope, depth + 1), node.attr, scope, depth) | _held(node, scope, depth)
    if isinstance(node, ast.Call):
        funcs = {canonical(f) for f in _resolve(node.func, scope, depth + 1)}
        first = _const_str(node.args[0]) if node.args else None
        if funcs & {"builtins.__import__", "importlib.__import__"} and first:
            fromlist = node.args[3] if len(node.args) > 3 else next(
                (k.value for k in node.keywords if k.arg == "fromlist"), None)
            has_fromlist = isinstance(fromlist, (ast.List, ast.Tuple)) and fromlist.elts
            return {first if has_fromlist else first.split(".")[0]}
        if "importlib.import_module" in funcs and first:
            return {first}
        if "functools.reduce" in funcs and len(node.args) == 3 and isinstance(node.args[1], (ast.List, ast.Tuple)) and {
                canonical(f) for f in _resolve(node.args[0], scope, depth + 1)} & _GETATTR_LIKE:
            parts = [_const_str(e) for e in node.args[1].elts]  # functools.reduce(getattr, ["nn", "functional"], torch)
            if parts and None not in parts:
                return _attribute(_resolve(node.args[2], scope, depth + 1), ".".join(parts), scope, depth)
        if "pkgutil.resolve_name" in funcs and first:  # "imgrec_lib.conv:conv2d" or "imgrec_lib.conv.conv2d"
            return {first.replace(":", ".")}
        if funcs & _GETATTR_LIKE and len(node.args) >= 2:  # getattr(m, "conv2d"), inspect.getattr_static(...)
            attr = _const_str(node.args[1])
            if attr:
                return _attribute(_resolve(node.args[0], scope, depth + 1), attr, scope, depth)
        if funcs & {"builtins.vars", "inspect.getmembers", "inspect.getmembers_static", "builtins.dict"} and node.args:
            # vars(m), dict(inspect.getmembers(m)): the module's namespace
            return {b if b.endswith(".__dict__") else f"{b}.__dict__"
                    for b in _resolve(node.args[0], scope, depth + 1)
                    if b.endswith(".__dict__") or "builtins.dict" not in funcs}
        if isinstance(node.func, ast.Call) and node.args and node.func.args:
            # operator.attrgetter("conv2d")(m), methodcaller("conv2d", x)(m), itemgetter("conv2d")(vars(m))
            maker = {canonical(f) for f in _resolve(node.func.func, scope, depth + 1)}
            names = [_const_str(a) for a in node.func.args[:1 if "operator.methodcaller" in maker else None]]
            if maker & {"operator.attrgetter", "operator.methodcaller", "operator.itemgetter"} and None not in names:
                bases = _resolve(node.args[0], scope, depth + 1)
                if "operator.itemgetter" in maker:
                    return set().union(*(_namespace_lookup(node.args[0], bases, name, scope, depth) for name in names))
                return set().union(*(_attribute(bases, name, scope, depth) for name in names))
        if isinstance(node.func, ast.Attribute) and first:
            if node.func.attr in ("get", "__getitem__", "pop", "setdefault"):  # vars(m).get("conv2d")
                return _namespace_lookup(node.func.value, _resolve(node.func.value, scope, depth + 1), first, scope, depth)
            if node.func.attr in ("__getattribute__", "__getattr__"):  # conv.__getattribute__("conv2d")
                return _attribute(_resolve(node.func.value, scope, depth + 1), first, scope, depth)
        return set()
    if isinstance(node, ast.Subscript):
        key = _const_str(node.slice)
        if key is None:
            return _held(node, scope, depth)
        return _namespace_lookup(node.value, _resolve(node.value, scope, depth + 1), key, scope, depth) | _held(
            node, scope, depth)
    if isinstance(node, ast.IfExp):
        return _resolve(node.body, scope, depth + 1) | _resolve(node.orelse, scope, depth + 1)
    if isinstance(node, ast.BoolOp):
        return set().union(*(_resolve(v, scope, depth + 1) for v in node.values))
    if isinstance(node, ast.NamedExpr):
        return _resolve(node.value, scope, depth + 1)
    return set()


def _held(node: ast.AST, scope: _Scope, depth: int) -> set[str]:
    """What a part of an object may stand for, through what code stored in that object (``np.xx`` after
    ``np.xx = F.conv2d``, ``tools[0]`` after ``tools.append(F.conv2d)``)."""
    root, used = _root_name(node), _attr_path(node)
    bindings = scope.lookup(root) if root else None
    own = scope if root in scope.local.names else _Scope(_Env(), scope.glob)
    out = set().union(*(_resolve(b.node, own, depth + 1) for b in bindings or []
                        if b.kind == "holds" and _same_place(b.dotted, used)))
    if isinstance(node, ast.Attribute):  # stored into a module, reached under another of its names
        dotted = _attribute(_resolve(node.value, scope, depth + 1), node.attr, scope, depth)
        top = _Scope(_Env(), scope.glob)
        out |= set().union(*(_resolve(b.node, top, depth + 1) for b in _stored(dotted, scope)))
    return out


def _attribute(bases: set[str], name: str, scope: _Scope, depth: int) -> set[str]:
    """``base.name`` for each base (``name`` may be dotted); on ``__main__``, the notebook's own module
    (``sys.modules["__main__"].conv``), the first part is a name of the notebook's."""
    out = {f"{base}.{name}" for base in bases if base != "__main__"}
    if "__main__" in bases:
        first, _, rest = name.partition(".")
        own = _resolve(ast.Name(id=first, ctx=ast.Load()), _Scope(_Env(), scope.glob), depth + 1)
        out |= {f"{o}.{rest}" if rest else o for o in own}
    return out


def _namespace_lookup(container: ast.AST, bases: set[str], key: str, scope: _Scope, depth: int) -> set[str]:
    """What ``container[key]`` (or ``container.get(key)``) stands for: a module in sys.modules, a name in
    a module's ``__dict__``, or a name of the notebook's own (``globals()``, ``vars()``, ``__main__``)."""
    out = _key_lookup(bases, key)
    own = "__main__.__dict__" in bases or (isinstance(container, ast.Call) and not container.args and _resolve(
        container.func, scope, depth + 1) & {"builtins.globals", "builtins.locals", "builtins.vars"})
    if own:
        out.discard(f"__main__.{key}")
        out |= _resolve(ast.Name(id=key, ctx=ast.Load()), _Scope(_Env(), scope.glob), depth + 1)
    return out


def _key_lookup(bases: set[str], key: str) -> set[str]:
    """What ``namespace[key]`` stands for, for namespaces the analyser knows: sys.modules (a module by
    its name) and a module's ``__dict__`` (a name in it)."""
    bases = {canonical(b) for b in bases}
    out = {key for b in bases if b == "sys.modules"}
    return out | {f"{b[:-len('.__dict__')]}.{key}" for b in bases if b.endswith(".__dict__")}


def _made_by(node: ast.AST, scope: _Scope, depth: int = 0) -> set[str]:
    """The dotted names of what made an object, through its parts: ``resnet18().layer1[0]``,
    ``next(m.children())`` with ``m = resnet18()`` -> {torchvision.models.resnet.resnet18}."""
    while depth <= 12:
        depth += 1
        if isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
            node = node.value
        elif isinstance(node, ast.Call):
            names = {canonical(f) for f in _resolve(node.func, scope)}
            if names & {"builtins.next", "builtins.list", "builtins.iter", "builtins.tuple"} and node.args:
                node = node.args[0]
            elif names:
                return names
            elif isinstance(node.func, ast.Attribute):  # a method of an object: m.children()
                node = node.func.value
            else:
                return set()
        elif isinstance(node, ast.Name):
            bindings = [b for b in scope.lookup(node.id) or [] if b.kind == "expr" and b.node is not None]
            if not bindings:
                return set()
            own = scope if node.id in scope.local.names else _Scope(_Env(), scope.glob)
            return set().union(*(_made_by(b.node, own, depth) for b in bindings))
        else:
            return set()
    return set()


def _lookup_calls(code: ast.AST, scope: _Scope) -> bool:
    """Whether code looks names up at run time (getattr, inspect, importlib, eval, __dict__, ...)."""
    for node in ast.walk(code):
        if isinstance(node, ast.Attribute) and node.attr in _DUNDER_ATTRIBUTES:
            return True
        if isinstance(node, ast.Call):
            raw = _resolve(node.func, scope)
            names = raw | {canonical(f) for f in raw}
            if names & (_GETATTR_LIKE | set(_LOOKUPS) | set(_OBFUSCATION)) or any(n.startswith("importlib.") for n in names):
                return True
    return False


_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


# ----------------------------------------------------------------------------- searching code


@dataclass
class _Search:
    exercise: str
    references: tuple[str, ...]
    glob: _Env
    maker: str | None = None  # the student's first code that can make a module importable at run time
    reasons: list[str] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)  # ids of code already searched
    looks_up: dict[int, bool] = field(default_factory=dict)  # id(code) -> whether it looks names up at run time
    escaped: set[int] = field(default_factory=set)  # ids of nodes reported for every exercise (_escapes)
    folded: set[int] = field(default_factory=set)  # ids of `+` expressions whose string was checked

    def add(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)

    def reference_of(self, names: set[str]) -> str | None:
        for name in sorted(names):
            if any(_matches(name, ref) for ref in self.references):
                return canonical(name)
        return None

    def check_string(self, node: ast.AST, scope: _Scope, code: ast.AST, who: str, at: str) -> None:
        """The string an expression spells out (``"imgrec_lib." + "conv"``), each expression once: the
        parts of a ``+`` that folded whole are not folded again (a long chain would take quadratic time)."""
        if id(node) in self.folded:
            return
        text = _const_str(node)
        if isinstance(node, ast.BinOp) and text is not None:
            self.folded.update(id(n) for n in ast.walk(node) if isinstance(n, ast.BinOp))
        if text:
            self.check_literal(text, scope, code, who, at)

    def check_literal(self, text: str, scope: _Scope, code: ast.AST, who: str, at: str) -> None:
        """A string that names a reference is a use of it; one that names the module that holds a
        reference, or a reference's own name beside a run-time lookup, is for review by hand."""
        name = text.strip().replace(":", ".")  # pkgutil.resolve_name's "module:attribute" too
        if not _DOTTED.fullmatch(name):
            return
        found = self.reference_of({name}) if "." in name else None
        if found:
            self.add(f"{who} names {found} in a string ({text!r}) {at}")
            return
        full = [(r, canonical(r)) for r in self.references]
        holder = next((r for r, c in full if r.startswith(name + ".") or c.startswith(name + ".")), None)
        if holder and ("." in name or name in ("imgrec_lib", "torchvision")):
            self.add(f"{who} names {name!r}, which holds {holder}, in a string: review by hand {at}")
        elif "." not in name:
            same = next((r for r, c in full if name in (r.rsplit(".", 1)[1], c.rsplit(".", 1)[1])), None)
            if same and self.looks_names_up(code, scope):
                self.add(f"{who} names {name!r} (as {same} is named) in a string, beside a run-time lookup: "
                         f"review by hand {at}")

    def looks_names_up(self, code: ast.AST, scope: _Scope) -> bool:
        if id(code) not in self.looks_up:  # once per cell: a cell may hold many strings
            self.looks_up[id(code)] = _lookup_calls(code, scope)
        return self.looks_up[id(code)]

    def check_class_of_object(self, obj: ast.AST, scope: _Scope, who: str, at: str, written: str) -> None:
        """``type(resnet18().layer1[0])``: the class of a part of somebody else's network."""
        made = sorted(n for n in _made_by(obj, scope) if n.startswith(_MODEL_PACKAGES))
        if not made:
            return
        found = self.reference_of(set(made))
        if found:
            self.add(f"{who} takes the class of an object made by {found} (written `{written}`) {at}")
        else:
            self.add(f"{who} takes the class of an object made by {made[0]} (written `{written}`), which can be a "
                     f"ready-made answer: review by hand {at}")

    @property
    def methods(self) -> set[str]:
        return {r.rsplit(".", 1)[1] for r in self.references if r.startswith("torch.Tensor.")}

    def search(self, code: ast.AST, cell: _Cell | None, via: str, depth: int, local: _Env | None = None) -> None:
        """Look for references (and, in the student's code, obfuscation) in ``code``."""
        if id(code) in self.seen or depth > MAX_DEPTH:
            return
        self.seen.add(id(code))
        if isinstance(code, ast.Module):
            for stmt in code.body:
                self.search(stmt, cell, via, depth)
            return
        scope = _Scope(local if local is not None else _local_env(code, cell), self.glob)
        owners, parents = _owners(code)
        student = cell is not None and not cell.release
        where = cell.where() if cell else "the notebook"
        for node in ast.walk(code):
            line = getattr(node, "lineno", None)
            at = f"({where}, line {line})" if line else f"({where})"
            owner = owners.get(id(node))
            who = f"{via}{owner}" if owner else (via or (cell.phrase() if cell else "the notebook"))
            if isinstance(node, (ast.Call, ast.Subscript)) and not isinstance(getattr(node, "ctx", ast.Load()), ast.Store):
                found = self.reference_of(_resolve(node, scope))  # getattr(F, "conv2d"), sys.modules["m"], ...
                if found:
                    self.add(f"{who} uses {found} (written `{ast.unparse(node)}`) {at}")
            if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load):
                found = self.reference_of(_resolve(node, scope))
                if found:
                    parent = parents.get(id(node))
                    verb = "calls" if isinstance(parent, ast.Call) and parent.func is node else "uses"
                    written = ast.unparse(node)
                    alias = "" if written == found else f" (written `{written}`)"
                    self.add(f"{who} {verb} {found}{alias} {at}")
                elif isinstance(node, ast.Name):
                    parent = parents.get(id(node))
                    called = isinstance(parent, ast.Call) and parent.func is node
                    self.follow(node, scope, who, at, depth, "calls" if called else "uses", _use_path(node, parents))
                if student and isinstance(node, ast.Attribute) and "sys.modules" in {
                        canonical(n) for n in _resolve(node, scope)}:
                    self.add(f"{who} looks a module up in sys.modules, which hides what is called: review by hand {at}")
                if student and isinstance(node, ast.Attribute) and node.attr in _DUNDER_ATTRIBUTES:
                    self.add(f"{who} uses .{node.attr}, which can hide what is called: review by hand {at}")
                if student and not found and not isinstance(parents.get(id(node)), ast.Attribute):
                    self.check_value(node, scope, parents.get(id(node)), who, at)
                if student and not found:
                    self.not_installed(node, scope, who, at)
                if student and isinstance(node, ast.Attribute) and node.attr == "__class__":
                    self.check_class_of_object(node.value, scope, who, at, ast.unparse(node))
            if (student and isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.ctx, ast.Load)
                    and not isinstance(parents.get(id(node)), (ast.Attribute, ast.Subscript))):
                made = sorted(n for n in _made_by(node, scope) if n.startswith("torchvision.models."))
                if made and not self.reference_of(set(made)):  # resnet18().layer1[0]: a reference is said already
                    self.add(f"{who} uses a part of a network made by {made[0]} (written `{ast.unparse(node)}`), which "
                             f"can be a ready-made answer: review by hand {at}")
            if student and isinstance(node, (ast.Constant, ast.BinOp, ast.JoinedStr, ast.Call)):
                self.check_string(node, scope, cell.tree if cell else code, who, at)
            if student and isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                for module in [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]:
                    if module and self.maker and not _installed(module):
                        self.add(f"{who} imports {module}, a module not installed where grading runs that "
                                 f"{self.maker} could make at run time: review by hand {at}")
            if isinstance(node, ast.Call):
                self.check_call(node, scope, who, at, student, cell, depth)
            if student:
                self.check_escape(node, scope, parents.get(id(node)), who, at)

    def check_value(self, node: ast.AST, scope: _Scope, parent: ast.AST | None, who: str, at: str) -> None:
        """A dotted name in the student's code that an answer reaches: a run-time lookup handed on as a value
        (``map(getattr, [F], ["conv2d"])``, ``functools.partial(getattr, F)``), and, in an exercise
        answered with NumPy, any code of torch, torchvision, scipy.signal, scipy.ndimage or skimage.filters:
        a C function of theirs under a name the table does not list (``torch.convolution``,
        ``torch._C._nn.im2col``), however it is called (``map``, ``functools.reduce``, ``methodcaller``)."""
        names = {canonical(n) for n in _resolve(node, scope)}
        lookups = sorted(names & (_GETATTR_LIKE | set(_LOOKUPS) | {"operator.methodcaller", "operator.attrgetter"}))
        if lookups and not (isinstance(parent, ast.Call) and parent.func is node):
            written = ast.unparse(parent or node)[:80]
            self.add(f"{who} hands {lookups[0].removeprefix('builtins.')} on as a value (`{written}`), which looks "
                     f"names up at run time: review by hand {at}")
        foreign = sorted(n for n in names if n.startswith(_NUMPY_FORBIDDEN))
        if foreign and self.exercise not in TORCH_EXERCISES:
            self.add(f"{who} uses {foreign[0]} (written `{ast.unparse(node)}`), {foreign[0].split('.')[0]} code in an "
                     f"exercise answered with NumPy: review by hand {at}")

    def check_escape(self, node: ast.AST, scope: _Scope, parent: ast.AST | None, who: str, at: str) -> None:
        """Code of the student's that an answer reaches and that blinds the record of what runs (``ESCAPES``)."""
        kind = None if id(node) in self.escaped else _escape(node, scope, parent)
        if kind:
            self.add(f"{who} {ESCAPES[kind]} (`{ast.unparse(node)[:80]}`): review by hand {at}")

    def not_installed(self, node: ast.AST, scope: _Scope, who: str, at: str) -> None:
        """A name taken from a module that is not installed where grading runs, when the notebook has code
        that could make that module at run time (a typo alone is no finding: the import just fails)."""
        if not self.maker:
            return
        for name in sorted(_resolve(node, scope)):
            if "." in name and not _installed(name):
                self.add(f"{who} uses {name} (written `{ast.unparse(node)}`), from a module not installed where "
                         f"grading runs that {self.maker} could make at run time: review by hand {at}")
                return

    def follow(self, node: ast.Name, scope: _Scope, who: str, at: str, depth: int, verb: str = "uses",
               path: str = "") -> None:
        """A name bound to the student's own function, class or expression: search that too (what was
        stored in it, where ``path``, the attributes the use takes of it, may reach)."""
        if node.id in scope.local.names:  # a local name: its code is part of what is searched already
            return
        used = {f"{n}.{path}" if path else n for n in _resolve(node, scope)}
        for b in [*(scope.lookup(node.id) or []), *_stored(used, scope)]:
            if b.kind == "def" and b.node is not None:
                label = "class" if isinstance(b.node, ast.ClassDef) else "function"
                where = b.cell.phrase() if b.cell else "the notebook"
                self.search(b.node, b.cell, f"{who} {verb} the {label} `{node.id}` {at}, defined in {where}, where ",
                            depth + 1)
            elif b.kind == "holds" and not _same_place(b.dotted, path):
                continue
            elif b.kind in ("expr", "holds") and b.node is not None and b.cell is not None and b.node is not node:
                self.search_expr(b.node, b.cell, f"{who} {verb} `{node.id}` {at}, set in {b.cell.phrase()} to ",
                                 depth + 1)

    def search_expr(self, expr: ast.AST, cell: _Cell, via: str, depth: int, local: _Env | None = None) -> None:
        """Look for references in an expression bound to a name elsewhere (``ref = F.conv2d``)."""
        if id(expr) in self.seen or depth > MAX_DEPTH:
            return
        self.seen.add(id(expr))
        local = _local_env(expr, cell) if local is None else local
        scope = _Scope(local, self.glob)
        student = not cell.release
        parents = _owners(expr)[1]
        for node in ast.walk(expr):
            line = getattr(node, "lineno", None)
            at = f"({cell.where()}, line {line})" if line else f"({cell.where()})"
            if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load):
                found = self.reference_of(_resolve(node, scope))
                if found:
                    self.add(f"{via}{found} {at}")
                elif isinstance(node, ast.Name):
                    self.follow(node, scope, f"{via}an expression that", at, depth, path=_use_path(node, parents))
                if student and not found:
                    self.not_installed(node, scope, f"{via}an expression that", at)
            if student and isinstance(node, (ast.Constant, ast.BinOp, ast.JoinedStr, ast.Call)):
                self.check_string(node, scope, cell.tree, f"{via}an expression that", at)
            if isinstance(node, ast.Call):
                self.check_call(node, scope, f"{via}an expression that", at, student, cell, depth)
            if student:
                self.check_escape(node, scope, None, f"{via}an expression that", at)

    def check_call(self, node: ast.Call, scope: _Scope, who: str, at: str, student: bool,
                   cell: _Cell | None = None, depth: int = 0) -> None:
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr in self.methods and not _resolve(func.value, scope)):
            self.add(f"{who} calls .{func.attr}() (torch.Tensor.{func.attr}) {at}")
        if not student:
            return
        raw = _resolve(func, scope)
        names = {canonical(f) for f in raw}
        lookup = sorted({_LOOKUPS[n] for n in raw | names if n in _LOOKUPS}
                        | {n for n in names if n.startswith("importlib.") and n not in _OBFUSCATION})
        for what in lookup:
            self.add(f"{who} uses {what}, which looks a name up at run time: review by hand {at}")
        if "builtins.type" in names and len(node.args) == 1:
            self.check_class_of_object(node.args[0], scope, who, at, ast.unparse(node))
        if isinstance(func, ast.Attribute) and func.attr in _SYS_PATH_CHANGES and "sys.path" in {
                canonical(n) for n in _resolve(func.value, scope)}:
            self.add(f"{who} changes sys.path, so that an import can load code the notebook wrote: review by hand {at}")
        for name in sorted(names):
            if name == "builtins.getattr" and len(node.args) >= 2:
                attr = _const_str(node.args[1])
                if attr is None:
                    self.add(f"{who} uses getattr with a computed name: review by hand {at}")
                elif _resolve(node.args[0], scope) and not self.reference_of(_resolve(node, scope)) \
                        and not _known_installed(_resolve(node, scope)):
                    self.add(f"{who} uses getattr({ast.unparse(node.args[0])}, {attr!r}), which hides what is called: "
                             f"review by hand {at}")
            elif name in _OBFUSCATION:
                literal = _const_str(node.args[0]) if node.args else None
                how = f" on a literal {literal!r}" if literal and name.endswith(("import_module", "__import__")) \
                    else " with a computed name" if name.endswith(("import_module", "__import__")) else ""
                self.add(f"{who} uses {_OBFUSCATION[name]}{how}, which hides what is called: review by hand {at}")
                code = _const_str(node.args[0]) if node.args else None
                if name in ("builtins.eval", "builtins.exec") and code and cell is not None:
                    try:  # a literal string: what it runs is searched too
                        inner = ast.parse(code.strip(), mode="eval" if name == "builtins.eval" else "exec")
                    except SyntaxError:
                        continue
                    for sub in ast.walk(inner):
                        if hasattr(sub, "lineno"):
                            sub.lineno = node.lineno
                    self.search_expr(inner, cell, f"{who} runs a string with {_OBFUSCATION[name]} that uses ",
                                     depth + 1, local=scope.local)
        if isinstance(func, ast.Attribute) and _is_get_ipython(func.value):
            if func.attr in _IPYTHON_RUNNERS:
                self.add(f"{who} runs code from a string with get_ipython().{func.attr}: review by hand {at}")
            elif func.attr in ("run_line_magic", "run_cell_magic"):
                magic = _const_str(node.args[0]) if node.args else None
                if magic not in _HARMLESS_MAGICS and magic not in _TIMING_MAGICS:
                    self.add(f"{who} runs the %{magic or '?'} magic: review by hand {at}")


def _use_path(name: ast.Name, parents: dict[int, ast.AST]) -> str:
    """The attributes a use takes of a name: ``linalg.xx`` for the ``np`` of ``np.linalg.xx(x)``."""
    chain: ast.AST = name
    while isinstance(parents.get(id(chain)), (ast.Attribute, ast.Subscript)) and parents[id(chain)].value is chain:
        chain = parents[id(chain)]
    return _attr_path(chain)


def _is_get_ipython(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "get_ipython"


def _owners(code: ast.AST) -> tuple[dict[int, str], dict[int, ast.AST]]:
    """id(node) -> the innermost function or class around it (``Net.forward``), and id(node) -> parent."""
    owners: dict[int, str] = {}
    parents: dict[int, ast.AST] = {}

    def visit(node: ast.AST, owner: str | None) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            owner = f"{owner}.{node.name}" if owner else node.name
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
            if owner:
                owners[id(child)] = owner
            visit(child, owner)

    visit(code, None)
    return owners, parents


def _module_maker(cells: list[_Cell], env: _Env) -> str | None:
    """Where the student's code (any cell of theirs, used by an answer or not) could make a module
    importable at run time: a file written, moved or unpacked, a shell command, a change to sys.path,
    sys.modules or the import machinery, a module object made in memory. None when there is none:
    then an import of a module that is not installed can only fail."""
    scope = _Scope(_Env(), env)
    for cell in cells:
        if cell.release:
            continue
        for node in ast.walk(cell.tree):
            line = getattr(node, "lineno", "?")
            what = None
            if isinstance(node, ast.Call):
                raw = _resolve(node.func, scope)
                names = raw | {canonical(f) for f in raw}
                method = node.func.attr if isinstance(node.func, ast.Attribute) else None
                if "builtins.open" in names or "io.open" in names:
                    mode = node.args[1] if len(node.args) > 1 else next(
                        (k.value for k in node.keywords if k.arg == "mode"), None)
                    text = _const_str(mode) if mode is not None else "r"
                    what = "a file opened for writing" if text is None or set(text) & set("wax+") else None
                elif names & _MODULE_MAKERS or any(n.startswith(_MODULE_MAKER_PACKAGES) for n in names):
                    what = f"`{ast.unparse(node.func)}`"
                elif method in _MODULE_MAKER_METHODS:
                    what = f"`{ast.unparse(node.func)}`"
                elif _is_get_ipython(getattr(node.func, "value", None)) and method in ("run_line_magic", "run_cell_magic"):
                    magic = _const_str(node.args[0]) if node.args else None
                    what = f"the %{magic} magic" if magic in _MODULE_MAKER_MAGICS else None
                elif method in _SYS_PATH_CHANGES | {"update", "setdefault", "remove", "pop", "clear"} and {
                        canonical(n) for n in _resolve(node.func.value, scope)} & {"sys.path", "sys.modules",
                                                                                  "sys.meta_path", "sys.path_hooks"}:
                    what = f"`{ast.unparse(node.func)}`"
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    base = target.value if isinstance(target, (ast.Subscript, ast.Attribute)) else target
                    dotted = _resolve(target, scope) | _resolve(base, scope)
                    if {canonical(n) for n in dotted} & {"sys.path", "sys.modules", "sys.meta_path", "sys.path_hooks"}:
                        what = f"the change to `{ast.unparse(target)}`"
            if what:
                return f"{what} ({cell.where()}, line {line})"
    return None


def _grader_touched(cells: list[_Cell]) -> str | None:
    """Where the student's code (any cell of theirs) reaches the grader's own package, which runs
    in the kernel while the tests call the answers (grading/serve.py, grading/recorder.py): an
    import of ``grading``, a string naming it (``sys.modules["grading.recorder"]``, also built with
    ``+``), the name the test cells called it by. None when there is none."""
    for cell in cells:
        if cell.release:
            continue
        parts: set[int] = set()  # the pieces of "grad" + "ing.serve": the whole is judged
        for node in ast.walk(cell.tree):
            what = None
            if isinstance(node, ast.BinOp):
                parts.update((id(node.left), id(node.right)))
            text = _const_str(node) if isinstance(node, (ast.Constant, ast.BinOp, ast.JoinedStr, ast.Call)) and \
                id(node) not in parts else None
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "grading" for a in node.names):
                what = "imports"
            elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "grading":
                what = "imports"
            elif text is not None and re.fullmatch(r"grading(\.\w+)*", text.strip()):
                what = "names"  # sys.modules["grad" + "ing.serve"]
            elif isinstance(node, (ast.Name, ast.Attribute)) and "__imgrec" in (
                    node.id if isinstance(node, ast.Name) else node.attr):
                what = "names"
            if what:
                where = f"the answer cell of {cell.answer_of}" if cell.answer_of else f"code cell {cell.number}"
                return (f"{where} {what} `grading`, the grader's own package that runs while the tests "
                        f"call the answers: review by hand (line {getattr(node, 'lineno', '?')})")
    return None


# ----------------------------------------------------------------------------- blinding the record of what runs

# Code that blinds the second layer, the record of what runs (grading/recorder.py), rather than calling a
# reference: looked for in every cell of the student's, used by an answer or not. One rule per kind of
# escape: kind -> what the finding says.
ESCAPES = {
    "off": "switches off the record of what runs",
    "patch": "replaces a function of a module that the record of what runs uses",
    "code": "makes a function from a code object, or makes, changes or runs one (the record of what runs "
            "knows the grader's code by its code objects)",
    "internals": "reaches into the interpreter's frames, objects or loaded modules, where the grader's code lives",
    "beside": "starts a thread or a process, or sets code to run at a moment of its own choosing (a signal handler, "
              "a finalizer, a gc callback: in the middle of a test cell), whose work the record of what runs does not see",
    "hidden": "looks up a function of sys, builtins, os, threading or gc, or a loaded module, by a name built at "
              "run time",
    "cells": "reaches into how IPython runs a cell or into the cells' source (an event hook, an input or AST "
             "transformer, the shell's run_cell, compiler or history, the input history `In` / `_ih` / `_i`, an "
             "audit hook, linecache), where a test cell holds its secret word for the grader",
    "socket": "opens a socket or names the grader's socket, through which a test cell answers the grader",
    "test call": "changes what every test cell calls before it talks to the grader (`globals`, `__import__` or "
                 "`__builtins__` bound by the notebook, or the import machinery: `sys.meta_path`, `sys.path_hooks`)",
}
_SWITCHES = {"sys.setprofile", "sys.settrace", "sys._setprofileallthreads", "sys._settraceallthreads",
             "threading.setprofile", "threading.settrace", "threading.setprofile_all_threads",
             "threading.settrace_all_threads"}  # and sys.monitoring, and torch's dispatch-mode stack
_RECORDER_MODULES = {"sys", "builtins", "threading", "os", "time"}  # what grading/recorder.py binds functions of
_PROFILERS = {"cProfile", "_lsprof", "profile"}  # they take the profile hook that the record uses
_HARMLESS_SYS_ATTRIBUTES = {"stdout", "stderr", "stdin", "argv", "tracebacklimit"}
_CODE_MAKERS = {"types.FunctionType", "types.LambdaType", "types.CodeType", "builtins.compile", "marshal.loads"}
_INTERNALS = {"sys._getframe", "sys._current_frames", "sys._current_exceptions", "inspect.currentframe",
              "inspect.getclosurevars", "sys.getprofile", "sys.gettrace", "threading.getprofile",
              "threading.gettrace",
              "inspect.stack", "inspect.trace", "inspect.getouterframes", "inspect.getinnerframes",
              "gc.get_objects", "gc.get_referrers", "gc.get_referents", "traceback.walk_stack", "traceback.walk_tb",
              "traceback.extract_stack", "traceback.format_stack", "traceback.print_stack", "traceback.StackSummary"}
_FRAME_ATTRIBUTES = {"f_globals", "f_locals", "f_back", "f_builtins", "f_code", "tb_frame", "gi_frame", "cr_frame",
                     "ag_frame"}
_BESIDE = ("threading.Thread", "threading.Timer", "_thread.", "concurrent.futures", "multiprocessing",
           "os.fork", "os.posix_spawn", "os.spawn", "os.exec", "os.system", "os.popen", "subprocess.",
           "asyncio.to_thread", "asyncio.create_subprocess", "pty.fork", "pty.spawn", "signal.signal", "signal.setitimer",
           "signal.alarm", "signal.set_wakeup_fd", "signal.pthread_kill", "signal.raise_signal", "weakref.finalize",
           "gc.callbacks")
# Attribute names that are an escape on any object, whatever the reader thinks the object is (the
# recorder is reached through a function's globals or closure, ``f.__globals__["_recorder"]``,
# ``inspect.getclosurevars(sys.getprofile())``, and torch's dispatch-mode stack through any alias of
# torch, ``Out[3]._C._pop_torch_dispatch_stack()``); as strings too.
_ESCAPE_ATTRIBUTES = {**dict.fromkeys(("_pop_torch_dispatch_stack", "_push_on_torch_dispatch_stack",
                                       "_unset_dispatch_mode", "_set_dispatch_mode", "_get_dispatch_mode",
                                       "_get_dispatch_stack_at", "_get_current_dispatch_mode",
                                       "_get_current_dispatch_mode_stack", "_pop_mode", "_push_mode",
                                       "_pop_mode_temporarily", "_disable_current_modes", "_disable_infra_mode",
                                       "_unset_infra_mode"), "off"),
                      **dict.fromkeys(("__globals__", "__closure__", "cell_contents", "getclosurevars", "getprofile",
                                       "gettrace"), "internals")}
# How a cell's source reaches code of the notebook's while that cell runs, before its own first line (a test
# cell carries a secret word for the grader, grading/notebooks.to_run, and sends it first): IPython's event
# hooks, transformers and runners, the kernel's handlers, the input history (`_i3` too, ``_INPUT``). Attribute
# names on any object, and strings; `In` only as a name, an attribute or a key (a plot may say "In").
_CELL_ATTRIBUTES = {"input_transformers_cleanup", "input_transformers_post", "input_transformer_manager",
                    "ast_transformers", "history_manager", "run_cell", "run_cell_async", "should_run_async",
                    "transform_cell", "transform_ast", "run_ast_nodes", "run_code", "prefilter_manager",
                    "prefilter_lines", "do_execute", "execute_request", "shell_handlers", "dispatch_shell",
                    "pre_run_cell", "pre_execute", "post_run_cell", "post_execute", "_ih", "_i", "_ii", "_iii"}
_INPUT = re.compile(r"_i\d+")
_HISTORY_MAGICS = {"history", "hist", "recall", "rerun", "save", "macro"}
_EVENTS = {"register", "unregister", "callbacks", "trigger"}  # of ``get_ipython().events``
_CELL_MODULES = {"linecache", "sys.addaudithook"}  # the cells' source by file name; every compile's source
_SOCKETS = {"socket", "_socket", "socketserver", "zmq", "asyncio.open_unix_connection", "asyncio.open_connection",
            "asyncio.start_unix_server", "asyncio.start_server", "multiprocessing.connection"}
_SOCKET_ATTRIBUTES = {"create_unix_connection", "create_connection", "sock_connect", "AF_UNIX"}
# Names each test cell calls before it talks to the grader: bound by the notebook, its code runs there; and
# the import machinery that its import of grading.serve (the first test cell's) goes through.
_TEST_CALL_NAMES = {"globals", "__import__", "__builtins__"}
_IMPORT_MACHINERY = {"meta_path", "path_hooks", "path_importer_cache"}
_ESCAPE_ATTRIBUTES.update({**dict.fromkeys(_CELL_ATTRIBUTES, "cells"), **dict.fromkeys(_SOCKET_ATTRIBUTES, "socket"),
                           **dict.fromkeys(_IMPORT_MACHINERY, "test call")})
# A string that spells one of the names above (for getattr with a name the reader cannot fold).
_ESCAPE_WORDS = {**dict.fromkeys(("setprofile", "settrace", "_setprofileallthreads", "_settraceallthreads",
                                  "setprofile_all_threads", "settrace_all_threads"), "off"),
                 **dict.fromkeys(("__code__", "co_filename", "co_code", "co_consts", "CodeType", "FunctionType"),
                                 "code"),
                 **dict.fromkeys(("_getframe", "_current_frames", "f_globals", "f_locals", "f_back", "get_objects",
                                  "get_referrers", "get_referents"), "internals"),
                 **_ESCAPE_ATTRIBUTES, "socket": "socket", "_socket": "socket", "zmq": "socket"}


def _word(text: str) -> str | None:
    """The kind of ``ESCAPES`` that a string of the student's spells, or None."""
    text = text.strip()
    if _INPUT.fullmatch(text):
        return "cells"
    if "imgrec-serve" in text.lower() or "imgrec_serve" in text.lower():
        return "socket"
    return _ESCAPE_WORDS.get(text)


def _is_shell(node: ast.AST, scope: _Scope, depth: int = 0) -> bool:
    """Whether an expression is IPython's shell: ``get_ipython()``, or a name bound to it."""
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Name) and node.func.id == "get_ipython" or bool(
            {canonical(n) for n in _resolve(node.func, scope)} & {"IPython.get_ipython",
                                                                 "IPython.core.getipython.get_ipython"})
    if isinstance(node, ast.Name) and depth < 4:
        return any(b.kind == "expr" and b.node is not None and _is_shell(b.node, scope, depth + 1)
                   for b in scope.lookup(node.id) or [])
    return False


def _attr_name(node: ast.AST) -> str | None:
    return node.attr if isinstance(node, ast.Attribute) else None


def _root(node: ast.AST) -> ast.AST:
    """The object under a chain of attributes and items: ``ip`` of ``ip.compile.cache["x"]``."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node


def _rebinds_test_call(tree: ast.Module) -> ast.AST | None:
    """Where a cell binds a name of ``_TEST_CALL_NAMES`` in the notebook's namespace (at its top level, or
    declared ``global``), or None."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name in _TEST_CALL_NAMES:
                return node
            inner = [n for n in ast.walk(node) if isinstance(n, ast.Global) and set(n.names) & _TEST_CALL_NAMES]
            if inner:
                return inner[0]
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)) and node.id in _TEST_CALL_NAMES:
            return node
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                (a.asname or a.name.split(".")[0]) in _TEST_CALL_NAMES for a in node.names):
            return node
        stack.extend(ast.iter_child_nodes(node))
    return None


def _escape(node: ast.AST, scope: _Scope, parent: ast.AST | None) -> str | None:
    """The kind of ``ESCAPES`` that a node of the student's code is, or None."""
    if isinstance(node, (ast.Constant, ast.BinOp, ast.JoinedStr)) and not isinstance(parent, ast.BinOp):
        return _word(_const_str(node) or "")
    if isinstance(node, ast.keyword) and (node.arg or "").startswith("co_"):  # code.replace(co_filename=...)
        return "code"
    if isinstance(node, ast.Attribute) and node.attr == "__code__":
        return "code"  # f.__code__ = ..., c = f.__code__
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
        modules = {canonical(n) for n in _resolve(node.value, scope)}
        if modules & _RECORDER_MODULES and node.attr not in _HARMLESS_SYS_ATTRIBUTES:
            return "patch"  # sys.setprofile = fake
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)) and {
            canonical(n) for n in _resolve(node.value, scope)} & {f"{m}.__dict__" for m in _RECORDER_MODULES}:
        return "patch"  # vars(sys)["setprofile"] = fake
    if isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.ctx, (ast.Store, ast.Del)):
        if _is_shell(_root(node.value), scope):
            return "cells"  # get_ipython().compile = mine, ip.user_ns["globals"] = f
        if isinstance(node, ast.Subscript) and _const_str(node.slice) in _TEST_CALL_NAMES:
            return "test call"  # globals()["__import__"] = f
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "__del__":
        return "beside"  # a finalizer runs whenever the garbage collector gets to it
    if isinstance(node, ast.Attribute) and node.attr in _ESCAPE_ATTRIBUTES:
        return _ESCAPE_ATTRIBUTES[node.attr]  # f.__globals__, Out[3]._C._pop_torch_dispatch_stack, ip.run_cell
    if isinstance(node, ast.Attribute) and (node.attr == "In" or _INPUT.fullmatch(node.attr)):
        return "cells"  # sys.modules["__main__"].In
    if isinstance(node, ast.Attribute) and (node.attr in _EVENTS and _attr_name(node.value) == "events" or
                                            node.attr == "events" and _is_shell(node.value, scope)):
        return "cells"  # get_ipython().events.register("pre_run_cell", f)
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and (
            node.id in ("In", "_ih", "_i", "_ii", "_iii") or _INPUT.fullmatch(node.id)):
        return "cells"  # In[-1], _i: the source of the cells run so far, the running one's too
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _const_str(node.slice) == "In":
        return "cells"  # globals()["In"]
    if isinstance(node, ast.keyword) and node.arg in _TEST_CALL_NAMES:
        return "test call"  # globals().update(__import__=f)
    if isinstance(node, ast.Call):
        put = _put_by_call(node)
        funcs = {canonical(n) for n in _resolve(node.func, scope)}
        if put and (isinstance(node.func, ast.Name) or node.func.attr == "__setattr__") and _is_shell(put[0], scope):
            return "cells"  # setattr(get_ipython(), "run_cell", f)
        setter = isinstance(node.func, ast.Name) and node.func.id == "setattr" or isinstance(
            node.func, ast.Attribute) and node.func.attr == "__setattr__"
        name = _const_str(node.args[-2]) if put and setter and len(node.args) >= 2 else None
        if name in _TEST_CALL_NAMES and not {canonical(n) for n in _resolve(put[0], scope)} & _RECORDER_MODULES:
            return "test call"  # setattr(sys.modules["__main__"], "globals", f)
        key = _const_str(node.args[0]) if node.args else None
        if key == "In" and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "pop", "__getitem__"):
            return "cells"  # get_ipython().user_ns.get("In")
        if len(node.args) > 1 and funcs & _GETATTR_LIKE and (
                _const_str(node.args[1]) in ("In", "events", None) and _is_shell(node.args[0], scope)
                or _const_str(node.args[1]) == "In" or _attr_name(node.args[0]) == "events"):
            return "cells"  # getattr(main, "In"), getattr(get_ipython(), name), getattr(ip.events, "regi" + ...)
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("run_line_magic", "run_cell_magic") and \
                key in _HISTORY_MAGICS:
            return "cells"  # %history -n -l 1
        if put and (isinstance(node.func, ast.Name) or node.func.attr == "__setattr__") and {
                canonical(n) for n in _resolve(put[0], scope)} & _RECORDER_MODULES:
            return "patch"  # setattr(sys, "setprofile", fake)
        if funcs & {"builtins.delattr"} and node.args and {canonical(n) for n in _resolve(node.args[0], scope)} \
                & _RECORDER_MODULES:
            return "patch"
        if funcs & {"builtins.exec", "builtins.eval"} and node.args and _const_str(node.args[0]) is None:
            return "code"  # exec(helper.__code__, my_globals): code the reader cannot see
        if isinstance(node.func, ast.Call) and {canonical(n) for n in _resolve(node.func.func, scope)} & {
                "builtins.type"} and len(node.func.args) == 1 and _is_function(node.func.args[0], scope):
            return "code"  # type(f)(code, my_globals)
        if isinstance(node.func, ast.Attribute) and node.func.attr == "__class__" and _is_function(node.func.value, scope):
            return "code"  # (lambda: 0).__class__(code, my_globals)
        computed = len(node.args) >= 2 and _const_str(node.args[1]) is None
        if funcs & _GETATTR_LIKE and computed and {canonical(n) for n in _resolve(node.args[0], scope)} & (
                _RECORDER_MODULES | {"gc"}):
            return "hidden"  # getattr(sys, "".join(reversed("eliforptes")))
        if (isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "pop", "__getitem__") and node.args
                and _const_str(node.args[0]) is None and "sys.modules" in {canonical(n) for n in _resolve(
                    node.func.value, scope)}):
            return "hidden"  # sys.modules.get(name)
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _const_str(node.slice) is None and {
            canonical(n) for n in _resolve(node.value, scope)} & ({"sys.modules"} | {
                f"{m}.__dict__" for m in _RECORDER_MODULES | {"gc"}}):
        return "hidden"  # sys.modules[name], vars(sys)[name]
    if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load):
        if isinstance(node, ast.Attribute) and node.attr in _FRAME_ATTRIBUTES:
            return "internals"
        names = {canonical(n) for n in _resolve(node, scope)}
        if "sys.modules" in names:  # a scan of the loaded modules (for m in sys.modules.values()), not a lookup
            scan = not isinstance(parent, (ast.Subscript, ast.Compare, ast.Attribute)) or isinstance(
                parent, ast.Attribute) and parent.attr in ("items", "values", "keys", "copy", "__iter__")
            return "internals" if scan else None
        if isinstance(parent, ast.Attribute):
            return None  # the whole dotted name is judged: torch.utils._python_dispatch._disable_current_modes
        within = lambda group: any(n == g or n.startswith(g + ".") for n in names for g in group)  # noqa: E731
        if within(_SWITCHES | _PROFILERS | {"sys.monitoring"}) or any(n.startswith("torch.") and "dispatch" in n.lower()
                                                          for n in names):
            return "off"
        if within(_CODE_MAKERS):
            return "code"
        if within(_INTERNALS | {"ctypes", "_ctypes"}):
            return "internals"
        if within(_CELL_MODULES):
            return "cells"
        if within(_SOCKETS):
            return "socket"
        if any(n.startswith(_BESIDE) for n in names):
            return "beside"
    return None


def _is_function(node: ast.AST, scope: _Scope) -> bool:
    """Whether an expression is a function of the notebook's (a def or a lambda, or one bound to a name)."""
    if isinstance(node, ast.Lambda):
        return True
    if isinstance(node, ast.Name):
        return any(b.kind == "def" and isinstance(b.node, (ast.FunctionDef, ast.AsyncFunctionDef))
                   or b.kind == "expr" and isinstance(b.node, ast.Lambda) for b in scope.lookup(node.id) or [])
    return False


def _bound_names(tree: ast.AST) -> set[str]:
    """The names a cell binds: assigned, loop and with targets, parameters, imports, defs."""
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del))}
    names |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
              for a in [*n.posonlyargs, *n.args, *n.kwonlyargs, *filter(None, [n.vararg, n.kwarg])]}
    names |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    names |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
              for a in n.names}
    return names


def _escapes(cells: list[_Cell], env: _Env) -> tuple[list[str], set[int]]:
    """Reasons for every exercise, one per kind of ``ESCAPES`` and cell, where the student's code blinds the
    record of what runs: anywhere in a cell of theirs, except inside the functions and classes of an
    answer cell (those run when an answer is called, and the search of the answers that use them says
    so); and the ids of the nodes reported."""
    reasons: dict[tuple[str, int], str] = {}
    seen: set[int] = set()
    for cell in cells:
        if cell.release:
            continue
        scope = _Scope(_Env(), env)
        where = f"the answer cell of {cell.answer_of}" if cell.answer_of else f"code cell {cell.number}"
        own = _bound_names(cell.tree)
        stack: list[tuple[ast.AST, ast.AST | None]] = [(cell.tree, None)]
        while stack:
            node, parent = stack.pop()
            if cell.answer_of and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            kind = _escape(node, scope, parent)
            if kind == "cells" and isinstance(node, ast.Name) and node.id in own:
                kind = None  # `for _i in range(3)`: the cell's own variable, not the input history
            if kind:
                seen.add(id(node))
                line = getattr(node, "lineno", None) or getattr(parent, "lineno", "?")
                reasons.setdefault((kind, cell.number), f"{where} {ESCAPES[kind]} (`{ast.unparse(node)[:80]}`, "
                                                        f"line {line}): review by hand")
            stack.extend((child, node) for child in reversed(list(ast.iter_child_nodes(node))))
            inner = _exec_literal(node)
            if inner is not None:
                stack.append((inner, node))
        bound = _rebinds_test_call(cell.tree)
        if bound is not None:
            reasons.setdefault(("test call", cell.number), f"{where} {ESCAPES['test call']} "
                                                           f"(`{ast.unparse(bound)[:80]}`, line {bound.lineno}): "
                                                           "review by hand")
    return list(reasons.values()), seen


# ----------------------------------------------------------------------------- the public part


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _graded_names(release: nbformat.NotebookNode, answer_index: int) -> set[str]:
    """Names an exercise's tests grade: what its release answer cell defines, and the names its test
    cells take from the notebook (``run_checked(test_x, [(conv2d, False)])``)."""
    names: set[str] = set()
    cells = release.cells
    tree = _parse(cells[answer_index].source) or ast.Module(body=[], type_ignores=[])
    env = _Env()
    _bind_statements(tree.body, env, None, True)
    names |= set(env.names)
    for cell in cells[answer_index + 1:]:
        meta = _nbgrader(cell)
        if meta.get("solution"):
            break
        if cell.cell_type != "code" or not meta.get("grade"):
            continue
        test = _parse(cell.source)
        if test is None:
            continue
        own = _Env()
        _bind_statements(test.body, own, None, True)
        for stmt in test.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for node in ast.walk(stmt):
                if (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in own.names
                        and not hasattr(builtins, node.id)):
                    names.add(node.id)
    return names


# A submission is read in a child process with these limits: the reader is Python over the student's
# code (a 300 kB list literal costs it ~95 MB and 2.4 s; 3,000 lines `np.fN = np.zeros`, 59 kB, 33 s),
# and the grader's process must not pay that. The instructor's largest notebook (lesson 09) has 74 kB
# of code, its largest cell 11 kB, and is read in 0.3 s with 75 MB.
MAX_CELL_BYTES = 100_000  # a code cell over this is not read
MAX_CODE_BYTES = 500_000  # nor a notebook whose code cells together pass this
READ_SECONDS = 60.0  # wall clock for the child process, start included
READ_MEMORY_BYTES = 512 << 20  # its address space (RLIMIT_AS)


def find_reference_copies(submission: nbformat.NotebookNode,
                          release: nbformat.NotebookNode) -> dict[str, list[str]]:
    """{answer grade_id: [reasons]} for each exercise whose answer delegates to one of its references
    (``REFERENCES``) or hides what it calls. Nothing is run; ``release`` is the lesson as handed out.

    The student's code is read in a child process (``python -m grading.references``) with at most
    ``READ_SECONDS`` and ``READ_MEMORY_BYTES``, and only when no code cell passes ``MAX_CELL_BYTES`` and
    all together not ``MAX_CODE_BYTES``: a notebook made to cost the reader time or memory costs the
    grader nothing, and holds no lock that other workers wait on. When the reader gives up, every
    exercise gets a finding that says why: the instructor reviews the notebook by hand."""
    import json
    import os
    import subprocess

    sizes = [len(c.source.encode(errors="surrogatepass")) for c in submission.cells if c.cell_type == "code"]
    if sizes and max(sizes) > MAX_CELL_BYTES:
        return _unread(release, f"a code cell of {max(sizes):,} bytes (the limit is {MAX_CELL_BYTES:,})")
    if sum(sizes) > MAX_CODE_BYTES:
        return _unread(release, f"{sum(sizes):,} bytes of code (the limit is {MAX_CODE_BYTES:,})")
    payload = json.dumps({"submission": _code_of(submission), "release": _code_of(release),
                          "memory": READ_MEMORY_BYTES, "seconds": READ_SECONDS, "aliases": _aliases()})
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    try:
        done = subprocess.run([sys.executable, "-m", "grading.references"], input=payload, capture_output=True,
                              text=True, timeout=READ_SECONDS, env=env, cwd=root, check=False)
    except subprocess.TimeoutExpired:
        return _unread(release, f"code that took more than {READ_SECONDS:.0f} s to read")
    if done.returncode == _OUT_OF_MEMORY or done.returncode and "MemoryError" in done.stderr[-2000:]:
        return _unread(release, f"code that needs more than {READ_MEMORY_BYTES >> 20:,} MB to read")
    try:
        return json.loads(done.stdout)
    except ValueError:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
        return _unread(release, f"code the reader failed on (exit status {done.returncode}: {last})")


_OUT_OF_MEMORY = 3  # the child's exit status when it passed READ_MEMORY_BYTES


def _peak_memory() -> int:
    """The most address space this process has had (VmPeak), in bytes; 0 where /proc does not say."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmPeak:\s*(\d+) kB", status, re.MULTILINE)
    return int(found[1]) * 1024 if found else 0


def _unread(release: nbformat.NotebookNode, why: str) -> dict[str, list[str]]:
    """A finding for every exercise of the release: the notebook could not be read for reference copies."""
    return {_nbgrader(c)["grade_id"]: [f"the notebook holds {why}, so it was not read for reference copies: "
                                       f"review it by hand"]
            for c in release.cells if c.cell_type == "code" and _nbgrader(c).get("solution")
            and _nbgrader(c).get("grade_id")}


def _code_of(nb: nbformat.NotebookNode) -> dict:
    """What the reader needs of a notebook, as JSON: every cell (positions count) with its type, its
    source when code and its nbgrader metadata; no outputs, no markdown."""
    cells = [{"cell_type": c.cell_type, "source": c.source if c.cell_type == "code" else "",
              "metadata": {"nbgrader": _nbgrader(c)} if _nbgrader(c) else {}} for c in nb.cells]
    return {"cells": cells}


def read_reference_copies(submission: nbformat.NotebookNode,
                          release: nbformat.NotebookNode) -> dict[str, list[str]]:
    """``find_reference_copies`` in this process, with no limit on time or memory: for the child process
    and for tests of what the reader finds."""
    try:
        return _find_reference_copies(submission, release)
    except RecursionError:  # code nested thousands deep (a + a + ... ): unread, so every answer is looked at
        return _unread(release, "code nested too deeply to be read without running it")


class _Node(dict):
    """A dict read from JSON whose keys are attributes too, as in nbformat.NotebookNode: what the reader
    needs of a notebook, without importing nbformat in the child."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _child() -> int:
    """``python -m grading.references``: the two notebooks (``_code_of``) and the limits as JSON on stdin,
    the findings as JSON on stdout; exit status ``_OUT_OF_MEMORY`` past the memory limit."""
    global _ALIASES
    import json
    import os
    import resource

    data = json.load(sys.stdin, object_hook=_Node)  # the parent checked its size
    _ALIASES = data.pop("aliases")  # as the parent read them: the child parses no library file
    resource.setrlimit(resource.RLIMIT_AS, (data["memory"], data["memory"]))
    cpu = int(data["seconds"]) + 5  # the parent's timeout ends it; this in case the parent is gone
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    out, sys.stdout = sys.stdout, sys.stderr  # what an import prints cannot mix with the answer
    spare = bytearray(8 << 20)  # freed when memory runs out, so that saying so needs none
    try:
        found = read_reference_copies(data["submission"], data["release"])
    except (MemoryError, SystemError) as error:  # ast.parse out of memory: "error return without exception set"
        del spare
        if isinstance(error, MemoryError) or _peak_memory() > 0.9 * data["memory"]:
            os._exit(_OUT_OF_MEMORY)  # at once: unwinding may need memory again
        raise
    out.write(json.dumps(found))
    out.flush()
    return 0


def _find_reference_copies(submission: nbformat.NotebookNode,
                           release: nbformat.NotebookNode) -> dict[str, list[str]]:
    release_sources = {c.source.strip() for c in release.cells if c.cell_type == "code"}
    answers = [(i, _nbgrader(c)["grade_id"]) for i, c in enumerate(release.cells)
               if c.cell_type == "code" and _nbgrader(c).get("solution") and _nbgrader(c).get("grade_id")]

    cells: list[_Cell] = []
    code_cells = [(i, c) for i, c in enumerate(submission.cells) if c.cell_type == "code"]
    for number, (i, c) in enumerate(code_cells, start=1):
        tree = _parse(c.source)
        if tree is None:
            continue
        meta = _nbgrader(c)
        answer_of = meta.get("grade_id") if meta.get("solution") else None
        cells.append(_Cell(i, tree, c.source.strip() in release_sources, answer_of, number))

    everything = _Env()
    for cell in cells:
        _bind_cell(cell, everything, False)
    maker = _module_maker(cells, everything)
    touched = _grader_touched(cells)
    escapes, escaped = _escapes(cells, everything)

    findings: dict[str, list[str]] = {}
    for release_index, grade_id in answers:
        references = REFERENCES.get(grade_id, ())
        sub_positions = [k for k, cell in enumerate(cells) if cell.answer_of == grade_id]
        if not sub_positions:
            continue
        position = sub_positions[0]
        answer = cells[position]
        answer.release = False  # the answer is searched even when unchanged (it then holds nothing)
        # The names as bound when the exercise's first test cell runs.
        cut = len(cells)
        for k in range(position + 1, len(cells)):
            meta = _nbgrader(submission.cells[cells[k].index])
            if meta.get("grade") or meta.get("solution"):
                cut = k
                break
        env = _Env()
        for cell in cells[:cut]:
            _bind_cell(cell, env, True)
        search = _Search(grade_id, references, env, maker, escaped=escaped)
        search.search(answer.tree, answer, "", 0)
        for name in sorted(_graded_names(release, release_index)):
            if not env.names.get(name) and env.star:  # bound by nothing but a `from module import *`
                found = search.reference_of({f"{module}.{name}" for module in env.star})
                if found:
                    search.add(f"`{name}` is {found}, through `from ... import *`")
            for b in env.names.get(name, []):
                where = b.cell.where() if b.cell else "the notebook"
                if b.cell is answer and b.kind != "name":
                    continue  # the answer cell has been searched as a whole
                if b.kind == "name":
                    found = search.reference_of({b.dotted})
                    if found:
                        line = getattr(b.node, "lineno", "?")
                        search.add(f"`{name}` is {found} ({where}, line {line})")
                elif b.kind == "def" and b.node is not None:
                    search.search(b.node, b.cell, f"`{name}` (defined in {b.cell.phrase()}): ", 0)
                elif b.kind in ("expr", "holds") and b.node is not None and b.cell is not None:
                    search.search_expr(b.node, b.cell, f"`{name}` is set in {b.cell.phrase()} to ", 0)
        if touched:
            search.add(touched)
        for reason in escapes:
            search.add(reason)
        if search.reasons:
            findings[grade_id] = search.reasons
    return findings


def flag_report(findings: dict[str, list[str]]) -> list[str]:
    """Lines for the autograde report: one heading per flagged exercise, one line per reason."""
    lines: list[str] = []
    for grade_id, reasons in findings.items():
        lines.append(f"{grade_id}: {len(reasons)} finding{'s' if len(reasons) != 1 else ''} "
                     "(a reference copy, or code that hides what it calls)")
        lines.extend(f"    - {reason}" for reason in reasons)
    return lines


# ----------------------------------------------------------------------------- what ran while graded

# Exercises answered with torch (the others are answered with NumPy and plain Python: any torch,
# torchvision, scipy.signal, scipy.ndimage or skimage.filters code that runs in them, their C modules
# included, is somebody else's answer). The
# course library's functions count by ``REFERENCES`` alone: later lessons offer the earlier ones'.
TORCH_EXERCISES = {"normalize_batch", "make_grid", "my_cnn", "train_step", "trained_model", "predict", "residual_block"}
# What a torch exercise may run although it is a ready-made answer elsewhere: train_step steps the
# optimizer it is given.
RUN_TIME_ALLOWED = {"train_step": ("torch.optim.",)}
# In a torch exercise, packages whose code is a ready-made answer (or switches the recording off),
# and aten operators that compute a whole reference at once.
_READY_MADE = ("torchvision.models.", "torch.optim.", "torch.utils._python_dispatch.")
_WHOLE_OPS = {"normalize_batch": ("aten.native_batch_norm", "aten.batch_norm", "aten._native_batch_norm_legit",
                                  "aten._native_batch_norm_legit_no_training", "aten.instance_norm")}
_NUMPY_FORBIDDEN = ("torch.", "torchvision.", "scipy.signal.", "scipy.ndimage.", "skimage.filters.", "aten.")


def _called_reference(name: str, references: tuple[str, ...]) -> bool:
    """Whether a name the recorder wrote (``torch.conv2d``, ``torch.nn.modules.conv.Conv2d.__init__``) is
    one of `references` (``torch.nn.functional.conv2d``, ``torch.nn.Conv2d``): the same name, a name
    inside it, or in the same package the reference's last name as the function's name, or as its
    class (a capitalised name) anywhere in it."""
    parts = name.split(".")
    for reference in references:
        reference = canonical(reference)
        last = reference.rsplit(".", 1)[-1]
        if name == reference or name.startswith(reference + "."):
            return True
        if parts[0] == reference.split(".")[0] and parts[0] in _SAME_NAME_PACKAGES and len(parts) > 1 and (
                parts[-1] == last or last[:1].isupper() and last in parts[1:]):
            return True
    return False


def runtime_findings(used: dict[str, list[str]], exercise_of: dict[str, str]) -> dict[str, list[str]]:
    """{exercise: [reasons]} from what the student's code called while each test cell graded it
    (`used`: test grade_id -> the names grading/recorder.py wrote in the kernel; `exercise_of`: test
    grade_id -> the exercise's grade_id). A name counts when it is one of the exercise's
    ``REFERENCES``; in an exercise answered with NumPy, any torch, torchvision, scipy.signal,
    scipy.ndimage or skimage.filters code and any aten operator; in one answered with torch, torchvision's models,
    torch.optim or a dispatch-mode trick (except ``RUN_TIME_ALLOWED``) and aten operators that are a
    whole reference; in every exercise, a way out of the recording (a thread, a process,
    pickle, gc, ...), switching the recording off, and a thread or process of the notebook's running
    beside the answer. The names come from the student's process: a
    reason to look, like the static findings."""
    by_exercise: dict[str, dict[str, None]] = {}
    for test, names in used.items():
        exercise = exercise_of.get(test)
        if exercise is not None:
            by_exercise.setdefault(exercise, {}).update(dict.fromkeys(names))
    findings: dict[str, list[str]] = {}
    for exercise, names in by_exercise.items():
        references = REFERENCES.get(exercise, ())
        allowed = RUN_TIME_ALLOWED.get(exercise, ())
        called, escapes, off, beside = [], [], [], []
        for name in names:
            if name.startswith("escape:"):
                escapes.append(name.removeprefix("escape:"))
            elif name.startswith("beside:"):
                beside.append(name.removeprefix("beside:"))
            elif name.startswith("switched-off:"):
                off.append(name.removeprefix("switched-off:"))
            elif name.startswith(allowed) if allowed else False:
                continue
            elif _called_reference(name, references):
                called.append((0, name))
            elif exercise not in TORCH_EXERCISES:
                if name.startswith(_NUMPY_FORBIDDEN):
                    called.append((1, name))
            elif name.startswith(_READY_MADE) or name.startswith(_WHOLE_OPS.get(exercise, ("-",))) \
                    or name.startswith("aten._fused_") and exercise != "train_step":
                called.append((1, name))
        reasons = []
        if called:
            ordered = [n for _, n in sorted(called, key=lambda c: (c[0], "._" in c[1] or "<" in c[1]))]
            functions = [n for n in ordered if not n.startswith("aten.")]
            ops = [n for n in ordered if n.startswith("aten.")]
            text = _few(functions) + (f" ({_few(ops)})" if functions and ops else _few(ops))
            reasons.append(f"while graded, {exercise} called {text}")
        if escapes:
            reasons.append(f"while graded, {exercise} called {_few(escapes)}, a way around the check of what it calls")
        if off:
            reasons.append(f"while graded, {exercise} switched off the check of what it calls ({', '.join(off)})")
        if beside:
            reasons.append(f"while graded, {exercise} had {' and '.join(beside)} beside it, which the check of "
                           "what it calls does not see")
        if reasons:
            findings[exercise] = reasons
    return findings


def _few(names: list[str], at_most: int = 5) -> str:
    return ", ".join(names[:at_most]) + (f" and {len(names) - at_most} more" if len(names) > at_most else "")


if __name__ == "__main__":
    sys.exit(_child())
