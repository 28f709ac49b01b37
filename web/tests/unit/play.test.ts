import { describe, expect, it } from 'vitest'
import { negotiatePlay, PlayRefused } from '@/lib/play'
import { HEVC_MIME } from '@/lib/codec'
import type { PlayInfo } from '@/api'

const info = (codec: string): PlayInfo => ({ stream_id: 's', video_codec: codec, urls: { flv: '/x.flv' } })
const msgs = { hevcUnsupported: 'no hevc' }
const noHevc = (m: string) => m !== HEVC_MIME

describe('play negotiation', () => {
  it('H.264 plays as answered, with one request', async () => {
    const calls: unknown[] = []
    const r = await negotiatePlay(async (b) => { calls.push(b); return info('h264') }, noHevc, msgs)
    expect(r.transcoded).toBe(false)
    expect(calls).toEqual([undefined])
  })

  it('H.265 plays directly where MediaSource decodes it', async () => {
    const r = await negotiatePlay(async () => info('h265'), () => true, msgs)
    expect(r).toMatchObject({ transcoded: false, info: { video_codec: 'h265' } })
  })

  it('H.265 without browser support asks for a transcode and reports it', async () => {
    const calls: unknown[] = []
    const r = await negotiatePlay(async (b) => { calls.push(b); return info(b?.transcode ? 'h264' : 'h265') }, noHevc, msgs)
    expect(calls).toEqual([undefined, { transcode: true }])
    expect(r).toMatchObject({ transcoded: true, info: { video_codec: 'h264' } })
  })

  it('a refused transcode fails with a clear reason', async () => {
    const p = negotiatePlay(async (b) => { if (b?.transcode) throw new Error('transcoder busy'); return info('h265') }, noHevc, msgs)
    await expect(p).rejects.toBeInstanceOf(PlayRefused)
    await expect(p).rejects.toThrow('no hevc (transcoder busy)')
  })

  it('a server that answers H.265 again is not played', async () => {
    await expect(negotiatePlay(async () => info('hevc'), noHevc, msgs)).rejects.toThrow('no hevc')
  })
})
