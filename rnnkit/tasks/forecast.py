"""Time-series forecasting (N→M over numbers): ``rnnkit train --task forecast --data FILE.csv``.

From a window of the last ``lookback`` steps (the target and any covariates) the model forecasts the
next ``horizon`` values of the target: a recurrent encoder (any registered cell) then either a dense
head that writes all ``horizon`` values at once (direct) or an autoregressive decoder that feeds each
forecast back in (``decoder=True``). With ``quantiles`` it writes those quantiles of each value,
trained with the pinball loss; the median is the point forecast.

Scaling (``normalize``), fitted on the training part only:

- ``"window"`` (the default): each window is shifted by its own last target value and divided by the
  training part's standard deviation of one-step changes, and the model forecasts the differences
  from a reference forecast made at the same origin (``reference``): the naive one (the last value)
  or the seasonal-naive one (the value one season back), whichever has the lower error over the
  horizon on the training part (``"auto"``). A trending series then looks alike at every level, and
  a seasonal one is differenced by its season (a plain LSTM with global scaling loses to
  seasonal-naive on the airline series);
- ``"global"``: every value z-scored with the training part's mean and standard deviation.

Splits in time order: the last ``test_fraction`` of the rows is the test part, the ``val_fraction``
before it the validation part (best weights, early stopping); windows never read past their origin.
Evaluation is a rolling origin over the test part: every origin forecasts its ``horizon`` next values,
scored at each horizon by MAE, RMSE, MASE and sMAPE beside the naive (last value) and seasonal-naive
(the value one season back) forecasts made at the same origins. Shapes: B windows, L lookback, H
horizon, C value columns, Q quantiles.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rnnkit.cells import CELLS
from rnnkit.core import RecurrentStack
from rnnkit.tasks.base import Task
from rnnkit.tasks.forecast_data import FILLS, load_series
from rnnkit.tasks.forecast_metrics import baselines, mase_scale, score
from rnnkit.train import Callback
from rnnkit.train.config import check_fields, option

NORMALIZE = ("window", "global")
REFERENCES = ("auto", "naive", "seasonal")


def _parse_quantiles(text: str | None) -> tuple[float, ...]:
    if not text:
        return ()
    try:
        qs = tuple(float(q) for q in text.split(","))
    except ValueError:
        raise ValueError(f"quantiles must be numbers in (0, 1) separated by commas, got {text!r}") from None
    if any(not 0 < q < 1 for q in qs) or len(set(qs)) != len(qs):
        raise ValueError(f"quantiles must be distinct numbers in (0, 1), got {text!r}")
    return tuple(sorted(qs))


@dataclass
class ForecastConfig:
    """What a forecaster is trained on and what it is."""

    data: str = option("", "CSV file: a date column and value columns, a header row")
    column: str | None = option(None, "value column(s) to use, comma-separated: the first is forecast, "
                                      "the others are covariates (none: the one value column)")
    date_col: str | None = option(None, "the date column (none: the first column)")
    fill: str = option("none", "missing values: an error, the last value carried forward, or "
                               "linear interpolation", choices=FILLS)
    lookback: int | None = option(None, "steps the model reads (none: two seasons, at least 24)")
    horizon: int = option(12, "steps it forecasts")
    season: int | None = option(None, "steps in a season, for seasonal-naive and MASE (none: from the "
                                      "dates: 12 for months, 7 for days, ...)")
    normalize: str = option("window", "scaling: per window (shift by its last value) or global "
                                      "z-scores", choices=NORMALIZE)
    reference: str = option("auto", "window scaling: forecast the differences from this forecast "
                                    "(auto: naive or seasonal-naive, the better on the training part)",
                            choices=REFERENCES)
    test_fraction: float = option(0.2, "the last fraction of the rows held out for the test")
    val_fraction: float = option(0.1, "the fraction before the test part used for validation")
    cell: str = option("lstm", "recurrent cell", choices=lambda: tuple(sorted(CELLS)))
    hidden: int = option(64, "hidden units per layer")
    layers: int = option(1, "stacked recurrent layers")
    dropout: float = option(0.1, "dropout before the head (and between layers)")
    decoder: bool = option(False, "an autoregressive decoder instead of the direct multi-step head")
    quantiles: str | None = option(None, "quantiles to forecast, e.g. 0.1,0.5,0.9 (pinball loss); "
                                         "none: a point forecast (absolute error)")
    batch_size: int = option(32, "windows per batch")

    def __post_init__(self):
        check_fields(self)
        if not self.data:
            raise ValueError("ForecastConfig: data is required (--data FILE.csv)")
        for name in ("horizon", "hidden", "layers", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"ForecastConfig: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("lookback", "season"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"ForecastConfig: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("test_fraction", "val_fraction"):
            if not 0 < getattr(self, name) < 0.5:
                raise ValueError(f"ForecastConfig: {name} must be in (0, 0.5), got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"ForecastConfig: dropout must be in [0, 1), got {self.dropout}")
        _parse_quantiles(self.quantiles)

    def columns(self) -> list[str] | None:
        return [c.strip() for c in self.column.split(",")] if self.column else None


class Forecaster(nn.Module):
    """Encoder over ``(B, L, C)`` windows -> ``(B, H, Q)`` forecasts (scaled units)."""

    def __init__(self, inputs: int, horizon: int, n_quantiles: int = 1, cell: str = "lstm",
                 hidden: int = 64, layers: int = 1, dropout: float = 0.1, decoder: bool = False):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"Forecaster: unknown cell {cell!r}; known cells: {sorted(CELLS)}")
        self.args = dict(inputs=inputs, horizon=horizon, n_quantiles=n_quantiles, cell=cell,
                         hidden=hidden, layers=layers, dropout=dropout, decoder=decoder)
        self.horizon, self.n_quantiles, self.decoder = horizon, n_quantiles, decoder
        with warnings.catch_warnings():  # one layer: the stack warns that dropout does nothing
            warnings.simplefilter("ignore", UserWarning)
            self.encoder = RecurrentStack(cell, inputs, hidden, layers, batch_first=True,
                                          dropout=dropout if layers > 1 else 0.0)
            if decoder:
                self.dec = RecurrentStack(cell, 1, hidden, layers, batch_first=True,
                                          dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.output_size,
                              n_quantiles if decoder else horizon * n_quantiles)

    def config(self) -> dict:
        return dict(self.args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, state = self.encoder(x)                              # (B, L, H)
        if not self.decoder:
            y = self.head(self.drop(out[:, -1]))                  # (B, H*Q)
            return y.view(len(x), self.horizon, self.n_quantiles)
        prev = x[:, -1:, :1]                                      # (B, 1, 1) the last target value
        steps = []
        for _ in range(self.horizon):
            o, state = self.dec(prev, state)
            q = self.head(self.drop(o[:, -1]))                    # (B, Q)
            steps.append(q)
            prev = q[:, self.n_quantiles // 2].view(-1, 1, 1)     # feed back the median
        return torch.stack(steps, dim=1)                          # (B, H, Q)


class ForecastTask(Task):
    """Forecasting the next ``horizon`` values of a series from its last ``lookback`` values."""

    name = "forecast"
    Config = ForecastConfig
    primary_metric = "mae"
    higher_is_better = False
    count_unit = "windows"
    default_budget = {"epochs": 60.0}

    # -- building ---------------------------------------------------------------------------------
    def load_data(self, run, progress):
        cfg = self.config
        s = load_series(cfg.data, cfg.columns(), date_col=cfg.date_col, fill=cfg.fill)
        self.series = s
        self.season = cfg.season or s.season
        self.lookback = cfg.lookback or max(24, 2 * self.season)
        self.quantiles = _parse_quantiles(cfg.quantiles)
        n = len(s.values)
        self.n_test = max(cfg.horizon, int(round(n * cfg.test_fraction)))
        self.n_val = max(cfg.horizon, int(round(n * cfg.val_fraction)))
        self.n_train = n - self.n_test - self.n_val
        need = self.lookback + cfg.horizon
        if self.n_train < need + 1:
            raise ValueError(
                f"{cfg.data}: {n} rows leave {self.n_train} for training after the validation "
                f"({self.n_val}) and test ({self.n_test}) parts; a training window needs lookback + "
                f"horizon = {self.lookback} + {cfg.horizon} = {need} rows and one more to learn from: "
                f"at least {need + 1 + self.n_val + self.n_test} rows in all (or a smaller --lookback / "
                f"--horizon)")
        train = s.values[:self.n_train]
        self.mean, self.std = train.mean(0), train.std(0) + 1e-8
        self.step_std = float(np.std(np.diff(train[:, 0]))) + 1e-8
        self.scale = mase_scale(train[:, 0], self.season)
        self.reference = self.choose_reference(train[:, 0])
        self.data = s

    def choose_reference(self, train: np.ndarray) -> str:
        """``reference``, or for ``"auto"`` the baseline with the lower mean absolute error over the
        horizon on the training part (only past values are used: no test data)."""
        if self.config.reference != "auto":
            return self.config.reference
        H, m = self.config.horizon, self.season
        origins = range(max(m * math.ceil(H / m), 1), len(train) - H + 1)
        if m <= 1 or len(origins) < 1:
            return "naive"
        naive, snaive = baselines(train, origins, H, m)
        true = np.stack([train[t:t + H] for t in origins])
        return "seasonal" if np.abs(snaive - true).mean() < np.abs(naive - true).mean() else "naive"

    def check(self):
        if self.series.gaps:
            self._gap_note = self.series.gap_report()

    def build_model(self):
        return Forecaster(len(self.series.columns), self.config.horizon, max(1, len(self.quantiles)),
                          self.config.cell, self.config.hidden, self.config.layers, self.config.dropout,
                          self.config.decoder)

    def describe_data(self):
        s, n = self.series, sum(p.numel() for p in self.model.parameters())
        note = getattr(self, "_gap_note", "")
        return ((note + "\n" if note else "") +
                f"data: {s.name}: {len(s.values)} {s.step}s of {s.columns} ({self.n_train} training, "
                f"{self.n_val} validation, {self.n_test} test); lookback {self.lookback}, horizon "
                f"{self.config.horizon}, season {self.season}, reference {self.reference}; "
                f"model: {n:,} parameters on {self.device}")

    def config_sections(self):
        return {**super().config_sections(),
                "scaling": {"mean": self.mean.tolist(), "std": self.std.tolist(),
                            "step_std": self.step_std, "lookback": self.lookback, "season": self.season,
                            "mase_scale": self.scale, "reference": self.reference}}

    def start(self):
        self.x, self.y, self.base = self.windows(range(self.lookback, self.n_train - self.config.horizon + 1))
        val_end = self.n_train + self.n_val
        self.vx, self.vy, self.vbase = self.windows(range(self.n_train, val_end - self.config.horizon + 1))
        self.steps_per_epoch = max(1, math.ceil(len(self.x) / self.config.batch_size))
        self.gen = torch.Generator().manual_seed(self.train_config.seed)
        self._order, self._pos, self.epoch = torch.randperm(len(self.x), generator=self.gen), 0, 0

    # -- windows and scaling ----------------------------------------------------------------------
    def windows(self, origins, values: np.ndarray | None = None):
        """Inputs ``(B, L, C)`` and targets ``(B, H)`` in scaled units, and each window's shift
        ``(B,)``, for forecasts made at ``origins`` (the first forecast step's row)."""
        v = self.series.values if values is None else values
        L, H = self.lookback, self.config.horizon
        origins = list(origins)
        x = np.stack([v[t - L:t] for t in origins]) if origins else np.zeros((0, L, v.shape[1]))
        y = np.stack([v[t:t + H, 0] if t + H <= len(v) else np.full(H, np.nan) for t in origins]) \
            if origins else np.zeros((0, H))
        ref = self.reference_forecast(v[:, 0], origins)
        x, y, base = self.scale_in(x, y, ref)
        return (torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32),
                torch.tensor(base, dtype=torch.float32))

    def reference_forecast(self, v: np.ndarray, origins: list[int]) -> np.ndarray:
        """``(B, H)``: the reference forecast at ``origins`` (window scaling), else zeros."""
        H = self.config.horizon
        if self.config.normalize != "window" or not origins:
            return np.zeros((len(origins), H))
        naive, snaive = baselines(v, origins, H, self.season)
        return snaive if self.reference == "seasonal" else naive

    def scale_in(self, x: np.ndarray, y: np.ndarray, ref: np.ndarray):
        """Scaled inputs ``(B, L, C)``, targets ``(B, H)`` and the reference ``(B, H)`` (z-units)."""
        x = (x - self.mean) / self.std                           # (B, L, C) z-scores
        y = (y - self.mean[0]) / self.std[0]
        if self.config.normalize == "window":
            base = (ref - self.mean[0]) / self.std[0]            # the reference forecast, z-units
            k = self.std[0] / self.step_std                      # z-units -> one-step-change units
            x[:, :, 0] = (x[:, :, 0] - x[:, -1:, 0]) * k         # each window from its last value
            y = (y - base) * k
        else:
            base = np.zeros_like(y)
        return x, y, base

    def scale_out(self, pred: torch.Tensor, base: torch.Tensor) -> np.ndarray:
        """``(B, H, Q)`` scaled forecasts -> the series' units."""
        p = pred.double().numpy()
        if self.config.normalize == "window":
            p = p / (self.std[0] / self.step_std) + base.double().numpy()[:, :, None]
        return p * self.std[0] + self.mean[0]

    # -- the trainer's protocol -------------------------------------------------------------------
    def next_batch(self):
        if self._pos >= len(self._order):
            self._order, self._pos = torch.randperm(len(self.x), generator=self.gen), 0
            self.epoch += 1
        idx = self._order[self._pos:self._pos + self.config.batch_size]
        self._pos += self.config.batch_size
        return self.x[idx].to(self.device), self.y[idx].to(self.device)

    def _loss_sum(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Absolute error (a point forecast: the median), or the pinball loss of each quantile."""
        if not self.quantiles:
            return (pred[..., 0] - y).abs().sum()
        q = torch.tensor(self.quantiles, device=pred.device)
        err = y.unsqueeze(-1) - pred                             # (B, H, Q)
        return torch.maximum(q * err, (q - 1) * err).sum() / len(self.quantiles)

    def loss(self, batch):
        x, y = batch
        return self._loss_sum(self.model(x), y), y.numel()

    def point(self, pred: torch.Tensor) -> torch.Tensor:
        return pred[..., len(self.quantiles) // 2] if self.quantiles else pred[..., 0]

    def evaluate(self):
        pred = self.model(self.vx.to(self.device)).cpu()
        loss = float(self._loss_sum(pred, self.vy)) / max(1, self.vy.numel())
        p = self.scale_out(pred, self.vbase)[..., len(self.quantiles) // 2 if self.quantiles else 0]
        truth = self.series.values[self.n_train:self.n_train + self.n_val, 0]
        true = np.stack([truth[i:i + self.config.horizon] for i in range(len(p))])
        mae = float(np.abs(p - true).mean())
        return {"loss": loss, "mae": mae, "mase": mae / self.scale}

    def state_dict(self):
        return {"order": self._order, "pos": self._pos, "epoch": self.epoch,
                "gen": self.gen.get_state()}

    def load_state_dict(self, d):
        self._order, self._pos, self.epoch = d["order"], d["pos"], d["epoch"]
        self.gen.set_state(d["gen"])

    # -- after training ---------------------------------------------------------------------------
    @classmethod
    def load(cls, run, device="cpu", data: str | None = None):
        """The task of a finished run, rebuilt on its data (or on ``data``, a newer file with the same
        columns), with its best weights, in eval mode."""
        from rnnkit.train import RunFolder, TrainConfig
        from rnnkit.train.checkpoint import BEST, CONFIG
        folder = RunFolder(run)
        cfg, tr_cfg, model_args = cls.read_configs(folder)
        scaling = folder.read_config(cls.name).get("scaling") or {}
        if data is not None:
            cfg = ForecastConfig(**{**cfg.__dict__, "data": data})
        task = cls(cfg, TrainConfig(**{**tr_cfg.__dict__, "device": "cpu"}), device)
        task.load_data(None, False)
        try:  # the run's own scaling and windows, whatever file is read now
            task.mean, task.std = np.array(scaling["mean"]), np.array(scaling["std"])
            task.step_std, task.lookback = scaling["step_std"], scaling["lookback"]
            task.season, task.scale = scaling["season"], scaling["mase_scale"]
            task.reference = scaling["reference"]
            task.model = Forecaster(**model_args)
        except (KeyError, TypeError, ValueError) as exc:
            from rnnkit.train import RunFolderError
            raise RunFolderError(f"{folder / CONFIG}: bad scaling or model section: {exc}") from None
        folder.load_weights(BEST, task.model)
        task.model.to(task.device).eval()
        return task

    def forecast_at(self, origins) -> np.ndarray:
        """``(B, H, Q)`` forecasts in the series' units made at ``origins``."""
        x, _, base = self.windows(origins)
        with torch.no_grad():
            pred = self.model(x.to(self.device)).cpu()
        return self.scale_out(pred, base)

    def rolling_evaluation(self) -> dict:
        """The test part, every origin: per-horizon MAE/RMSE/MASE/sMAPE of the model, naive and
        seasonal-naive."""
        H, v = self.config.horizon, self.series.values[:, 0]
        start = len(v) - self.n_test
        origins = list(range(start, len(v) - H + 1))
        pred = self.forecast_at(origins)[..., len(self.quantiles) // 2 if self.quantiles else 0]
        true = np.stack([v[t:t + H] for t in origins])
        naive, snaive = baselines(v, origins, H, self.season)
        return {"origins": len(origins), "horizon": H, "season": self.season,
                "rnn": score(pred, true, self.scale), "naive": score(naive, true, self.scale),
                "seasonal_naive": score(snaive, true, self.scale)}

    @classmethod
    def evaluate_run(cls, run, data=None, *, split=None, device="cpu", **options):
        if split not in (None, "test"):
            raise ValueError(f"forecast runs are evaluated on the test part (rolling origin), got "
                             f"--split {split}")
        task = cls.load(run, device, data)
        result = task.rolling_evaluation()
        result["data"] = task.series.name
        return result

    @classmethod
    def format_evaluation(cls, r):
        lines = [f"{r['data']}: rolling-origin evaluation on the test part, {r['origins']} origins, "
                 f"season {r['season']}",
                 f"{'horizon':>8} {'model':>15} {'MAE':>10} {'RMSE':>10} {'MASE':>8} {'sMAPE %':>8}"]
        shown = sorted({1, r["horizon"]})
        for h in shown:
            for name in ("rnn", "naive", "seasonal_naive"):
                m = r[name][h - 1]
                lines.append(f"{h:>8} {name:>15} {m['mae']:>10.4f} {m['rmse']:>10.4f} "
                             f"{m['mase']:>8.4f} {m['smape']:>8.2f}")
        return "\n".join(lines) + "\n"

    # -- continuing a series, and the picture -----------------------------------------------------
    def continue_series(self, steps: int) -> list[dict]:
        """Forecast ``steps`` steps past the end of the series, feeding forecasts back beyond the
        horizon; one ``{"date", "value", "quantiles"}`` per step."""
        from rnnkit.tasks.forecast_data import future_dates
        H = self.config.horizon
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}")
        if steps > H and len(self.series.columns) > 1:
            raise ValueError(f"steps: the series has covariates ({self.series.columns[1:]}) whose "
                             f"future is unknown; forecast at most the horizon, {H} steps")
        values = self.series.values.copy()
        rows: list[dict] = []
        while len(rows) < steps:
            x, _, base = self.windows([len(values)], values)
            with torch.no_grad():
                pred = self.scale_out(self.model(x.to(self.device)).cpu(), base)[0]  # (H, Q)
            point = pred[:, len(self.quantiles) // 2] if self.quantiles else pred[:, 0]
            take = min(H, steps - len(rows))
            for h in range(take):
                rows.append({"value": float(point[h]),
                             "quantiles": [float(q) for q in pred[h]] if self.quantiles else []})
            values = np.concatenate([values, np.repeat(values[-1:], take, 0)])
            values[-take:, 0] = point[:take]
        for r, d in zip(rows, future_dates(self.series, steps)):
            r["date"] = d
        return rows

    def plot(self, rows: list[dict], path, truth: np.ndarray | None = None) -> None:
        """History (the last few horizons), the forecast rows (with their quantile band) and, when
        given, the true values over the forecast steps, into a PNG at ``path``."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from rnnkit.data.atomic import atomic_path
        v = self.series.values[:, 0]
        shown = v[-(self.lookback + 3 * self.config.horizon):]
        t0 = len(v) - len(shown)
        fig = Figure(figsize=(9, 4), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        ax.plot(range(t0, len(v)), shown, color="tab:blue", label="history")
        xs = range(len(v), len(v) + len(rows))
        if truth is not None:
            ax.plot(xs, truth[:len(rows)], color="black", label="truth")
        ax.plot(xs, [r["value"] for r in rows], "o-", color="tab:orange", markersize=3,
                label="forecast")
        if self.quantiles:
            lo = [r["quantiles"][0] for r in rows]
            hi = [r["quantiles"][-1] for r in rows]
            ax.fill_between(xs, lo, hi, color="tab:orange", alpha=0.25,
                            label=f"{self.quantiles[0]:g}-{self.quantiles[-1]:g} quantiles")
        ax.set_title(f"{self.series.name}: {self.series.columns[0]}")
        ax.set_xlabel(f"{self.series.step}s")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")

    def callbacks(self):
        return [TestPlot()]


class TestPlot(Callback):
    """At the end of training: the forecast from the first test origin beside the truth, drawn into
    the run folder's forecast.png (with the weights that are validated: the averaged ones)."""

    def on_train_end(self, trainer, result) -> None:
        task = trainer.task
        if trainer.run is None:
            return
        H, start = task.config.horizon, len(task.series.values) - task.n_test
        with trainer.averaged_weights():
            task.model.eval()
            pred = task.forecast_at([start])[0]
            task.model.train()
        rows = [{"value": float(p[len(task.quantiles) // 2] if task.quantiles else p[0]),
                 "quantiles": [float(q) for q in p] if task.quantiles else []} for p in pred]
        full = task.series
        task.series = dataclasses.replace(full, values=full.values[:start])
        try:
            task.plot(rows, trainer.run / "forecast.png", truth=full.values[start:start + H, 0])
        finally:
            task.series = full
