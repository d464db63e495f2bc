"""The node's health checks (instaseg_ros.ros.health): silent matched publishers, duplicate names."""

from __future__ import annotations

from instaseg_ros.ros.health import NO_DATA_WARN_S, InputSilence, duplicate_name_warning


def test_silence_is_counted_from_the_latest_of_activation_match_and_last_message():
    s = InputSilence("/cam/image", active_since=100.0)
    assert s.check(101.0, publishers=0, last_received=0.0, environ={}) is None
    assert s.check(102.0, 1, 0.0, {}) is None  # matched at 102
    assert s.check(102.0 + NO_DATA_WARN_S - 0.1, 1, 0.0, {}) is None
    text = s.check(102.0 + NO_DATA_WARN_S, 1, 0.0, {})
    assert text.startswith("no image received on /cam/image for 5 s although 1 publisher(s) are matched")
    assert "fastdds_large_images.xml" in text and "qos_reliability:=reliable" in text
    assert s.check(120.0, 1, last_received=118.0, environ={}) is None  # data flows again
    assert s.check(130.0, 0, 118.0, {}) is None and s.matched_since is None  # publisher gone
    assert s.check(131.0, 2, 118.0, {}) is None  # a new match starts a new count
    text = s.check(137.0, 2, 118.0, {"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"})
    assert "2 publisher(s)" in text and "(this node uses /etc/mine.xml)" in text


def test_duplicate_names_are_counted_per_name_and_namespace():
    graph = [("instaseg_node", "/robot"), ("instaseg_node", "/"), ("probe", "/robot")]
    assert duplicate_name_warning(graph, "instaseg_node", "/robot", "/robot/instaseg_node") is None
    graph.append(("instaseg_node", "/robot"))
    text = duplicate_name_warning(graph, "instaseg_node", "/robot", "/robot/instaseg_node")
    assert text.startswith("2 nodes are named /robot/instaseg_node")
