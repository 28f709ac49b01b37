"""PsDemuxer against field fixtures, our muxer, ffmpeg's MPEG-PS muxer and PyAV decoding."""

from __future__ import annotations

import itertools
import random
import shutil
import subprocess
from pathlib import Path

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xueliang.media.frame import Frame
from xueliang.media.ps_demux import PsDemuxer, guess_video_codec, is_keyframe
from xueliang.media.ps_mux import PsMuxer, pack_header, packetize
from xueliang.media.rtp import parse_rtp
from xueliang.media.testvideo import make_test_audio, make_test_video


def fixture_path(rel: str) -> Path:
    """Field fixtures live in ../shared/fixtures next to the repository; skip clearly if absent."""
    path = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / rel
    if not path.exists():
        pytest.skip(f"fixture {rel} not found at {path} (the shared fixtures folder is not checked out)")
    return path


def _video(codec: str) -> list[Frame]:
    return make_test_video(codec, 320, 180, 25, 2)


def _demux_chunks(chunks: list[bytes], markers: list[bool] | None = None) -> tuple[list[Frame], PsDemuxer]:
    d = PsDemuxer()
    out: list[Frame] = []
    for k, c in enumerate(chunks):
        out += d.feed(c, markers[k] if markers else False)
    out += d.flush()
    return out, d


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    pos = 0
    out = []
    for c in cuts:
        if pos >= len(data):
            break
        out.append(data[pos : pos + c])
        pos += c
    if pos < len(data):
        out.append(data[pos:])
    return out


def _decode(frames: list[Frame], codec: str) -> list[av.VideoFrame]:
    ctx = av.CodecContext.create("hevc" if codec == "h265" else "h264", "r")
    pics: list[av.VideoFrame] = []
    for f in frames:
        if f.is_video:
            pics += ctx.decode(av.Packet(f.data))  # type: ignore[attr-defined]
    pics += ctx.decode(None)  # type: ignore[attr-defined]
    return pics


def _same(a: list[Frame], b: list[Frame]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x.codec, x.pts, x.dts, x.keyframe) == (y.codec, y.pts, y.dts, y.keyframe)
        assert x.data == y.data


# -- field fixtures -----------------------------------------------------------------------------

def test_camera_first_packet_fixture() -> None:
    raw = fixture_path("ps/rtp_ps_camera_first_packet_256B.bin").read_bytes()
    pkt = parse_rtp(raw)
    assert pkt is not None and pkt.pt == 96 and pkt.ssrc == 0x0BEBDFA1
    d = PsDemuxer()
    assert d.feed(pkt.payload) == []       # the IDR PES is truncated: nothing complete yet
    assert d.video_codec == "h264"         # from the PSM (stream type 0x1b on 0xE0)
    assert d.audio_codec == "aac"          # 0x0f on 0xC0
    assert d.stream_types == {0xE0: 0x1B, 0xC0: 0x0F}
    assert d.packs == 1 and d.psm_count == 1 and d.pes_count == 4
    # the IDR PES is cut at byte 256: flushing now would hand out a damaged frame, so none comes
    payload = bytes(pkt.payload)
    i = payload.rindex(b"\x00\x00\x01\xe0")
    hdl = payload[i + 8]
    missing = int.from_bytes(payload[i + 4 : i + 6], "big") - 3 - hdl - (len(payload) - i - 9 - hdl)
    probe = PsDemuxer()
    probe.feed(payload)
    assert probe.flush() == [] and probe.damaged_frames == 1
    # padded to its announced length (as the SRS unit test does with 'x'), the frame is complete
    assert d.feed(b"x" * missing) == []
    (frame,) = d.flush()
    assert frame.codec == "h264" and frame.keyframe
    assert b"\x00\x00\x00\x01\x67\x4d\x00\x1e" in frame.data   # SPS, Main profile level 3.0
    assert b"\x00\x00\x00\x01\x68\xee\x3c\x80" in frame.data   # PPS
    assert b"\x00\x00\x00\x01\x06\xe5" in frame.data           # the vendor SEI
    assert d.bad_headers == 0 and d.skipped_bytes == 0


