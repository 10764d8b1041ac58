"""What an answer calls while it is graded (grading/recorder.py), and which of that is a finding
(grading/references.runtime_findings): each spelling an outside tester got past the static reader,
run the way the kernel runs an answer (grading/serve.answer, the probes through serve.arguments_of),
and the instructor's honest answers, which must give no finding.

The answers are compiled with a notebook cell's file name: code that no installed package holds is
the student's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from grading import recorder, references, serve
from grading.values import encode

ROOT = Path(__file__).resolve().parents[1]
CELL = "/tmp/ipykernel_4242/1234567.py"  # where ipykernel compiles a notebook's cell
RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 6, 6))
W = RNG.standard_normal((4, 3, 3, 3))
Z = RNG.standard_normal((4, 5))


def define(source: str) -> dict:
    """Run an answer cell's source as the kernel does; its namespace."""
    namespace = {"__name__": "__main__"}
    exec(compile(textwrap.dedent(source), CELL, "exec"), namespace)
    return namespace


def own(names: list[str]) -> list[str]:
    """`names` without what an empty recording notes in this process: threads or processes that other
    tests left running beside it."""
    with recorder.Recorder() as empty:
        pass
    return [name for name in names if name not in empty.names()]


def grade(exercise: str, source: str, *args, function: str | None = None) -> tuple[dict, dict]:
    """Call the answer's function through serve.answer as the judge's test does; (its reply, the
    run-time findings for the exercise)."""
    answer = define(source)[function or exercise]
    reply = serve.answer({0: answer}, {"argument": 0, "args": encode(list(args)), "kwargs": encode({})})
    test = f"test_{exercise}"
    return reply, references.runtime_findings({test: reply["used"]}, {test: exercise})


def flagged(exercise: str, source: str, *args, function: str | None = None, says: str = "") -> str:
    reply, found = grade(exercise, source, *args, function=function)
    assert "raised" not in reply, reply["raised"]
    assert exercise in found, f"not flagged; recorded {reply['used']}"
    text = " / ".join(found[exercise])
    assert says in text, text
    return text


# --- lesson 01: convolution -----------------------------------------------------------------

def test_conv2d_through_the_frame_globals():
    flagged("conv2d", '''
        import sys, torch
        def conv2d(x, w, b=None, stride=1, padding=0):
            t = sys._getframe().f_globals["torch"]
            return t.convolution(t.from_numpy(x), t.from_numpy(w), None, [stride] * 2, [padding] * 2,
                                 [1, 1], False, [0, 0], 1).numpy()
    ''', X, W, says="torch.convolution")


@pytest.mark.parametrize("name", [recorder.PROBES, str(ROOT / "grading" / "recorder.py")])
def test_conv2d_with_its_code_relabelled_as_the_graders(name):
    """The probes' and the grader's code are known by their code objects, not by a file name the
    student's code can give itself (R1 of an outside tester: full marks, no finding, before)."""
    flagged("conv2d", f'''
        import torch
        import torch.nn.functional as F
        def helper(x, w, stride, padding):
            return [F.conv2d(t, torch.from_numpy(w), stride=stride, padding=padding) for t in [torch.from_numpy(x)]][0]
        def relabel(code):
            consts = tuple(relabel(c) if isinstance(c, type(code)) else c for c in code.co_consts)
            return code.replace(co_filename={name!r}, co_consts=consts)
        helper.__code__ = relabel(helper.__code__)
        def conv2d(x, w, b=None, stride=1, padding=0):
            return helper(x, w, stride, padding).numpy()
        conv2d.__code__ = relabel(conv2d.__code__)
    ''', X, W, says="torch.")


def test_conv2d_by_skimages_correlate_sparse_or_scipys_c_module():
    """Library answers of a NumPy exercise, with no trick (R7 of an outside tester), and scipy.ndimage's C
    function called directly (through map() it is out of the profile's sight: the static reader's)."""
    flagged("conv2d", '''
        import numpy as np
        from skimage.filters import correlate_sparse
        def conv2d(x, w, b=None, stride=1, padding=0):
            return np.stack([correlate_sparse(x, w[f][None], mode="valid")[:, 0] for f in range(len(w))], axis=1)
    ''', X, W, says="skimage.filters._sparse.correlate_sparse")
    flagged("conv2d", '''
        import numpy as np
        import scipy.ndimage._nd_image as ndc
        def conv2d(x, w, b=None, stride=1, padding=0):
            out = np.zeros(x.shape[:1] + w.shape[:1] + x.shape[2:])
            ndc.correlate(x[0, 0], w[0, 0], out[0, 0], 0, 0.0, (0, 0))
            return out
    ''', X, W, says="scipy.ndimage._nd_image.correlate")


