/**
 * Asking the platform for a stream the browser can show. Kept out of the player component so the
 * H.265 decision is unit-tested: play; if the answer is H.265 and MediaSource cannot decode it,
 * ask again for a transcode and say so; if that is refused, fail with a clear reason.
 */
import type { PlayInfo } from '@/api'
import { HEVC_MIME, isHevc } from './codec'

export interface PlayOutcome { info: PlayInfo; transcoded: boolean }

export class PlayRefused extends Error {}

export async function negotiatePlay(
  play: (body?: Record<string, unknown>) => Promise<PlayInfo>,
  supports: (mime: string) => boolean,
  messages: { hevcUnsupported: string },
): Promise<PlayOutcome> {
  const first = await play()
  if (!isHevc(first.video_codec) || supports(HEVC_MIME)) return { info: first, transcoded: false }
  let second: PlayInfo
  try {
    second = await play({ transcode: true })
  } catch (e) {
    const why = e instanceof Error && e.message ? ` (${e.message})` : ''
    throw new PlayRefused(messages.hevcUnsupported + why)
  }
  if (isHevc(second.video_codec)) throw new PlayRefused(messages.hevcUnsupported)
  return { info: second, transcoded: true }
}
