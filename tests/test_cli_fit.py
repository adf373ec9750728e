"""`espresso-jax fit MODEL DATA`: every model on a CSV and an NPY table, the saved parameters
load back and reproduce the predictions, and bad input is a one-line error with nothing written.

References: scikit-learn (GaussianMixture, KMeans, PCA) and the closed-form evidence fixed point
(PRML eqs. 3.91-3.95) computed here in NumPy float64.
"""

import hashlib
import json
import os
import stat
import subprocess
import sys

import jax
import numpy as np
import pytest

from espresso_jax.apps import fitting
from espresso_jax.apps.cli import main
from espresso_jax.datasets.bundled import _data_file, load_faithful
from espresso_jax.linear.bayes import BayesParams
from espresso_jax.mixture import gmm, ppca, vbgmm
from espresso_jax.mixture.vb_terms import VBGMMParams

CSV = str(_data_file("faithful.csv"))   # header "eruptions,waiting", 272 rows
X = load_faithful()


@pytest.fixture(scope="module")
def npy(tmp_path_factory):
    """The same table as an NPY file (same shape: the compiled fits are reused)."""
    path = tmp_path_factory.mktemp("npy") / "faithful.npy"
    np.save(path, X)
    return str(path)


def _fit(capsys, out, model, data, *options):
    assert main(["fit", model, data, "--out", str(out), *options]) == 0
    printed = capsys.readouterr().out
    assert "load_fitted" in printed and str(out) in printed
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "plot.png").stat().st_size > 5000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == model and summary["n_samples"] == 272
    return summary, fitting.load_fitted(out)


def _same_params(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _agreement(a, b):
    """Fraction of rows with the same label, maximised over a swap of two labels."""
    a, b = np.asarray(a), np.asarray(b)
    return max(np.mean(a == b), np.mean(a == 1 - b))


def test_fit_gmm_csv_and_npy(tmp_path, capsys, npy):
    summary, params = _fit(capsys, tmp_path / "g", "gmm", CSV, "--n-components", "2",
                           "--max-iter", "200", "--tol", "1e-6")
    assert isinstance(params, gmm.GMMParams) and params.covariances.shape == (2, 2, 2)
    assert summary["columns"] == ["eruptions", "waiting"]
    # scikit-learn's ML fit of the same data: mean log-likelihood -4.15538 (float64); ours is
    # float32 EM to tol 1e-6, so agree to 1e-4 relative.
    sk = pytest.importorskip("sklearn.mixture").GaussianMixture(2, random_state=0, tol=1e-8)
    sk.fit(X)
    assert summary["metrics"]["mean_log_likelihood"] == pytest.approx(sk.score(X), rel=1e-4)
    assert _agreement(gmm.predict(params, X), sk.predict(X)) >= 0.99
    pred = fitting.predict(tmp_path / "g", X)
    np.testing.assert_array_equal(pred["labels"], gmm.predict(params, X))
    _, params_npy = _fit(capsys, tmp_path / "g_npy", "gmm", npy, "--n-components", "2",
                         "--max-iter", "200", "--tol", "1e-6")
    _same_params(params, params_npy)


@pytest.mark.slow   # ~15 s: compiling the variational EM loop and its k-means initialisation
def test_fit_vbgmm_prunes_to_the_two_faithful_clusters(tmp_path, capsys, npy):
    # One restart lands in a three-component local optimum for some seeds (measured seeds
    # 0-3 at the defaults: 2 of 4, lower bound -704 against -682); five vmapped restarts keep
    # the two-cluster bound for all six.
    summary, params = _fit(capsys, tmp_path / "v", "vbgmm", CSV, "--n-components", "5",
                           "--weight-prior", "dirichlet_process", "--seed", "1",
                           "--n-init", "5")
    assert isinstance(params, VBGMMParams) and params.weight_concentration.shape == (2, 5)
    m = summary["metrics"]
    assert m["active_components"] == 2 and summary["options"]["weight_prior"] == \
        "dirichlet_process"
    w = np.sort(np.asarray(vbgmm.expected_weights(params)))[::-1]
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-5)
    # The two clusters hold about 64% and 36% of the eruptions (scikit-learn's GMM: 0.644).
    np.testing.assert_allclose(w[:2], [0.644, 0.356], atol=0.02)
    sk = pytest.importorskip("sklearn.mixture").GaussianMixture(2, random_state=0).fit(X)
    assert _agreement(vbgmm.predict(params, X), sk.predict(X)) >= 0.98
    _, params_npy = _fit(capsys, tmp_path / "v_npy", "vbgmm", npy, "--n-components", "5",
                         "--seed", "1", "--n-init", "5")
    _same_params(params, params_npy)


