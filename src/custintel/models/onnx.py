"""A propensity model as one ONNX graph, for serving with ONNX Runtime.

The graph takes one double matrix: the model's features in order, numbers as they are and
categories as their codes (missing: NaN), exactly what :func:`encode` makes of a feature
frame. Inside: each LightGBM member as a TreeEnsemble in double precision (see
:func:`_trees`), its calibration written out as plain arithmetic (isotonic: linear
interpolation as a sum of clipped ramps; sigmoid: the fitted logistic curve), and the mean
over members. The logistic baseline has no converter for its signed-log step, so a model
using it is served natively and says why.

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
        left, right = child(tree["left_child"]), child(tree["right_child"])
        threshold = float(tree["threshold"])
        mode[i], split[i] = LEQ, threshold
        if missing == "NaN":
            missing_true[i] = int(default_left)
            link(i, left, right)
        elif missing == "Zero":
            # exact zero and NaN go the default way, then the threshold decides
            link(i, left, right)
            missing_true[i] = int(default_left)
            compare = i
            i = new_node()
            feature[i], mode[i], split[i] = feature[compare], EQ, 0.0
            missing_true[i] = 1
            link(i, left if default_left else right, (compare, 0))
        else:  # no missing values seen in training: NaN counts as zero
            missing_true[i] = int(threshold >= 0.0)
            link(i, left, right)
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


def export(members: list[Any], n_features: int) -> Export:
    """One graph averaging the calibrated members, or why it cannot be made."""
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    outputs: list[str] = []
    for i, member in enumerate(members):
        base, method, calibrator = _parts(member)
        if not hasattr(base, "booster_"):
            return Export(
                None,
                f"{type(base).__name__} has no ONNX converter here (its signed-log step); "
                "served natively",
            )
        p = f"m{i}_"
        # the calibrator was fitted on LightGBM's raw margin (its decision function)
        nodes.append(
            helper.make_node(
                "TreeEnsemble",
                [INPUT],
                [p + "margin"],
                domain="ai.onnx.ml",
                **_trees(base.booster_),
            )
        )
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
        [helper.make_tensor_value_info(INPUT, TensorProto.DOUBLE, [None, n_features])],
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
