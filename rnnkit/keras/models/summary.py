"""``model.summary()``: Keras's table — layer (type), output shape, parameter count — and totals.

Counts are the parameters each layer owns in Keras's layout, so they equal Keras's (``SimpleRNN(3)``
on 5 features: 27; ``LSTM(10)`` on 10: 840). Functional models with branches add Keras's
"Connected to" column. The batch axis shows as ``None``."""
from __future__ import annotations

from rnnkit.keras.layers.input_layer import is_input
from rnnkit.keras.layers.layer import Layer, is_shape


def format_shape(shape) -> str:
    if shape is None:
        return "?"
    if is_shape(shape):
        dims = ", ".join("None" if d is None else str(d) for d in shape)
        return "(" + dims + ("," if len(shape) == 1 else "") + ")"
    return "[" + ", ".join(format_shape(s) for s in shape) + "]"


def format_size(n_params: int, bytes_per: int = 4) -> str:
    size = float(n_params * bytes_per)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{n_params:,} ({size:.2f} {unit})"
        size /= 1024
    return ""


def _params(layer) -> str:
    built = layer.built if isinstance(layer, Layer) else True
    n = sum(p.numel() for p in layer.parameters())
    return f"{n:,}" if built else "0 (unbuilt)"


def _title(layer) -> str:
    name = getattr(layer, "name", None) or type(layer).__name__.lower()
    return f"{name} ({type(layer).__name__})"


def rows(model) -> tuple[list[list[str]], bool]:
    """The table's rows and whether it has the "Connected to" column."""
    if hasattr(model, "_nodes"):  # functional
        connected = len(model._flat_inputs) > 1 or any(len(n.parents) > 1 for n in model._nodes) \
            or len({id(n.layer) for n in model._nodes}) != len(model._nodes) or \
            len(model._flat_outputs) > 1
        out = []
        for t in model._flat_inputs:
            out.append([f"{t.name} (InputLayer)", format_shape(t.shape), "0", "-"])
        for node in model._nodes:
            shapes = [t.shape for t in node.outputs]
            parents = ", ".join(f"{p.node.layer.name}[{_node_index(model, p)}][{p.index}]"
                                for p in node.parents)
            out.append([_title(node.layer), format_shape(shapes[0] if len(shapes) == 1 else shapes),
                        _params(node.layer), parents or "-"])
        return out, connected
    out = []
    for layer in model.layers:
        shape = getattr(layer, "_summary_output_shape", None)
        out.append([_title(layer), format_shape(shape), _params(layer)])
    return out, False


def _node_index(model, t) -> int:
    if is_input(t):
        return 0
    same = [n for n in model._nodes if n.layer is t.node.layer]
    return same.index(t.node)


def _fit_widths(widths: list[int], line_length: int, positions) -> list[int]:
    """Column widths for a table ``line_length`` characters wide, split at ``positions`` (fractions
    or absolute character positions, as Keras takes them); long cells are cut to fit."""
    n = len(widths)
    if positions is None:  # Keras's splits for 3 and 4 columns; otherwise the natural proportions
        natural = [sum(w + 3 for w in widths[:i + 1]) / sum(w + 3 for w in widths) for i in range(n)]
        positions = {3: [0.45, 0.85, 1.0], 4: [0.3, 0.6, 0.70, 1.0]}.get(n, natural)
    if len(positions) != n:
        raise ValueError(f"summary: positions must have {n} entries (one per column), got {positions!r}")
    if all(p <= 1 for p in positions):
        positions = [int(line_length * p) for p in positions]
    edges = [0] + list(positions)
    # each column draws 3 characters of border and padding around its text
    return [max(edges[i + 1] - edges[i] - 3, 4) for i in range(n)]


def _trainable_flags(model) -> list[str]:
    def flag(layer):
        params = list(layer.parameters()) if hasattr(layer, "parameters") else []
        return "-" if not params else ("Y" if any(p.requires_grad for p in params) else "N")
    if hasattr(model, "_nodes"):  # functional: one row per input, then one per call
        return ["-"] * len(model._flat_inputs) + [flag(n.layer) for n in model._nodes]
    return [flag(layer) for layer in model.layers]


def print_summary(model, print_fn=None, line_length=None, positions=None, show_trainable=False) -> None:
    emit = print_fn or print
    table, connected = rows(model)
    headers = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if connected else [])
    minimum = [31, 22, 13] + ([17] if connected else [])
    if show_trainable:  # Keras's extra column: Y (trainable), N (frozen), - (no weights)
        headers.append("Trainable")
        minimum.append(9)
        trainable = _trainable_flags(model)
        table = [r + [trainable[i]] for i, r in enumerate(table)]
    widths = [max([minimum[i], len(headers[i])] + [len(r[i]) for r in table]) for i in range(len(headers))]
    if line_length is not None or positions is not None:
        widths = _fit_widths(widths, line_length or sum(w + 3 for w in widths) + 1, positions)
        widths = [max(w, len(h)) for w, h in zip(widths, headers)]  # headers are never cut
        table = [[v[:w] for v, w in zip(r, widths)] for r in table]
    right = [False, False, True] + [False] * (len(headers) - 3)

    def line(left, mid, end, fill):
        return left + mid.join(fill * (w + 2) for w in widths) + end

    def cells(values, bar):
        parts = [(v.rjust(w) if right[i] else v.ljust(w)) for i, (v, w) in enumerate(zip(values, widths))]
        return bar + bar.join(f" {p} " for p in parts) + bar

    emit(f'Model: "{model.name}"')
    emit(line("┏", "┳", "┓", "━"))
    emit(cells(headers, "┃"))
    emit(line("┡", "╇", "┩", "━"))
    for i, r in enumerate(table):
        emit(cells(r, "│"))
        if i < len(table) - 1:
            emit(line("├", "┼", "┤", "─"))
    emit(line("└", "┴", "┘", "─"))
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    opt = getattr(model, "optimizer", None)
    count_variables = getattr(opt, "count_variables", None)
    opt_count = count_variables() if count_variables is not None else 0
    emit(f" Total params: {format_size(total + opt_count)}")
    emit(f" Trainable params: {format_size(trainable)}")
    emit(f" Non-trainable params: {format_size(total - trainable)}")
    if opt_count:
        emit(f" Optimizer params: {format_size(opt_count)}")