def test_fit_kmeans_centres_are_a_lloyd_fixed_point(tmp_path, capsys, npy):
    summary, params = _fit(capsys, tmp_path / "k", "kmeans", npy, "--n-clusters", "3",
                           "--n-init", "2")
    assert isinstance(params, fitting.KMeansParams) and params.centres.shape == (3, 2)
    KMeans = pytest.importorskip("sklearn.cluster").KMeans
    c = np.asarray(params.centres, np.float64)
    sk = KMeans(3, init=c, n_init=1, max_iter=300).fit(X)
    # Converged Lloyd centres do not move under scikit-learn's Lloyd iterations (float32 fit:
    # 1e-4 relative) and the inertia is scikit-learn's at those centres.
    np.testing.assert_allclose(sk.cluster_centers_, c, rtol=1e-4)
    assert summary["metrics"]["inertia"] == pytest.approx(sk.inertia_, rel=1e-4)
    assert sum(summary["metrics"]["cluster_sizes"]) == 272
    labels = fitting.predict(tmp_path / "k", X)["labels"]
    np.testing.assert_array_equal(labels, sk.predict(X))
    _, params_csv = _fit(capsys, tmp_path / "k_csv", "kmeans", CSV, "--n-clusters", "3",
                         "--n-init", "2")
    _same_params(params, params_csv)


def test_fit_ppca_matches_sklearn_pca(tmp_path, capsys, npy):
    summary, params = _fit(capsys, tmp_path / "p", "ppca", CSV, "--n-components", "1")
    assert isinstance(params, ppca.PPCAParams) and params.W.shape == (2, 1)
    pca = pytest.importorskip("sklearn.decomposition").PCA(1).fit(X)
    # scikit-learn's noise variance divides by N - 1, the ML one by N; log-likelihoods agree
    # to float32 rounding.
    assert summary["metrics"]["sigma2"] == pytest.approx(pca.noise_variance_ * 271 / 272,
                                                         rel=1e-4)
    assert summary["metrics"]["mean_log_likelihood"] == pytest.approx(pca.score(X), rel=1e-4)
    # Per row: the Gaussian with scikit-learn's model covariance rescaled to the ML one.
    mvn = pytest.importorskip("scipy.stats").multivariate_normal(
        pca.mean_, pca.get_covariance() * 271 / 272)
    pred = fitting.predict(tmp_path / "p", X)
    np.testing.assert_allclose(pred["log_likelihood"], mvn.logpdf(X), rtol=1e-4)
    _, params_npy = _fit(capsys, tmp_path / "p_npy", "ppca", npy, "--n-components", "1")
    _same_params(params, params_npy)


def _evidence_fixed_point(Phi, t, alpha, beta):
    """MacKay's re-estimates (PRML 3.91-3.95) at (alpha, beta), in float64."""
    lam = np.linalg.eigvalsh(beta * Phi.T @ Phi)
    S_inv = alpha * np.eye(Phi.shape[1]) + beta * Phi.T @ Phi
    m = beta * np.linalg.solve(S_inv, Phi.T @ t)
    gamma = np.sum(lam / (alpha + lam))
    return gamma / (m @ m), (len(t) - gamma) / np.sum((t - Phi @ m) ** 2), m


