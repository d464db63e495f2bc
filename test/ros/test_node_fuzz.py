"""Seeded fuzzers against the real node over DDS (issue 23 item 8): messages, parameters, lifecycle.

One node process (tiny random YOLACT) in its own process; the tests run in file order:

1. raw message fuzz: thousands of varied ``sensor_msgs/Image`` messages (bad encodings, sizes, steps,
   data lengths, byte orders, tiny and valid frames), with a valid frame every ``EVERY`` messages that
   must be answered; the node's RSS is sampled throughout and must stay within ``RSS_BOUND_MB`` of its
   level after warm-up; no exception may be counted as an error;
2. parameter fuzz: every declared parameter x every ROS parameter type (plus edge values: NaN, inf,
   extreme integers, empty and long strings and arrays) through the real SetParameters service; every
   request is answered, accepted values pass the node's own check, the node then still answers;
3. compressed message fuzz: the same with JPEG/PNG payloads (valid, cut, cut + end marker, bit
   flips, lying headers, garbage behind a signature, wrong format strings);
4. lifecycle fuzz: random transitions by label (valid and invalid) and by id (0-255), then back to
   active and answering, then shutdown and SIGINT (exit 0).

Sizes: ``INSTASEG_FUZZ_N`` messages per transport (default 2000); about a minute in all on 2 cores.
"""

from __future__ import annotations

import math
import os
import struct
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy", reason="rclpy not importable: source env.sh")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built: run make setup and source env.sh")

from hostile_inputs import jpeg, png, png_chunk  # noqa: E402
from ros_probe import active_node, connected_probe, ensure_ros_env, make_tiny_yolact, random_image, rss_mb  # noqa: E402

from instaseg_ros.ros import conversions as conv  # noqa: E402

ensure_ros_env()
NS = "/t23f"
FQN = f"{NS}/instaseg_node"
TOPIC = "/cam23f/image_raw"
N = int(os.environ.get("INSTASEG_FUZZ_N", "2000"))
EVERY = 80  # a valid frame (which must be answered) after this many fuzzed messages
RSS_BOUND_MB = 250.0  # growth allowed over the RSS after warm-up (tiny model, frames <= 160x120)
SEED = 23


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    ckpt = make_tiny_yolact(tmp_path_factory.mktemp("ckpt") / "tiny.pth")
    with active_node(
        ["-r", f"__ns:={NS}", "-r", f"image:={TOPIC}", "-p", f"model.weights:={ckpt}",
         "-p", "score_threshold:=0.05", "-p", "top_k:=5"],
        tmp_path_factory.mktemp("log") / "node.log",
    ) as proc:  # fmt: skip
        yield proc


@pytest.fixture(scope="module")
def probe(node):
    with connected_probe(FQN, TOPIC) as p:
        yield p


class RssSampler:
    """Samples a process's RSS every 0.2 s on a thread; ``peak`` and ``samples`` (t, MiB)."""

    def __init__(self, pid: int):
        self.pid, self.samples, self._stop = pid, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.wait(0.2):
            self.samples.append((time.monotonic() - t0, rss_mb(self.pid)))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max((m for _, m in self.samples if not math.isnan(m)), default=float("nan"))


def valid_frame(probe, rng, compressed: bool):
    pixels = random_image(rng, 96, 128)
    header = probe.next_header()
    if compressed:
        return header, conv.bgr8_to_compressed(pixels, "jpeg" if rng.random() < 0.7 else "png", header)
    return header, conv.numpy_to_image(pixels, "bgr8", header)