def test_conv2d_as_a_3d_convolution_from_a_module_kept_in_a_list():
    flagged("conv2d", '''
        import torch.nn.functional
        KEPT = [torch.nn.functional]
        def conv2d(x, w, b=None, stride=1, padding=0):
            out = KEPT[0].conv3d(torch.from_numpy(x)[:, :, None], torch.from_numpy(w)[:, :, None],
                                 stride=stride, padding=(0, padding, padding))
            return out[:, :, 0].numpy()
    ''', X, W, says="conv3d")


def test_conv2d_from_a_pickle_and_a_default_argument():
    text = flagged("conv2d", '''
        import pickle, torch
        def conv2d(x, w, b=None, stride=1, padding=0, _made=pickle.dumps(torch.nn.functional.conv2d)):
            return pickle.loads(_made)(torch.from_numpy(x), torch.from_numpy(w)).numpy()
    ''', X, W, says="torch.conv2d")
    assert "_pickle.loads, a way around" in text


def test_conv2d_run_by_an_interactive_interpreter():
    text = flagged("conv2d", '''
        import code
        def conv2d(x, w, b=None, stride=1, padding=0):
            found = {"x": x, "w": w}
            code.InteractiveInterpreter(found).runsource(
                "import torch; out = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w)).numpy()")
            return found["out"]
    ''', X, W, says="aten.convolution")
    assert "code.InteractiveInterpreter" in text


# --- lesson 02: pooling ---------------------------------------------------------------------

def test_max_pool2d_as_a_3d_pool_found_by_map_getattr():
    flagged("max_pool2d", '''
        import torch.nn.functional as F
        def max_pool2d(x, kernel_size=2, stride=None):
            [pool] = map(getattr, [F], ["max_pool3d"])
            return pool(F.torch.from_numpy(x)[:, :, None], (1, kernel_size, kernel_size), stride)[:, :, 0].numpy()
    ''', X, says="max_pool3d")


def test_avg_pool2d_as_an_lp_pool_from_an_unpickler():
    text = flagged("avg_pool2d", '''
        import io, pickle
        import torch.nn.functional as F
        SAVED = pickle.dumps(F.lp_pool2d)
        def avg_pool2d(x, kernel_size=2, stride=None):
            lp_pool = pickle.Unpickler(io.BytesIO(SAVED)).load()
            return lp_pool(F.torch.from_numpy(x), 1, kernel_size, stride).numpy() / kernel_size ** 2
    ''', np.abs(X), says="lp_pool2d")
    assert "_pickle.Unpickler.load" in text, text


# --- lesson 03: activations -----------------------------------------------------------------

def test_relu_in_place_variant():
    text = flagged("relu", '''
        import torch
        def relu(x):
            return torch.relu_(torch.tensor(x)).numpy()
    ''', Z)
    assert text.startswith("while graded, relu called torch.tensor, torch.relu_") and "aten.relu_" in text, text


def test_relu_by_reduce_getattr_and_threshold():
    flagged("relu", '''
        import functools, torch
        def relu(x):
            threshold = functools.reduce(getattr, ["nn", "functional", "threshold"], torch)
            return threshold(torch.from_numpy(x), 0.0, 0.0).numpy()
    ''', Z, says="threshold")


def test_relu_called_back_from_map_and_operator_call():
    flagged("relu", '''
        import operator, torch
        def relu(x):
            [t] = map(torch.relu, [torch.from_numpy(x)])
            return operator.call(getattr.__call__(torch, "relu"), t).numpy()
    ''', Z, says="aten.relu")


def test_relu_found_by_a_match_pattern_and_pydoc():
    text = flagged("relu", '''
        import pydoc
        def relu(x):
            match pydoc.locate("torch"):
                case object(from_numpy=make, clamp_min=clamp):
                    return clamp(make(x), 0).numpy()
    ''', Z, says="aten.clamp_min")
    assert "pydoc.locate" in text


def test_softmax_private_and_softmin_spellings():
    flagged("softmax", '''
        import torch
        def softmax(z):
            return [getattr][0](torch, "_softmax")(torch.from_numpy(z), -1, False).numpy()
    ''', Z, says="torch._softmax")
    flagged("softmax", '''
        import torch.nn.functional as F
        def softmax(z):
            return F.softmin(-F.torch.from_numpy(z), dim=-1).numpy()
    ''', Z, says="softmin")