def test_fit_blr_reaches_the_evidence_fixed_point(tmp_path, capsys, npy):
    summary, params = _fit(capsys, tmp_path / "b", "blr", CSV, "--target", "eruptions",
                           "--basis", "polynomial", "--degree", "3")
    assert isinstance(params, fitting.BLRParams) and isinstance(params.posterior, BayesParams)
    x, t = X[:, 1], X[:, 0]
    z = (x - x.mean()) / x.std()
    Phi = np.stack([z ** j for j in range(4)], axis=1)
    alpha, beta = float(params.posterior.alpha), float(params.posterior.beta)
    alpha_new, beta_new, m = _evidence_fixed_point(Phi, t, alpha, beta)
    # float32 fit with tol 1e-6: the re-estimates move alpha and beta by < 1e-3 relative.
    assert alpha_new == pytest.approx(alpha, rel=1e-3) and beta_new == pytest.approx(beta,
                                                                                      rel=1e-3)
    pred = fitting.predict(tmp_path / "b", x)
    np.testing.assert_allclose(pred["mean"], Phi @ m, rtol=1e-4, atol=1e-4)
    assert summary["metrics"]["rmse"] == pytest.approx(np.sqrt(np.mean((t - Phi @ m) ** 2)),
                                                       rel=1e-4)
    _, params_npy = _fit(capsys, tmp_path / "b_npy", "blr", npy, "--target", "0",
                         "--degree", "3")
    _same_params(params, params_npy)


def test_fit_blr_several_inputs_linear_basis(tmp_path, capsys):
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(272, 3))
    t = inputs @ np.array([1.0, -2.0, 0.5]) + 3.0 + 0.1 * rng.normal(size=272)
    np.save(tmp_path / "three.npy", np.c_[inputs, t])
    summary, params = _fit(capsys, tmp_path / "b3", "blr", str(tmp_path / "three.npy"),
                           "--basis", "none")
    # Noise sd 0.1: the evidence estimate of 1/sqrt(beta) is within 10% (272 rows: the
    # sampling sd of a variance estimate is sqrt(2/272) ~ 9% of the variance, ~4.3% of the sd).
    assert summary["metrics"]["noise_sd"] == pytest.approx(0.1, rel=0.1)
    pred = fitting.predict(tmp_path / "b3", inputs)
    assert np.sqrt(np.mean((np.asarray(pred["mean"]) - t) ** 2)) < 0.12


# --------------------------------------------------------------------------- bad input

def _write(path, text):
    path.write_text(text)
    return str(path)


