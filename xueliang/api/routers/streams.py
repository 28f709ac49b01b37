"""Live play sessions: start (play), list, stop, and snapshots."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response, status

from xueliang.api.deps import ChannelId, Operator, StreamId, Viewer, audit, client_ip, get_platform, setting
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
    ip = client_ip(request)
    try:
        with platform_errors(channel_id):
            session = await media.play(channel_id, transport, user=user.username, transcode=transcode)
    except ApiError as exc:
        audit(platform, user.username, "stream.play_failed", channel_id,
              {"transport": transport, "error": exc.detail}, ip)
        raise
    token = media.issue_token(session.stream_id, user.username)
    audit(platform, user.username, "stream.play", channel_id,
          {"transport": session.transport, "requested": transport, "stream_id": session.stream_id}, ip)
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
async def snapshot(channel_id: ChannelId, request: Request, user: Viewer) -> Response:
    platform = get_platform(request)
    media = _media(platform)
    await channel_or_404(platform, channel_id)
    with platform_errors(channel_id):
        jpeg = await media.snapshot(channel_id)
    audit(platform, user.username, "channel.snapshot", channel_id, {"bytes": len(jpeg)}, client_ip(request))
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