def test_a_module_found_with_gc_and_a_profiler_running_the_answer():
    text = flagged("relu", '''
        import gc
        def relu(x):
            torch = next(m for m in gc.get_objects() if type(m).__name__ == "module" and m.__name__ == "torch")
            return torch.clamp(torch.from_numpy(x), min=0).numpy()
    ''', Z)
    assert "gc.get_objects, a way around" in text, text
    text = flagged("relu", '''
        import cProfile
        def relu(x):
            found = {"x": x}
            cProfile.runctx("import torch; out = torch.relu(torch.from_numpy(x)).numpy()", found, found)
            return found["out"]
    ''', Z)
    assert "cProfile.runctx" in text and "switched off" in text, text


def test_an_answer_that_runs_torch_in_a_thread_is_flagged():
    flagged("relu", '''
        import threading
        def relu(x):
            out = {}
            thread = threading.Thread(target=lambda: out.update(y=__import__("torch").relu(__import__("torch").from_numpy(x))))
            thread.start()
            thread.join()
            return out["y"].numpy()
    ''', Z, says="threading.Thread")


def test_an_answer_that_only_makes_a_lock_is_not_flagged():
    """A lock moves no work out of the record's sight; torch's code compiled from a string (a dataclass's
    __init__, which counts as no installed library's) makes one while lesson 07's train_step is graded."""
    reply, found = grade("relu", '''
        import dataclasses, threading
        import numpy as np
        @dataclasses.dataclass
        class Guarded:
            lock: object = dataclasses.field(default_factory=threading.Lock)
        def relu(x):
            with Guarded().lock:
                return np.maximum(x, 0)
    ''', Z)
    assert found == {}, (found, reply["used"])


def test_a_worker_thread_or_process_started_before_the_test_is_flagged():
    """Work handed to a thread or a process that an earlier cell started runs out of the record's sight
    (the profile and the dispatch mode are the calling thread's): that they run beside it is noted."""
    namespace = define('''
        import subprocess, threading, time
        import torch
        jobs, results, stop = [], [], threading.Event()
        def serve_forever():
            while not stop.is_set():
                if jobs:
                    results.append(torch.relu(torch.from_numpy(jobs.pop())).numpy())
                time.sleep(0.001)
        worker = threading.Thread(target=serve_forever, daemon=True)
        worker.start()
        def relu(x):
            jobs.append(x)
            while not results:
                time.sleep(0.001)
            return results.pop()
        helper = subprocess.Popen(["sleep", "30"])
    ''')
    try:
        reply = serve.answer({0: namespace["relu"]}, {"argument": 0, "args": encode([Z]), "kwargs": encode({})})
        found = references.runtime_findings({"t": reply["used"]}, {"t": "relu"})
    finally:
        namespace["stop"].set()
        namespace["worker"].join()
        namespace["helper"].kill()
        namespace["helper"].wait()
    assert reply["used"] == ["beside:a thread running the notebook's code", "beside:a process the notebook started"], reply
    assert found["relu"] == ["while graded, relu had a thread running the notebook's code and a process the notebook "
                             "started beside it, which the check of what it calls does not see"], found


def test_switching_the_recording_off_is_flagged():
    flagged("relu", '''
        import sys
        def relu(x):
            sys.setprofile(None)
            return x * (x > 0)
    ''', Z, says="switched off the check of what it calls (sys.setprofile)")


def test_a_torch_answer_that_pops_the_dispatch_mode_is_flagged():
    """In an exercise answered with torch the aten operators are expected; removing their record is not."""
    text = flagged("normalize_batch", '''
        import torch
        from torch.utils import _python_dispatch
        def normalize_batch(X):
            _python_dispatch._pop_mode()
            mean, var = X.mean(dim=(0, 2, 3)), X.var(dim=(0, 2, 3), unbiased=False)
            return torch.batch_norm(X, None, None, None, None, True, 0.0, 0.0, False), mean, var.sqrt()
    ''', torch.rand(2, 3, 4, 4), says="switched off the check of what it calls (the torch dispatch mode)")
    assert "torch.utils._python_dispatch._pop_mode" in text and "torch.batch_norm" in text, text


# --- lesson 05: backward passes -------------------------------------------------------------

def test_relu_backward_by_autograds_backward_node():
    flagged("relu_backward", '''
        import torch
        def relu_backward(dout, x):
            y = torch.relu(torch.tensor(x, requires_grad=True))
            return y.grad_fn(torch.from_numpy(dout)).detach().numpy()
    ''', Z, Z, says="aten.threshold_backward")


