"""Request and response bodies.

Request models forbid unknown fields so a typo ("longtitude") is a clear 422 instead of a silent
no-op. Responses mostly pass through the repository's plain dicts; the models here document them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

GbIdStr = Field(pattern=r"^[0-9]{18,20}$", description="GB/T 28181 id (20 digits, 18 accepted)")

Transport = Literal["udp", "tcp"]
StreamTransport = Literal["udp", "tcp", "tcp-passive", "tcp-active"]
PtzCommand = Literal[
    "left", "right", "up", "down", "up_left", "up_right", "down_left", "down_right",
    "zoom_in", "zoom_out", "focus_near", "focus_far", "iris_open", "iris_close", "stop",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class UserOut(BaseModel):
    username: str
    role: str


class LoginOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user: UserOut


class PasswordChangeIn(Strict):
    old_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class UserCreateIn(Strict):
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=1, max_length=256)
    role: Literal["admin", "operator", "viewer"] = "viewer"


class UserPatchIn(Strict):
    role: Literal["admin", "operator", "viewer"] | None = None
    password: str | None = Field(default=None, min_length=1, max_length=256)
    disabled: bool | None = None
    unlock: bool | None = None


class Page(BaseModel):
    items: list[dict[str, Any]]
    total: int


class DeviceCreateIn(Strict):
    device_id: str = GbIdStr
    name: str | None = Field(default=None, max_length=128)
    password: str | None = Field(default=None, max_length=128)
    transport: Transport | None = None
    stream_transport: StreamTransport | None = None
    class_level: int | None = Field(default=None, ge=0, le=9, description="point class (1..4 in GB/T 28181-2022)")
    district: str | None = Field(default=None, max_length=64)
    owner_unit: str | None = Field(default=None, max_length=128)


class DevicePatchIn(Strict):
    name: str | None = Field(default=None, max_length=128)
    password: str | None = Field(default=None, max_length=128)
    transport: Transport | None = None
    stream_transport: StreamTransport | None = None
    class_level: int | None = Field(default=None, ge=0, le=9, description="point class (1..4 in GB/T 28181-2022)")
    district: str | None = Field(default=None, max_length=64)
    owner_unit: str | None = Field(default=None, max_length=128)


class ChannelPatchIn(Strict):
    name: str | None = Field(default=None, max_length=128)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    class_level: int | None = Field(default=None, ge=0, le=9, description="point class (1..4 in GB/T 28181-2022)")
    district: str | None = Field(default=None, max_length=64)
    owner_unit: str | None = Field(default=None, max_length=128)
    stream_transport: StreamTransport | None = None
    resolution: str | None = Field(default=None, max_length=32)


class PtzIn(Strict):
    command: PtzCommand
    speed: int = Field(default=128, ge=0, le=255)


class PresetIn(Strict):
    op: Literal["set", "call", "delete"]
    index: int = Field(ge=1, le=255)


class RecordIn(Strict):
    start: bool


class GuardIn(Strict):
    arm: bool


class HomePositionIn(Strict):
    enabled: bool = True
    preset: int = Field(default=1, ge=1, le=255)
    reset_time: int = Field(default=60, ge=0, le=86400)


class DeviceConfigIn(Strict):
    name: str | None = Field(default=None, max_length=64)
    expiration: int | None = Field(default=None, ge=30, le=7 * 86400)
    heartbeat_interval: int | None = Field(default=None, ge=5, le=3600)
    heartbeat_count: int | None = Field(default=None, ge=1, le=100)


class PlayIn(Strict):
    transport: StreamTransport | None = None
    transcode: bool = Field(default=False, description="H.264 rendition of an H.265 channel (browsers without HEVC)")
    audio: Literal["aac"] | None = Field(
        default=None, description="'aac': AAC rendition of a G.711 channel (browsers cannot play G.711)")


class PlayUrls(BaseModel):
    flv: str
    ws_flv: str
    fmp4: str
    hls: str | None = Field(default=None, description="HLS (fMP4 segments, video only) playlist, for iOS Safari")


class PlayOut(BaseModel):
    stream_id: str
    channel_id: str
    transport: str | None
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None
    urls: PlayUrls
    token: str
    expires_in: int
    transcoded: bool = False


class PullChannelIn(Strict):
    name: str = Field(min_length=1, max_length=128)
    url: str = Field(min_length=8, max_length=2048)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    civil_code: str | None = Field(default=None, max_length=20)
    class_level: int | None = Field(default=None, ge=0, le=9, description="point class (1..4 in GB/T 28181-2022)")
    district: str | None = Field(default=None, max_length=64)
    owner_unit: str | None = Field(default=None, max_length=128)
    stream_transport: Literal["udp", "tcp"] | None = None

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        scheme = v.split("://", 1)[0].lower() if "://" in v else ""
        if scheme not in {"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "srt"}:
            raise ValueError("url must be rtsp://, rtmp://, http(s):// or srt://")
        return v


def fields_set(model: BaseModel) -> dict[str, Any]:
    """Only the fields the client actually sent (PATCH semantics: absent = unchanged)."""
    return model.model_dump(exclude_unset=True)
