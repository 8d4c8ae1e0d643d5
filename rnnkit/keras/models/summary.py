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


def print_summary(model, print_fn=None) -> None:
    emit = print_fn or print
    table, connected = rows(model)
    headers = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if connected else [])
    minimum = [31, 22, 13, 17]
    widths = [max([minimum[i], len(headers[i])] + [len(r[i]) for r in table]) for i in range(len(headers))]
    right = [False, False, True, False]

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
    opt_count = opt.count_variables() if hasattr(opt, "count_variables") else 0
    emit(f" Total params: {format_size(total + opt_count)}")
    emit(f" Trainable params: {format_size(trainable)}")
    emit(f" Non-trainable params: {format_size(total - trainable)}")
    if opt_count:
        emit(f" Optimizer params: {format_size(opt_count)}")