def test_conv2d_backward_by_an_aten_backward_operator():
    dout = RNG.standard_normal((2, 4, 4, 4))
    flagged("conv2d_backward", '''
        import torch
        aten = torch.ops.aten
        def conv2d_backward(dout, x, w, stride=1, padding=0):
            t = torch.from_numpy
            dx, dw, db = aten.convolution_backward(t(dout), t(x), t(w), [w.shape[0]], [stride] * 2, [padding] * 2,
                                                   [1, 1], False, [0, 0], 1, [True, True, True])
            return dx.numpy(), dw.numpy(), db.numpy()
    ''', dout, X, W, says="aten.convolution_backward")


def test_linear_backward_by_addmm():
    flagged("linear_backward", '''
        import torch
        def linear_backward(dout, x, w):
            t = torch.from_numpy
            return (torch.addmm(t(dout[:, :1]) * 0, t(dout), t(w)).numpy(), (t(dout).T @ t(x)).numpy(),
                    dout.sum(axis=0))
    ''', RNG.standard_normal((4, 3)), RNG.standard_normal((4, 5)), RNG.standard_normal((3, 5)), says="torch.addmm")


# --- lesson 06: optimization ----------------------------------------------------------------

def test_adam_step_by_the_fused_operator():
    flagged("adam_step", '''
        import torch
        def adam_step(params, grads, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
            t = [torch.from_numpy(p) for p in params]
            if not state:
                state.update(step=0, m=[p * 0 for p in params], v=[p * 0 for p in params])
            state["step"] += 1
            torch._fused_adam_(t, [torch.from_numpy(g) for g in grads], [torch.from_numpy(m) for m in state["m"]],
                               [torch.from_numpy(v) for v in state["v"]], [], [torch.tensor(float(state["step"]))],
                               lr=lr, beta1=betas[0], beta2=betas[1], weight_decay=weight_decay, eps=eps,
                               amsgrad=False, maximize=False)
    ''', [np.ones(3)], [np.ones(3)], {}, says="aten._fused_adam_")


def test_sgd_momentum_step_by_the_optimizer_kept_as_a_class_attribute():
    flagged("sgd_momentum_step", '''
        import torch
        class Stepper:
            optim = torch.optim
            def step(self, params, grads, lr, momentum):
                t = [torch.from_numpy(p) for p in params]
                for p, g in zip(t, grads):
                    p.grad = torch.from_numpy(g)
                self.optim.SGD(t, lr=lr, momentum=momentum).step()
        def sgd_momentum_step(params, grads, velocities, lr, momentum=0.9, weight_decay=0.0):
            Stepper().step(params, grads, lr, momentum)
    ''', [np.ones(3)], [np.ones(3)], [], 0.1, says="torch.optim.sgd.SGD")


# --- lesson 09: modern blocks ---------------------------------------------------------------

def test_batchnorm_forward_by_native_batch_norm():
    flagged("batchnorm_forward", '''
        import torch
        def batchnorm_forward(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
            t = torch.from_numpy
            return torch.native_batch_norm(t(x), t(gamma), t(beta), t(running_mean), t(running_var), training,
                                           momentum, eps)[0].numpy()
    ''', X, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), says="torch.native_batch_norm")


def test_dropout_forward_by_dropout1d_from_a_helper():
    flagged("dropout_forward", '''
        def helper():
            import torch.nn.functional
            return torch.nn.functional
        def dropout_forward(x, p=0.5, training=True, seed=None):
            F = helper()
            out = F.dropout1d(F.torch.from_numpy(x.reshape(len(x), -1, 1)), p, training).numpy().reshape(x.shape)
            return out, out != 0
    ''', Z, says="dropout1d")


RESIDUAL_PROBE = '''
def describe(ResidualBlock):
    import torch

    torch.manual_seed(0)
    net = ResidualBlock(4, 4, 1).double()
    with torch.no_grad():
        return net(torch.rand(2, 4, 7, 7, dtype=torch.float64))
'''


def residual_findings(source: str) -> dict:
    """The findings of a residual block answer, built and run by a probe as lesson 09's test does."""
    rec = recorder.Recorder()
    described, _ = serve.arguments_of(RESIDUAL_PROBE, [("describe(ResidualBlock)", False)], define(source), rec)
    assert "raised" not in described[0], described
    return references.runtime_findings({"test_residual_block": rec.names()}, {"test_residual_block": "residual_block"})