def fuzz_raw(rng: np.random.Generator, header):
    """One varied, mostly malformed sensor_msgs/Image."""
    from sensor_msgs.msg import Image

    encs = list(conv.SUPPORTED_ENCODINGS)
    weird = ["", "BGR8", "yuv422", "32FC1", "bayer_rggb8", "rgb16", "jpeg", "ünïcödé", "x" * 300, "16SC1"]
    h, w = int(rng.integers(1, 121)), int(rng.integers(1, 161))
    enc = encs[int(rng.integers(len(encs)))]
    dtype_size = 2 if enc in ("mono16", "16UC1") else 1
    ch = {"rgb8": 3, "bgr8": 3, "8UC3": 3, "rgba8": 4, "bgra8": 4}.get(enc, 1)
    step = w * ch * dtype_size
    m = Image(header=header, height=h, width=w, encoding=enc, step=step, is_bigendian=0)
    size = step * h
    kind = int(rng.integers(9))
    if kind == 0:  # valid, maybe padded rows or big-endian 16-bit
        pad = int(rng.integers(0, 8))
        m.step = step + pad
        size = m.step * h
        m.is_bigendian = int(rng.integers(2)) if dtype_size == 2 else 0
    elif kind == 1:
        m.encoding = weird[int(rng.integers(len(weird)))]
    elif kind == 2:
        size = int(rng.integers(0, max(size, 1)))
    elif kind == 3:
        m.step = int(rng.integers(0, max(step, 1)))
    elif kind == 4:
        m.height, m.width = int(rng.integers(0, 2**32)), int(rng.integers(0, 2**32))
        m.step = int(rng.integers(0, 2**32))
    elif kind == 5:  # tiny frames that are otherwise valid
        m.height, m.width = int(rng.integers(1, 16)), int(rng.integers(1, 400))
        if rng.random() < 0.5:
            m.height, m.width = m.width, m.height
        m.step = m.width * ch * dtype_size
        size = m.step * m.height
    elif kind == 6:
        m.height = 0 if rng.random() < 0.5 else m.height
        m.width = 0 if m.height else m.width
    elif kind == 7:
        m.is_bigendian = int(rng.integers(0, 256))
    else:
        size += int(rng.integers(1, 5000))  # longer than needed: fine
    m.data = rng.integers(0, 256, min(size, 200_000), dtype=np.uint8).tobytes()
    return m


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    out = bytearray(data)
    i = 2
    while out[i + 1] not in (0xC0, 0xC1, 0xC2):
        i += 2 + int.from_bytes(out[i + 2 : i + 4], "big")
    out[i + 5 : i + 9] = struct.pack(">HH", height, width)
    return bytes(out)


def fuzz_compressed(rng: np.random.Generator, header, pool: list[tuple[bytes, str]]):
    """One varied, mostly malformed sensor_msgs/CompressedImage."""
    from sensor_msgs.msg import CompressedImage

    data, fmt = pool[int(rng.integers(len(pool)))]
    n = len(data)
    kind = int(rng.integers(11))
    if kind == 0:
        pass  # valid
    elif kind == 1:
        data = data[: int(rng.integers(0, n))]  # cut
    elif kind == 2:
        end = b"\xff\xd9" if fmt == "jpeg" else png_chunk(b"IEND", b"")
        data = data[: int(n * rng.uniform(0.05, 0.95))] + end  # cut, then closed again
    elif kind == 3:
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 20))):
            b[int(rng.integers(2, n))] = int(rng.integers(256))
        data = bytes(b)
    elif kind == 4 and fmt == "jpeg":
        data = jpeg_with_size(data, int(rng.integers(0, 65536)), int(rng.integers(0, 65536)))
    elif kind == 4:
        ihdr = struct.pack(
            ">IIBBBBB", int(rng.integers(0, 2**31)), int(rng.integers(0, 2**31)), 8, 2, 0, 0, 0
        )
        data = data[:8] + png_chunk(b"IHDR", ihdr) + data[33:]
    elif kind == 5:
        data = data[:8] + rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()
    elif kind == 6:
        fmt = ["", "bmp", "jpeg; rgb8 compressedDepth", "png", "jpg", "rgb8; jpeg compressed bgr8", "🙂"][
            int(rng.integers(7))
        ]
    elif kind == 7:
        data = b""
    elif kind == 8:
        data = rng.integers(0, 256, int(rng.integers(1, 5000)), dtype=np.uint8).tobytes()
    elif kind == 9 and fmt == "png":  # a chunk length that runs past the end
        data = data[:33] + struct.pack(">I", 2**31 - 1) + data[37:]
    elif kind == 9:  # a segment length of 0 or 1 right after SOI
        data = data[:2] + b"\xff\xe0" + struct.pack(">H", int(rng.integers(0, 2))) + data[6:]
    else:
        data = data + rng.integers(0, 256, int(rng.integers(1, 100)), dtype=np.uint8).tobytes()
    return CompressedImage(header=header, format=fmt, data=data)