def test_camera_fixture_split_everywhere() -> None:
    raw = fixture_path("ps/rtp_ps_camera_first_packet_256B.bin").read_bytes()
    payload = raw[12:]
    i = payload.rindex(b"\x00\x00\x01\xe0")
    pad = b"x" * (int.from_bytes(payload[i + 4 : i + 6], "big") - 3 - payload[i + 8] - (len(payload) - i - 9 - payload[i + 8]))
    (ref,), _ = _demux_chunks([payload, pad])
    for cut in range(1, len(payload)):
        frames, d = _demux_chunks([payload[:cut], payload[cut:], pad])
        assert [f.data for f in frames] == [ref.data], cut
        assert d.video_codec == "h264"


def test_g711_ps_file_with_wrong_psm_length() -> None:
    data = fixture_path("ps/Audio_G711_PS2.mpg").read_bytes()
    chunks = [data[i : i + 1388] for i in range(0, len(data), 1388)]
    frames, d = _demux_chunks(chunks)
    assert d.audio_codec == "pcma"                     # 0x90 found although the map length says 8
    assert d.stream_types.get(0xC0) == 0x90
    assert d.psm_count == 320 and d.packs == 7982
    assert len(frames) == 35353 and all(f.codec == "pcma" and f.keyframe for f in frames)
    assert sum(len(f.data) for f in frames) == 2_828_400
    assert sum(1 for f in frames if len(f.data) == 160) == 2   # the two MPEG-1 PES headers
    mpeg2 = [f.pts for f in frames if len(f.data) == 80]
    assert mpeg2 == sorted(mpeg2)                              # PTS parsed, non-decreasing
    assert mpeg2[-1] - mpeg2[0] == pytest.approx(319.289 * 90000, abs=90)
    assert d.bad_headers == 0 and d.skipped_bytes == 0 and d.video_frames == 0


# -- round trips through our muxer --------------------------------------------------------------

@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_mux_demux_rtp_round_trip_decodes(codec: str) -> None:
    frames = _video(codec)
    mux = PsMuxer(codec)
    seq = 0
    packets: list[bytes] = []
    for f in frames:
        pk, seq = packetize(mux.mux(f), seq=seq, ts=f.pts, ssrc=1, mtu=1400)
        packets += pk
    for use_marker in (True, False):
        d = PsDemuxer()
        out: list[Frame] = []
        for raw in packets:
            p = parse_rtp(raw)
            assert p is not None
            out += d.feed(p.payload, p.marker and use_marker)
        out += d.flush()
        _same(frames, out)
        assert d.marker_lies == 0
    pics = _decode(out, codec)
    assert len(pics) == len(frames)
    assert (pics[0].width, pics[0].height) == (320, 180)
    assert sum(f.keyframe for f in out) == 2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(codec=st.sampled_from(["h264", "h265"]), seed=st.integers(0, 2**32 - 1),
       max_chunk=st.sampled_from([1, 7, 188, 1388, 5000, 70000]), audio=st.booleans())