def test_residual_block_from_torchvisions_regnet():
    found = residual_findings('''
        import torch
        from torchvision.models import regnet
        class ResidualBlock(torch.nn.Module):
            def __init__(self, in_channels, out_channels, stride=1):
                super().__init__()
                self.block = regnet.ResBottleneckBlock(in_channels, out_channels, stride, torch.nn.BatchNorm2d,
                                                       torch.nn.ReLU, 1, 1.0, None)
            def forward(self, x):
                return self.block(x)
    ''')
    assert "torchvision.models.regnet.ResBottleneckBlock" in " ".join(found.get("residual_block", [])), found


def test_residual_block_made_elsewhere_and_only_run_here():
    """A torchvision block made in the answer cell, copied in __init__: its forward, run by torch, is seen."""
    found = residual_findings('''
        import copy, torch
        from torchvision.models.resnet import BasicBlock
        MADE = BasicBlock(4, 4)
        class ResidualBlock(torch.nn.Module):
            def __init__(self, in_channels, out_channels, stride=1):
                super().__init__()
                self.block = copy.deepcopy(MADE)
            def forward(self, x):
                return self.block(x)
    ''')
    assert "torchvision.models.resnet.BasicBlock.forward" in " ".join(found.get("residual_block", [])), found


# --- honest answers: no finding ---------------------------------------------------------------

def solution_cells(lesson: str) -> dict[str, str]:
    nb = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    return {c.metadata.nbgrader["grade_id"]: c.source for c in nb.cells
            if c.get("metadata", {}).get("nbgrader", {}).get("solution")}


SETUP = "import numpy as np\nimport torch\nfrom torch import nn\nfrom numpy.lib.stride_tricks import sliding_window_view\n"


@pytest.mark.parametrize("lesson, exercise, function, args", [
    ("01_convolution", "conv2d_naive", "conv2d_naive", (X, W)),
    ("01_convolution", "conv2d", "conv2d", (X, W)),
    ("03_dense_layers_and_activations", "relu", "relu", (Z,)),
    ("03_dense_layers_and_activations", "softmax", "softmax", (Z,)),
    ("05_backpropagation", "relu_backward", "relu_backward", (Z, Z)),
    ("06_optimization", "adam_step", "adam_step", ([np.ones(3)], [np.ones(3)], {})),
    ("09_modern_blocks", "batchnorm_forward", "batchnorm_forward", (X, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3))),
    ("09_modern_blocks", "dropout_forward", "dropout_forward", (Z, 0.5, True, 0)),  # numpy's generator takes a lock
    ("00_images_and_tensors", "normalize_batch", "normalize_batch", (torch.rand(2, 3, 4, 4),)),
])
def test_the_instructors_answers_call_nothing_that_counts(lesson, exercise, function, args):
    cells = solution_cells(lesson)
    helpers = cells.get("conv_output_size", "") if lesson == "01_convolution" else ""
    reply, _ = grade(exercise, SETUP + helpers + "\n" + cells[exercise], *args, function=function)
    assert "raised" not in reply, reply["raised"]
    used = own(reply["used"])
    assert references.runtime_findings({"t": used}, {"t": exercise}) == {}, used
    if exercise not in references.TORCH_EXERCISES:
        assert used == [], used


def test_the_library_offered_by_later_lessons_is_judged_by_the_reference_table():
    """Lesson 04's cross_entropy may call the library's log_softmax (the static reader agrees); lesson
    01's conv2d may not call the library's conv2d_naive, however it is reached."""
    logits, y = RNG.standard_normal((4, 3)), np.array([0, 2, 1, 1])
    reply, _ = grade("cross_entropy", '''
        import numpy as np
        from imgrec_lib import losses
        def cross_entropy(logits, y):
            return float(-np.mean(losses.log_softmax(logits)[np.arange(len(y)), y]))
    ''', logits, y)
    assert own(reply["used"]) == ["imgrec_lib.activations.log_softmax"], reply["used"]
    flagged("conv2d", '''
        import importlib
        def conv2d(x, w, b=None, stride=1, padding=0):
            return vars(importlib.import_module("imgrec_lib." + "conv"))["conv2d_naive"](x, w, b, stride, padding)
    ''', X, W, says="imgrec_lib.conv.conv2d_naive")