BAD_CASES = {
    "missing file": (lambda d: ["gmm", str(d / "nope.csv")], "no such file"),
    "unknown extension": (lambda d: ["gmm", _write(d / "x.xlsx", "1,2\n")],
                          "must be a .csv or .npy file"),
    "directory": (lambda d: ["gmm", str(d)], "is a directory"),
    "unclosed quote": (lambda d: ["gmm", _write(d / "q.csv", 'a,b\n1,2\n"3,4\n')],
                       "not a well-formed CSV file"),
    "not utf-8": (lambda d: ["gmm", str(_bytes(d / "bin.csv", b"\xff\xfe\x00\x81,1\n"))],
                  "not UTF-8 text"),
    "ragged rows": (lambda d: ["gmm", _write(d / "r.csv", "a,b\n1,2\n3,4,5\n")],
                    "line 3 has 3 fields, expected 2"),
    "non-numeric cell": (lambda d: ["gmm", _write(d / "n.csv", "1,2\n3,abc\n")],
                         "line 2, column 1: 'abc' is not a number"),
    "header only": (lambda d: ["gmm", _write(d / "h.csv", "a,b\n")], "no data rows"),
    "empty file": (lambda d: ["gmm", _write(d / "e.csv", "\n\n")], "has no rows"),
    "nan row": (lambda d: ["gmm", _write(d / "nan.csv", "1,2\n3,nan\n5,6\n")],
                "1 row(s) with missing, NaN or inf values (line 2)"),
    "inf and empty cells": (lambda d: ["gmm", _write(d / "inf.csv", "1,2\n3,inf\n,6\n7,8\n")],
                            "2 row(s) with missing, NaN or inf values (line 2, line 3)"),
    "npy nan row": (lambda d: ["kmeans", _npy(d / "nan.npy", [[1.0, 2.0], [np.nan, 1.0]])],
                    "(row 1)"),
    "npy 3-d": (lambda d: ["kmeans", _npy(d / "cube.npy", np.zeros((2, 2, 2)))],
                "must be a 1-D or 2-D array"),
    "npy strings": (lambda d: ["kmeans", _npy(d / "s.npy", np.array([["a", "b"]]))],
                    "must hold a real numeric array"),
    "npy garbage": (lambda d: ["kmeans", _write(d / "g.npy", "not numpy")],
                    "not a readable .npy array"),
    "target out of range": (lambda d: ["blr", CSV, "--target", "5"],
                            "target=5 is out of range for 2 column(s)"),
    "unknown target name": (lambda d: ["blr", CSV, "--target", "duration"],
                            "target 'duration' is not a column name"),
    "blr one column": (lambda d: ["blr", _write(d / "one.csv", "1\n2\n3\n")],
                       "blr (inputs and a target) needs at least 2 column(s); DATA has 1"),
    "ppca too many components": (lambda d: ["ppca", _write(d / "one.csv", "1\n2\n3\n"),
                                            "--n-components", "2"],
                                 "needs at least 2 column(s); DATA has 1"),
    "sigmoid several inputs": (lambda d: ["blr", _npy(d / "three.npy", np.eye(4)),
                                          "--basis", "sigmoid"],
                               "sigmoid basis needs exactly one input column"),
    "degree with gaussian": (lambda d: ["blr", CSV, "--basis", "gaussian", "--degree", "2"],
                             "degree is only used by the polynomial basis"),
    "K > N": (lambda d: ["gmm", _write(d / "tiny.csv", "1,2\n3,4\n5,7\n"),
                         "--n-components", "4"], "n_components=4 must be <= n_samples=3"),
    "kmeans K > N": (lambda d: ["kmeans", _write(d / "tiny.csv", "1,2\n3,4\n"),
                                "--n-clusters", "3"], "n_clusters=3 must be <= n_samples=2"),
    "bad option value": (lambda d: ["gmm", CSV, "--reg-covar", "-1"],
                         "reg_covar must be > 0"),
    "negative seed": (lambda d: ["kmeans", CSV, "--seed", "-3"],
                      "argument --seed: must be an integer in 0..4294967295 (32 bits), got -3"),
    "seed beyond 64 bits": (lambda d: ["kmeans", CSV, "--seed", "18446744073709551616"],
                            "argument --seed: must be an integer in 0..4294967295 (32 bits), "
                            "got 18446744073709551616"),
    "zero-row npy": (lambda d: ["kmeans", _npy(d / "zero.npy", np.zeros((0, 2)))],
                     "zero.npy is empty (shape (0, 2))"),
    "zero-length 1-d npy": (lambda d: ["ppca", _npy(d / "zero1.npy", np.zeros(0))],
                            "zero1.npy is empty (shape (0,))"),
    "ppca max-iter without em": (lambda d: ["ppca", CSV, "--max-iter", "5"],
                                 f"ppca fit of {CSV}: max_iter (--max-iter) is only used by the EM "
                                 "fit (em=True, --em), not by the closed form"),
    "ppca tol without em": (lambda d: ["ppca", CSV, "--tol", "1e-3", "--max-iter", "5"],
                            "max_iter and tol (--max-iter, --tol) are only used by the EM "
                            "fit"),
    "constant target": (lambda d: ["blr", _write(d / "c.csv", "x,y\n1,5\n2,5\n3,5\n")],
                        "c.csv: the target column 'y' is constant (every row is 5): there is "
                        "nothing to regress; choose another target (--target)"),
    "huge target": (lambda d: ["blr", _npy(d / "huge.npy", X * 1e30)],
                    "huge.npy: the target column 'col1' has variance 1.84e+62, beyond what "
                    "float32 resolves: rescale it or fit in float64 (--x64)"),
    # The design overflows (standardised |x| up to 2.1, 2.1**200 > float32's max): refused
    # before the fit compiles. (Iris with --degree 40 fits to NaN and gets the same message.)
    "blr degree 200": (lambda d: ["blr", CSV, "--degree", "200"],
                       f"blr fit of {CSV}: degree=200 (--degree) is too high for float32: the "
                       "fit is not finite; use a lower degree or fit in float64 (--x64)"),
    "unparsable option": (lambda d: ["gmm", CSV, "--n-components", "two"],
                          "argument --n-components: invalid int value: 'two'"),
    "bad choice": (lambda d: ["vbgmm", CSV, "--weight-prior", "beta"],
                   "argument --weight-prior: invalid choice: 'beta'"),
}


