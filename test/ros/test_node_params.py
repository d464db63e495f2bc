"""The node's parameter table (instaseg_ros.ros.params) and start-up overrides applied like run-time sets.

Unit tests of check/coerce, plus in-process nodes (own rclpy context, autostart off, no model) started
with bad ``-p`` values: each is refused with the run-time message and the default kept (issue 23).
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("rclpy", reason="rclpy not importable: source env.sh")

from rclpy.parameter import Parameter  # noqa: E402

from instaseg_ros.ros.params import (  # noqa: E402
    MIN_RATE_HZ,
    PARAMS,
    SPECS,
    check,
    class_filter_names,
    coerce,
    descriptor,
)

T = Parameter.Type


def test_table_is_complete_and_defaults_pass_their_own_checks():
    assert len(SPECS) == len(PARAMS)
    assert {"max_input_pixels", "max_rate", "class_filter", "autostart"} <= set(SPECS)
    for spec in PARAMS:
        ptype = T.NOT_SET if spec.default is None else Parameter.Type.from_parameter_value(spec.default)
        value = [] if spec.default is None else spec.default
        ptype = T.STRING_ARRAY if spec.default is None else ptype
        assert check(spec.name, value, ptype) == "", spec.name
        d = descriptor(spec)
        assert d.read_only == (spec.phase == "read-only")
        if spec.range is not None:
            assert d.floating_point_range or d.integer_range


@pytest.mark.parametrize(
    "value, ptype, reason",
    [
        (3, T.INTEGER, "must be a string array of class names, got INTEGER"),
        (0.5, T.DOUBLE, "got DOUBLE"),
        (True, T.BOOL, "got BOOL"),
        ([1, 2], T.INTEGER_ARRAY, "got INTEGER_ARRAY"),
        ([True], T.BOOL_ARRAY, "got BOOL_ARRAY"),
        (b"\x01", T.BYTE_ARRAY, "got BYTE_ARRAY"),
        (None, T.NOT_SET, "cannot be unset"),
        (["unicorn"], T.STRING_ARRAY, "unknown classes ['unicorn']"),
    ],
)
def test_class_filter_of_the_wrong_type_or_names_is_refused(value, ptype, reason):
    assert reason in check("class_filter", value, ptype, ["person", "chair"])


def test_class_filter_string_is_one_name_not_letters():
    assert class_filter_names("person") == ["person"]
    assert class_filter_names("") == [] and class_filter_names([]) == [] and class_filter_names(None) == []
    p = coerce("class_filter", Parameter("class_filter", T.STRING, "person"))
    assert p.type_ == T.STRING_ARRAY and p.value == ["person"]
    assert check("class_filter", "person", T.STRING, ["person"]) == ""
    assert check("class_filter", [], T.INTEGER_ARRAY, ["person"]) == ""  # any empty array = all


def test_max_rate_has_a_minimum_and_floats_must_be_finite():
    assert "too small" in check("max_rate", 1e-300, T.DOUBLE)
    assert "too small" in check("max_rate", MIN_RATE_HZ / 2, T.DOUBLE)
    assert check("max_rate", MIN_RATE_HZ, T.DOUBLE) == "" and check("max_rate", 0.0, T.DOUBLE) == ""
    for bad in (math.nan, math.inf, -math.inf):
        assert "finite" in check("score_threshold", bad, T.DOUBLE)
    assert "outside" in check("score_threshold", 5.0, T.DOUBLE)
    p = coerce("score_threshold", Parameter("score_threshold", T.INTEGER, 1))
    assert p.type_ == T.DOUBLE and p.value == 1.0


def test_choices_and_device_syntax():
    assert "not one of" in check("backend", "cuda-magic", T.STRING)
    assert check("device", "cuda:1", T.STRING) == ""
    for bad in ("gpu", "cuda:", "cuda:x", ""):
        assert "use auto, cpu, cuda or cuda:N" in check("device", bad, T.STRING)


def node_with(*overrides: str):
    """An in-process InstasegNode (autostart off) with ``-p`` overrides; returns (node, context)."""
    import rclpy

    from instaseg_ros.ros.node import InstasegNode

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    args = ["--ros-args", "-p", "autostart:=false"]
    for o in overrides:
        args += ["-p", o]
    return InstasegNode(context=ctx, cli_args=args), ctx


@pytest.mark.parametrize(
    "override, default, reason",
    [
        ("score_threshold:=5.0", 0.3, "out of range"),
        ("top_k:=0", 100, "out of range"),
        ("num_threads:=-1", 0, "out of range"),
        ("diagnostics_period:=0.0", 1.0, "out of range"),
        ("top_k:=abc", 100, "Wrong parameter type"),
        ("debug_image:=maybe", True, "Wrong parameter type"),
        ("max_rate:=1e-300", 0.0, "too small"),
        ("class_filter:=7", None, "must be a string array"),
        ("backend:=cuda-magic", "torch", "not one of"),
    ],
)
def test_bad_startup_override_is_refused_like_at_run_time_and_the_default_kept(override, default, reason):
    name, _, _ = override.partition(":=")
    node, ctx = node_with(override)
    try:
        assert node.get_parameter(name).value == default
        startup = [p for p in node._problems if p.startswith(f"start-up parameter {name}:=")]
        assert len(startup) == 1 and reason in startup[0] and "keeping the default" in startup[0]
        # the run-time path gives the same reason
        if SPECS[name].phase != "read-only":
            bad = node._parameter_overrides[name]
            result = node.set_parameters([bad])
            result = result[0] if isinstance(result, list) else result
            assert not result.successful and result.reason in startup[0]
    finally:
        node.destroy_node()
        ctx.try_shutdown()


def test_good_startup_overrides_apply_and_read_only_stays_read_only():
    node, ctx = node_with("class_filter:=person", "score_threshold:=1", "diagnostics_period:=2.0")
    try:
        assert node.get_parameter("class_filter").value == ["person"]
        assert node.get_parameter("score_threshold").value == 1.0
        assert node.get_parameter("diagnostics_period").value == 2.0
        assert not [p for p in node._problems if p.startswith("start-up parameter")]
        result = node.set_parameters([Parameter("diagnostics_period", T.DOUBLE, 3.0)])
        result = result[0] if isinstance(result, list) else result
        assert not result.successful and "read-only" in result.reason
    finally:
        node.destroy_node()
        ctx.try_shutdown()
