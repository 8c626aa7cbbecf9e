"""A propensity model as one ONNX graph, for serving with ONNX Runtime.

The graph takes one double matrix: the model's features in order, numbers as they are and
categories as their codes (missing: NaN), exactly what :func:`encode` makes of a feature
frame. Inside: each LightGBM member as a TreeEnsemble in double precision (see
:func:`_trees`), each logistic baseline as the additive function it is (see
:func:`_linear`), every calibration written out as plain arithmetic (isotonic: linear
interpolation as a sum of clipped ramps; sigmoid: the fitted logistic curve), and the mean
over members. Both converters are written here: onnxmltools rounds tree thresholds to
float32 and skl2onnx has no form for the signed-log step.

Parity with the native model is measured on real rows at export and kept with the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper, numpy_helper

OPSET = 21
ML_OPSET = 5  # TreeEnsemble with double thresholds and set membership
INPUT = "features"
OUTPUT = "score"


@dataclass
class Export:
    """An ONNX graph of a model, or the reason there is none."""

    model: onnx.ModelProto | None
    reason: str | None = None


def encode(X: pd.DataFrame) -> np.ndarray:
    """The graph's input from a feature frame: numbers as doubles, categories as codes."""
    out = np.empty((len(X), X.shape[1]), dtype=np.float64)
    for j, c in enumerate(X.columns):
        col = X[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy().astype(np.float64)
            codes[codes < 0] = np.nan
            out[:, j] = codes
        else:
            out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _parts(member: Any) -> tuple[Any, str, Any]:
    """(fitted base estimator, calibration method, calibrator) of a calibrated member."""
    if hasattr(member, "calibrator"):  # cross-fitted (crossfit.CrossFitted)
        return member.base, member.method, member.calibrator
    calibrated = member.calibrated_classifiers_[0]
    base = calibrated.estimator
    base = getattr(base, "estimator", base)  # unwrap FrozenEstimator
    return base, member.method, calibrated.calibrators[0]


# TreeEnsemble (ai.onnx.ml 5) node modes
LEQ, EQ, MEMBER = 0, 4, 6


def _trees(booster: Any) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """LightGBM's trees as one ONNX TreeEnsemble in double precision, giving the raw
    margin (the sum of leaf values).

    Written here rather than taken from onnxmltools because its converter stores split
    thresholds as float32: a feature value between a threshold and its float32 rounding
    then takes the other branch, and a few customers in every thousand got visibly
    different scores. The split rules follow LightGBM's own: NaN goes the learned default
    way when missing values were seen; otherwise it counts as zero; with "zero as missing"
    an exact zero goes the default way; a category goes left when it is in the split's set,
    and a missing category goes right.
    """
    dump = booster.dump_model()
    feature, split, mode, true_id, true_leaf, false_id, false_leaf, missing_true = (
        [] for _ in range(8)
    )
    members: list[float] = []
    leaves: list[float] = []
    roots: list[int] = []

    def new_node() -> int:
        for column in (feature, split, mode, true_id, true_leaf, false_id, false_leaf):
            column.append(0)
        missing_true.append(0)
        return len(feature) - 1

    def child(tree: dict[str, Any]) -> tuple[int, int]:
        """(index, is_leaf) of a subtree, adding its nodes."""
        if "leaf_value" in tree:
            leaves.append(float(tree["leaf_value"]))
            return len(leaves) - 1, 1
        return add(tree), 0

    def link(i: int, left: tuple[int, int], right: tuple[int, int]) -> None:
        true_id[i], true_leaf[i] = left
        false_id[i], false_leaf[i] = right

    def add(tree: dict[str, Any]) -> int:
        i = new_node()
        feature[i] = int(tree["split_feature"])
        default_left = bool(tree["default_left"])
        missing = tree["missing_type"]
        if tree["decision_type"] == "==":
            # sets are listed in node order, so this node's before its children's
            mode[i] = MEMBER
            split[i] = np.nan
            members.extend(float(c) for c in str(tree["threshold"]).split("||"))
            members.append(np.nan)
            missing_true[i] = 0
            link(i, child(tree["left_child"]), child(tree["right_child"]))
            return i
        threshold = float(tree["threshold"])
        mode[i], split[i] = LEQ, threshold
        if missing == "Zero":
            # exact zero and NaN go the default way, the rest by the threshold; the default
            # subtree is built twice because ONNX trees cannot share a node
            mode[i], split[i], missing_true[i] = EQ, 0.0, 1
            default = child(tree["left_child"] if default_left else tree["right_child"])
            compare = new_node()
            feature[compare], mode[compare], split[compare] = feature[i], LEQ, threshold
            link(compare, child(tree["left_child"]), child(tree["right_child"]))
            link(i, default, (compare, 0))
            return i
        # NaN: the learned default way; with no missing values in training NaN counts as 0
        missing_true[i] = int(default_left) if missing == "NaN" else int(threshold >= 0.0)
        link(i, child(tree["left_child"]), child(tree["right_child"]))
        return i

    for info in dump["tree_info"]:
        structure = info["tree_structure"]
        if "leaf_value" in structure:  # a tree without splits: one node, both ways the leaf
            i = new_node()
            mode[i], split[i] = LEQ, np.inf
            leaves.append(float(structure["leaf_value"]))
            link(i, (len(leaves) - 1, 1), (len(leaves) - 1, 1))
            roots.append(i)
        else:
            roots.append(add(structure))
    if members:
        members.pop()  # NaN separates the sets; none after the last
    attributes: dict[str, Any] = {
        "aggregate_function": 1,  # sum
        "post_transform": 0,
        "n_targets": 1,
        "tree_roots": roots,
        "nodes_featureids": feature,
        "nodes_splits": numpy_helper.from_array(np.array(split, dtype=np.float64), "splits"),
        "nodes_modes": numpy_helper.from_array(np.array(mode, dtype=np.uint8), "modes"),
        "nodes_truenodeids": true_id,
        "nodes_trueleafs": true_leaf,
        "nodes_falsenodeids": false_id,
        "nodes_falseleafs": false_leaf,
        "nodes_missing_value_tracks_true": missing_true,
        "leaf_targetids": [0] * len(leaves),
        "leaf_weights": numpy_helper.from_array(np.array(leaves, dtype=np.float64), "leaves"),
    }
    if members:
        attributes["membership_values"] = numpy_helper.from_array(
            np.array(members, dtype=np.float64), "members"
        )
    return attributes


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float64), name)


