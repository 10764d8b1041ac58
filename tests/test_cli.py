"""The command line, as a script sees it: output, exit codes, one-line errors.

The tests call ``cli.main(argv)`` in this process (a new Python process imports torch again: seconds
a test); ``test_python_dash_m_end_to_end`` is the one that runs ``python -m imgrec_lib`` itself.
"""

import contextlib
import io
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image

from imgrec_lib import cli
from imgrec_lib.checkpoint import load_checkpoint
from imgrec_lib.data import load_digits_arrays


@contextlib.contextmanager
def like_a_new_process(folder, threads: int | None = None):
    """Run ``cli.main`` with what a new process had: IMGREC_DEVICE=cpu, no IMGREC_DEBUG, ``folder`` as
    the working directory; afterwards put back what `train` changes (it reseeds the random generators)
    and what it must not (threads, default dtype, deterministic kernels), so no other test sees it."""
    random_state, numpy_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    num_threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IMGREC_DEVICE", "cpu")
        patch.delenv("IMGREC_DEBUG", raising=False)  # with it, errors would raise instead of printing
        patch.chdir(folder)  # default paths (checkpoints/, data/) land there, not in the repository
        if threads:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            random.setstate(random_state)
            np.random.set_state(numpy_state)
            torch.set_rng_state(torch_state)
            if cuda_states is not None:
                torch.cuda.set_rng_state_all(cuda_states)
            torch.set_num_threads(num_threads)
            torch.set_default_dtype(dtype)
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


@pytest.fixture(autouse=True)
def in_process(tmp_path):
    """Every test runs the command line in this process, in its own folder, on one thread."""
    with like_a_new_process(tmp_path, threads=1):  # tiny models train faster on one thread
        yield


@dataclass
class Result:
    """What a script sees of one command: its exit code and what it printed."""
    returncode: int
    stdout: str
    stderr: str


def run(capture, *args: str) -> Result:
    """``python -m imgrec_lib *args``, in this process; ``capture`` is pytest's capfd (or capsys)."""
    capture.readouterr()  # only this command's output
    returncode = cli.main(list(args))
    out, err = capture.readouterr()
    return Result(returncode, out, err)


