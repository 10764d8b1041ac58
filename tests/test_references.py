"""grading/references.py: answers that hand an exercise to the library's reference or to the framework.

Submissions are built from the real release notebooks (lessons/) with the instructor's answers
(solutions/) put in; nothing is executed.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("grading_references", ROOT / "grading" / "references.py")
references = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = references  # dataclasses look their module up
_spec.loader.exec_module(references)

LESSONS = sorted(p.parent.name for p in (ROOT / "lessons").glob("*/*.ipynb"))


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


@functools.lru_cache(maxsize=None)
def _read_cached(lesson: str, where: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / where / lesson / f"{lesson}.ipynb", as_version=4)


def _read(lesson: str, where: str) -> nbformat.NotebookNode:
    return copy.deepcopy(_read_cached(lesson, where))


def _lesson_of(prefix: str) -> str:
    return next(name for name in LESSONS if name.startswith(prefix))


def _answers(nb: nbformat.NotebookNode) -> dict[str, int]:
    return {_meta(c)["grade_id"]: i for i, c in enumerate(nb.cells) if _meta(c).get("solution")}


def submission(prefix: str, answers: dict[str, str] | None = None,
               cells_before: dict[str, list[str]] | None = None) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """(submission, release) for lesson ``prefix``: the release with the instructor's answers, then
    ``answers`` {grade_id: source} replacing some, and ``cells_before`` {grade_id: [sources]} inserted
    as new cells of the student's just before that exercise's answer cell."""
    lesson = _lesson_of(prefix)
    release, solution = _read(lesson, "lessons"), _read(lesson, "solutions")
    sub = copy.deepcopy(release)
    for grade_id, i in _answers(solution).items():
        sub.cells[i] = copy.deepcopy(solution.cells[i])
        if answers and grade_id in answers:
            sub.cells[i].source = answers[grade_id]
    for grade_id, sources in (cells_before or {}).items():
        at = _answers(sub)[grade_id]
        for source in reversed(sources):
            sub.cells.insert(at, nbformat.v4.new_code_cell(source))
    return sub, release


def all_exercises() -> list[tuple[str, str]]:
    return [(lesson[:2], grade_id) for lesson in LESSONS for grade_id in _answers(_read(lesson, "lessons"))]


# ----------------------------------------------------------------------------- the table


def test_references_cover_every_graded_exercise_of_lessons_00_to_09():
    assert [lesson[:2] for lesson in LESSONS] == [f"{n:02d}" for n in range(10)]
    assert sorted(references.REFERENCES) == sorted(grade_id for _, grade_id in all_exercises())
    for grade_id, names in references.REFERENCES.items():
        assert all(isinstance(n, str) and n.count(".") >= 1 for n in names), grade_id
    # Every exercise but the free training run has at least one reference.
    assert [g for g, names in references.REFERENCES.items() if not names] == ["trained_model"]


def test_library_references_exist_where_the_table_says():
    """Each imgrec_lib name in the table is a real function, class or constant of the library."""
    import importlib

    for grade_id, names in references.REFERENCES.items():
        for name in names:
            if name.startswith("imgrec_lib."):
                module, attr = name.rsplit(".", 1)
                assert hasattr(importlib.import_module(module), attr), f"{grade_id}: {name} does not exist"


def test_re_exports_are_followed():
    assert references.canonical("imgrec_lib.losses.softmax") == "imgrec_lib.activations.softmax"
    assert references.canonical("imgrec_lib.pooling.conv_output_size") == "imgrec_lib.conv.conv_output_size"
    assert references.canonical("imgrec_lib.numpy_net.rank_classes") == "imgrec_lib.inference.rank_classes"
    assert references.canonical("imgrec_lib.widgets.optim.adam_step") == "imgrec_lib.optim.adam_step"
    assert references.canonical("imgrec_lib.augment.F.conv2d") == "torch.nn.functional.conv2d"
    assert references.canonical("torch.nn.functional.conv2d") == "torch.nn.functional.conv2d"


# ----------------------------------------------------------------------------- no false positives


@pytest.mark.parametrize("prefix", [f"{n:02d}" for n in range(10)])
def test_the_instructors_answers_and_the_lessons_demo_cells_are_not_flagged(prefix):
    sub, release = submission(prefix)
    assert references.find_reference_copies(sub, release) == {}  # in the child process, under its limits
    # The release itself (unanswered, demo cells that call F.conv2d etc.) is not flagged either.
    assert references.read_reference_copies(copy.deepcopy(release), release) == {}
    # Nor the instructor's executed notebook as a whole (outputs, demo and scratch cells included).
    solution = _read(_lesson_of(prefix), "solutions")
    assert references.read_reference_copies(solution, release) == {}


def test_every_exercise_is_searched():
    """A solution that is not flagged must be because it is clean, not because it was skipped:
    putting one reference call into each answer flags exactly that exercise."""
    for prefix, grade_id in all_exercises():
        names = references.REFERENCES[grade_id]
        if not names:
            continue
        name = next(n for n in names if not n.startswith("torch.Tensor."))
        module, attr = name.rsplit(".", 1)
        lesson = _lesson_of(prefix)
        answer = _read(lesson, "solutions").cells[_answers(_read(lesson, "solutions"))[grade_id]].source
        sub, release = submission(prefix, {grade_id: f"import {module}\n{answer}\n_x = {module}.{attr}\n"})
        found = references.read_reference_copies(sub, release)
        assert list(found) == [grade_id], f"{grade_id}: {name} was not found alone, got {found}"


# ----------------------------------------------------------------------------- delegating answers

CONV2D = "def conv2d(x, w, b=None, stride=1, padding=0):\n"


def flagged(prefix, answers=None, cells_before=None) -> dict[str, list[str]]:
    """What the reader finds (in this process: the child process's limits are tested on their own)."""
    return references.read_reference_copies(*submission(prefix, answers, cells_before))


def only(found: dict[str, list[str]], grade_id: str, *fragments: str) -> str:
    """The reasons of the one flagged exercise, checked to contain every fragment."""
    assert list(found) == [grade_id], found
    text = "\n".join(found[grade_id])
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    return text


def test_00_make_grid_with_an_alias_import_in_a_lambda():
    found = flagged("00", {"make_grid": "import torchvision.utils as U\n"
                                        "make_grid = lambda images, ncols=8, pad_value=1.0: "
                                        "U.make_grid(images, nrow=ncols, padding=1, pad_value=pad_value)"})
    only(found, "make_grid", "torchvision.utils.make_grid", "written `U.make_grid`", "answer cell, line 2")


def test_00_normalize_batch_via_torchvision_functional():
    found = flagged("00", {"normalize_batch": (
        "from torchvision.transforms import functional as TF\n"
        "def normalize_batch(X):\n"
        "    mean, std = X.mean(dim=(0, 2, 3)), X.std(dim=(0, 2, 3), correction=0)\n"
        "    return TF.normalize(X, mean.tolist(), std.tolist()), mean, std\n")})
    only(found, "normalize_batch", "normalize_batch calls torchvision.transforms.functional.normalize", "line 4")


def test_01_conv2d_by_direct_attribute():
    found = flagged("01", {"conv2d": CONV2D + "    return F.conv2d(torch.from_numpy(x), torch.from_numpy(w)).numpy()"})
    only(found, "conv2d", "conv2d calls torch.nn.functional.conv2d (written `F.conv2d`) (answer cell, line 2)")


def test_01_conv2d_by_the_full_torch_path_and_by_the_library_module_of_the_setup_cell():
    found = flagged("01", {"conv2d": CONV2D + "    return torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w)).numpy()"})
    only(found, "conv2d", "torch.nn.functional.conv2d")
    found = flagged("01", {"conv2d": CONV2D + "    return conv.conv2d(x, w, b, stride, padding)"})  # setup: from imgrec_lib import conv
    only(found, "conv2d", "imgrec_lib.conv.conv2d (written `conv.conv2d`)")


def test_01_conv2d_as_a_plain_assignment_or_import():
    only(flagged("01", {"conv2d": "conv2d = conv.conv2d"}), "conv2d", "imgrec_lib.conv.conv2d")
    only(flagged("01", {"conv2d": "import imgrec_lib.conv\nconv2d = imgrec_lib.conv.conv2d"}), "conv2d",
         "imgrec_lib.conv.conv2d")
    only(flagged("01", {"conv2d": "from imgrec_lib.conv import conv2d"}), "conv2d",
         "`conv2d` is imgrec_lib.conv.conv2d (answer cell, line 1)")


@pytest.mark.parametrize("answer, says", [
    ("import scipy.ndimage._nd_image as ndc\n" + "{conv2d}    return ndc.correlate(x, w)", "scipy.ndimage._nd_image.correlate"),
    ("from scipy.signal import _sigtools\n" + "{conv2d}    return _sigtools._correlateND(x, w, x)", "scipy.signal._sigtools"),
    ("{conv2d}    from skimage.filters import correlate_sparse\n    return correlate_sparse(x, w, mode='valid')",
     "skimage.filters.correlate_sparse"),
])
def test_01_conv2d_by_scipys_c_modules_or_skimages_filters(answer, says):
    """The C functions under scipy.ndimage.correlate and scipy.signal.correlate, and skimage's filters, are
    library answers too (R6, R7 of an outside tester)."""
    only(flagged("01", {"conv2d": answer.format(conv2d=CONV2D)}), "conv2d", says)


def test_01_conv2d_by_a_from_import_with_rename():
    found = flagged("01", {"conv2d": "from imgrec_lib.conv import conv2d as c\n" + CONV2D + "    return c(x, w, b, stride, padding)"})
    only(found, "conv2d", "conv2d calls imgrec_lib.conv.conv2d (written `c`) (answer cell, line 3)")


def test_01_conv2d_through_a_name_assigned_in_another_cell():
    found = flagged("01", {"conv2d": CONV2D + "    return ref(x, w, b, stride, padding)"},
                    {"conv2d": ["import torch.nn.functional as G\nref = G.conv2d"]})
    only(found, "conv2d", "conv2d calls torch.nn.functional.conv2d (written `ref`)")


def test_01_conv2d_through_helpers_in_another_cell_two_levels_deep():
    helper = ("def helper(x, w):\n    return inner(x, w)\n\n"
              "def inner(x, w):\n    from scipy import signal\n    return signal.correlate(x, w, mode='valid')\n")
    found = flagged("01", {"conv2d": CONV2D + "    return helper(x, w)"}, {"conv2d": [helper]})
    only(found, "conv2d", "conv2d calls the function `helper`", "`inner`", "scipy.signal.correlate", "line 6")


HELPER = "def helper(x, w):\n    import torch.nn.functional as F\n    return F.conv2d(x, w)\n"


@pytest.mark.parametrize("put, call", [
    ("table = {}\ntable['k'] = helper", "table['k'](x, w)"),
    ("tools = []\ntools.append(helper)", "tools[0](x, w)"),
    ("class Toolbox:\n    run = staticmethod(helper)\ntools = []\ntools.append(Toolbox())", "tools[0].run(x, w)"),
    ("np.helper_xyz = helper", "np.helper_xyz(x, w)"),
])
def test_01_conv2d_through_a_helper_put_in_a_container_or_on_a_module_in_another_cell(put, call):
    """What a name stands for includes what another cell put in it by item assignment, ``.append`` or
    an attribute set on a module (an outside tester got past the reader with each)."""
    found = flagged("01", {"conv2d": CONV2D + f"    return {call}"}, {"conv2d": [HELPER, put]})
    only(found, "conv2d", "torch.nn.functional.conv2d")


@pytest.mark.parametrize("put, call", [
    ("setattr(np, 'xx', helper)", "np.xx(x, w)"),
    ("setattr(np, 'x' + 'x', helper)", "np.xx(x, w)"),
    ("object.__setattr__(np, 'xx', helper)", "np.xx(x, w)"),
    ("np.linalg.xx = helper", "np.linalg.xx(x, w)"),
    ("import types\na = types.SimpleNamespace(b=types.SimpleNamespace())\na.b.c = helper", "a.b.c(x, w)"),
    ("class Box:\n    pass\nbox = Box()\nbox.run = helper", "box.run(x, w)"),
    ("class Box:\n    pass\nsetattr(Box, 'run', staticmethod(helper))", "Box.run(x, w)"),
    ("np.__dict__['xx'] = helper", "np.xx(x, w)"),
    ("vars(np).update(xx=helper)", "np.xx(x, w)"),
    ("for name, f in [('xx', helper)]:\n    setattr(np, name, f)", "np.xx(x, w)"),
    ("def install():\n    np.linalg.xx = helper\ninstall()", "np.linalg.xx(x, w)"),
    ("def install():\n    setattr(np, 'xx', helper)\ninstall()", "np.xx(x, w)"),
    ("def install(m, f):\n    setattr(m, 'xx', f)\ninstall(np, helper)", "np.xx(x, w)"),
    ("def install(m):\n    m.linalg.xx = helper\ninstall(np)", "np.linalg.xx(x, w)"),
    ("exec('np.xx = helper')", "np.xx(x, w)"),
    ("import sys\nsys.modules[__name__].xx = helper", "xx(x, w)"),
    ("import sys\nsetattr(sys.modules['__main__'], 'xx', helper)", "xx(x, w)"),
    ("table = {}\ndict.__setitem__(table, 'k', helper)", "table['k'](x, w)"),
    ("import operator\ntable = {}\noperator.setitem(table, 'k', helper)", "table['k'](x, w)"),
])
def test_01_conv2d_through_a_helper_stored_by_setattr_nested_targets_loops_or_functions(put, call):
    """What code stores into an object (an attribute at any depth, ``setattr``, ``__dict__``, in a loop,
    inside a function it calls, in a literal ``exec``) may be what a use of that object reaches; what it
    stores into the notebook's own module is a name of the notebook's."""
    found = flagged("01", {"conv2d": CONV2D + f"    return {call}"}, {"conv2d": [HELPER, put]})
    only(found, "conv2d", "torch.nn.functional.conv2d")


@pytest.mark.parametrize("put", ["setattr(np, 'conv_impl', helper)", "np.conv_impl = helper",
                                 "vars(np)['conv_impl'] = helper"])
def test_01_a_helper_stored_on_numpy_flags_only_the_answers_that_take_it(put):
    """Stored before every exercise, the helper is reached by ``np.conv_impl`` only: the other answers'
    ``np.zeros`` and ``np.pad`` do not make them users of it."""
    found = flagged("01", {"conv2d": CONV2D + "    return np.conv_impl(x, w)"}, {"conv_output_size": [HELPER, put]})
    only(found, "conv2d", "torch.nn.functional.conv2d")


@pytest.mark.parametrize("use, put", [
    ("np.xx(x, w)", ["setattr(np, 'xx', helper)", "import numpy as np"]),
    ("xp.linalg.xx(x, w)", ["np.linalg.xx = helper", "import numpy as xp"]),
    ("xx(x, w)", ["np.linalg.xx = helper", "from numpy.linalg import xx"]),
])
def test_01_a_helper_stored_on_a_module_is_reached_under_its_other_names(use, put):
    """A module is one object: what a cell stored on it under one name is there under another alias, after a
    fresh import, and for a name imported from it."""
    found = flagged("01", {"conv2d": CONV2D + f"    return {use}"}, {"conv2d": [HELPER, *put]})
    only(found, "conv2d", "torch.nn.functional.conv2d")


def test_01_a_reference_stored_on_a_module_is_named_where_it_is_used():
    found = flagged("01", {"conv2d": CONV2D + "    return np.linalg.xx(x, w)"}, {"conv2d": ["np.linalg.xx = F.conv2d"]})
    only(found, "conv2d", "calls torch.nn.functional.conv2d (written `np.linalg.xx`) (answer cell, line 2)")


@pytest.mark.parametrize("rebind", ["conv2d = lambda *a, **k: conv.conv2d(*a, **k)",
                                    "exec('conv2d = lambda *a, **k: conv.conv2d(*a, **k)')",
                                    "import sys\nsys.modules[__name__].conv2d = conv.conv2d"])
def test_01_a_student_cell_that_rebinds_the_graded_name_after_a_clean_answer(rebind):
    """The tests grade whatever ``conv2d`` is when they run: a cell after the answer counts."""
    sub, release = submission("01")
    at = _answers(sub)["conv2d"]
    sub.cells.insert(at + 1, nbformat.v4.new_code_cell(rebind))
    found = references.find_reference_copies(sub, release)
    only(found, "conv2d", "imgrec_lib.conv.conv2d")


def test_01_obfuscation_is_reported_for_the_exercise_that_contains_it():
    found = flagged("01", {"conv2d": CONV2D + "    name = ''.join(['conv', '2d'])\n"
                                              "    return getattr(__import__('imgrec_lib.conv', fromlist=['x']), name)(x, w)"})
    only(found, "conv2d", "getattr with a computed name: review by hand", "__import__")
    found = flagged("01", {"conv2d_naive": "def conv2d_naive(x, w, b=None, stride=1, padding=0):\n"
                                           "    return eval('conv' + '.conv2d_naive')(x, w, b, stride, padding)"})
    only(found, "conv2d_naive", "uses eval", "imgrec_lib.conv.conv2d_naive")


def test_01_literal_getattr_importlib_and_sys_modules_are_resolved():
    only(flagged("01", {"conv2d": CONV2D + "    return getattr(F, 'conv' + '2d')(torch.tensor(x), torch.tensor(w)).numpy()"}),
         "conv2d", "torch.nn.functional.conv2d")
    only(flagged("01", {"conv2d": "import importlib\n" + CONV2D +
                                  "    return importlib.import_module('imgrec_lib.conv').conv2d(x, w, b, stride, padding)"}),
         "conv2d", "imgrec_lib.conv.conv2d", "importlib.import_module")
    only(flagged("01", {"conv2d": "import sys\n" + CONV2D +
                                  "    return sys.modules['imgrec_lib.conv'].conv2d(x, w, b, stride, padding)"}),
         "conv2d", "imgrec_lib.conv.conv2d", "sys.modules")
    only(flagged("01", {"conv2d": CONV2D + "    return globals()['conv'].conv2d(x, w, b, stride, padding)"}),
         "conv2d", "imgrec_lib.conv.conv2d", "globals()")



def test_09_a_module_the_notebook_writes_and_imports_is_reported():
    """Issue 15's route: the reference imported through a .py file written at run time, its folder put on
    sys.path; the import, each name taken from that module, and the sys.path change are reported."""
    writer = ("import sys, os, tempfile\nfolder = tempfile.mkdtemp()\n"
              "with open(os.path.join(folder, '_helper_mod.py'), 'w') as f:\n"
              "    f.write('from imgrec_lib.normalization import batchnorm_backward as bb, dropout_forward as df')\n"
              "sys.path.insert(0, folder)\nimport _helper_mod\n")
    found = flagged("09", {"batchnorm_backward": writer + "def batchnorm_backward(dout, x, gamma, eps=1e-5):\n"
                                                          "    return _helper_mod.bb(dout, x, gamma, eps)\n",
                           "dropout_forward": "def dropout_forward(x, p=0.5, training=True, seed=None):\n"
                                              "    return _helper_mod.df(x, p, training, seed)\n"})
    assert sorted(found) == ["batchnorm_backward", "dropout_forward"], found
    text = "\n".join(found["batchnorm_backward"])
    for fragment in ("changes sys.path", "imports _helper_mod, a module not installed", "uses _helper_mod.bb"):
        assert fragment in text, text
    only({"dropout_forward": found["dropout_forward"]}, "dropout_forward", "uses _helper_mod.df", "not installed")
    # the writer in a cell of its own, before the exercise: the answer's name from that module is reported
    only(flagged("09", {"dropout_forward": "def dropout_forward(x, p=0.5, training=True, seed=None):\n"
                                           "    return _helper_mod.df(x, p, training, seed)\n"},
                 {"dropout_forward": [writer]}), "dropout_forward", "_helper_mod.df", "review by hand")
    # an installed module is no finding
    assert flagged("09", {"dropout_forward": "import math\ndef dropout_forward(x, p=0.5, training=True, seed=None):\n"
                                             "    keep = np.random.default_rng(seed).random(x.shape) >= p\n"
                                             "    return (x * keep / (1 - p) if p < 1 else 0 * x) if training else x.copy(), "
                                             "keep if training else np.ones(x.shape, bool)\n"}) == {}


@pytest.mark.parametrize("lookup", [
    "inspect.getattr_static(conv, 'conv2d')",
    "inspect.getattr_static(imgrec_lib.conv, 'conv' + '2d')",
    "pkgutil.resolve_name('imgrec_lib.conv:conv2d')",
    "pkgutil.resolve_name('imgrec_lib.conv.conv2d')",
    "dict(inspect.getmembers(conv))['conv2d']",
    "dict(inspect.getmembers(conv)).get('conv2d')",
    "operator.attrgetter('conv2d')(conv)",
    "operator.itemgetter('conv2d')(vars(conv))",
    "conv.__dict__['conv2d']",
    "vars(conv)['conv2d']",
    "vars(conv).get('conv2d')",
    "object.__getattribute__(conv, 'conv2d')",
    "conv.__getattribute__('conv2d')",
    "globals().get('conv').conv2d",
    "getattr(sys.modules[__name__], 'conv').conv2d",
    "operator.attrgetter('conv.conv2d')(sys.modules['__main__'])",
    "importlib.import_module('imgrec_lib.conv').__dict__.get('conv2d')",
])
def test_01_run_time_lookups_that_fold_to_a_reference_are_a_use_of_it(lookup):
    """Issue 15's outside tester: each of these reached imgrec_lib.conv.conv2d unseen."""
    imports = "import importlib, inspect, operator, pkgutil, sys, imgrec_lib.conv\n"
    found = flagged("01", {"conv2d": imports + CONV2D + f"    return {lookup}(x, w, b, stride, padding)"})
    only(found, "conv2d", " imgrec_lib.conv.conv2d (written `", "answer cell, line 3")
    # bound in a cell of its own and used by name from the answer
    found = flagged("01", {"conv2d": CONV2D + "    return ref(x, w, b, stride, padding)"},
                    {"conv2d": [imports + f"ref = {lookup}"]})
    only(found, "conv2d", "imgrec_lib.conv.conv2d (written `ref`)")


def test_01_a_string_that_names_a_reference_and_lookups_by_name_are_reported():
    """A string naming a reference is a use of it whatever reads it; a run-time lookup by name, a
    string naming a module that holds a reference, and a reference's own name beside a lookup are
    for review by hand even when the analyser cannot tell what they reach."""
    found = flagged("01", {"conv2d": "from somewhere_of_mine import load\n" + CONV2D +
                                     "    return load('imgrec_lib.conv' + ':conv2d')(x, w, b, stride, padding)"})
    only(found, "conv2d", "names imgrec_lib.conv.conv2d in a string ('imgrec_lib.conv:conv2d') (answer cell, line 3)")
    found = flagged("01", {"conv2d": "import importlib\n" + CONV2D + "    m = importlib.import_module(x.module_name)\n"
                                     "    return m.conv2d(x, w, b, stride, padding)"})
    only(found, "conv2d", "importlib.import_module with a computed name, which hides what is called: review by hand")
    found = flagged("01", {"conv2d": CONV2D + "    spec = 'imgrec_lib.conv'\n    return spec"})
    only(found, "conv2d", "names 'imgrec_lib.conv', which holds imgrec_lib.conv.conv2d, in a string: review by hand")
    found = flagged("01", {"conv2d": "modules = [conv]\n" + CONV2D +
                                     "    return getattr(modules[0], 'conv2d')(x, w, b, stride, padding)"})
    only(found, "conv2d", "names 'conv2d' (as imgrec_lib.conv.conv2d is named) in a string, beside a run-time "
                          "lookup: review by hand")
    found = flagged("01", {"conv2d": "import operator\n" + CONV2D + "    return operator.methodcaller('conv2d', x, w)(conv)"})
    only(found, "conv2d", "imgrec_lib.conv.conv2d (written `operator.methodcaller('conv2d', x, w)(conv)`)")
    found = flagged("01", {"conv2d": "import inspect\n" + CONV2D + "    f = inspect.getattr_static(x.owner, x.name)\n"
                                     "    return f(x, w)"})
    only(found, "conv2d", "uses inspect.getattr_static, which looks a name up at run time: review by hand")
    # the same names in an honest answer's message or a plain dictionary are no finding
    assert flagged("01", {"conv2d": CONV2D + "    sizes = {'conv2d': 1}\n"
                                             "    raise ValueError('conv2d: ' + str(sizes['conv2d']))"}) == {}


@pytest.mark.parametrize("answer", [
    "import torchvision\nResidualBlock = type(torchvision.models.resnet18().layer1[0])",
    "from torchvision.models import resnet34\nResidualBlock = type(resnet34().layer1[0])",
    "from torchvision import models as tvm\nnet = tvm.wide_resnet50_2()\nResidualBlock = net.layer2[1].__class__",
    "import torchvision\nnet = torchvision.models.resnet.resnet18()\nResidualBlock = type(next(net.layer1.children()))",
    "ResidualBlock = type(models.SmallResNet().blocks[0])",
])
def test_09_a_residual_block_taken_from_a_ready_made_network(answer):
    """The class of a block inside a network made by the reference's own module is that reference."""
    only(flagged("09", {"residual_block": answer}), "residual_block", "takes the class of an object made by")


def test_09_the_class_of_another_ready_made_network_part_or_one_loaded_by_name_is_for_review():
    found = flagged("09", {"residual_block": "import torchvision\nResidualBlock = type("
                                             "torchvision.models.segmentation.fcn_resnet50().backbone.layer1[0])"})
    only(found, "residual_block", "takes the class of an object made by torchvision.models.segmentation.fcn.fcn_resnet50",
         "review by hand")
    found = flagged("09", {"residual_block": "import copy, torchvision\ndef ResidualBlock(c_in, c_out, stride=1):\n"
                                             "    return copy.deepcopy(torchvision.models.segmentation.fcn_resnet50()"
                                             ".backbone.layer1[0])"})
    only(found, "residual_block", "uses a part of a network made by torchvision.models.segmentation.fcn.fcn_resnet50",
         "review by hand")
    found = flagged("09", {"residual_block": "import copy, torchvision\ndef ResidualBlock(c_in, c_out, stride=1):\n"
                                             "    return copy.deepcopy(torchvision.models.quantization.resnet18().layer1[0])"})
    only(found, "residual_block", "calls torchvision.models.quantization.resnet.resnet18")
    found = flagged("09", {"residual_block": "import torchvision\nnet = torchvision.models.get_model('resnet' + '18')\n"
                                             "ResidualBlock = type(net.layer1[0])"})
    only(found, "residual_block", "uses torchvision.models.get_model, which looks a name up at run time: review by hand")
    found = flagged("09", {"residual_block": "import torch\nnet = torch.hub.load('pytorch/vision', 'resnet18')\n"
                                             "ResidualBlock = type(net.layer1[0])"})
    only(found, "residual_block", "uses torch.hub.load, which looks a name up at run time: review by hand")
    # the learner's own block, its __repr__ naming its own class, is no finding
    own = ("class ResidualBlock(nn.Module):\n    def __init__(self, c_in, c_out, stride=1):\n        super().__init__()\n"
           "        self.conv = nn.Conv2d(c_in, c_out, 3, stride, 1)\n"
           "    def forward(self, x):\n        return torch.relu(self.conv(x))\n"
           "    def __repr__(self):\n        return type(self).__name__ + self.__class__.__name__\n")
    assert flagged("09", {"residual_block": own}) == {}


def test_an_import_of_a_module_that_is_not_installed_is_a_finding_only_beside_code_that_could_make_it():
    """A typo (`import torchvisionx`) can only fail: no finding. With code of the student's that could
    make such a module at run time (a file written, sys.modules or sys.path changed), it is reported."""
    typo = "import torchvisionx\n" + CONV2D + "    return torchvisionx.ops.conv2d(x, w)"
    assert flagged("01", {"conv2d": typo}) == {}
    assert flagged("01", {"conv2d": "from torchvisionx import conv2d\n"}) == {}
    makers = {"%%writefile torchvisionx.py\nfrom imgrec_lib.conv import conv2d": "the %writefile magic",
              "import sys\nsys.modules['torchvisionx'] = conv": "the change to `sys.modules['torchvisionx']`",
              "import sys, types\nsys.modules.update(torchvisionx=types.SimpleNamespace(ops=conv))": "sys.modules.update",
              "from pathlib import Path\nPath('torchvisionx.py').write_text(source)": ".write_text`",
              "!cp helper.py torchvisionx.py": "`get_ipython().system`",
              "import site\nsite.addsitedir('/tmp/mine')": "site.addsitedir"}
    for maker, said in makers.items():
        found = flagged("01", {"conv2d": typo}, {"conv2d": [maker]})
        only(found, "conv2d", "imports torchvisionx, a module not installed where grading runs that", said,
             "could make at run time: review by hand")
    # a file only read is no maker
    assert flagged("01", {"conv2d": typo}, {"conv2d": ["text = open('notes.txt').read()"]}) == {}


def test_code_nested_too_deeply_to_read_is_reported_not_a_crash():
    """`x = "a" + "a" + ...` thousands long: the reader's recursion runs out, so every answer is for review."""
    sub, release = submission("01", {"conv2d": "x = len\ny = x + " + " + ".join(["'a'"] * 2000) + "\n" + CONV2D + "    return y"})
    found = references.find_reference_copies(sub, release)
    assert sorted(found) == sorted(_answers(release)), found
    assert all(reasons == ["the notebook holds code nested too deeply to be read without running it, so it was not "
                           "read for reference copies: review it by hand"] for reasons in found.values()), found


def test_code_utf8_cannot_encode_is_not_a_crash():
    """A lone surrogate in a cell (valid JSON, `"\\ud800"`): Python cannot compile that cell, in the kernel
    or here, so it is no finding; the sizes of the cells are counted all the same."""
    sub, release = submission("03", None, {"relu": ["x = 1  # \ud800"]})
    assert references.find_reference_copies(sub, release) == {}


# ----------------------------------------------------------------------------- what reading costs the grader


def _grader_cost(read) -> tuple[object, float, int]:
    """(what `read()` returns, its seconds, the most memory Python allocated in this process meanwhile)."""
    import time
    import tracemalloc

    tracemalloc.start()
    started = time.monotonic()
    try:
        found = read()
        return found, time.monotonic() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _unread_everywhere(found: dict, release, *fragments: str) -> None:
    assert sorted(found) == sorted(_answers(release)), found
    for reasons in found.values():
        assert len(reasons) == 1 and reasons[0].endswith("so it was not read for reference copies: review it by hand")
        assert all(fragment in reasons[0] for fragment in fragments), (reasons, fragments)


@pytest.mark.parametrize("cells", [
    ["x = [" + ", ".join(["1"] * 350_000) + "]\n"],  # 1 MB in one cell (D1 of an outside tester: 4 MB, 2 GB)
    ["x = [" + ", ".join(["1"] * 30_000) + "]\n"] * 6,  # 90 kB cells, 540 kB in all
])
def test_a_notebook_with_too_much_code_is_not_read_and_costs_the_grader_nothing(cells):
    """A code cell over MAX_CELL_BYTES, or code cells together over MAX_CODE_BYTES, are not parsed:
    every exercise says so. Read as before (in the grader's process), the 1 MB list took ~330 MB
    and ~8 s."""
    sub, release = submission("03", None, {"relu": cells})
    found, seconds, memory = _grader_cost(lambda: references.find_reference_copies(sub, release))
    _unread_everywhere(found, release, "bytes of code" if len(cells) > 1 else "a code cell of 1,050,0")
    assert seconds < 2 and memory < 30e6, (seconds, memory)


def test_code_that_needs_more_memory_to_read_than_the_child_may_take_is_reported(monkeypatch):
    """Within the size limits the child process still has a memory limit of its own (RLIMIT_AS): past
    it the notebook is unread, and the grader's process does not grow."""
    monkeypatch.setattr(references, "MAX_CELL_BYTES", 10**7)
    monkeypatch.setattr(references, "MAX_CODE_BYTES", 10**7)
    monkeypatch.setattr(references, "READ_MEMORY_BYTES", 150 << 20)
    sub, release = submission("03", None, {"relu": ["x = [" + ", ".join(["1"] * 200_000) + "]\n"]})  # ~200 MB to read
    found, seconds, memory = _grader_cost(lambda: references.find_reference_copies(sub, release))
    _unread_everywhere(found, release, "code that needs more than 150 MB to read")
    assert memory < 30e6, memory


def test_code_that_takes_too_long_to_read_is_reported_and_holds_no_lock_of_the_workers(monkeypatch):
    """D2 of an outside tester: cells of many stores into a module (`np.fN = np.zeros`) took the reader
    70-250 s, under grading.PARSING, the lock every worker of an autograde run takes to parse. The child
    process is stopped after READ_SECONDS and takes no lock: another worker parses meanwhile."""
    import threading
    import time

    import grading

    monkeypatch.setattr(references, "READ_SECONDS", 2.0)
    code = "".join(f"np.f{i} = np.zeros\n" for i in range(2500))  # 49 kB: ~25 s to read
    sub, release = submission("03", None, {"relu": [code]})
    result: dict = {}
    reader = threading.Thread(target=lambda: result.update(found=references.find_reference_copies(sub, release)))
    started = time.monotonic()
    reader.start()
    time.sleep(0.5)
    other_worker_parsed = grading.PARSING.acquire(timeout=1)
    if other_worker_parsed:
        grading.PARSING.release()
    reader.join(timeout=30)
    assert other_worker_parsed, "the reader held grading.PARSING: the other workers waited"
    assert time.monotonic() - started < 8, time.monotonic() - started
    _unread_everywhere(result["found"], release, "code that took more than 2 s to read")


def test_01_conv_output_size_through_a_re_export():
    found = flagged("01", {"conv_output_size": "from imgrec_lib import pooling\nconv_output_size = pooling.conv_output_size"})
    only(found, "conv_output_size", "imgrec_lib.conv.conv_output_size")


def test_02_max_pool2d_with_an_alias_of_torch():
    found = flagged("02", {"max_pool2d": "import torch as T\n"
                                         "def max_pool2d(x, kernel_size=2, stride=None):\n"
                                         "    return T.nn.MaxPool2d(kernel_size, stride)(T.from_numpy(x)).numpy()"})
    only(found, "max_pool2d", "torch.nn.MaxPool2d")


def test_03_softmax_as_a_tensor_method_and_relu_from_the_library():
    found = flagged("03", {"softmax": "def softmax(z):\n    return torch.from_numpy(z).softmax(-1).numpy()"})
    only(found, "softmax", ".softmax() (torch.Tensor.softmax)")
    only(flagged("03", {"relu": "relu = activations.relu"}), "relu", "imgrec_lib.activations.relu")


def test_04_log_softmax_via_scipy_logsumexp_and_a_clean_cross_entropy_is_not_flagged():
    found = flagged("04", {"log_softmax": "from scipy.special import logsumexp\n"
                                          "def log_softmax(z):\n"
                                          "    return z - logsumexp(z, axis=-1, keepdims=True)"})
    # cross_entropy calls this log_softmax, but logsumexp is not a reference of cross_entropy.
    only(found, "log_softmax", "scipy.special.logsumexp")


def test_04_cross_entropy_may_use_the_librarys_log_softmax_but_not_its_cross_entropy():
    allowed = ("def cross_entropy(logits, y):\n"
               "    log_p = activations.log_softmax(np.asarray(logits, dtype=float), axis=1)\n"
               "    return float(-np.mean(log_p[np.arange(len(y)), y]))")
    assert flagged("04", {"cross_entropy": allowed}) == {}
    only(flagged("04", {"cross_entropy": "cross_entropy = losses.cross_entropy"}), "cross_entropy",
         "imgrec_lib.losses.cross_entropy")


def test_05_conv2d_backward_by_autograd():
    found = flagged("05", {"conv2d_backward": (
        "def conv2d_backward(dout, x, w, stride=1, padding=0):\n"
        "    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)\n"
        "    F.conv2d(xt, wt, stride=stride, padding=padding).backward(torch.tensor(dout))\n"
        "    return xt.grad.numpy(), wt.grad.numpy(), dout.sum(axis=(0, 2, 3))")})
    only(found, "conv2d_backward", ".backward() (torch.Tensor.backward)", "line 3")


def test_05_max_pool2d_backward_by_torch_func_jacobians():
    found = flagged("05", {"max_pool2d_backward": (
        "def max_pool2d_backward(dout, x, kernel_size=2, stride=None):\n"
        "    f = lambda t: F.max_pool2d(t, kernel_size, stride)\n"
        "    jac = torch.func.jacrev(f)(torch.tensor(x))\n"
        "    return np.einsum('nchw,nchwijkl->ijkl', dout, jac.numpy())")})
    only(found, "max_pool2d_backward", "torch.func.jacrev")


def test_09_an_answer_cell_that_is_only_a_star_import_of_the_library():
    found = flagged("09", {"dropout_backward": "from imgrec_lib.normalization import *\n"})
    only(found, "dropout_backward", "imgrec_lib.normalization.dropout_backward", "import *")


def test_06_adam_step_with_torch_optim_behind_a_magic():
    found = flagged("06", {"adam_step": "%time _ = 1\n"
                                        "def adam_step(params, grads, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):\n"
                                        "    opt = torch.optim.Adam([torch.from_numpy(p) for p in params], lr=lr)\n"
                                        "    opt.step()"})
    only(found, "adam_step", "adam_step calls torch.optim.Adam (answer cell, line 3)")


def test_07_my_cnn_as_the_course_cnn_and_trained_model_with_exec():
    only(flagged("07", {"my_cnn": "class MyCNN(models.CourseCNN):\n    pass"}), "my_cnn", "imgrec_lib.models.CourseCNN")
    # trained_model has no references (the library's training code is expected there), but hiding
    # code is still reported.
    found = flagged("07", {"trained_model": "exec('trained_model = models.CourseCNN()')"})
    only(found, "trained_model", "uses exec", "review by hand")


def test_07_train_step_with_the_librarys_fit():
    found = flagged("07", {"train_step": (
        "def train_step(model, X, y, optimizer, loss_fn):\n"
        "    from torch.utils.data import TensorDataset\n"
        "    return training.fit(model, TensorDataset(X, y), epochs=1).train_loss[-1]")})
    only(found, "train_step", "imgrec_lib.training.fit")


def test_08_predict_with_the_library_and_confusion_matrix_with_sklearn_names():
    found = flagged("08", {"predict": "def predict(model, paths, classes, top_k=3):\n"
                                      "    return [(p.path, p.top) for p in inference.predict_files(model, paths, classes, top_k)]"})
    only(found, "predict", "imgrec_lib.inference.predict_files")
    found = flagged("08", {"confusion_matrix": "from sklearn.metrics import confusion_matrix as cm\n"
                                               "def confusion_matrix(y_true, y_pred, num_classes):\n"
                                               "    return cm(y_true, y_pred, labels=list(range(num_classes)))"})
    only(found, "confusion_matrix", "sklearn.metrics.confusion_matrix (written `cm`) (answer cell, line 3)")


def test_08_predict_may_use_softmax_and_load_image():
    """The instructor's predict uses torch.softmax and inference.load_image on purpose."""
    answer = ("def predict(model, paths, classes, top_k=3):\n"
              "    X = torch.stack([inference.load_image(p) for p in paths])\n"
              "    model.eval()\n"
              "    with torch.no_grad():\n"
              "        probs = F.softmax(model(X), dim=1)\n"
              "    v, i = probs.topk(min(top_k, probs.shape[1]), dim=1)\n"
              "    return [(p, [(classes[k], q) for q, k in zip(a, b)]) for p, a, b in zip(paths, v.tolist(), i.tolist())]")
    assert flagged("08", {"predict": answer}) == {}


def test_a_delegating_helper_flags_only_the_exercise_that_uses_it():
    """A student cell may hold anything; only answers that reach it are flagged."""
    found = flagged("03", None, {"relu": ["def torch_relu(x):\n    return torch.relu(torch.from_numpy(x)).numpy()"]})
    assert found == {}
    found = flagged("03", {"relu": "def relu(x):\n    return torch_relu(x)"},
                    {"relu": ["def torch_relu(x):\n    return torch.relu(torch.from_numpy(x)).numpy()"]})
    only(found, "relu", "relu calls the function `torch_relu`", "torch.relu")


def test_local_names_and_parameters_shadow_the_notebooks():
    """A parameter or local variable named like a delegating global is the student's own value."""
    answer = CONV2D + "    ref = np.zeros(1)\n    return np.asarray(x) * 0 + ref.sum()"
    assert flagged("01", {"conv2d": answer}, {"conv2d": ["ref = F.conv2d"]}) == {}


def test_code_of_the_release_is_context_and_the_students_own_copy_is_not():
    """Obfuscation in a cell identical to the release (the lesson's own code) is not the student's;
    the same code in a cell the student wrote is reported for the exercise that reaches it."""
    helper = "def pick(name):\n    return getattr(np, name)"
    answer = {"relu": "def relu(x):\n    return pick('maximum')(x, 0.0)"}
    sub, release = submission("03", answer)
    at = _answers(release)["relu"]
    release.cells.insert(at, nbformat.v4.new_code_cell(helper))
    sub.cells.insert(at, nbformat.v4.new_code_cell(helper))
    assert references.find_reference_copies(sub, release) == {}
    sub.cells[at].source = helper + "  # mine"
    number = sum(c.cell_type == "code" for c in sub.cells[:at + 1])  # as counted in JupyterLab: code cells only
    assert number < at + 1, "the lesson has markdown cells before this one"
    only(references.find_reference_copies(sub, release), "relu", "getattr with a computed name",
         f"(code cell {number}, line 2)")


def test_flag_report_lines():
    lines = references.flag_report({"conv2d": ["a reason", "another"]})
    assert lines[0].startswith("conv2d: 2 findings")
    assert lines[1:] == ["    - a reason", "    - another"]
    assert references.flag_report({}) == []


def test_getattr_with_a_literal_name_of_an_installed_package_is_not_a_finding():
    """`getattr(np, 'maximum')` names what it calls (an outside tester's honest relu was flagged);
    the same getattr on the library's module still is."""
    assert flagged("03", {"relu": "def relu(x):\n    return getattr(np, 'maximum')(x, getattr(np, 'float64')(0))"}) == {}
    only(flagged("03", {"relu": "from imgrec_lib import activations\n"
                                "def relu(x):\n    return getattr(activations, 'relu')(x)"}), "relu", "imgrec_lib.activations.relu")


HONEST_WORKER = "def worker(x, w):\n    return x\n"


@pytest.mark.parametrize("code, kind", [
    ("import sys\nlist(map(sys.setprofile, [None]))", "off"),
    ("import functools, sys\nfunctools.partial(sys.setprofile, None)()", "off"),
    ("import sys\ngetattr(sys, 'set' + 'profile')(None)", "off"),
    ("import threading\nthreading.setprofile(None)", "off"),
    ("import sys\nsys.monitoring.set_events(1, 0)", "off"),
    ("import torch\nmodes = torch.utils._python_dispatch._disable_current_modes()", "off"),
    ("import sys\nsys.setprofile = lambda f: None", "patch"),
    ("import sys as s\ns._getframe = lambda *a: None", "patch"),
    ("import sys\nsetattr(sys, 'settrace', print)", "patch"),
    ("import sys\nvars(sys)['getprofile'] = print", "patch"),
    ("import types\nf = types.FunctionType(worker.__code__, {})", "code"),
    ("f = type(worker)(worker.__code__, {'np': np})", "code"),
    ("worker.__code__ = worker.__code__.replace(co_filename='<probes of the test cell>')", "code"),
    ("setattr(worker, '__co' + 'de__', compile('1', '<probes of the test cell>', 'eval'))", "code"),
    ("exec(worker.__code__, {})", "code"),
    ("import sys\nrec = [m for k, m in sys.modules.items() if k.endswith('.recorder')]", "internals"),
    ("import gc\nobjects = gc.get_objects()", "internals"),
    ("import sys\nframe_globals = sys._getframe(1).f_globals", "internals"),
    ("import ctypes\nctypes.pythonapi.Py_IncRef", "internals"),
    ("import threading\nthreading.Thread(target=worker, args=(1, 2)).start()", "beside"),
    ("from concurrent.futures import ThreadPoolExecutor as Pool\npool = Pool(2)", "beside"),
    ("import cProfile\ncProfile.Profile().enable()", "off"),
    ("import sys\neval('sys.setprofile')(None)", "off"),
    ("exec('import sys\\nsys.setprofile(None)')", "off"),
    ("import builtins\nbuiltins.xx = print", "patch"),
    ("import marshal\nf = marshal.loads(b'')", "code"),
    ("c = worker.__code__", "code"),
    ("f = (lambda: 0).__class__(worker.__code__, {})", "code"),
    ("import traceback\nframes = list(traceback.walk_stack(None))", "internals"),
    ("import sys\nf = getattr(sys, ''.join(reversed('eliforptes')))", "hidden"),
    ("import sys\nfound = [sys.modules.get(k) for k in ['a']]", "hidden"),
    ("import sys\nname = 'x'\nf = vars(sys)[name]", "hidden"),
    ("names = worker.__globals__['_names']", "internals"),
    ("names = [f.__globals__ for f in [worker]]", "internals"),
    ("g = getattr(worker, '__glo' + 'bals__')", "internals"),
    ("c = worker.__closure__", "internals"),
    ("c = getattr(worker, '__clo' + 'sure__')", "internals"),
    ("import inspect, sys\nfound = inspect.getclosurevars(sys.getprofile())", "internals"),
    ("from inspect import getclosurevars as gcv\nfound = gcv(worker)", "internals"),
    ("import sys\nhook = sys.gettrace()", "internals"),
    ("hook = list(map(lambda m: m.getprofile(), [Out[1]]))", "internals"),
    ("import torch\nmode = torch._C._pop_torch_dispatch_stack()", "off"),
    ("mode = list(map(lambda t: t._C._pop_torch_dispatch_stack(), [Out[1]]))", "off"),
    ("Out[1]._C._push_on_torch_dispatch_stack(None)", "off"),
    ("Out[1]._C._unset_dispatch_mode(0)", "off"),
    ("f = getattr(Out[1]._C, '_pop_torch_' + 'dispatch_stack')", "off"),
    # What runs inside a test cell before it sends the grader its token, or reads the token from the cells' source.
    ("get_ipython().events.register('pre_run_cell', lambda info: print(info.raw_cell))", "cells"),
    ("def grab(info):\n    pass\nip = get_ipython()\nip.events.register('pre_' + 'execute', grab)", "cells"),
    ("def install():\n    get_ipython().events.callbacks['pre_run_cell'].append(print)\ninstall()", "cells"),
    ("ev = getattr(get_ipython(), 'ev' + 'ents')", "cells"),
    ("f = getattr(Out[1].events, 'reg' + 'ister')", "cells"),
    ("ip = get_ipython()\nip.input_transformers_cleanup.append(lambda lines: lines)", "cells"),
    ("get_ipython().input_transformers_post.insert(0, lambda lines: lines)", "cells"),
    ("import ast\nget_ipython().ast_transformers.append(ast.NodeTransformer())", "cells"),
    ("get_ipython().input_transformer_manager.cleanup_transforms.append(print)", "cells"),
    ("ip = get_ipython()\nold = ip.run_cell\nip.run_cell = lambda *a, **k: old(*a, **k)", "cells"),
    ("ip = get_ipython()\nip.run_cell_async = ip.run_cell_async", "cells"),
    ("get_ipython().should_run_async = lambda *a, **k: False", "cells"),
    ("setattr(get_ipython(), 'transform_' + 'cell', print)", "cells"),
    ("from IPython.core.interactiveshell import InteractiveShell\nInteractiveShell.run_code = print", "cells"),
    ("get_ipython().compile = print", "cells"),
    ("get_ipython().kernel.do_execute = print", "cells"),
    ("h = get_ipython().history_manager", "cells"),
    ("h = getattr(get_ipython(), 'history' + '_manager')", "cells"),
    ("%history -l 1", "cells"),
    ("source = In[-1]", "cells"),
    ("source = _ih[-1] + _i + _ii + _iii", "cells"),
    ("source = _i12", "cells"),
    ("source = globals()['In']", "cells"),
    ("source = get_ipython().user_ns['_' + 'ih']", "cells"),
    ("import __main__\nsource = __main__.In", "cells"),
    ("import sys\nsys.addaudithook(lambda event, args: None)", "cells"),
    ("import linecache\nlines = linecache.cache", "cells"),
    ("import signal\nsignal.signal(signal.SIGALRM, lambda s, f: None)\nsignal.setitimer(signal.ITIMER_REAL, 0.01)", "beside"),
    ("from signal import alarm\nalarm(1)", "beside"),
    ("import weakref\nclass A:\n    pass\nkeep = A()\nweakref.finalize(keep, print)", "beside"),
    ("import gc\ngc.callbacks.append(lambda phase, info: None)", "beside"),
    ("class Late:\n    def __del__(self):\n        print(globals())", "beside"),
    ("import traceback\nlines = traceback.extract_stack()", "internals"),
    ("import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)", "socket"),
    ("from socket import socket as S\ns = S()", "socket"),
    ("s = __import__('sock' + 'et').socket()", "socket"),
    ("import os\npath = os.environ['IMGREC_' + 'SERVE_SOCKET']", "socket"),
    ("path = '/tmp/imgrec-serve.sock'", "socket"),
    ("import asyncio\nasyncio.open_unix_connection('/tmp/x')", "socket"),
    ("def globals():\n    return {}", "test call"),
    ("from os import environ as __import__", "test call"),
    ("def f():\n    global __import__\n    __import__ = print\nf()", "test call"),
    ("globals().update(__import__=print)", "test call"),
    ("globals()['glob' + 'als'] = print", "test call"),
    ("import sys\nsetattr(sys.modules['__main__'], 'globals', print)", "test call"),
    ("__builtins__ = {}", "test call"),
    ("import sys\nsys.meta_path.insert(0, object())", "test call"),
    ("import sys\nhooks = getattr(sys, 'path_' + 'hooks')", "test call"),
])
def test_code_that_blinds_the_record_of_what_runs_flags_every_exercise(code, kind):
    """Switching off the run-time record (R3 of an outside tester: through map(), functools.partial, a
    folded getattr), replacing sys's functions (R5), making or relabelling code objects (R1), reaching into
    frames, objects or sys.modules (R4), or starting a thread (R2): in any cell of the student's, used by
    an answer or not, each exercise of the notebook gets a finding that names the kind and the cell."""
    found = flagged("03", cells_before={"relu": [HONEST_WORKER, code]})
    assert set(found) == {"linear", "relu", "softmax"}, found
    number = sum(c.cell_type == "code" for c in submission("03", None, {"relu": [HONEST_WORKER, code]})[0].cells[
        :_answers(submission("03", None, {"relu": [HONEST_WORKER, code]})[0])["relu"]])
    for reasons in found.values():
        assert any(f"code cell {number} {references.ESCAPES[kind]}" in r for r in reasons), reasons


@pytest.mark.parametrize("code", [
    "%matplotlib inline", "%time x = 1", "%timeit -n 1 x = 1", "get_ipython().run_line_magic('matplotlib', 'inline')",
    "print(_)", "print(Out)", "x = 3\n_", "from IPython.display import display\ndisplay(1)",
    "import matplotlib.pyplot as plt\nplt.legend(['In', 'Out'])",
    "import traceback\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n    traceback.print_exc()",
    "def pick(globals=None):\n    return globals",
    "for _i in range(3):\n    print(_i)", "def f(_ii):\n    return _ii * 2",
])
def test_magics_and_the_output_history_are_not_an_escape(code):
    """The grading kernel keeps no output history (`_`, `Out` are empty), so reading them gives nothing away;
    only the input history (`In`, `_i`) holds a test cell's source, and its token for the grader."""
    assert flagged("03", cells_before={"relu": [HONEST_WORKER, code]}) == {}


def test_the_token_and_the_socket_findings_say_what_to_review():
    """An instructor reads what the code could do and where it is."""
    found = flagged("03", cells_before={"relu": ["get_ipython().events.register('pre_run_cell', print)",
                                                 "import socket\ns = socket.socket()", "globals = dict"]})
    text = "\n".join(found["linear"])
    assert "code cell 17 reaches into how IPython runs a cell or into the cells' source" in text, text
    assert "where a test cell holds its secret word for the grader (`get_ipython().events.register`, line 1)" in text
    assert "code cell 18 opens a socket or names the grader's socket, through which a test cell answers the grader" \
           " (`socket.socket`, line 2): review by hand" in text, text
    assert "code cell 19 changes what every test cell calls before it talks to the grader (`globals`, `__import__` " \
           "or `__builtins__` bound by the notebook, or the import machinery: `sys.meta_path`, `sys.path_hooks`) " \
           "(`globals`, line 1): review by hand" in text, text


def test_code_that_blinds_the_record_inside_an_answer_flags_that_exercise():
    """Inside an answer's function it runs when that answer is called: that exercise is flagged; at an
    answer cell's top level it runs with the cell: every exercise is."""
    inside = "import sys\ndef relu(x):\n    list(map(sys.setprofile, [None]))\n    return np.maximum(x, 0)\n"
    only(flagged("03", {"relu": inside}), "relu", "relu switches off the record of what runs (`sys.setprofile`)",
         "(answer cell, line 3)")
    top = "import sys\nsys.settrace = print\ndef relu(x):\n    return np.maximum(x, 0)\n"
    found = flagged("03", {"relu": top})
    assert set(found) == {"linear", "relu", "softmax"}, found
    assert all("the answer cell of relu replaces a function of a module" in "".join(r) for r in found.values()), found


@pytest.mark.parametrize("answer, says", [
    ("{conv2d}    return next(map(torch.convolution, [x], [w]))", "uses torch.convolution"),
    ("{conv2d}    return torch._C._nn.im2col(x, (3, 3), (1, 1), (0, 0), (1, 1))", "uses torch._C._nn.im2col"),
    ("from scipy.ndimage import _nd_image\n{conv2d}    return list(map(_nd_image.min_or_max_filter, [x]))",
     "scipy.ndimage._nd_image.min_or_max_filter"),
    ("import functools\n{conv2d}    return functools.reduce(getattr, ['nn', 'functional', 'conv2d'], torch)(x, w)",
     "uses torch.nn.functional.conv2d (written `functools.reduce("),
    ("{conv2d}    return next(map(getattr, [F], ['conv2d']))(x, w)", "hands getattr on as a value (`map(getattr"),
    ("import functools\n{conv2d}    pick = functools.partial(getattr, F)\n    return pick('conv2d')(x, w)",
     "hands getattr on as a value"),
])
def test_01_a_c_function_of_torch_or_scipy_through_map_reduce_or_a_handed_on_getattr(answer, says):
    """R6 of an outside tester: a C function the table does not name, called through map(); any torch,
    scipy.ndimage or scipy.signal code in an exercise answered with NumPy is for review by hand, and so is
    getattr handed to other code (map, functools.reduce, functools.partial)."""
    only(flagged("01", {"conv2d": answer.format(conv2d=CONV2D)}), "conv2d", says)


@pytest.mark.parametrize("answer", [
    "import torch as t\n{conv2d}    return t.nn.functional.conv2d(x, w)",
    "from torch import nn as _\n{conv2d}    return _.functional.conv2d(x, w)",
    "{conv2d}    return __import__('tor' + 'ch').nn.functional.conv2d(x, w)",
    "import importlib as il\n{conv2d}    return il.import_module('torch').nn.functional.conv2d(x, w)",
    "import sys\n{conv2d}    return sys.modules['torch'].nn.functional.conv2d(x, w)",
    "{conv2d}    return globals()['__builtins__'].__import__('torch').nn.functional.conv2d(x, w)",
    "import builtins\n{conv2d}    return getattr(builtins, '__import__')('torch.nn.functional', fromlist=['f']).conv2d(x, w)",
])
def test_01_aliases_of_torch_reach_the_reference(answer):
    only(flagged("01", {"conv2d": answer.format(conv2d=CONV2D)}), "conv2d", "torch.nn.functional.conv2d")


@pytest.mark.parametrize("prefix, answers, before", [
    ("01", {"conv2d": "import numpy as xp\nfrom numpy import einsum as es\n" + CONV2D +
                      "    xp_ = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))\n"
                      "    win = sliding_window_view(xp_, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]\n"
                      "    out = es('nchwij,fcij->nfhw', win, w)\n"
                      "    return out if b is None else out + b[None, :, None, None]"}, None),
    ("03", {"relu": "def relu(x):\n    return np.array([[max(v, 0.0) for v in row] for row in np.atleast_2d(x)]).reshape(x.shape)"},
     {"relu": ["import sys\nprint(sys.version, 'torch' in sys.modules)\nsys.stdout.flush()",
               "class Layer:\n    def __init__(self, **kw):\n        for k, v in kw.items():\n            setattr(self, k, v)\n"
               "        self.cache = []\n    def remember(self, x):\n        self.cache.append(x)\n",
               "results = []\nfor f in [np.maximum, np.minimum]:\n    results.append(f(1, 2))\n"
               "np.set_printoptions(precision=3)\nhelpers = {'pad': np.pad}\nhelpers['zero'] = np.zeros"]}),
    ("09", {"residual_block": "class ResidualBlock(nn.Module):\n    def __init__(self, c_in, c_out, stride=1):\n"
                              "        super().__init__()\n        for i, c in enumerate((c_in, c_out)):\n"
                              "            setattr(self, f'bn{i}', nn.BatchNorm2d(c))\n"
                              "        self.conv = nn.Conv2d(c_in, c_out, 3, stride, 1)\n"
                              "    def forward(self, x):\n        return torch.relu(self.conv(self.bn0(x)))\n"}, None),
])
def test_honest_helpers_loops_comprehensions_setattr_on_self_and_numpy_aliases_are_not_flagged(prefix, answers, before):
    assert flagged(prefix, answers, before) == {}


@pytest.mark.parametrize("code", [
    "import grading.serve\ngrading.serve.Recorder = object\n",
    "from grading import recorder\nrecorder.Recorder.__enter__ = lambda self: self\n",
    "import sys\nsys.modules['grading.recorder'].MAX_NAMES = 0\n",
    "__imgrec_serve = print\n",
    "import sys, types\nsys.modules['grad' + 'ing.serve'] = types.SimpleNamespace(serve=print)\n",
    "import importlib\nserve = importlib.import_module(''.join(['grad', 'ing.serve']))\n",
])
def test_code_that_reaches_the_graders_own_package_flags_every_exercise(code):
    """The record of what runs (grading/recorder.py) lives in the kernel: a cell that imports or names
    the grader's package, wherever it is, is reported for every exercise of the notebook."""
    found = flagged("03", cells_before={"relu": [code]})
    assert set(found) == {"linear", "relu", "softmax"}, found
    assert all(any("`grading`, the grader's own package" in r for r in reasons) for reasons in found.values()), found