def _calibration_nodes(
    method: str, calibrator: Any, source: str, out: str, prefix: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes mapping the column ``source`` (n, 1) of scores to calibrated probabilities."""
    p = prefix
    if method == "sigmoid":
        inits = [_const(p + "a", [-calibrator.a_]), _const(p + "b", [-calibrator.b_])]
        nodes = [
            helper.make_node("Mul", [source, p + "a"], [p + "ax"]),
            helper.make_node("Add", [p + "ax", p + "b"], [p + "z"]),
            helper.make_node("Sigmoid", [p + "z"], [out]),
        ]
        return nodes, inits
    # isotonic, clipped outside the fitted range: y0 + sum_i slope_i * clip(x - x_i, 0, w_i)
    x = np.asarray(calibrator.X_thresholds_, dtype=np.float64)
    y = np.asarray(calibrator.y_thresholds_, dtype=np.float64)
    if len(x) < 2:
        nodes = [
            helper.make_node("Mul", [source, p + "zero"], [p + "nil"]),
            helper.make_node("Add", [p + "nil", p + "y0"], [out]),
        ]
        return nodes, [_const(p + "zero", [0.0]), _const(p + "y0", [y[0]])]
    width = np.diff(x)
    rise = np.diff(y)
    keep = width > 0
    inits = [
        _const(p + "x", x[:-1][keep].reshape(1, -1)),
        _const(p + "w", width[keep].reshape(1, -1)),
        _const(p + "slope", (rise[keep] / width[keep]).reshape(-1, 1)),
        _const(p + "y0", [y[0]]),
        _const(p + "zero", [0.0]),
    ]
    nodes = [
        helper.make_node("Sub", [source, p + "x"], [p + "dx"]),
        helper.make_node("Max", [p + "dx", p + "zero"], [p + "lo"]),
        helper.make_node("Min", [p + "lo", p + "w"], [p + "ramp"]),
        helper.make_node("MatMul", [p + "ramp", p + "slope"], [p + "sum"]),
        helper.make_node("Add", [p + "sum", p + "y0"], [out]),
    ]
    return nodes, inits


def _linear(
    pipeline: Any, columns: list[str], categories: dict[str, list[str]], prefix: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The logistic baseline's decision function as arithmetic on the input columns.

    The model is additive over columns, so it is written as: a constant, plus for each
    number ``a * v + b * isnan(x)`` where ``v`` is the signed log of ``x`` or, when
    missing, the training median (``a`` and ``b`` fold the scaling into the
    coefficients), plus for each category a looked-up weight per code. The category
    weights are read off the fitted pipeline itself (its decision for each level against
    missing), so the one-hot encoder's grouping of rare and unseen levels is reproduced
    without restating its rules.
    """
    p = prefix
    prep, model = pipeline.named_steps["prep"], pipeline.named_steps["model"]
    coef = model.coef_[0]
    numbers = next((t for t in prep.transformers_ if t[0] == "numbers"), None)
    num_cols: list[str] = list(numbers[2]) if numbers is not None else []
    a = np.zeros(len(num_cols))
    b = np.zeros(len(num_cols))
    median = np.zeros(len(num_cols))
    if num_cols:
        steps = numbers[1].named_steps
        impute, scale = steps["impute"], steps["scale"]
        median = np.asarray(impute.statistics_, dtype=np.float64)
        flagged = list(impute.indicator_.features_) if impute.indicator_ is not None else []
        n, k = len(num_cols), len(flagged)
        a = coef[:n] / scale.scale_[:n]
        b[flagged] = coef[n : n + k] / scale.scale_[n : n + k]

    position = {c: j for j, c in enumerate(columns)}
    cat_cols = [c for c in columns if c in categories]
    # the all-missing row: every number at its median with its flag up, every category missing
    blank = pd.DataFrame({c: [np.nan] for c in columns})
    for c in cat_cols:
        blank[c] = pd.Categorical([None], categories=categories[c])
    for c in columns:
        if c not in categories:
            blank[c] = blank[c].astype("float64")
    base = float(pipeline.decision_function(blank)[0])
    tables = {}
    for c in cat_cols:
        levels = categories[c]
        probe = pd.concat([blank] * len(levels), ignore_index=True)
        probe[c] = pd.Categorical(levels, categories=levels)
        tables[c] = np.append(pipeline.decision_function(probe) - base, 0.0)  # last: missing
    constant = base - float(np.dot(a, median) + b.sum())
    nodes: list[onnx.NodeProto] = []
    inits = [_const(p + "constant", [constant])]
    terms = [p + "constant"]
    if num_cols:
        inits += [
            numpy_helper.from_array(
                np.array([position[c] for c in num_cols], dtype=np.int64), p + "num_idx"
            ),
            _const(p + "one", [1.0]),
            _const(p + "median", median.reshape(1, -1)),
            _const(p + "a", a.reshape(-1, 1)),
            _const(p + "b", b.reshape(-1, 1)),
        ]
        nodes += [
            helper.make_node("Gather", [INPUT, p + "num_idx"], [p + "x"], axis=1),
            helper.make_node("Abs", [p + "x"], [p + "abs"]),
            helper.make_node("Add", [p + "abs", p + "one"], [p + "abs1"]),
            helper.make_node("Log", [p + "abs1"], [p + "log"]),
            helper.make_node("Sign", [p + "x"], [p + "sign"]),
            helper.make_node("Mul", [p + "sign", p + "log"], [p + "slog"]),
            helper.make_node("IsNaN", [p + "x"], [p + "missing"]),
            helper.make_node("Where", [p + "missing", p + "median", p + "slog"], [p + "v"]),
            helper.make_node("Cast", [p + "missing"], [p + "flag"], to=TensorProto.DOUBLE),
            helper.make_node("MatMul", [p + "v", p + "a"], [p + "num_a"]),
            helper.make_node("MatMul", [p + "flag", p + "b"], [p + "num_b"]),
        ]
        terms += [p + "num_a", p + "num_b"]
    for j, c in enumerate(cat_cols):
        q = f"{p}c{j}_"
        last = len(tables[c]) - 1
        inits += [
            numpy_helper.from_array(np.array([position[c]], dtype=np.int64), q + "idx"),
            _const(q + "table", tables[c]),
            _const(q + "missing_code", [float(last)]),
        ]
        nodes += [
            helper.make_node("Gather", [INPUT, q + "idx"], [q + "code"], axis=1),
            helper.make_node("IsNaN", [q + "code"], [q + "nan"]),
            helper.make_node("Where", [q + "nan", q + "missing_code", q + "code"], [q + "filled"]),
            helper.make_node("Cast", [q + "filled"], [q + "int"], to=TensorProto.INT64),
            helper.make_node("Gather", [q + "table", q + "int"], [q + "weight"], axis=0),
        ]
        terms.append(q + "weight")
    nodes.append(helper.make_node("Sum", terms, [p + "margin"]))
    return nodes, inits


def export(members: list[Any], columns: list[str], categories: dict[str, list[str]]) -> Export:
    """One graph averaging the calibrated members, or why it cannot be made."""
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    outputs: list[str] = []
    for i, member in enumerate(members):
        base, method, calibrator = _parts(member)
        p = f"m{i}_"
        # each calibrator was fitted on its learner's decision function (the raw margin)
        if hasattr(base, "booster_"):
            nodes.append(
                helper.make_node(
                    "TreeEnsemble",
                    [INPUT],
                    [p + "margin"],
                    domain="ai.onnx.ml",
                    **_trees(base.booster_),
                )
            )
        elif hasattr(base, "named_steps") and "prep" in base.named_steps:
            linear_nodes, linear_inits = _linear(base, columns, categories, p + "lin_")
            nodes += linear_nodes
            inits += linear_inits
            nodes.append(helper.make_node("Identity", [p + "lin_margin"], [p + "margin"]))
        else:
            return Export(None, f"{type(base).__name__} has no ONNX form here; served natively")
        cal_nodes, cal_inits = _calibration_nodes(
            method, calibrator, p + "margin", p + "calibrated", p + "cal_"
        )
        nodes += cal_nodes
        inits += cal_inits
        outputs.append(p + "calibrated")
    # Sum then scale: ONNX Runtime has no double Mean
    nodes.append(helper.make_node("Sum", outputs, ["total"]))
    inits.append(_const("share", [1.0 / len(outputs)]))
    nodes.append(helper.make_node("Mul", ["total", "share"], ["mean"]))
    inits.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat"))
    nodes.append(helper.make_node("Reshape", ["mean", "flat"], [OUTPUT]))
    graph = helper.make_graph(
        nodes,
        "custintel_propensity",
        [helper.make_tensor_value_info(INPUT, TensorProto.DOUBLE, [None, len(columns)])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.DOUBLE, [None])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
    )
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model)
    return Export(model)


def session(model: onnx.ModelProto | bytes) -> Any:
    """An ONNX Runtime session on one thread (latency, not throughput)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    raw = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(raw, options, providers=["CPUExecutionProvider"])


def predict(sess: Any, X: pd.DataFrame) -> np.ndarray:
    return sess.run([OUTPUT], {INPUT: encode(X)})[0]


def parity(members: list[Any], model: onnx.ModelProto, X: pd.DataFrame) -> float:
    """Largest absolute difference between the native and the ONNX scores on ``X``."""
    native = np.mean([m.predict_proba(X)[:, 1] for m in members], axis=0)
    return float(np.max(np.abs(native - predict(session(model), X)))) if len(X) else 0.0