def exit_code(*args: str) -> int | str | None:
    """The exit code of a command that argparse ends (a usage error, --help)."""
    with pytest.raises(SystemExit) as stop:
        cli.main(list(args))
    return stop.value.code


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint from one short epoch of `train` on the embedded digits, and its output."""
    folder = tmp_path_factory.mktemp("ckpt")
    checkpoint = folder / "net.pt"
    out, err = io.StringIO(), io.StringIO()
    args = ["train", "--data", "digits", "--epochs", "1", "--quiet", "--checkpoint", str(checkpoint)]
    with like_a_new_process(folder, threads=1), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        returncode = cli.main(args)
    return checkpoint, Result(returncode, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory):
    """Three test digits as PNG files, white on black as in MNIST, with their labels."""
    folder = tmp_path_factory.mktemp("digits")
    images, labels = load_digits_arrays("test")
    paths = []
    for i in range(3):
        path = folder / f"digit_{i}_label_{labels[i]}.png"
        Image.fromarray(images[i]).save(path)
        paths.append(path)
    return paths, labels[:3]


def test_python_dash_m_end_to_end(tmp_path):
    """The one test that starts ``python -m imgrec_lib``: output, and exit codes through ``sys.exit``."""
    def python_m(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "imgrec_lib", *args], capture_output=True, text=True,
                              timeout=300, env={"IMGREC_DEVICE": "cpu", "PATH": "/usr/bin:/bin"})

    result = python_m("--help")
    assert result.returncode == cli.EXIT_OK, result.stderr
    for word in ("train", "evaluate", "predict", "Exit codes"):
        assert word in result.stdout
    assert python_m("fly").returncode == cli.EXIT_USAGE
    result = python_m("predict", str(tmp_path / "digit.png"), "--checkpoint", str(tmp_path / "nope.pt"))
    assert result.returncode == cli.EXIT_BAD_INPUT and result.stdout == ""
    assert result.stderr.startswith("error:") and "make train" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, f"one line, no traceback: {result.stderr}"


def test_train_reports_accuracy_and_saves_a_checkpoint(trained):
    checkpoint, result = trained
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and checkpoint.exists()
    accuracy = float(result.stdout.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 80, f"one epoch should already reach well over 80%, got {accuracy}%"


def test_evaluate_prints_the_accuracy(trained, capfd):
    checkpoint, _ = trained
    result = run(capfd, "evaluate", "--checkpoint", str(checkpoint))
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "1,000 images" in result.stdout


def test_predict_prints_top_k_classes_with_probabilities(trained, digit_files, capfd):
    checkpoint, _ = trained
    paths, labels = digit_files
    result = run(capfd, "predict", *map(str, paths), "--top-k", "3", "--checkpoint", str(checkpoint))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    correct = 0
    for line, label in zip(lines, labels):
        ranked = line.split(": ", 1)[1].split(", ")
        assert len(ranked) == 3
        probabilities = [float(item.split()[1].rstrip("%")) for item in ranked]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 100.1
        correct += ranked[0].split()[0] == str(label)
    assert correct >= 2, f"the trained net should recognise most test digits: {result.stdout}"


def test_a_corrupt_image_gets_a_one_line_error_and_exit_code_1(trained, digit_files, tmp_path, capfd):
    checkpoint, _ = trained
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(digit_files[0][0].read_bytes()[:60])  # a PNG cut off after its header
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    lab = tmp_path / "lab.tif"
    Image.new("RGB", (40, 40)).convert("LAB").save(lab)  # PIL reads it but cannot make it grey
    result = run(capfd, "predict", str(corrupt), str(digit_files[0][0]), str(text), str(lab), str(digit_files[0][1]),
                 "--checkpoint", str(checkpoint))
    assert result.returncode == cli.EXIT_BAD_INPUT
    assert "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3 and "corrupt.png" in errors[0] and "notes.png" in errors[1] and "lab.tif" in errors[2]
    assert len(result.stdout.strip().splitlines()) == 2, "the good images are still classified"


def test_a_missing_checkpoint_says_what_to_do(tmp_path, digit_files, capfd):
    result = run(capfd, "predict", str(digit_files[0][0]), "--checkpoint", str(tmp_path / "nope.pt"))
    assert result.returncode == cli.EXIT_BAD_INPUT
    assert "Traceback" not in result.stderr and "make train" in result.stderr


def test_a_truncated_checkpoint_is_a_clear_error(trained, tmp_path, capsys):
    checkpoint, _ = trained
    broken = tmp_path / "broken.pt"
    broken.write_bytes(checkpoint.read_bytes()[:1000])
    assert cli.main(["evaluate", "--checkpoint", str(broken), "--device", "cpu"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error:") and "broken.pt" in err and len(err.strip().splitlines()) == 1


def test_usage_errors_exit_with_2():
    assert exit_code() == cli.EXIT_USAGE
    assert exit_code("train", "--epochs", "many") == cli.EXIT_USAGE
    assert exit_code("fly") == cli.EXIT_USAGE
    for option, value in (("--epochs", "0"), ("--batch-size", "-1"), ("--lr", "0"), ("--lr", "nan")):
        assert exit_code("train", option, value) == cli.EXIT_USAGE, (option, value)
    assert exit_code("predict", "x.png", "--top-k", "0") == cli.EXIT_USAGE


def test_unknown_data_exits_with_1(capsys):
    assert cli.main(["train", "--data", "imagenet"]) == cli.EXIT_BAD_INPUT
    assert "digits" in capsys.readouterr().err


def test_help_lists_the_commands_and_exit_codes(capsys):
    assert exit_code("--help") == 0
    out = capsys.readouterr().out
    for word in ("train", "evaluate", "predict", "Exit codes"):
        assert word in out


def test_predict_says_when_a_picture_has_no_digit(trained, digit_files, tmp_path, capfd):
    checkpoint, _ = trained
    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (1600, 1200), (250, 250, 245)).save(blank)
    result = run(capfd, "predict", str(blank), str(digit_files[0][0]), "--checkpoint", str(checkpoint))
    assert result.returncode == cli.EXIT_BAD_INPUT, "like any other image that cannot be used"
    assert result.stderr == f"error: no digit found in {blank}: the picture looks blank " \
                            "(no mark stands out from the paper); check that it is the right file, " \
                            "or photograph the digit larger and darker\n"
    assert len(result.stdout.strip().splitlines()) == 1 and "blank" not in result.stdout, "no made-up answer"


def test_predict_top_k_below_1_is_a_usage_error(digit_files, capsys):
    assert exit_code("predict", str(digit_files[0][0]), "--top-k", "0") == cli.EXIT_USAGE
    assert "--top-k: must be at least 1, got 0" in capsys.readouterr().err


def test_predict_on_a_missing_device_names_the_ones_there_are(trained, digit_files, capfd):
    checkpoint, _ = trained
    result = run(capfd, "predict", str(digit_files[0][0]), "--device", "cuda:99", "--checkpoint", str(checkpoint))
    assert result.returncode == cli.EXIT_BAD_INPUT
    assert result.stderr.startswith("error: --device cuda:99 is not available on this machine: use numpy (the default)")
    assert "IMGREC_DEVICE" not in result.stderr, "predict does not read it"


def test_predict_rejects_an_image_folder_with_a_clear_error(trained, tmp_path, capfd):
    checkpoint, _ = trained
    result = run(capfd, "predict", str(tmp_path), "--checkpoint", str(checkpoint))
    assert result.returncode == cli.EXIT_BAD_INPUT and "Traceback" not in result.stderr


def test_digits_inverted_on_white_paper_are_still_recognised(trained, digit_files, tmp_path, capfd):
    """A learner's own digit: dark ink on light paper, bigger than 28x28."""
    checkpoint, _ = trained
    paths, labels = digit_files
    path = tmp_path / "paper.png"
    ink = 255 - np.asarray(Image.open(paths[0]))
    Image.fromarray(ink).resize((140, 140)).save(path)
    result = run(capfd, "predict", str(path), "--top-k", "1", "--checkpoint", str(checkpoint))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(": ")[1].split()[0] == str(labels[0])