def run_message_fuzz(node, probe, compressed: bool, rng) -> dict:
    pool = []
    if compressed:
        for i in range(16):
            img = random_image(rng, int(rng.integers(16, 121)), int(rng.integers(16, 161)))
            pool.append((jpeg(img, progressive=bool(i % 4 == 0)), "jpeg") if i % 3 else (png(img), "png"))
    before = probe.latest_diagnostics(timeout=5)
    header, msg = valid_frame(probe, rng, compressed)
    probe.publish(msg, compressed)
    assert probe.result_for(header, timeout=30) is not None, "no answer before the fuzz"
    sampler = RssSampler(node.proc.pid)
    time.sleep(0.5)
    base = rss_mb(node.proc.pid)
    answered = sent_valid = 0
    t0 = time.monotonic()
    for i in range(N):
        h = probe.next_header(frame_id=f"fuzz{i}")
        probe.publish(fuzz_compressed(rng, h, pool) if compressed else fuzz_raw(rng, h), compressed)
        if i % 2 == 0:
            time.sleep(0.001)
        if (i + 1) % EVERY == 0:
            assert node.alive(), f"node died after {i + 1} fuzzed messages:\n{node.log()[-3000:]}"
            header, msg = valid_frame(probe, rng, compressed)
            probe.publish(msg, compressed)
            sent_valid += 1
            answered += probe.result_for(header, timeout=30) is not None
            probe.clear()
    elapsed = time.monotonic() - t0
    peak = sampler.stop()
    after = probe.latest_diagnostics(timeout=5)
    deltas = ", ".join(
        f"{k} +{int(after[k]) - int(before[k])}" for k in ("received", "processed", "rejected", "errors")
    )
    kind = "compressed" if compressed else "raw"
    print(f"{kind} fuzz: {N} messages in {elapsed:.1f} s, {answered}/{sent_valid} valid frames answered, "
          f"RSS {base:.0f} -> peak {peak:.0f} MiB, counters {deltas}")  # fmt: skip
    assert node.alive()
    assert answered == sent_valid, f"{sent_valid - answered} valid frames unanswered"
    assert int(after["errors"]) == int(before["errors"]), f"exceptions counted:\n{node.log()[-3000:]}"
    assert int(after["rejected"]) - int(before["rejected"]) > N // 4
    assert peak - base < RSS_BOUND_MB, f"RSS grew from {base:.0f} to {peak:.0f} MiB"
    return after


def test_raw_message_fuzz(node, probe):
    run_message_fuzz(node, probe, False, np.random.default_rng(SEED))


# ---------------------------------------------------------------------------------------------- parameters
def param_values(rng: np.random.Generator, ptype: int) -> list:
    """Edge and random values for ROS parameter type ``ptype`` (rcl_interfaces/ParameterType)."""
    ints = [0, 1, -1, 2**63 - 1, -(2**63), int(rng.integers(-1000, 1000)), 16, 4096]
    floats = [0.0, -0.0, 1.0, 1e-300, 1e300, math.nan, math.inf, -math.inf, float(rng.random())]
    strings = ["", "person", "auto", "cuda:0", "raw", "compressed", "reliable", "index", "x" * 5000, "ünï 🙂"]
    pick = lambda seq: [seq[int(i)] for i in rng.choice(len(seq), size=min(4, len(seq)), replace=False)]  # noqa: E731
    return {
        0: [None],
        1: [True, False],
        2: pick(ints),
        3: pick(floats),
        4: pick(strings),
        5: [b"", bytes(rng.integers(0, 256, 5, dtype=np.uint8))],
        6: [[], [True, False]],
        7: [[], [int(v) for v in rng.integers(-5, 5, 3)]],
        8: [[], [math.nan, 0.5]],
        9: [[], ["person"], ["chair", "unicorn"], [""] * 3],
    }[ptype]


def parameter_msg(name: str, ptype: int, value):
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterValue

    v = ParameterValue(type=ptype)
    field = {1: "bool_value", 2: "integer_value", 3: "double_value", 4: "string_value",
             5: "byte_array_value", 6: "bool_array_value", 7: "integer_array_value",
             8: "double_array_value", 9: "string_array_value"}  # fmt: skip
    if ptype in field:
        setattr(v, field[ptype], [bytes([b]) for b in value] if ptype == 5 else value)
    return ParameterMsg(name=name, value=v)


