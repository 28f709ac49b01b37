/**
 * Asking the platform for a stream the browser can show. Kept out of the player component so the
 * decisions are unit-tested: play; if the answer is H.265 and the browser cannot decode it, ask
 * again for a transcode and say so; if that is refused, fail with a clear reason.
 *
 * Which output: Media Source (mpegts.js over HTTP-FLV, lowest latency) where the browser has it;
 * otherwise native HLS in the <video> element (iPhone Safari before 17.1 has no MSE but plays
 * HLS); otherwise nothing. Sound: MSE players cannot play G.711, so a channel whose camera sends
 * it is played muted unless the user asks for sound, which asks the server for an AAC rendition.
 */
import type { PlayInfo } from '@/api'
import { HEVC_MIME, isHevc } from './codec'

export interface PlayOutcome { info: PlayInfo; transcoded: boolean }

export class PlayRefused extends Error {}

export type PlayMode = 'mse' | 'hls' | 'none'

export const HLS_MIME = 'application/vnd.apple.mpegurl'

/** The output this browser should use: MSE first (lower latency than HLS), then native HLS. */
export function choosePlayMode(hasMse: boolean, canPlayType: ((mime: string) => string) | null): PlayMode {
  if (hasMse) return 'mse'
  if (canPlayType && canPlayType(HLS_MIME) !== '') return 'hls'
  return 'none'
}

/** G.711 (what GB cameras send) cannot be played by MSE players; AAC can. */
export function isG711(codec: string | null | undefined): boolean {
  const c = (codec ?? '').toLowerCase()
  return c === 'pcma' || c === 'pcmu' || c === 'g711a' || c === 'g711u'
}

export function playableAudio(codec: string | null | undefined): boolean {
  return (codec ?? '').toLowerCase() === 'aac'
}

export async function negotiatePlay(
  play: (body?: Record<string, unknown>) => Promise<PlayInfo>,
  supports: (mime: string) => boolean,
  messages: { hevcUnsupported: string },
  extra?: Record<string, unknown>,
): Promise<PlayOutcome> {
  const first = await play(extra ? { ...extra } : undefined)
  if (!isHevc(first.video_codec) || supports(HEVC_MIME)) return { info: first, transcoded: false }
  let second: PlayInfo
  try {
    second = await play({ ...(extra ?? {}), transcode: true })
  } catch (e) {
    const why = e instanceof Error && e.message ? ` (${e.message})` : ''
    throw new PlayRefused(messages.hevcUnsupported + why)
  }
  if (isHevc(second.video_codec)) throw new PlayRefused(messages.hevcUnsupported)
  return { info: second, transcoded: true }
}