def test_fast_training_on_coloured_shapes_saves_a_loadable_checkpoint_and_resumes(tmp_path, capsys):
    checkpoint = tmp_path / "shapes.pt"
    args = ["train", "--fast", "--data", "shapes", "--epochs", "1", "--quiet", "--device", "cpu",
            "--checkpoint", str(checkpoint)]
    assert cli.main(args) == cli.EXIT_OK
    assert "test accuracy" in capsys.readouterr().out
    assert list(load_checkpoint(checkpoint)["model_config"]["widths"]) == [16, 32]  # the fast recipe's half-width net
    assert cli.main(["evaluate", "--data", "shapes", "--checkpoint", str(checkpoint), "--device", "cpu"]) == 0
    assert "shapes test split: accuracy" in capsys.readouterr().out
    assert cli.main([*args[:5], "2", *args[6:], "--resume"]) == cli.EXIT_OK  # the fast recipe resumes too
    assert load_checkpoint(checkpoint)["epoch"] == 2 and len(load_checkpoint(checkpoint)["history"]["train_loss"]) == 2


def test_a_folder_without_a_test_split_gets_a_note(tmp_path, capsys):
    """Without train/ and test/ the same images are both: the printed test accuracy would flatter."""
    images, labels = load_digits_arrays("test")
    for i in range(0, 1000, 25):  # 40 digits of all ten classes
        (tmp_path / "pics" / str(labels[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(tmp_path / "pics" / str(labels[i]) / f"{i}.png")
    args = ["train", "--data", str(tmp_path / "pics"), "--epochs", "1", "--quiet", "--device", "cpu",
            "--checkpoint", str(tmp_path / "pics.pt")]
    assert cli.main(args) == cli.EXIT_OK
    assert "has no train/ and test/ sub-folders" in capsys.readouterr().err

    (tmp_path / "pics").rename(tmp_path / "train")
    (tmp_path / "split").mkdir()
    (tmp_path / "train").rename(tmp_path / "split" / "train")
    shutil.copytree(tmp_path / "split" / "train", tmp_path / "split" / "test")
    assert cli.main([*args[:2], str(tmp_path / "split"), *args[3:], "--force"]) == cli.EXIT_OK
    assert "has no train/" not in capsys.readouterr().err


def test_train_does_not_overwrite_a_checkpoint_unless_told(trained, tmp_path, capsys):
    checkpoint, _ = trained
    copy = tmp_path / "copy.pt"
    shutil.copy(checkpoint, copy)
    args = ["train", "--fast", "--data", "shapes", "--epochs", "1", "--quiet", "--device", "cpu", "--checkpoint", str(copy)]
    assert cli.main(args) == cli.EXIT_BAD_INPUT
    assert "already exists: pass --force to replace it, --resume" in capsys.readouterr().err
    assert copy.read_bytes() == checkpoint.read_bytes()
    assert cli.main([*args, "--force"]) == cli.EXIT_OK
    assert load_checkpoint(copy)["classes"] == ["circle", "square", "triangle", "cross"]


def test_resume_with_nothing_left_to_train_says_so(trained, capsys):
    checkpoint, _ = trained  # one epoch
    assert cli.main(["train", "--resume", "--epochs", "1", "--checkpoint", str(checkpoint), "--device", "cpu"]) == 1
    assert "already trained for 1 epochs: pass --epochs with more than 1" in capsys.readouterr().err


def test_a_checkpoint_path_that_is_a_folder_fails_before_training(tmp_path, capsys):
    args = ["train", "--data", "shapes", "--epochs", "1", "--quiet", "--device", "cpu", "--force", "--checkpoint"]
    assert cli.main([*args, str(tmp_path)]) == cli.EXIT_BAD_INPUT
    assert "is a folder: give a file name" in capsys.readouterr().err


def test_evaluating_on_data_with_other_classes_is_refused(trained, capsys):
    checkpoint, _ = trained
    assert cli.main(["evaluate", "--data", "shapes", "--checkpoint", str(checkpoint), "--device", "cpu"]) == 1
    assert "pass the matching --data" in capsys.readouterr().err


def test_predict_show_writes_what_the_model_saw(trained, digit_files, tmp_path, capfd):
    """--show DIR: beside each prediction, the 28x28 the model was given (8x), one file per image
    even when two images have the same name."""
    checkpoint, _ = trained
    paths, _ = digit_files
    photo = tmp_path / "other" / paths[0].name  # the same name in another folder, dark on light
    photo.parent.mkdir()
    Image.fromarray(255 - np.asarray(Image.open(paths[0]))).resize((200, 200)).save(photo)
    seen = tmp_path / "seen"
    result = run(capfd, "predict", str(paths[0]), str(photo), "--checkpoint", str(checkpoint), "--show", str(seen))
    assert result.returncode == 0, result.stderr
    written = sorted(seen.iterdir())
    assert [p.name for p in written] == [f"{paths[0].name}.2.seen.png", f"{paths[0].name}.seen.png"]
    for line, path in zip(result.stdout.splitlines(), [written[1], written[0]]):
        assert line.endswith(f"(saw {path})")
    with Image.open(written[1]) as img:
        assert img.size == (224, 224)
        original = np.asarray(Image.open(paths[0]), dtype=np.float64)
        assert np.abs(np.asarray(img, dtype=np.float64)[::8, ::8] - original).max() <= 1  # an MNIST digit: as it is
    (tmp_path / "afile").write_text("x")
    result = run(capfd, "predict", str(paths[0]), "--checkpoint", str(checkpoint), "--show", str(tmp_path / "afile"))
    assert result.returncode == cli.EXIT_BAD_INPUT and "--show" in result.stderr


def test_train_twice_with_one_seed_gives_the_same_checkpoint(tmp_path, capfd):
    weights = []
    for name in ("a.pt", "b.pt"):
        args = ["train", "--data", "digits", "--epochs", "1", "--quiet", "--seed", "3", "--device", "cpu",
                "--checkpoint", str(tmp_path / name)]
        assert run(capfd, *args).returncode == 0
        torch.manual_seed(12345)  # whatever the random state in between, the seed decides
        weights.append(load_checkpoint(tmp_path / name)["state_dict"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
