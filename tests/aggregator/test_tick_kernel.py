"""The compiled tick kernel: built where CI says so, lane for lane the numpy
count, strict about its buffers, and clean under AddressSanitizer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest
from healthplane.aggregator import tick_kernel
from healthplane.aggregator.votes import SlotMatrix, VoteCounter
from healthplane.proto import codec

from healthplane.runtime import native

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "aggregator" / "_tick_kernel.c"
K = tick_kernel.KERNEL
needs_kernel = pytest.mark.skipif(K is None, reason="the tick kernel is not built")


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="only CI insists on the build")
def test_kernel_is_built_in_ci() -> None:
    if native.pure_python():
        pytest.skip(f"{native.ENV} forces the fallback in this run")
    assert K is not None, "healthplane.aggregator._tick_kernel did not build"
    assert tick_kernel.default_passes().name == "compiled"


def test_path_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.INFO):
        tick_kernel.log_path(logging.getLogger("t"))
    assert caplog.messages[0].startswith(f"tick kernel: {native.path_name(K)}")


def fill(slots: SlotMatrix, rng: np.random.Generator) -> None:
    for r in range(slots.n_rows):
        st = rng.integers(0, 3, slots.check_count).astype(np.uint8)
        slots.write(r, codec.encode(st))


def kernel_count(slots: SlotMatrix, fresh: np.ndarray,
                 region_of_row: np.ndarray | None = None,
                 n_regions: int = 0) -> tuple[np.ndarray, ...]:
    assert K is not None
    lanes = 32 * slots.lane_words
    dt = np.uint8 if slots.rows_padded <= 255 else np.uint16
    h, u = np.full(lanes, 7, dt), np.full(lanes, 7, dt)   # garbage the kernel overwrites
    if region_of_row is None:
        K.count(slots.words, fresh.view(np.uint8), slots.rows_padded, slots.chunk_words, h, u)
        return h, u
    rdt = np.uint8 if -(-n_regions // 3) * 3 <= 255 else np.uint16
    regions = np.full(lanes, 7, rdt)
    K.count(slots.words, fresh.view(np.uint8), slots.rows_padded, slots.chunk_words, h, u,
            region_of_row, n_regions, regions)
    return h, u, regions


@needs_kernel
@pytest.mark.parametrize("n_rows, checks, chunk_words", [
    (0, 5, 1024), (1, 1, 1024), (3, 33, 1), (16, 1001, 3), (17, 5000, 1024), (100, 70_000, 1024),
    (254, 300, 2), (255, 129, 1024), (256, 129, 1024), (300, 2050, 8), (600, 70, 1)])
def test_count_is_the_numpy_count(n_rows: int, checks: int, chunk_words: int) -> None:
    rng = np.random.default_rng(n_rows * 7 + checks)
    slots = SlotMatrix(n_rows, checks, chunk_words=chunk_words)
    fill(slots, rng)
    for fresh in (np.ones(n_rows, bool), rng.random(n_rows) < 0.6):
        want_h, want_u = VoteCounter(slots).count(slots, fresh)
        h, u = kernel_count(slots, fresh)
        assert h.dtype == want_h.dtype
        assert np.array_equal(h, want_h) and np.array_equal(u, want_u)


@needs_kernel
@pytest.mark.parametrize("n_rows, n_regions", [(1, 1), (7, 3), (40, 5), (300, 4), (400, 300)])
def test_region_count_is_regions_with_a_vote(n_rows: int, n_regions: int) -> None:
    rng = np.random.default_rng(n_rows)
    slots = SlotMatrix(n_rows, 3000, chunk_words=16)
    fill(slots, rng)
    for r in rng.choice(n_rows, n_rows // 3):
        slots.clear(int(r))           # some rows vote on nothing
    region = rng.integers(-1, n_regions, n_rows).astype(np.int32)
    fresh = rng.random(n_rows) < 0.7
    h, u, regions = kernel_count(slots, fresh, region, n_regions)
    counter = VoteCounter(slots)
    want = np.zeros(h.size, np.uint16)
    for g in range(n_regions):
        rh, ru = counter.count(slots, fresh & (region == g))
        want += (rh | ru) != 0
    assert regions.tolist() == want.tolist()


@needs_kernel
def test_bad_buffers_are_refused() -> None:
    assert K is not None
    slots = SlotMatrix(4, 100)
    lanes = 32 * slots.lane_words
    h, u = np.zeros(lanes, np.uint8), np.zeros(lanes, np.uint8)
    f8 = np.ones(4, np.uint8)
    args = (slots.words, f8, slots.rows_padded, slots.chunk_words)
    with pytest.raises(ValueError, match="healthy"):
        K.count(*args, h[:-1], u)
    with pytest.raises(ValueError, match="unhealthy"):
        K.count(*args, h, np.zeros(lanes, np.uint16))
    with pytest.raises(ValueError, match="fresh"):
        K.count(slots.words, np.ones(7, np.uint8), slots.rows_padded, slots.chunk_words, h, u)
    with pytest.raises(ValueError, match="multiple of 3"):
        K.count(slots.words, f8, 4, slots.chunk_words, h, u)
    with pytest.raises(ValueError, match="chunks"):
        K.count(slots.words[:, :, :-1].copy(), f8, slots.rows_padded, slots.chunk_words, h, u)
    with pytest.raises(ValueError, match="region_of_row"):
        K.count(*args, h, u, np.array([0, 1, 2, 0], np.int32), 2, np.zeros(lanes, np.uint8))
    with pytest.raises(TypeError):
        K.count(*args, h, u.tolist())
    with pytest.raises(ValueError):   # read-only output
        K.count(*args, h, np.frombuffer(bytes(lanes), np.uint8))
    st = np.zeros(lanes, np.uint8)
    with pytest.raises(ValueError, match="prev"):
        K.changes(st, st[:-1], None, np.zeros(lanes, np.int64), np.zeros(lanes, np.int64),
                  0, np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="nbytes"):
        K.encode(st, 8 * lanes)


ASAN_SCRIPT = textwrap.dedent("""
    import importlib.util, sys
    import numpy as np
    spec = importlib.util.spec_from_file_location(
        "healthplane.aggregator._tick_kernel", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules["healthplane.aggregator._tick_kernel"] = mod
    from healthplane.aggregator import tick_kernel
    assert tick_kernel.KERNEL is mod
    from healthplane.aggregator.tick import TickEngine
    from healthplane.aggregator.votes import SlotMatrix
    from healthplane.proto import codec
    from healthplane.proto.config.model import Check, Fleet, Registry
    rng = np.random.default_rng(5)
    for n_rows, n, min_regions in [(0, 3, 1), (1, 1, 1), (5, 129, 2), (40, 3001, 3),
                                   (260, 700, 2), (17, 40_000, 1)]:
        checks = tuple(Check(id=f"c{i}", type="tcp", host="192.0.2.1", port=80,
                             inverted=i % 5 == 1, disabled=i % 7 == 2) for i in range(n))
        regions = {f"r{g}": tuple(f"k{i}" for i in range(n_rows) if i % 3 == g)
                   for g in range(3)}
        for unknown_as in ("healthy", "last_known"):
            fleet = Fleet(regions=regions, aggregators=("127.0.0.1:7000",),
                          unknown_as=unknown_as, min_regions=min_regions)
            engine = TickEngine(Registry(checks, "v"), fleet, compiled=True)
            slots = engine.new_slots()
            for t in range(3):
                for r in range(n_rows):
                    slots.write(r, codec.encode(rng.integers(0, 3, n).astype(np.uint8)))
                res = engine.compute(slots, rng.random(n_rows) < 0.7, 1000 * (t + 1))
                codec.validate(res.states, n)
    # Every refusal path, so each frees what it took.
    k, lanes = mod, 32
    s = SlotMatrix(4, 100)
    h = np.zeros(32 * s.lane_words, np.uint8)
    for bad in [lambda: k.count(s.words, np.ones(4, np.uint8), 3, s.chunk_words, h, h),
                lambda: k.count(s.words, np.ones(4, np.uint8), s.rows_padded, s.chunk_words,
                                h, h, np.array([9, 0, 0, 0], np.int32), 2, h),
                lambda: k.encode(np.zeros(lanes, np.uint8), 999)]:
        try:
            bad()
        except ValueError:
            pass
    print("asan ok")
""")


def _asan_build(tmp: Path) -> Path:
    include = sysconfig.get_paths()["include"]
    out = tmp / ("_tick_kernel" + sysconfig.get_config_var("EXT_SUFFIX"))
    subprocess.run(["gcc", "-O1", "-g", "-std=c11", "-Wall", "-Wextra", "-Werror",
                    "-fno-strict-aliasing", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-fPIC",
                    "-shared", f"-I{include}", str(SOURCE), "-o", str(out)],
                   check=True, capture_output=True, text=True)
    return out


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.timeout(300)
def test_kernel_under_address_sanitizer(tmp_path: Path) -> None:
    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    if not os.path.isabs(libasan) or not os.path.exists(libasan):
        # .ci/run installs it: there a missing libasan is a failure, not a skip.
        assert os.environ.get("CI") != "true", "libasan is not installed"
        pytest.skip("libasan is not installed")
    try:
        so = _asan_build(tmp_path)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"the ASan build failed:\n{exc.stderr}")
    env = dict(os.environ, LD_PRELOAD=os.path.realpath(libasan),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=99",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=98",
               PYTHONPATH=str(ROOT))
    env.pop(native.ENV, None)
    proc = subprocess.run([sys.executable, "-c", ASAN_SCRIPT, str(so)], env=env,
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "asan ok" in proc.stdout
    assert "ERROR: AddressSanitizer" not in proc.stderr
    assert "runtime error" not in proc.stderr


PORTABLE_SCRIPT = textwrap.dedent("""
    import numpy as np
    from healthplane.aggregator import _tick_kernel as k
    from healthplane.aggregator.tick import TickEngine
    from healthplane.proto import codec
    from healthplane.proto.config.model import Check, Fleet, Registry
    assert k.isa() == "generic", k.isa()
    rng = np.random.default_rng(9)
    checks = tuple(Check(id=f"c{i}", type="tcp", host="192.0.2.1", port=80) for i in range(5000))
    fleet = Fleet(regions={"a": tuple(f"k{i}" for i in range(20)),
                           "b": tuple(f"j{i}" for i in range(9))},
                  aggregators=("127.0.0.1:7000",), min_regions=2)
    reg = Registry(checks, "v")
    engines = [TickEngine(reg, fleet, compiled=c) for c in (False, True)]
    slots = engines[0].new_slots()
    for t in range(3):
        for r in range(29):
            slots.write(r, codec.encode(rng.integers(0, 3, 5000).astype(np.uint8)))
        fresh = rng.random(29) < 0.8
        a, b = (e.compute(slots, fresh, 1000 * (t + 1)) for e in engines)
        assert a.states == b.states and a.changed == b.changed
        assert (a.healthy_votes == b.healthy_votes).all()
        assert (a.reporting_votes == b.reporting_votes).all()
    print("portable ok")
""")


@needs_kernel
def test_portable_loops_agree_with_numpy() -> None:
    """The copy other architectures run, forced on here by its environment switch."""
    env = dict(os.environ, HEALTHPLANE_TICK_GENERIC="1", PYTHONPATH=str(ROOT))
    env.pop(native.ENV, None)
    proc = subprocess.run([sys.executable, "-c", PORTABLE_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "portable ok" in proc.stdout