def _bytes(path, data):
    path.write_bytes(data)
    return path


def _npy(path, arr):
    np.save(path, np.asarray(arr))
    return str(path)


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, case):
    make_args, message = BAD_CASES[case]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    args = make_args(data_dir)
    out = tmp_path / "out"
    try:
        code = main(["fit", *args, "--out", str(out)])
    except SystemExit as exc:             # argparse usage errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("espresso-jax"), err
    assert "error: " in lines[0] and message in lines[0] and "Traceback" not in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]   # no staging folder left


def test_existing_foreign_out_dir_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["fit", "ppca", CSV, "--out", str(out)]) == 2
    assert "exists and is not an espresso-jax fit folder" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_error_while_writing_leaves_the_previous_fit_untouched(tmp_path, capsys, monkeypatch):
    out = tmp_path / "fit"
    assert main(["fit", "ppca", CSV, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken_plot(*args):
        raise ValueError("plot failed")

    monkeypatch.setattr(fitting.plots, "plot_fit", broken_plot)
    capsys.readouterr()
    assert main(["fit", "ppca", CSV, "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == "espresso-jax: error: plot failed"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit"]     # staging removed


def test_refit_replaces_an_earlier_fit_folder(tmp_path, capsys):
    out = tmp_path / "fit"
    assert main(["fit", "ppca", CSV, "--out", str(out)]) == 0
    assert main(["fit", "kmeans", CSV, "--out", str(out), "--n-clusters", "3",
                 "--n-init", "2"]) == 0    # the options of the kmeans test: compiled once
    assert fitting.load_info(out)["model"] == "kmeans"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit"]


def test_load_fitted_rejects_a_folder_without_sidecar(tmp_path):
    with pytest.raises(FileNotFoundError, match="no params.json beside"):
        fitting.load_fitted(tmp_path)


def test_fit_model_rejects_bad_arguments():
    import jax

    with pytest.raises(ValueError, match="model must be one of"):
        fitting.fit_model(jax.random.key(0), "svm", X)
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_clusters'"):
        fitting.fit_model(jax.random.key(0), "gmm", X, n_clusters=2)
    with pytest.raises(ValueError, match="columns has 3 names for 2 columns"):
        fitting.fit_model(jax.random.key(0), "ppca", X, columns=("a", "b", "c"))


def test_load_table_header_detection_and_delimiters(tmp_path):
    t = fitting.load_table(_write(tmp_path / "a.csv", "# comment\nx;y\n1;2\n\n3;4.5\n"))
    assert t.columns == ("x", "y")
    np.testing.assert_array_equal(t.data, [[1.0, 2.0], [3.0, 4.5]])
    t = fitting.load_table(_write(tmp_path / "b.csv", "1\t2\n3\t4\n"))
    assert t.columns == ("col0", "col1") and t.data.shape == (2, 2)
    t = fitting.load_table(_npy(tmp_path / "c.npy", np.arange(3, dtype=np.int32)))
    assert t.data.shape == (3, 1) and t.data.dtype == np.float64


def test_cli_fit_subprocess_smoke(tmp_path):
    out = tmp_path / "blr"
    proc = subprocess.run([sys.executable, "-m", "espresso_jax.apps.cli", "fit", "blr", CSV,
                           "--basis", "none", "--x64", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "load_fitted" in proc.stdout and "Traceback" not in proc.stderr
    assert {p.name for p in out.iterdir()} == {"params.msgpack", "params.msgpack.sha256",
                                               "params.json", "summary.json", "plot.png"}
    info = fitting.load_info(out)
    assert info["options"]["basis"] == "none" and info["leaves"][0]["dtype"] == "float64"


# ------------------------------------------------------- library failures, checksums, folder modes

def _one_error_line(capsys):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("espresso-jax: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_non_finite_fit_or_library_error_names_the_data_file(tmp_path, capsys, monkeypatch):
    """Whatever the library's scale handling, a fit that comes back non-finite (faked here: no
    compile) or a ValueError from inside the library is one line naming DATA, nothing written."""
    from types import SimpleNamespace

    from espresso_jax.mixture import kmeans

    def nan_fit(key, X, k, **options):
        return SimpleNamespace(params=kmeans.KMeansParams(np.full((k, X.shape[1]), np.nan)),
                               inertia=np.inf)

    def failing_fit(X, n_components, **options):
        raise ValueError("params.W contains NaN")

    monkeypatch.setattr(kmeans, "fit", nan_fit)
    monkeypatch.setattr(ppca, "fit", failing_fit)
    out = tmp_path / "out"
    assert main(["fit", "kmeans", CSV, "--out", str(out)]) == 2
    assert _one_error_line(capsys) == (
        f"espresso-jax: error: kmeans fit of {CSV}: the kmeans result is not finite in float32 "
        "(the data's |values| range from 1.6 to 96): rescale the columns or fit in float64 "
        "(--x64)")
    assert main(["fit", "ppca", CSV, "--out", str(out)]) == 2
    assert _one_error_line(capsys) == (
        f"espresso-jax: error: ppca fit of {CSV}: params.W contains NaN")
    assert list(tmp_path.iterdir()) == []


def test_fit_folder_params_are_checksummed(tmp_path, capsys):
    out = tmp_path / "fit"
    assert main(["fit", "ppca", CSV, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"]["params_checksum"] == "params.msgpack.sha256"
    digest = (out / "params.msgpack.sha256").read_text().split()[0]
    assert digest == hashlib.sha256((out / "params.msgpack").read_bytes()).hexdigest()
    data = bytearray((out / "params.msgpack").read_bytes())
    data[-3] ^= 0xFF                                   # a byte of the last array
    (out / "params.msgpack").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="params.msgpack does not match its checksum"):
        fitting.load_fitted(out)


@pytest.mark.parametrize("umask", [0o027, 0o002], ids=["umask027", "umask002"])
def test_output_folders_follow_the_umask(tmp_path, capsys, umask):
    from espresso_jax.apps.report import Report

    old = os.umask(umask)
    try:
        assert main(["fit", "ppca", CSV, "--out", str(tmp_path / "fit")]) == 0
        report = Report(tmp_path / "report", title="t")
        report.metrics({"x": 1.0})
        report.write()
    finally:
        os.umask(old)
    for folder in ("fit", "report"):
        assert stat.S_IMODE((tmp_path / folder).stat().st_mode) == 0o777 & ~umask, folder
    assert stat.S_IMODE((tmp_path / "fit" / "params.msgpack").stat().st_mode) == \
        0o666 & ~umask


def test_tour_seed_out_of_range_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["tour", "--seed", "4294967296", "--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    assert _one_error_line(capsys) == (
        "espresso-jax: error: argument --seed: must be an integer in 0..4294967295 (32 bits), "
        "got 4294967296 (see espresso-jax tour --help)")
    assert list(tmp_path.iterdir()) == []


def test_unexpected_exception_is_still_one_line_exit_2(tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(fitting, "run_fit", broken)
    monkeypatch.delenv("ESPRESSO_JAX_TRACEBACK", raising=False)
    assert main(["fit", "ppca", CSV, "--out", str(tmp_path / "out")]) == 2
    assert _one_error_line(capsys) == (
        "espresso-jax: error: internal error (RuntimeError: boom second line); rerun with "
        "ESPRESSO_JAX_TRACEBACK=1 for the traceback and please report it")
    monkeypatch.setenv("ESPRESSO_JAX_TRACEBACK", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["fit", "ppca", CSV, "--out", str(tmp_path / "out")])
    assert list(tmp_path.iterdir()) == []
