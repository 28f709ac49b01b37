/**
 * Which way a stream can be shown in this browser. Chromium without hardware decoding has no
 * HEVC in MediaSource, so H.265 channels need the server's transcode to H.264.
 */
export const HEVC_MIME = 'video/mp4; codecs="hvc1.1.6.L93.B0"'
export const AVC_MIME = 'video/mp4; codecs="avc1.42E01E"'

export function mseSupports(mime: string): boolean {
  const MS = (globalThis as any).MediaSource ?? (globalThis as any).ManagedMediaSource
  try {
    return !!MS && typeof MS.isTypeSupported === 'function' && MS.isTypeSupported(mime)
  } catch {
    return false
  }
}

export function isHevc(codec: string | null | undefined): boolean {
  const c = (codec ?? '').toLowerCase()
  return c === 'h265' || c === 'hevc' || c === 'hvc1' || c === 'hev1'
}

export type PlayPlan = 'direct' | 'transcode' | 'unsupported'

/** direct: play as is; transcode: ask the server for H.264; unsupported: no MSE at all. */
export function planFor(codec: string | null | undefined, supports: (m: string) => boolean = mseSupports): PlayPlan {
  if (!supports(AVC_MIME)) return 'unsupported'
  if (isHevc(codec) && !supports(HEVC_MIME)) return 'transcode'
  return 'direct'
}

/** Play URLs may be relative to the console's origin; ws URLs must be made absolute. */
export function absoluteUrl(url: string, base: string = location.href): string {
  const u = new URL(url, base)
  return u.toString()
}

export function wsUrl(url: string, base: string = location.href): string {
  const u = new URL(url, base)
  if (u.protocol === 'http:') u.protocol = 'ws:'
  else if (u.protocol === 'https:') u.protocol = 'wss:'
  return u.toString()
}
