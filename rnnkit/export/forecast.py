"""Export of a forecasting run (`rnnkit.tasks.forecast.Forecaster`): one graph, ``model``:
``windows (B, L, C) float32 -> forecasts (B, H, Q)``, both in the run's *scaled* units.

The scaling is not in the graph (it needs the raw window's last value and, for a seasonal reference,
values one season back): export.json's ``scaling`` holds the run's numbers (config.json's "scaling"
section, fitted on the training part) and the recipe, so a consumer scales in and out as
`rnnkit.tasks.forecast.ForecastTask.scale_in` / ``scale_out`` do. With ``normalize="global"``:
``x = (raw - mean) / std`` per column, ``forecast = y * std[0] + mean[0]``. With ``"window"``: the
same z-scores, then the target column of each window minus its last value, times ``k = std[0] /
step_std``; the forecast is ``(y / k + ref_z) * std[0] + mean[0]`` with ``ref_z`` the reference
forecast (the last value, or the value one season back, per ``reference``) in z-units.

Shapes: B windows, L lookback, C value columns, H horizon, Q quantiles (1 for a point forecast).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.export.contract import ExportError, ExportPlan, Graph
from rnnkit.export.recurrence import ExportStack, export_unavailable
from rnnkit.train import RunFolder, RunFolderError
from rnnkit.train.checkpoint import BEST, CONFIG


class ExportForecaster(nn.Module):
    """``forward(x (B, L, C)) -> (y (B, H, Q),)``: `Forecaster.forward` in exportable operators (the
    autoregressive decoder, when there is one, unrolled over the fixed horizon)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.encoder = ExportStack(model.encoder)
        self.dec = ExportStack(model.dec) if model.decoder else None
        self.shapes = [tuple(s) for s in model.encoder.cells[0].state_shapes]

    def forward(self, x: Tensor) -> tuple[Tensor]:
        m = self.model
        xt = x.transpose(0, 1)                                            # (L, B, C)
        zeros = tuple(x.new_zeros((m.encoder.num_layers, x.shape[0], *s)) for s in self.shapes)
        out, state = self.encoder(xt, zeros)                              # (L, B, H)
        if self.dec is None:
            y = m.head(out[-1])                                           # (B, H*Q)
            return (y.reshape(x.shape[0], m.horizon, m.n_quantiles),)
        prev = x[:, -1, :1]                                               # (B, 1) the last target value
        steps = []
        for _ in range(m.horizon):
            o, state = self.dec.step(prev, state)
            q = m.head(o)                                                 # (B, Q)
            steps.append(q)
            prev = q[:, m.n_quantiles // 2:m.n_quantiles // 2 + 1]        # feed back the median
        return (torch.stack(steps, dim=1),)                               # (B, H, Q)


def load_forecaster(run: RunFolder):
    """The run's `Forecaster` (best weights, eval mode), its `ForecastConfig` and config.json, without
    reading its data."""
    from rnnkit.tasks.forecast import Forecaster, ForecastTask
    cfg, _, model_args = ForecastTask.read_configs(run)
    try:
        model = Forecaster(**model_args)
    except (TypeError, ValueError) as exc:
        raise RunFolderError(f"{run / CONFIG}: bad model arguments {model_args}: {exc}") from None
    run.load_weights(BEST, model)
    return model.eval(), cfg, run.read_config(ForecastTask.name)


def plan(run: RunFolder) -> ExportPlan:
    """The export plan of a forecasting run (`rnnkit.export.contract`)."""
    model, cfg, config = load_forecaster(run)
    for name in ("encoder", "dec"):
        stack = getattr(model, name, None)
        reason = stack is not None and export_unavailable(stack)
        if reason:
            raise ExportError(f"{run.path}: this forecaster's {name} ({model.args['cell']}) cannot be "
                              f"exported: {reason}")
    scaling = config.get("scaling")
    if not isinstance(scaling, dict) or "lookback" not in scaling:
        raise RunFolderError(f"{run / CONFIG} has no \"scaling\" section with the lookback; it is "
                             f"not a finished forecasting run")
    L, C = int(scaling["lookback"]), model.args["inputs"]

    def sample(batch: int, time: int) -> tuple[Tensor, ...]:
        g = torch.Generator().manual_seed(batch * 1000 + time)
        return (torch.randn(batch, L, C, generator=g),)

    def reference(x: Tensor) -> tuple[Tensor, ...]:
        with torch.no_grad():
            return (model(x),)

    graph = Graph("model", ExportForecaster(model).eval(), sample, ("x",), ("y",),
                  {"x": {0: "batch"}, "y": {0: "batch"}}, reference,
                  f"windows of the last {L} steps (batch, {L}, {C}) float32 in scaled units -> forecasts "
                  f"(batch, {model.horizon}, {model.n_quantiles}) in scaled units (see \"scaling\")")
    files = {CONFIG: run.require(CONFIG).read_bytes()}
    info = {
        "cell": model.args["cell"], "lookback": L, "horizon": model.horizon, "columns": C,
        "quantiles": [float(q) for q in cfg.quantiles.split(",")] if cfg.quantiles else None,
        "quantile_axis": "the last axis of y, in the order of \"quantiles\" (one column: a point "
                         "forecast)",
        "scaling": {**scaling, "normalize": cfg.normalize,
                    "in": "x = (raw - mean) / std per column; with normalize \"window\", then "
                          "x[:, :, 0] = (x[:, :, 0] - x[:, -1:, 0]) * std[0] / step_std",
                    "out": "global: raw = y * std[0] + mean[0]; window: raw = (y * step_std / std[0] + "
                           "ref_z) * std[0] + mean[0], ref_z = (reference forecast - mean[0]) / std[0], "
                           "the reference forecast being the window's last target value (\"naive\") "
                           "or the value one season back for each horizon step (\"seasonal\")"},
    }
    return ExportPlan("forecast", [graph], files, info)

