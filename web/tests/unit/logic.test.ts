import { describe, expect, it } from 'vitest'
import { summarize } from '@/lib/summary'
import { allows } from '@/lib/roles'
import { planFor, wsUrl, isHevc, HEVC_MIME } from '@/lib/codec'
import { channelNode, isContainer, moreNode } from '@/lib/tree'

describe('dashboard summary', () => {
  it('computes class rates against the 98/95 targets', () => {
    const v = summarize({ devices: { total: 10, online: 9 }, channels: { total: 200, online: 190 }, classes: { '1': { total: 100, online: 97 }, '2': { total: 50, online: 48 } }, geo_labelled: 150, hd: 100, alarms_today: 3 })
    const c1 = v.classes.find((c) => c.cls === '1')!
    const c2 = v.classes.find((c) => c.cls === '2')!
    expect(c1).toMatchObject({ rate: 97, target: 98, ok: false })
    expect(c2).toMatchObject({ rate: 96, target: 95, ok: true })
    expect(v.geo.rate).toBe(75)
    expect(v.hd.rate).toBe(50)
    expect(v.alarmsToday).toBe(3)
  })

  it('tolerates a missing or empty answer', () => {
    const v = summarize({})
    expect(v.devices).toEqual({ total: 0, online: 0, rate: null })
    expect(v.classes.map((c) => c.cls)).toEqual(['1', '2', '3'])
    expect(v.classes[0].ok).toBeNull()
    expect(summarize(null).alarmsToday).toBe(0)
  })
})

describe('roles', () => {
  it('ranks viewer < operator < admin; unknown roles get nothing', () => {
    expect(allows('admin', 'operator')).toBe(true)
    expect(allows('operator', 'operator')).toBe(true)
    expect(allows('viewer', 'operator')).toBe(false)
    expect(allows('root', 'viewer')).toBe(false)
    expect(allows(null, 'viewer')).toBe(false)
  })
})

describe('codec plan', () => {
  const noHevc = (m: string) => m !== HEVC_MIME
  it('H.265 without MSE support asks for a transcode; H.264 plays directly', () => {
    expect(planFor('h265', noHevc)).toBe('transcode')
    expect(planFor('h264', noHevc)).toBe('direct')
    expect(planFor('h265', () => true)).toBe('direct')
    expect(planFor('h264', () => false)).toBe('unsupported')
    expect(isHevc('HEVC')).toBe(true)
  })
  it('ws URLs follow the page scheme', () => {
    expect(wsUrl('/api/v1/media/s.flv', 'https://x.example/live')).toBe('wss://x.example/api/v1/media/s.flv')
    expect(wsUrl('http://h:1/a', 'http://h:1/')).toBe('ws://h:1/a')
  })
})

describe('resource tree', () => {
  it('containers are not playable', () => {
    expect(isContainer({ channel_id: '34020000002150000001' })).toBe(true) // business group
    expect(isContainer({ channel_id: '34020000002160000001' })).toBe(true) // virtual org
    expect(isContainer({ channel_id: '340200' })).toBe(true) // civil code
    expect(isContainer({ channel_id: '34020000001320000001', parental: 1 })).toBe(true)
    expect(isContainer({ channel_id: '34020000001320000001' })).toBe(false)
    expect(channelNode({ channel_id: '34020000001310000001', name: 'Gate', status: 'online' }, 'D')).toMatchObject({ kind: 'channel', leaf: true, deviceId: 'D', label: 'Gate' })
  })
  it('adds a load-more node only while entries remain', () => {
    expect(moreNode('devices', '', 2, 200, 500)?.next).toEqual({ source: 'devices', key: '', page: 2 })
    expect(moreNode('devices', '', 3, 500, 500)).toBeNull()
  })
})
