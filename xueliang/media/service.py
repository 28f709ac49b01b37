"""Play sessions: media on demand.

The first viewer of a channel starts the INVITE; concurrent requests for the same channel wait on
the same session; the stream is torn down (BYE) after `stream_idle_timeout` with no viewer. A
device that answers the INVITE but never sends media gets a clear error naming where we waited
(address, port, transport), since that is nearly always a NAT, firewall or SDP-address problem.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings
from ..events import EventBus
from .frame import Frame
from .hub import StreamHub

log = logging.getLogger("xueliang.media")

TRANSPORTS = ("udp", "tcp-passive", "tcp-active")
# Renditions made on demand from a source stream: stream id suffix -> (H.264 video, AAC audio).
RENDITIONS = {"-h264": (True, False), "-aac": (False, True), "-h264-aac": (True, True)}


class MediaError(RuntimeError):
    """The stream could not be started (the message says why and what to check)."""


class MediaTimeout(TimeoutError):
    """The device accepted the INVITE but no video arrived in time."""


@dataclass
class PlaySession:
    """One live stream of one channel, shared by all its viewers."""

    stream_id: str
    channel_id: str
    device_id: str
    transport: str
    hub: StreamHub
    source: str = "gb"  # gb | pull
    ssrc: str = ""
    port: int = 0
    started_at: float = field(default_factory=time.time)
    idle_since: float | None = None
    ingest: Any = None
    invite: Any = None
    pull: Any = None
    rendition: Any = None  # TranscodedStream when this session is a rendition (H.264 and/or AAC) of another
    transcoded: bool = False
    ready: asyncio.Future[None] | None = None
    closed: bool = False

    @property
    def video_codec(self) -> str | None:
        return self.hub.video_codec

    @property
    def audio_codec(self) -> str | None:
        return self.hub.audio_codec

    @property
    def width(self) -> int | None:
        return self.hub.width

    @property
    def height(self) -> int | None:
        return self.hub.height

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stream_id": self.stream_id, "channel_id": self.channel_id, "device_id": self.device_id,
            "transport": self.transport, "source": self.source, "ssrc": self.ssrc, "port": self.port,
            "video_codec": self.video_codec, "audio_codec": self.audio_codec, "width": self.width,
            "height": self.height, "started_at": self.started_at, "viewers": self.hub.viewers,
        }
        out["hub"] = self.hub.stats()
        if self.ingest is not None:
            out["rtp"] = self.ingest.stats()
        return out


class MediaService:
    """Starts, shares and stops live streams; issues short-lived play tokens."""

    def __init__(self, settings: Settings, gb: Any, db: Any, events: EventBus) -> None:
        from .hls import HlsManager
        from .ports import PortPool

        self.settings = settings
        self.gb = gb
        self.db = db
        self.events = events
        self.ports = PortPool(*settings.media_port_range)
        self._sessions: dict[str, PlaySession] = {}
        self._ssrc_serial = itertools.count(1)
        self._token_key = hashlib.sha256(b"play-token:" + settings.secret_key.encode()).digest()
        self._reaper: asyncio.Task[None] | None = None
        self.hls = HlsManager(idle_timeout=settings.stream_idle_timeout)
        self.counters = {"plays": 0, "play_failures": 0, "media_timeouts": 0, "idle_teardowns": 0}
        if hasattr(gb, "on_session_ended"):
            gb.on_session_ended = self._on_device_bye

    async def start(self) -> None:
        from .transcode import set_max_transcoders

        set_max_transcoders(self.settings.max_transcodes)
        self._reaper = asyncio.create_task(self._reap_idle(), name="media-idle-reaper")

    async def shutdown(self) -> None:
        from .snapshot import shutdown_pool

        if self._reaper:
            self._reaper.cancel()
        await self.hls.shutdown()
        for sid in list(self._sessions):
            await self.stop_stream(sid, "shutdown")
        shutdown_pool()

    # ---- public API used by the HTTP layer ---------------------------------------------------

    def hub(self, stream_id: str) -> StreamHub | None:
        s = self._sessions.get(stream_id)
        return s.hub if s and not s.closed else None

    def session(self, stream_id: str) -> PlaySession | None:
        return self._sessions.get(stream_id)

    def sessions(self) -> list[dict[str, Any]]:
        return [s.stats() for s in self._sessions.values() if not s.closed]

    def stats(self) -> dict[str, Any]:
        return {"streams": len(self._sessions), "viewers": sum(s.hub.viewers for s in self._sessions.values()),
                **self.counters}

    async def play(self, channel_id: str, transport: str | None = None, user: str = "",
                   transcode: bool = False, audio: str | None = None) -> PlaySession:
        """Return the live session of a channel, starting it if needed (first viewer pays the INVITE).

        `transcode=True` asks for H.264 whatever the camera sends: browsers without HEVC in Media
        Source get an on-demand transcoded rendition (bounded in number) of an H.265 stream.
        `audio="aac"` asks for AAC audio when the camera sends G.711 (which MSE players cannot
        play): an audio-only transcode (not counted against the transcoder limit).
        """
        sess = await self._play_source(channel_id, transport, user)
        want_h264 = transcode and sess.video_codec == "h265"
        want_aac = audio == "aac" and await self._g711_audio(sess)
        if want_h264 or want_aac:
            suffix = "-h264-aac" if want_h264 and want_aac else "-h264" if want_h264 else "-aac"
            return await self._play_transcoded(sess, user, suffix)
        return sess

    @staticmethod
    async def _g711_audio(sess: PlaySession, wait: float = 1.5) -> bool:
        """True when the stream's audio is G.711; audio may trail the first keyframe a little."""
        end = time.monotonic() + wait
        while sess.hub.audio_codec is None and not sess.hub.closed and time.monotonic() < end:
            await asyncio.sleep(0.05)
        return sess.hub.audio_codec in ("pcma", "pcmu")

    async def _play_transcoded(self, source: PlaySession, user: str, suffix: str = "-h264") -> PlaySession:
        from .transcode import TranscodedStream

        video, to_aac = RENDITIONS[suffix]
        stream_id = f"{source.stream_id}{suffix}"
        existing = self._sessions.get(stream_id)
        if existing is not None and not existing.closed:
            if existing.ready is not None and not existing.ready.done():
                await asyncio.shield(existing.ready)
            return existing
        rendition = TranscodedStream(source.hub, stream_id=stream_id, video=video, audio_to_aac=to_aac)
        sess = PlaySession(stream_id=stream_id, channel_id=source.channel_id, device_id=source.device_id,
                           transport=source.transport, hub=rendition.hub, source=source.source,
                           rendition=rendition, transcoded=True)
        sess.ready = asyncio.get_running_loop().create_future()
        self._sessions[stream_id] = sess
        try:
            await rendition.start()  # raises TranscoderLimitError (a RuntimeError) past the limit
            if not await rendition.hub.wait_keyframe(max(self.settings.media_timeout, 10)):
                raise MediaTimeout(f"{source.channel_id}: the H.265 to H.264 transcoder produced no picture in time")
            if to_aac:
                # Outputs fix their audio track when a viewer connects: answer once AAC flows.
                end = time.monotonic() + 5.0
                while rendition.hub.audio_codec != "aac" and time.monotonic() < end and not rendition.hub.closed:
                    await asyncio.sleep(0.05)
                if rendition.hub.audio_codec != "aac":
                    raise MediaTimeout(f"{source.channel_id}: the G.711 to AAC transcoder produced no audio in time")
            sess.ready.set_result(None)
        except BaseException as exc:
            sess.ready.set_exception(exc)
            sess.ready.exception()
            await self.stop_stream(stream_id, f"transcode failed: {exc}")
            raise
        counter = "transcodes" if video else "audio_transcodes"
        self.counters[counter] = self.counters.get(counter, 0) + 1
        sess.idle_since = time.monotonic()
        self.events.publish("stream.start", stream_id=stream_id, channel_id=source.channel_id,
                            transport=source.transport, user=user, transcoded=True, rendition=suffix[1:])
        return sess

    async def _play_source(self, channel_id: str, transport: str | None, user: str) -> PlaySession:
        stream_id = channel_id
        existing = self._sessions.get(stream_id)
        if existing is not None and not existing.closed:
            if existing.ready is not None and not existing.ready.done():
                await asyncio.shield(existing.ready)
            if not existing.closed:
                existing.idle_since = time.monotonic() if existing.hub.viewers == 0 else None
                return existing
        channel = await self.db.repo.get_channel(channel_id)
        if channel is None:
            raise LookupError(f"channel {channel_id} not found")
        loop = asyncio.get_running_loop()
        hub = StreamHub(stream_id)
        sess = PlaySession(stream_id=stream_id, channel_id=channel_id, device_id=channel.get("device_id") or "",
                           transport="", hub=hub, source=channel.get("source") or "gb")
        sess.ready = loop.create_future()
        self._sessions[stream_id] = sess
        try:
            if sess.source == "pull":
                await self._start_pull(sess, channel)
            else:
                sess.transport = self._choose_transport(channel, transport)
                await self._start_gb(sess)
            sess.ready.set_result(None)
        except BaseException as exc:
            self.counters["play_failures"] += 1
            if not sess.ready.done():
                sess.ready.set_exception(exc)
                sess.ready.exception()  # mark retrieved: waiters re-raise it themselves
            await self.stop_stream(stream_id, f"start failed: {exc}")
            raise
        self.counters["plays"] += 1
        sess.idle_since = time.monotonic()
        await self._learn_resolution(sess, channel)
        self.events.publish("stream.start", stream_id=stream_id, channel_id=channel_id,
                            transport=sess.transport, user=user)
        return sess

    async def stop_stream(self, stream_id: str, reason: str = "stopped") -> None:
        sess = self._sessions.pop(stream_id, None)
        if sess is None or sess.closed:
            return
        sess.closed = True
        await self.hls.stop(stream_id, reason)
        if sess.invite is not None:
            try:
                await self.gb.bye(sess.invite)
            except Exception as exc:  # the device may already be gone; the stream ends either way
                log.info("BYE for %s failed: %s", stream_id, exc)
        if sess.ingest is not None:
            await sess.ingest.close()
        if sess.pull is not None:
            await sess.pull.stop()
        if sess.rendition is not None:
            await sess.rendition.stop()
        if sess.port:
            self.ports.release(sess.port)
        sess.hub.close(reason)
        for suffix in RENDITIONS if not sess.transcoded else ():
            rendition = self._sessions.get(f"{stream_id}{suffix}")
            if rendition is not None:
                await self.stop_stream(rendition.stream_id, f"source stopped: {reason}")
        self.events.publish("stream.stop", stream_id=stream_id, channel_id=sess.channel_id, reason=reason)
        log.info("stream %s stopped: %s", stream_id, reason)

    async def stop(self, stream_id: str) -> None:
        await self.stop_stream(stream_id, "stopped by user")

    # ---- tokens --------------------------------------------------------------------------

    def issue_token(self, stream_id: str, user: str) -> str:
        """A short-lived token bound to one stream: play URLs work without a login header."""
        exp = int(time.time()) + self.settings.play_token_ttl
        msg = f"{stream_id}|{user}|{exp}".encode()
        mac = hmac.new(self._token_key, msg, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(f"{user}|{exp}|".encode() + mac).decode().rstrip("=")

    def check_token(self, stream_id: str, token: str) -> bool:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            user_b, exp_b, mac = raw.split(b"|", 2)
            exp = int(exp_b)
        except (ValueError, TypeError):
            return False
        if exp < time.time():
            return False
        want = hmac.new(self._token_key, f"{stream_id}|{user_b.decode(errors='replace')}|{exp}".encode(),
                        hashlib.sha256).digest()[:16]
        return hmac.compare_digest(mac, want)

    # ---- snapshots -------------------------------------------------------------------------

    async def snapshot(self, channel_id: str) -> bytes:
        """JPEG of the newest keyframe; starts the stream if nobody watches (idle timeout ends it)."""
        from .snapshot import snapshot_jpeg

        sess = await self.play(channel_id)
        viewer = sess.hub.add_viewer()
        try:
            frames: list[Frame] = []
            deadline = time.monotonic() + self.settings.media_timeout
            while time.monotonic() < deadline:
                f = await asyncio.wait_for(viewer.get(), max(0.1, deadline - time.monotonic()))
                if f is None:
                    raise MediaError(f"stream of {channel_id} ended before a keyframe arrived")
                if not f.is_video:
                    continue
                frames.append(f)
                if f.keyframe:
                    break
            else:
                raise MediaTimeout(f"no keyframe from {channel_id} within {self.settings.media_timeout:.0f} s")
        finally:
            sess.hub.remove_viewer(viewer)
            if sess.hub.viewers == 0:
                sess.idle_since = time.monotonic()
        codec = frames[-1].codec
        return await snapshot_jpeg([f for f in frames if f.codec == codec][-1:], codec)

    # ---- internals -----------------------------------------------------------------------

    async def _learn_resolution(self, sess: PlaySession, channel: dict[str, Any]) -> None:
        """Record the resolution the stream really has: the HD-rate report counts it, not the catalog."""
        if not (sess.width and sess.height):
            return
        res = f"{sess.width}x{sess.height}"
        if channel.get("resolution") != res:
            try:
                await self.db.repo.update_channel(sess.channel_id, {"resolution": res}, sess.device_id or None)
            except Exception as exc:  # a report field must never break playing
                log.warning("could not store resolution of %s: %s", sess.channel_id, exc)

    def _choose_transport(self, channel: dict[str, Any], requested: str | None) -> str:
        default = channel.get("stream_transport") or self.settings.default_stream_transport
        if requested in (None, ""):
            return default if default in TRANSPORTS else "udp"
        if requested == "tcp":
            return default if default.startswith("tcp") else "tcp-passive"
        if requested not in TRANSPORTS:
            raise ValueError(f"transport must be one of udp, tcp, tcp-passive, tcp-active; got {requested!r}")
        return requested

    async def _start_gb(self, sess: PlaySession) -> None:
        from ..gb28181.sdp import Sdp, make_ssrc
        from .ingest import RtpIngest

        s = self.settings
        sess.port = self.ports.acquire()
        sess.ssrc = make_ssrc(s.sip_domain, False, next(self._ssrc_serial) % 10000)
        ingest = RtpIngest(transport=sess.transport, port=sess.port, expected_ssrc=int(sess.ssrc),
                           on_frame=sess.hub.push, on_close=lambda reason: self._on_media_closed(sess, reason))
        sess.ingest = ingest
        bind = s.sip_host if s.sip_host not in ("", "::") else "0.0.0.0"
        offer = Sdp(session="Play", origin_user=s.sip_id, address=s.advertised_media_ip, port=sess.port,
                    ssrc=sess.ssrc, payloads={96: "PS/90000", 98: "H264/90000", 97: "MPEG4/90000"})
        if sess.transport == "udp":
            await ingest.start_udp(bind, sess.port)
        elif sess.transport == "tcp-passive":
            offer.transport, offer.setup = "tcp", "passive"
            await ingest.start_tcp_passive(bind, sess.port)
        else:
            offer.transport, offer.setup = "tcp", "active"
        transport_name = "TCP" if sess.transport.startswith("tcp") else "UDP"
        sess.invite = await self.gb.invite(sess.device_id, sess.channel_id, offer, transport=sess.transport)
        answer = getattr(sess.invite, "answer", None)
        if sess.transport == "tcp-active":
            if answer is None or not answer.port:
                raise MediaError(f"{sess.channel_id}: the device's answer has no TCP port to connect to")
            await ingest.start_tcp_active(answer.address or sess.invite.remote_host, answer.port)
        if answer is not None and answer.ssrc and answer.ssrc.isdigit() and answer.ssrc != sess.ssrc:
            log.info("%s answered with SSRC %s instead of %s; accepting", sess.channel_id, answer.ssrc, sess.ssrc)
        if not await sess.hub.wait_keyframe(s.media_timeout):
            self.counters["media_timeouts"] += 1
            got = ingest.stats().get("packets", 0)
            if got:
                hint = f"{got} RTP packets arrived but no decodable keyframe (check the device's encoding / PS)"
            elif sess.transport == "tcp-active":
                hint = f"no media on our TCP connection to the device at {answer.address if answer else '?'}:" \
                       f"{answer.port if answer else '?'}"
            else:
                hint = (f"no {transport_name} media reached {s.advertised_media_ip}:{sess.port} (check that the device "
                        f"can reach this address: NAT, firewall, or set --media-ip)")
            raise MediaTimeout(f"{sess.channel_id}: device accepted the INVITE but sent no video within "
                               f"{s.media_timeout:.0f} s: {hint}")

    async def _start_pull(self, sess: PlaySession, channel: dict[str, Any]) -> None:
        from .pull import PullSource

        url = channel.get("pull_url")
        if not url:
            raise MediaError(f"pull channel {sess.channel_id} has no URL")
        sess.transport = "pull"
        sess.pull = PullSource(url, on_frame=sess.hub.push)
        await sess.pull.start()
        if not await sess.hub.wait_keyframe(max(self.settings.media_timeout, 10)):
            raise MediaTimeout(f"{sess.channel_id}: no video from {url.split('@')[-1]} within the timeout")

    def _on_media_closed(self, sess: PlaySession, reason: str) -> None:
        if not sess.closed:
            asyncio.get_running_loop().create_task(self.stop_stream(sess.stream_id, f"media closed: {reason}"))

    def _on_device_bye(self, invite: Any, reason: str = "device sent BYE") -> None:
        for sess in list(self._sessions.values()):
            if sess.invite is invite:
                sess.invite = None  # no BYE back for a dialog the device ended
                asyncio.get_running_loop().create_task(self.stop_stream(sess.stream_id, reason))

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for sess in list(self._sessions.values()):
                if sess.closed or (sess.ready is not None and not sess.ready.done()):
                    continue
                if sess.hub.viewers > 0:
                    sess.idle_since = None
                elif sess.idle_since is None:
                    sess.idle_since = now
                elif now - sess.idle_since >= self.settings.stream_idle_timeout:
                    self.counters["idle_teardowns"] += 1
                    await self.stop_stream(sess.stream_id, "idle: no viewer")
