"""Forecasting: the CSV loader's rules and errors, windows that never see the future, the baselines and
metrics against brute force, and a seconds-long CLI run that beats the baselines on a seasonal series."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.tasks import get_task
from rnnkit.tasks.forecast import ForecastConfig, ForecastTask
from rnnkit.tasks.forecast_data import load_series
from rnnkit.tasks.forecast_metrics import baselines, mase_scale, score
from rnnkit.train import TrainConfig


def write(tmp_path, text, name="s.csv"):
    p = tmp_path / name
    p.write_bytes(text.encode())
    return p


def monthly(n, f=lambda i: i):
    rows = [f'"{1950 + i // 12}-{i % 12 + 1:02d}",{f(i)}' for i in range(n)]
    return '"Month","Value"\r\n' + "\r\n".join(rows)  # CRLF and no final newline, as jbrownlee's


def test_loader_reads_quoted_crlf_files_and_reports_gaps(tmp_path):
    s = load_series(write(tmp_path, monthly(30)))
    assert s.columns == ["Value"] and s.values.shape == (30, 1) and s.step == "month"
    assert s.season == 12 and not s.gaps
    days = "Date,Temp\n" + "\n".join(f"1984-12-{d:02d},{d}" for d in (28, 29, 30)) + \
        "\n1985-01-01,1\n1985-01-02,2\n1985-01-05,3\n"
    s = load_series(write(tmp_path, days))
    assert s.step == "day" and s.gaps == [("1984-12-30", "1985-01-01", 1), ("1985-01-02", "1985-01-05", 2)]
    assert "3 day(s) are missing" in s.gap_report()


@pytest.mark.parametrize("text, kwargs, message", [
    ("Month,Value\n1950-01,1\n1950-02,x\n", {}, r"row 3: column 'Value' holds 'x', expected a number"),
    ("Month,Value\n1950-01,1\n1950-02,\n1950-03,3\n", {}, r"row 3: column 'Value' is missing.*--fill"),
    ("Month,Value\n1950-01,1\n", {"columns": ["Sales"]},
     r"no column 'Sales'; the columns are \['Month', 'Value'\]"),
    ("Month,Value\nJan,1\n", {}, r"row 2: column 'Month' holds 'Jan', expected an ISO date"),
    ("Month,Value\n1950-02,1\n1950-01,2\n", {}, r"row 3: date 1950-01 does not come after 1950-02"),
    ("Month,Value\n1950-01,1,7\n", {}, r"row 2: 3 fields, expected 2"),
    ("Month,A,B\n1950-01,1,2\n", {}, r"2 value columns \['A', 'B'\]; name the one to forecast"),
    ("", {}, r"is empty"),
])
def test_loader_errors_name_the_row_and_what_was_expected(tmp_path, text, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_series(write(tmp_path, text), **kwargs)


def test_missing_values_filled_forward_or_linearly(tmp_path):
    p = write(tmp_path, "Month,Value\n1950-01,1\n1950-02,NaN\n1950-03,\n1950-04,7\n")
    assert load_series(p, fill="ffill").values[:, 0].tolist() == [1, 1, 1, 7]
    assert load_series(p, fill="linear").values[:, 0].tolist() == [1, 3, 5, 7]


def make_task(path, **kw):
    cfg = ForecastConfig(data=str(path), **kw)
    task = ForecastTask(cfg, TrainConfig(steps=1), "cpu")
    task.load_data(None, False)
    task.model = task.build_model()
    task.start()
    return task


@pytest.mark.parametrize("normalize", ["window", "global"])
def test_windows_never_read_the_future(tmp_path, normalize):
    """A strictly increasing series: every input of a window is below every value it must forecast,
    so a window that leaked a future value would break the order."""
    task = make_task(write(tmp_path, monthly(120, lambda i: 3 * i + math.sin(i))), lookback=10,
                     horizon=5, normalize=normalize)
    for x, y in ((task.x, task.y), (task.vx, task.vy)):
        assert len(x)
        assert (x[:, :, 0].max(1).values < y.min(1).values).all()
        assert torch.allclose(x[:, -1, 0], x[:, :, 0].max(1).values)  # the newest input is the last
    # the windows' first target is the row of their origin: the training targets end before the
    # validation part begins
    assert len(task.x) == task.n_train - task.lookback - 5 + 1


def test_scaling_round_trips_and_is_fitted_on_training_rows_only(tmp_path):
    values = [float(i % 12 + (500 if i >= 100 else 0)) for i in range(140)]
    task = make_task(write(tmp_path, monthly(140, lambda i: values[i])), lookback=12, horizon=4)
    assert task.mean[0] == pytest.approx(np.mean(values[:task.n_train]))  # test jump not seen
    x, y, base = task.windows([50, 60])
    back = task.scale_out(y.unsqueeze(-1), base)[..., 0]
    np.testing.assert_allclose(back, [values[50:54], values[60:64]], atol=1e-4)


def test_baselines_and_metrics_against_brute_force():
    rng = np.random.default_rng(0)
    v = rng.normal(size=60).cumsum()
    origins, H, m = [30, 41, 50], 5, 4
    naive, snaive = baselines(v, origins, H, m)
    for i, t in enumerate(origins):
        for h in range(1, H + 1):
            assert naive[i, h - 1] == v[t - 1]
            k = 1
            while t + h - 1 - k * m >= t:  # one season back, then more until it is in the past
                k += 1
            assert snaive[i, h - 1] == v[t + h - 1 - k * m]
    true = np.stack([v[t:t + H] for t in origins])
    scale = mase_scale(v[:30], m)
    assert scale == pytest.approx(np.mean([abs(v[i] - v[i - m]) for i in range(m, 30)]))
    s = score(naive, true, scale)
    for h in range(H):
        e = [naive[i, h] - true[i, h] for i in range(3)]
        assert s[h]["mae"] == pytest.approx(np.mean(np.abs(e)))
        assert s[h]["rmse"] == pytest.approx(math.sqrt(np.mean(np.square(e))))
        assert s[h]["mase"] == pytest.approx(np.mean(np.abs(e)) / scale)
        sm = [200 * abs(naive[i, h] - true[i, h]) / (abs(naive[i, h]) + abs(true[i, h])) for i in range(3)]
        assert s[h]["smape"] == pytest.approx(np.mean(sm))


def test_pinball_loss_against_its_definition(tmp_path):
    task = make_task(write(tmp_path, monthly(80)), lookback=8, horizon=3, quantiles="0.1,0.5,0.9")
    pred, y = torch.randn(4, 3, 3), torch.randn(4, 3)
    expected = 0.0
    for b in range(4):
        for h in range(3):
            for j, q in enumerate((0.1, 0.5, 0.9)):
                e = float(y[b, h] - pred[b, h, j])
                expected += max(q * e, (q - 1) * e)
    assert float(task._loss_sum(pred, y)) == pytest.approx(expected / 3, rel=1e-5)


def test_too_few_rows_says_how_many_are_needed(tmp_path):
    with pytest.raises(ValueError, match=r"at least \d+ rows in all"):
        make_task(write(tmp_path, monthly(30)), lookback=24, horizon=12)


def test_cli_run_beats_the_baselines_and_continues_the_series(tmp_path, capsys):
    """A seasonal series with a trend and noise: a seconds-long run beats naive and seasonal-naive
    MASE at horizon 1, and `rnnkit forecast` continues it with monthly dates."""
    rng = np.random.default_rng(1)
    vals = [100 + 0.8 * i + 15 * math.sin(2 * math.pi * i / 12) + rng.normal(0, 2) for i in range(240)]
    data = write(tmp_path, monthly(240, lambda i: round(vals[i], 3)))
    run = tmp_path / "run"
    assert main(["train", "--task", "forecast", "--data", str(data), "--horizon", "6",
                 "--hidden", "32", "--epochs", "40", "--out", str(run), "--no-progress",
                 "--threads", "1", "--quantiles", "0.1,0.5,0.9"]) == 0
    assert (run / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    r = get_task("forecast").evaluate_run(run)
    h1 = {k: r[k][0]["mase"] for k in ("rnn", "naive", "seasonal_naive")}
    assert h1["rnn"] < h1["naive"] and h1["rnn"] < h1["seasonal_naive"], h1
    assert main(["forecast", str(run), "--steps", "8", "--plot", str(tmp_path / "f.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "date,Value,q0.1,q0.5,q0.9" and len(lines) == 9
    assert lines[1].startswith("1970-01,") and lines[8].startswith("1970-08,")
    rows = [list(map(float, line.split(",")[1:])) for line in lines[1:]]
    assert all(abs(r[0] - r[2]) < 1e-9 for r in rows)      # the point forecast is the median
    assert main(["evaluate", str(run)]) == 0
    assert "seasonal_naive" in capsys.readouterr().out


def test_evaluate_prints_the_table(tmp_path):
    out = io.StringIO()
    r = {"data": "x", "origins": 3, "season": 12, "horizon": 2,
         **{k: [{"mae": 1.0, "rmse": 2.0, "mase": 0.5, "smape": 3.0}] * 2
            for k in ("rnn", "naive", "seasonal_naive")}}
    out.write(ForecastTask.format_evaluation(r))
    assert out.getvalue().count("\n") == 2 + 2 * 3