def test_random_splits(codec: str, seed: int, max_chunk: int, audio: bool) -> None:
    frames = _video(codec)[:12]
    pcm = make_test_audio(1, ptime_ms=40, start_pts=frames[0].pts)
    mux = PsMuxer(codec, "pcma" if audio else None, max_pes_payload=4000)  # several PES per frame
    stream = b""
    expect: list[Frame] = []
    for k, f in enumerate(frames):
        stream += mux.mux(f)
        expect.append(f)
        if audio:
            stream += mux.mux(pcm[k])
            expect.append(pcm[k])
    rnd = random.Random(seed)
    cuts = [rnd.randint(1, max_chunk) for _ in range(len(stream) // max(1, max_chunk // 2) + 2)]
    out, d = _demux_chunks(_split(stream, cuts))
    assert [f for f in out if f.is_video] == [f for f in expect if f.is_video]
    assert [f for f in out if not f.is_video] == [f for f in expect if not f.is_video]
    assert d.skipped_bytes == 0


def test_large_frame_split_into_many_pes() -> None:
    big = Frame("h264", 900000, 900000, b"\x00\x00\x00\x01\x65" + bytes(range(256)) * 1000, True)
    ps = PsMuxer("h264").mux(big)
    assert ps.count(b"\x00\x00\x01\xe0") == 4   # 256 KB in PES of at most 65000 bytes
    out, _ = _demux_chunks([ps[i : i + 1400] for i in range(0, len(ps), 1400)])
    assert out == [big]


def _pes_len0(sid: int, data: bytes, pts: int) -> bytes:
    ts = pts & ((1 << 33) - 1)
    ptsb = bytes((0x21 | ((ts >> 29) & 0x0E), (ts >> 22) & 0xFF, ((ts >> 14) & 0xFE) | 1, (ts >> 7) & 0xFF,
                  ((ts << 1) & 0xFE) | 1))
    return b"\x00\x00\x01" + bytes((sid,)) + b"\x00\x00\x80\x80\x05" + ptsb + data


@pytest.mark.parametrize("use_marker", [False, True])
def test_video_pes_length_zero(use_marker: bool) -> None:
    frames = _video("h264")[:10]
    mux = PsMuxer("h264")
    packets: list[tuple[bytes, bool]] = []
    for f in frames:
        ps = pack_header(f.dts, 1000)
        if f.keyframe:
            ps += mux.system_header() + mux.psm()
        ps += _pes_len0(0xE0, f.data, f.pts)
        chunks = [ps[i : i + 1000] for i in range(0, len(ps), 1000)]
        packets += [(c, k == len(chunks) - 1) for k, c in enumerate(chunks)]
    out, d = _demux_chunks([p for p, _ in packets], [m and use_marker for _, m in packets])
    # Without trusted markers the last length-0 PES never sees its end: dropped at flush, not risked.
    expect = frames if use_marker else frames[:-1]
    _same(expect, out)
    assert d.marker_lies == 0
    assert len(_decode(out, "h264")) == len(expect)


def test_lying_marker_loses_trust() -> None:
    frames = _video("h264")[:10]
    mux = PsMuxer("h264")
    chunks: list[bytes] = []
    for f in frames:
        ps = pack_header(f.dts, 1000) + (mux.system_header() + mux.psm() if f.keyframe else b"")
        ps += _pes_len0(0xE0, f.data, f.pts)
        chunks += [ps[i : i + 700] for i in range(0, len(ps), 700)]
    out, d = _demux_chunks(chunks, [True] * len(chunks))   # marker on every packet
    assert d.marker_lies == 1
    # correct once trust is gone (the last frame's end is never seen without a trusted marker)
    assert [f.data for f in out[-7:]] == [f.data for f in frames[-8:-1]]


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_codec_guessed_without_psm(codec: str) -> None:
    frames = _video(codec)[:5]
    mux = PsMuxer(codec)
    stream = b""
    for f in frames:
        parts: list[bytes] = []
        mux._pes(parts, 0xE0, f.data, f.pts, f.dts)   # PES only: no system header, no PSM
        stream += pack_header(f.dts, 1000) + b"".join(parts)
    out, d = _demux_chunks([stream[i : i + 1388] for i in range(0, len(stream), 1388)])
    assert d.video_codec == codec and d.psm_count == 0
    _same(frames, out)
    assert guess_video_codec(frames[0].data) == codec
    assert guess_video_codec(frames[1].data) == codec


def test_mpeg1_pack_and_pes_headers() -> None:
    f = _video("h264")[0]
    scr = 0
    mpeg1_pack = bytes((0, 0, 1, 0xBA, 0x21 | ((scr >> 29) & 0x0E), 0, 1, 0, 1, 0x80, 0, 1))
    ts = f.pts
    pts = bytes((0x31 | ((ts >> 29) & 0x0E), (ts >> 22) & 0xFF, ((ts >> 14) & 0xFE) | 1, (ts >> 7) & 0xFF,
                 ((ts << 1) & 0xFE) | 1))
    dts = bytes((0x11 | ((ts >> 29) & 0x0E),)) + pts[1:]
    hdr = b"\xff\xff" + b"\x40\x00" + pts + dts          # stuffing, STD buffer, PTS+DTS
    body = f.data[:60000]
    pes = b"\x00\x00\x01\xe0" + (len(hdr) + len(body)).to_bytes(2, "big") + hdr + body
    psm = PsMuxer("h264").psm()
    out, d = _demux_chunks([mpeg1_pack + psm + pes[:500], pes[500:], mpeg1_pack])
    assert len(out) == 1 and out[0].data == body and out[0].pts == f.pts and out[0].keyframe
    assert d.packs == 2 and d.bad_headers == 0


def test_pts_33_bit_wrap_is_unwrapped() -> None:
    src = _video("h264")[:30]
    start = (1 << 33) - 10 * 3600
    frames = [Frame("h264", start + k * 3600, start + k * 3600, f.data, f.keyframe) for k, f in enumerate(src)]
    mux = PsMuxer("h264")
    out, _ = _demux_chunks([mux.mux(f) for f in frames])
    assert [f.pts for f in out] == [f.pts for f in frames]       # beyond 2**33, monotonic
    assert out[-1].pts > 1 << 33


def test_keyframe_detection() -> None:
    assert is_keyframe(b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x67\x42", "h264")
    assert is_keyframe(b"\x00\x00\x01\x65\x88", "h264")
    assert not is_keyframe(b"\x00\x00\x00\x01\x41\x9a", "h264")
    assert is_keyframe(b"\x00\x00\x00\x01\x40\x01\x0c", "h265")    # VPS
    assert is_keyframe(b"\x00\x00\x00\x01\x26\x01\xaf", "h265")    # IDR_W_RADL
    assert not is_keyframe(b"\x00\x00\x00\x01\x02\x01\xd0", "h265")  # TRAIL_R


# -- ffmpeg's MPEG-PS muxer (frames split across PES, PTS only where a frame starts) -----------

@pytest.fixture(scope="module")
def ffmpeg_ps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    out = tmp_path_factory.mktemp("ps") / "testsrc.mpg"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "2",
                    "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "25", "-pix_fmt", "yuv420p",
                    "-f", "mpeg", str(out)], check=True, timeout=60)
    return out


def test_ffmpeg_ps_file(ffmpeg_ps: Path) -> None:
    data = ffmpeg_ps.read_bytes()
    out, d = _demux_chunks([data[i : i + 1388] for i in range(0, len(data), 1388)])
    assert d.video_codec == "h264"
    assert len(out) == 50
    assert out[0].keyframe and sum(f.keyframe for f in out) == 2
    pts = [f.pts for f in out]
    assert all(b - a == 3600 for a, b in itertools.pairwise(pts))
    pics = _decode(out, "h264")
    assert len(pics) == 50 and (pics[0].width, pics[0].height) == (320, 240)
    # every access unit decodes on its own turn: no frame glued to its neighbour's tail
    ctx = av.CodecContext.create("h264", "r")
    for f in out:
        assert len(ctx.decode(av.Packet(f.data))) <= 1  # type: ignore[attr-defined]


# -- robustness ---------------------------------------------------------------------------------

def _valid_stream() -> bytes:
    mux = PsMuxer("h264", "pcma")
    frames = _video("h264")[:4]
    audio = make_test_audio(1)
    return b"".join(mux.mux(f) + mux.mux(a) for f, a in zip(frames, audio, strict=False))


_VALID = None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=12))
def test_fuzz_random_bytes(chunks: list[bytes]) -> None:
    d = PsDemuxer()
    out: list[Frame] = []
    for k, c in enumerate(chunks):
        out += d.feed(c, marker=k % 3 == 2)
    out += d.flush()
    for f in out:
        assert isinstance(f, Frame) and isinstance(f.data, bytes) and f.data


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_mutated_stream(data: st.DataObject) -> None:
    global _VALID
    if _VALID is None:
        _VALID = _valid_stream()
    buf = bytearray(_VALID)
    for _ in range(data.draw(st.integers(1, 20))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "dup", "zero"]))
        if op == "flip":
            buf[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del buf[pos : pos + data.draw(st.integers(1, 200))]
        elif op == "dup":
            buf[pos:pos] = buf[pos : pos + data.draw(st.integers(1, 200))]
        else:
            buf[pos : pos + 4] = b"\x00\x00\x01\xba"[: len(buf[pos : pos + 4])]
        if not buf:
            buf = bytearray(b"\x00")
    size = data.draw(st.integers(1, 3000))
    raw = bytes(buf)
    out, d = _demux_chunks([raw[i : i + size] for i in range(0, len(raw), size)])
    for f in out:
        assert isinstance(f, Frame) and f.codec in ("h264", "h265", "pcma", "pcmu", "aac")
    assert d.stats["pes"] >= 0


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_b_frames_and_aac_round_trip(codec: str) -> None:
    from _frames import make_aac, make_frames

    video = make_frames(codec, 320, 240, count=30, gop=15, bframes=2)
    assert any(f.pts != f.dts for f in video)
    audio = make_aac(1.0, start_pts=video[0].dts)
    mux = PsMuxer(codec, "aac")
    stream = b"".join(mux.mux(f) for f in sorted(video + audio, key=lambda f: f.dts))
    out, d = _demux_chunks([stream[i : i + 1388] for i in range(0, len(stream), 1388)])
    assert d.audio_codec == "aac"
    assert [f for f in out if f.is_video] == video
    assert [f for f in out if not f.is_video] == audio
    assert len(_decode(out, codec)) == len(video)


@settings(max_examples=40, deadline=None)
@given(codec=st.sampled_from(["h264", "h265"]), drops=st.lists(st.integers(0, 10_000), min_size=1, max_size=3),
       use_marker=st.booleans(), zero_len=st.booleans())
def test_packet_loss_never_yields_garbage(codec: str, drops: list[int], use_marker: bool, zero_len: bool) -> None:
    frames = _video(codec)[:20]
    mux = PsMuxer(codec, max_pes_payload=6000)
    packets: list[tuple[bytes, bool]] = []
    for f in frames:
        if zero_len:
            ps = pack_header(f.dts, 1000) + (mux.system_header() + mux.psm() if f.keyframe else b"")
            ps += _pes_len0(0xE0, f.data, f.pts)
        else:
            ps = mux.mux(f)
        chunks = [ps[i : i + 500] for i in range(0, len(ps), 500)]
        packets += [(c, k == len(chunks) - 1) for k, c in enumerate(chunks)]
    lost = {d % len(packets) for d in drops}
    d = PsDemuxer()
    out: list[Frame] = []
    for k, (payload, marker) in enumerate(packets):
        if k in lost:
            continue
        if k - 1 in lost:
            d.discontinuity()        # what the ingest does when the reorderer gives a gap up
        out += d.feed(payload, marker and use_marker)
    out += d.flush()
    originals = {f.pts: f for f in frames}
    for f in out:
        assert f.pts in originals and f.data == originals[f.pts].data   # damaged frames are dropped, never emitted
    assert len(out) >= len(frames) - 3 * len(lost) - 1


def test_endless_pes_is_bounded() -> None:
    """A length-0 video PES that never ends (no next start code) must not grow memory forever."""
    d = PsDemuxer()
    d.feed(pack_header(0, 1000) + PsMuxer("h264").psm() + _pes_len0(0xE0, b"\x00\x00\x00\x01\x65", 0))
    chunk = b"\x11" * 1400
    for _ in range(20000):
        assert d.feed(chunk) == []
    assert d.dropped_frames >= 1 and len(d._vparts) <= 16385

