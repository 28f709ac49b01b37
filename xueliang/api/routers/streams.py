"""Live play sessions: start (play), list, stop, and snapshots."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status

from xueliang.api.deps import (
    ChannelId,
    Operator,
    Page,
    StreamId,
    Viewer,
    audit,
    client_ip,
    get_platform,
    setting,
)
from xueliang.api.errors import ApiError, platform_errors
from xueliang.api.routers.channels import channel_or_404
from xueliang.api.schemas import PlayIn, PlayOut, PlayUrls

router = APIRouter(tags=["streams"])


def _media(platform: Any) -> Any:
    media = getattr(platform, "media", None)
    if media is None:
        raise ApiError(503, "media service not running", "unavailable")
    return media


def play_urls(request: Request, stream_id: str, token: str) -> PlayUrls:
    """URLs on the host the client used (Host header), so they work behind NAT and port mappings."""
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    secure = request.url.scheme in ("https", "wss")
    http, ws = ("https", "wss") if secure else ("http", "ws")
    base = f"/api/v1/media/{stream_id}"
    return PlayUrls(
        flv=f"{http}://{host}{base}.flv?token={token}",
        ws_flv=f"{ws}://{host}{base}.flv?token={token}",
        fmp4=f"{ws}://{host}{base}.mp4?token={token}",
        hls=f"{http}://{host}{base}/index.m3u8?token={token}",
    )


@router.post("/channels/{channel_id}/play", response_model=PlayOut, summary="Start (or join) live video")
async def play(
    channel_id: ChannelId, request: Request, user: Viewer,
    body: Annotated[PlayIn | None, Body()] = None,
) -> PlayOut:
    platform = get_platform(request)
    media = _media(platform)
    await channel_or_404(platform, channel_id)
    transport = body.transport if body else None
    transcode = bool(body and body.transcode)
    audio = body.audio if body else None
    ip = client_ip(request)
    try:
        with platform_errors(channel_id):
            if audio:
                session = await media.play(channel_id, transport, user=user.username, transcode=transcode,
                                           audio=audio)
            else:
                session = await media.play(channel_id, transport, user=user.username, transcode=transcode)
    except ApiError as exc:
        audit(platform, user.username, "stream.play_failed", channel_id,
              {"transport": transport, "error": exc.detail}, ip)
        raise
    token = media.issue_token(session.stream_id, user.username)
    audit(platform, user.username, "stream.play", channel_id,
          {"transport": session.transport, "requested": transport, "stream_id": session.stream_id,
           **({"audio": audio} if audio else {})}, ip)
    ttl = int(getattr(media, "token_ttl", 0) or setting(platform, "play_token_ttl", 300))
    return PlayOut(
        stream_id=session.stream_id, channel_id=session.channel_id, transport=session.transport,
        video_codec=session.video_codec, audio_codec=session.audio_codec,
        width=session.width, height=session.height,
        urls=play_urls(request, session.stream_id, token), token=token, expires_in=ttl,
        transcoded=bool(getattr(session, "transcoded", False)),
    )


@router.get("/streams", summary="Active play sessions with their statistics")
async def list_streams(request: Request, _: Viewer) -> dict[str, Any]:
    media = _media(get_platform(request))
    items = list(media.sessions())
    return {"items": items, "total": len(items)}


@router.delete("/streams/{stream_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Stop a stream (BYE)")
async def stop_stream(stream_id: StreamId, request: Request, user: Operator) -> None:
    platform = get_platform(request)
    media = _media(platform)
    if media.hub(stream_id) is None and not any(s.get("stream_id") == stream_id for s in media.sessions()):
        raise ApiError(404, f"stream {stream_id} not found", "not_found")
    with platform_errors(stream_id):
        await media.stop(stream_id)
    audit(platform, user.username, "stream.stop", stream_id, {}, client_ip(request))


@router.get("/channels/{channel_id}/snapshot", summary="A JPEG of the live picture",
            responses={200: {"content": {"image/jpeg": {}}}}, response_class=Response)
async def snapshot(channel_id: ChannelId, request: Request, user: Viewer,
                   store: Annotated[bool, Query(description="also keep it in the image store")] = False) -> Response:
    platform = get_platform(request)
    media = _media(platform)
    channel = await channel_or_404(platform, channel_id)
    with platform_errors(channel_id):
        jpeg = await media.snapshot(channel_id)
    headers = {"Cache-Control": "no-store"}
    detail: dict[str, Any] = {"bytes": len(jpeg)}
    if store:
        row = await _store_snapshot(platform, channel, jpeg)
        headers["X-Snapshot-Id"] = str(row.get("id"))
        detail["snapshot_id"] = row.get("id")
    audit(platform, user.username, "channel.snapshot", channel_id, detail, client_ip(request))
    return Response(jpeg, media_type="image/jpeg", headers=headers)


async def _store_snapshot(platform: Any, channel: dict[str, Any], jpeg: bytes) -> dict[str, Any]:
    """Write the JPEG under <data_dir>/snapshots/<channel>/ and index it (channel, time, size)."""
    import asyncio
    from datetime import UTC, datetime
    from pathlib import Path

    import cv2
    import numpy as np

    from xueliang.media.snapshot import store_snapshot

    when = datetime.now(UTC)
    folder = Path(setting(platform, "data_dir", "var")) / "snapshots"
    path = await asyncio.to_thread(store_snapshot, jpeg, channel["channel_id"], folder, when)
    img = await asyncio.to_thread(cv2.imdecode, np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    h, w = (int(img.shape[0]), int(img.shape[1])) if img is not None else (None, None)
    return await platform.db.repo.add_snapshot({
        "device_id": channel.get("device_id"), "channel_id": channel["channel_id"], "path": str(path),
        "size": len(jpeg), "width": w, "height": h, "taken_at": when})


@router.get("/snapshots", summary="Stored snapshots (image store), newest first")
async def list_snapshots(request: Request, _: Viewer, page: Page,
                         channel_id: Annotated[str | None, Query(max_length=20)] = None) -> dict[str, Any]:
    items, total = await get_platform(request).db.repo.list_snapshots(page=page.page, size=page.size,
                                                                       channel_id=channel_id)
    for it in items:
        it.pop("path", None)  # where files live on the server is not the client's business
    return {"items": items, "total": total}


@router.get("/snapshots/{snapshot_id}", summary="One stored snapshot as JPEG",
            responses={200: {"content": {"image/jpeg": {}}}}, response_class=Response)
async def get_snapshot(snapshot_id: int, request: Request, user: Viewer) -> Response:
    from pathlib import Path

    platform = get_platform(request)
    row = await platform.db.repo.get_snapshot(snapshot_id)
    if row is None or not Path(row["path"]).is_file():
        raise ApiError(404, f"snapshot {snapshot_id} not found", "not_found")
    audit(platform, user.username, "snapshot.view", row["channel_id"], {"snapshot_id": snapshot_id},
          client_ip(request))
    return Response(Path(row["path"]).read_bytes(), media_type="image/jpeg")
