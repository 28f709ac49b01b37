import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { useEventsStore, type PlatformEvent } from '@/stores/events'

describe('event stream store', () => {
  beforeEach(() => setActivePinia(createPinia()))

  it('routes {type, at, data} frames by type and to "*" subscribers', () => {
    const s = useEventsStore()
    const got: string[] = []
    const all: PlatformEvent[] = []
    const off = s.on('device.status', (e) => got.push(`${e.data.device_id}:${e.data.status}`))
    s.on('*', (e) => all.push(e))
    s.dispatch(JSON.stringify({ type: 'device.status', at: 1, data: { device_id: 'D1', status: 'online' } }))
    s.dispatch(JSON.stringify({ type: 'alarm', at: 2, data: { device_id: 'D1' } }))
    off()
    s.dispatch(JSON.stringify({ type: 'device.status', at: 3, data: { device_id: 'D2', status: 'offline' } }))
    expect(got).toEqual(['D1:online'])
    expect(all.map((e) => e.type)).toEqual(['device.status', 'alarm', 'device.status'])
    expect(s.received).toBe(3)
  })

  it('ignores malformed frames and survives a throwing handler', () => {
    const s = useEventsStore()
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {})
    let calls = 0
    s.on('alarm', () => { calls++; throw new Error('handler bug') })
    s.on('alarm', () => { calls++ })
    s.dispatch('not json')
    s.dispatch(JSON.stringify({ type: 'alarm', at: 1, data: {} }))
    expect(calls).toBe(2)
    expect(s.received).toBe(1)
    expect(logged).toHaveBeenCalledTimes(1)
    logged.mockRestore()
  })

  it('a named SSE event without an envelope takes its type from the event name', () => {
    const s = useEventsStore()
    const seen: PlatformEvent[] = []
    s.on('position', (e) => seen.push(e))
    s.dispatch(JSON.stringify({ channel_id: 'C', longitude: 1, latitude: 2 }), 'position')
    expect(seen[0].data.channel_id).toBe('C')
  })
})