def test_the_probes_own_torch_calls_are_not_the_students():
    """Lesson 09's probe builds the instructor's block with torch: nothing that counts, and nothing
    recorded for what the probe itself runs (its torch.manual_seed, torch.rand)."""
    rec = recorder.Recorder()
    cells = solution_cells("09_modern_blocks")
    described, _ = serve.arguments_of(RESIDUAL_PROBE, [("describe(ResidualBlock)", False)],
                                      define(SETUP + cells["residual_block"]), rec)
    assert "raised" not in described[0], described
    names = own(rec.names())
    assert "torch.manual_seed" not in names and "torch.rand" not in names, names
    assert "torch.nn.modules.conv.Conv2d.__init__" in names and "aten.convolution" in names, names
    assert references.runtime_findings({"t": names}, {"t": "residual_block"}) == {}


def test_the_recording_is_bounded_and_leaves_the_profile_as_it_was():
    before = sys.getprofile()
    with recorder.Recorder() as rec:
        for k in range(recorder.MAX_NAMES + 50):
            rec.add(f"torch.name{k}")
    assert sys.getprofile() is before
    assert len(rec.names()) == recorder.MAX_NAMES + 1 and rec.names()[-1].startswith("more:")


def test_recording_a_torch_answer_costs_no_compiler_import():
    """The dispatch mode records aten operators without importing torch._dynamo (and sympy), which took
    ~2 s in every kernel that graded a torch answer; once a notebook has imported it, the mode records as well."""
    code = textwrap.dedent("""
        import sys, warnings, torch
        from grading import recorder
        with recorder.Recorder() as seen:
            torch.relu(torch.ones(2))
        print("torch._dynamo" in sys.modules, "aten.relu" in seen.names())
        compiled = torch.compile(lambda x: torch.relu(x) * 2, backend="eager")
        with recorder.Recorder() as seen, warnings.catch_warnings(record=True) as warned:
            compiled(torch.ones(2))
        print("aten.mul" in seen.names(), len(warned))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "True", "True", "0"], result.stdout


def graded_in_a_kernel(exercise: str, sources: list[str], args: str) -> dict:
    """grade() of the last source's answer in a fresh process that imported the recorder as a kernel does
    (runner.PRELOAD), after the earlier sources ran as the notebook's other cells; `args` is Python for the
    arguments (X, W, Z are this module's)."""
    from grading import runner

    code = textwrap.dedent(f"""
        {runner.PRELOAD}
        import json, sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        import test_recorder as t
        from test_recorder import X, W, Z
        for source in {sources[:-1]!r}:
            t.define(source)
        print(json.dumps(t.grade({exercise!r}, {sources[-1]!r}, *{args})[1]))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_profile_switched_off_through_map_and_put_back_is_flagged():
    """No profile event crosses a C function such as map(), and the hook is back in place when the answer
    returns; the audit hook sees the call."""
    found = graded_in_a_kernel("relu", ["""
        import sys, torch
        from torch.utils._python_dispatch import _disable_current_modes
        def relu(x):
            before = sys.getprofile()
            list(map(sys.setprofile, [None]))
            with _disable_current_modes():
                out = torch.relu(torch.from_numpy(x)).numpy()
            list(map(sys.setprofile, [before]))
            return out
    """], "[Z]")
    assert "switched off the check of what it calls (sys.setprofile called)" in str(found.get("relu")), found


@pytest.mark.parametrize("relabel", ["helper.__code__.replace(co_filename=imgrec_lib.conv.__file__)",
                                     "types.CodeType(*[getattr(helper.__code__, 'co_' + field) if field != 'filename' "
                                     "else '<probes of the test cell>' for field in FIELDS])"])
def test_code_given_a_library_or_the_probes_file_name_is_flagged(relabel):
    """An imgrec_lib file name hides the torch calls from both the profile and the aten record; made in a
    cell that no answer uses."""
    found = graded_in_a_kernel("conv2d", [f"""
        import types, torch, imgrec_lib.conv
        FIELDS = ("argcount posonlyargcount kwonlyargcount nlocals stacksize flags code consts names varnames "
                  "filename name qualname firstlineno linetable exceptiontable freevars cellvars").split()
        def helper(x, w):
            return torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w)).numpy()
        helper.__code__ = {relabel}
    """, """
        def conv2d(x, w):
            return helper(x, w)
    """], "[X, W]")
    assert "switched off the check of what it calls (code given the file name" in str(found.get("conv2d")), found


def test_a_function_made_of_the_graders_code_is_flagged():
    """Trusted code run with the notebook's globals would be trusted."""
    found = graded_in_a_kernel("relu", ["""
        import types
        from grading import values
        runs_mine = types.FunctionType(values.encode.__code__, {**values.__dict__})
    """, """
        import numpy as np
        def relu(x):
            return np.maximum(x, 0)
    """], "[Z]")
    assert "a function made of" in str(found.get("relu")) and "values.py's code" in str(found.get("relu")), found


def test_ctypes_in_any_cell_is_flagged_and_an_honest_notebook_is_not():
    honest = graded_in_a_kernel("relu", ["""
        import ctypes.util, dataclasses, collections, torch, scipy.signal, matplotlib.pyplot as plt
        Point = collections.namedtuple("Point", "x y")
        @dataclasses.dataclass
        class Box:
            side: int = 3
    """, """
        import numpy as np
        def relu(x):
            return np.maximum(x, 0)
    """], "[Z]")
    assert honest == {}, honest
    found = graded_in_a_kernel("relu", ["""
        import ctypes
        ctypes.pythonapi.Py_IsInitialized()
    """, """
        import numpy as np
        def relu(x):
            return np.maximum(x, 0)
    """], "[Z]")
    assert "ctypes.dlsym, a way around the check" in str(found.get("relu")), found


def test_the_graders_modules_imported_before_the_first_test_are_noted():
    """The first test cell imports grading.serve in a fresh kernel: a grading module already there was
    imported by the notebook, to change what runs while graded; each test cell's message says so."""
    def imported_before(code: str) -> list[str]:
        result = subprocess.run([sys.executable, "-c", f"{code}\nimport grading.serve; print(grading.serve.IMPORTED_BEFORE)"],
                                capture_output=True, text=True, cwd=ROOT, timeout=300,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert result.returncode == 0, result.stderr[-2000:]
        return eval(result.stdout)

    assert imported_before("") == []
    assert imported_before("import grading.recorder as r; r.MAX_NAMES = 0") == ["grading.recorder"]
    found = references.runtime_findings({"t": ["switched-off:grading.recorder imported by the notebook before the tests"]},
                                        {"t": "relu"})
    assert found == {"relu": ["while graded, relu switched off the check of what it calls (grading.recorder imported "
                              "by the notebook before the tests)"]}


def test_replacing_what_the_recorder_uses_of_sys_or_the_recorder_itself_is_flagged(monkeypatch):
    """The recorder binds sys.setprofile, sys._getframe ... when imported (before the notebook's first cell,
    grading/runner.PRELOAD): a notebook's fakes neither fool it nor go unnoticed (R4, R5 of an outside tester)."""
    profile = [None]
    monkeypatch.setattr(sys, "setprofile", lambda function: profile.__setitem__(0, function))
    monkeypatch.setattr(sys, "getprofile", lambda: profile[0])
    monkeypatch.setattr(sys, "_getframe", lambda depth=0: None)
    monkeypatch.setattr(recorder.Recorder, "names", lambda self: [])
    text = flagged("cross_entropy", '''
        import torch
        import torch.nn.functional as F
        def cross_entropy(logits, labels):
            return float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)))
    ''', Z, np.array([0, 1, 2, 3]), says="switched off")
    assert "torch.nn.functional.cross_entropy" in text and "aten." in text, text
    for name in ("sys.setprofile", "sys.getprofile", "sys._getframe", "grading.recorder.Recorder.names"):
        assert f"{name} replaced" in text, text


def test_the_notebooks_code_passed_off_as_the_graders_or_a_recording_taken_off_its_list_is_flagged(monkeypatch):
    """grading.recorder.trust(my_function) makes the record take the answer's code for the grader's, whose
    calls it does not note; taking the recording off recorder._RECORDING hides it from the audit hook
    (N1, T1 of an outside tester, who reached both through serve's __globals__)."""
    monkeypatch.setattr(recorder, "_KNOWN", dict(recorder._KNOWN))
    text = flagged("cross_entropy", '''
        import torch
        import torch.nn.functional as F
        from grading import recorder
        def cross_entropy(logits, labels):
            recorder.trust(cross_entropy)
            recorder._RECORDING.clear()
            return float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)))
    ''', Z, np.array([0, 1, 2, 3]), says="switched off")
    assert "trusted as the grader's" in text and "taken off the list of recordings" in text, text


def test_serves_own_names_replaced_are_noted(monkeypatch):
    """serve() tells the grader which of grading/serve.py's names the notebook replaced (`_names`, which
    answer() asks what was recorded, returning nothing)."""
    sent = []

    class Channel:
        def __init__(self, *args):
            pass

        def connect(self, path):
            pass

        def makefile(self, mode):
            return self

        def write(self, data):
            sent.append(json.loads(data))

        def flush(self):
            pass

        def readline(self):
            return b""

        def close(self):
            pass

    monkeypatch.setattr(serve.socket, "socket", Channel)
    monkeypatch.setattr(serve, "_names", lambda recorder: [])
    serve.serve("test_x", "", [], {}, "t" * 32)
    assert sent[0] == {"hello": "test_x", "token": "t" * 32}
    assert "switched-off:grading.serve._names replaced" in sent[1]["used"], sent[1]


def test_the_kernel_imports_the_recorder_before_the_notebook_and_that_is_not_the_notebooks_doing():
    from grading import runner

    code = (f"{runner.PRELOAD}\nimport sys\nsys.setprofile = print\nimport grading.serve, grading.recorder as r\n"
            "print(grading.serve.IMPORTED_BEFORE, r.replaced())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[0] == "[] ['sys.setprofile']", result.stdout


def test_the_recording_keeps_nothing_of_the_caller_alive():
    """serve's frame holds the socket to the grader: kept alive by a reference cycle (a look at the
    threads' frames that holds its own), the socket stayed open and the next test cell's connection
    waited for ever."""
    class Held:
        pass

    def graded():
        held = Held()
        with recorder.Recorder():
            pass
        return weakref.ref(held)

    assert graded()() is None


def test_the_names_it_writes_match_the_references():
    """The recorder writes what really runs: F.conv2d is the builtin torch.conv2d, nn.Conv2d runs
    torch.nn.modules.conv.Conv2d.__init__; both are lesson 01's references."""
    assert recorder.builtin_name(torch.nn.functional.conv2d) == "torch.conv2d"
    assert recorder.builtin_name(torch.relu_) == "torch.relu_"
    for name in ("torch.conv2d", "torch.nn.modules.conv.Conv2d.__init__", "imgrec_lib.conv.conv2d"):
        assert references._called_reference(name, references.REFERENCES["conv2d"]), name
    assert not references._called_reference("torch.nn.modules.batchnorm.BatchNorm2d.__init__",
                                             references.REFERENCES["residual_block"])


# --- end to end: a notebook graded in its sandbox ---------------------------------------------

L03 = "03_dense_layers_and_activations"
HIDDEN_RELU = '''import sys


def relu(x):
    """torch.relu_ reached through the frame's globals: nothing the static reader can name."""
    t = sys._getframe().f_globals["to" + "rch"]
    return t.relu_(t.tensor(x)).numpy()
'''


@pytest.mark.skipif(not (ROOT / "solutions" / L03).exists(), reason=f"no solutions/{L03}")
def test_a_graded_notebook_reports_what_its_answer_ran_and_can_score_it_0(tmp_path):
    """Lesson 03 with the instructor's answers but a relu that reaches torch.relu_ at run time: the
    report flags relu alone, from what ran, and the switch scores relu's tests 0."""
    from grading import worker

    source = nbformat.read(ROOT / "solutions" / L03 / f"{L03}.ipynb", as_version=4)
    release = nbformat.read(ROOT / "lessons" / L03 / f"{L03}.ipynb", as_version=4)
    submission = nbformat.read(ROOT / "solutions" / L03 / f"{L03}.ipynb", as_version=4)
    relu_cell = next(c for c in submission.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "relu")
    relu_cell.source = "import torch\n" + HIDDEN_RELU
    path = tmp_path / f"{L03}.ipynb"
    nbformat.write(submission, path)
    options = worker.Options(cell_timeout=300, zero_reference_copies=True, sandboxed=shutil.which("bwrap") is not None)
    judge = worker.Judge(options)
    try:
        report = worker.grade(path, source, release, judge, options).report
    finally:
        judge.close()
    flags = report.get("reference_copies", {})
    assert set(flags) == {"relu"}, report
    assert any(reason.startswith("while graded, relu called torch.tensor, torch.relu_") and "aten.relu_" in reason
               for reason in flags["relu"]), flags
    assert set(report["failed"]) == {"test_relu", "test_relu_hidden"}, report


def test_student_code_equal_to_the_probes_is_still_the_students():
    """Code objects compare equal whatever their file name: the recorder tells them apart by identity."""
    probe = compile("helper(x)", recorder.PROBES, "eval")
    recorder.trust(probe)
    copy = compile("helper(x)", CELL, "eval")
    assert copy == probe
    rec = recorder.Recorder()
    assert rec.kind(probe)[0] == recorder.TRUSTED and rec.kind(copy)[0] == recorder.STUDENT