def test_parameter_fuzz_over_every_parameter_and_type(node, probe):
    from rclpy.parameter import Parameter

    from instaseg_ros.ros.params import PARAMS, RUNTIME, SPECS, check

    rng = np.random.default_rng(SEED + 1)
    names = [s.name for s in PARAMS] + ["not_a_parameter", "model.unknown"]
    accepted = refused = 0
    for name in names:
        for ptype in range(10):
            for value in param_values(rng, ptype):
                (res,) = probe.set_param_msgs([parameter_msg(name, ptype, value)], timeout=20)
                if res.successful:
                    accepted += 1
                    assert name in SPECS, f"undeclared {name} accepted"
                    got = probe.get_params(name)[name]
                    if got is None or (isinstance(got, list) and not got):
                        continue  # unset or an empty array: the class filter's "keep all"
                    ptype_got = Parameter.Type.from_parameter_value(got)
                    assert (
                        check(name, got, ptype_got, ["person", "chair", "couch", "dining table", "toilet"])
                        == ""
                    )
                else:
                    refused += 1
                    assert res.reason, f"{name}={value!r} refused without a reason"
        assert node.alive(), f"setting {name} killed the node:\n{node.log()[-3000:]}"
    # a few multi-parameter requests, where one bad value must refuse the whole set
    for _ in range(20):
        batch = [parameter_msg(names[int(i)], int(t), param_values(rng, int(t))[0])
                 for i, t in zip(rng.integers(0, len(names), 3), rng.integers(0, 10, 3))]  # fmt: skip
        probe.set_param_msgs(batch, timeout=20)
    assert node.alive()
    print(f"parameter fuzz: {accepted} accepted, {refused} refused")
    defaults = {s.name: s.default for s in PARAMS if s.phase == RUNTIME}
    defaults.update(class_filter=[], score_threshold=0.05, top_k=5)
    for name, value in defaults.items():
        (res,) = probe.set_params(**{name: value})
        assert res.successful, (name, res.reason)
    d = probe.latest_diagnostics(timeout=5)
    header, msg = valid_frame(probe, rng, False)
    probe.publish(msg)
    assert probe.result_for(header, timeout=30) is not None, "no answer after the parameter fuzz"
    assert int(probe.latest_diagnostics(timeout=5)["errors"]) == int(d["errors"])


def test_compressed_message_fuzz(node, probe):
    assert probe.transition("deactivate")
    assert all(r.successful for r in probe.set_params(input_transport="compressed"))
    assert probe.transition("activate")
    assert probe.wait_connected(compressed=True)
    run_message_fuzz(node, probe, True, np.random.default_rng(SEED + 2))


# ---------------------------------------------------------------------------------------------- lifecycle
def test_lifecycle_fuzz_by_label_and_id(node, probe):
    rng = np.random.default_rng(SEED + 3)
    labels = ["configure", "cleanup", "activate", "deactivate", "", "Configure", "activate ", "🙂", "x" * 500,
              "transition_success", "error", "unconfigured_shutdown"]  # fmt: skip
    shutdown_ids = {5, 6, 7}  # reach finalized (tested once at the end)
    outcomes = {True: 0, False: 0}
    for i in range(90):
        if rng.random() < 0.5:  # half of the labels drawn are the four valid ones
            label = labels[int(rng.integers(4 if rng.random() < 0.5 else len(labels)))]
            ok = probe.transition(label)
        else:
            tid = int(rng.integers(0, 256))
            while tid in shutdown_ids:
                tid = int(rng.integers(0, 256))
            ok = probe.transition_id(tid)
        outcomes[ok] += 1
        assert node.alive(), f"lifecycle request {i} killed the node:\n{node.log()[-3000:]}"
        assert probe.state() in ("unconfigured", "inactive", "active"), probe.state()
    print(f"lifecycle fuzz: {outcomes[True]} transitions applied, {outcomes[False]} refused")
    for step in {"unconfigured": ["configure", "activate"], "inactive": ["activate"], "active": []}[
        probe.state()
    ]:
        assert probe.transition(step), step
    assert probe.wait_connected(compressed=True)
    header, msg = valid_frame(probe, rng, True)
    probe.publish(msg, compressed=True)
    assert probe.result_for(header, timeout=30) is not None, "no answer after the lifecycle fuzz"
    assert probe.transition("shutdown") and probe.state() == "finalized"
    assert node.alive()
    assert probe.transition("configure") is False and node.alive()


def test_fuzz_left_no_error_lines_and_no_decoder_noise(node):
    log = node.log()
    assert "Traceback" not in log, log[-3000:]
    assert "Corrupt JPEG data" not in log.replace("corrupt JPEG: Corrupt JPEG data", "")
    assert "libpng" not in log
