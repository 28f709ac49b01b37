import { describe, expect, it } from 'vitest'
import { clusterColor, clusterRadius, formatCount, onlineRatio, MIXED_COLOR, OFFLINE_COLOR, ONLINE_COLOR } from '@/lib/cluster'
import { bboxOf } from '@/lib/basemap'
import L from 'leaflet'

describe('cluster markers', () => {
  it('radius grows with count, monotonic and bounded', () => {
    const counts = [1, 2, 10, 100, 1000, 10000, 500000]
    const radii = counts.map(clusterRadius)
    for (let i = 1; i < radii.length; i++) expect(radii[i]).toBeGreaterThanOrEqual(radii[i - 1])
    expect(radii[0]).toBe(7)
    expect(Math.max(...radii)).toBeLessThanOrEqual(34)
    expect(clusterRadius(0)).toBe(7)
    expect(clusterRadius(NaN)).toBe(7)
  })

  it('colour by online ratio: green, grey, and a mix', () => {
    expect(clusterColor(onlineRatio({ count: 10, online: 10 }))).toBe(ONLINE_COLOR)
    expect(clusterColor(onlineRatio({ count: 10, online: 0 }))).toBe(OFFLINE_COLOR)
    expect(clusterColor(0.5)).toBe(MIXED_COLOR)
    const c = clusterColor(0.75)
    expect(c).toMatch(/^#[0-9a-f]{6}$/)
    expect([ONLINE_COLOR, OFFLINE_COLOR, MIXED_COLOR]).not.toContain(c)
  })

  it('single points use their status when online is absent', () => {
    expect(onlineRatio({ count: 1, status: 'online' })).toBe(1)
    expect(onlineRatio({ count: 1, status: 'offline' })).toBe(0)
    expect(onlineRatio({ count: 4, online: 9 })).toBe(1)
  })

  it('labels big counts compactly', () => {
    expect(formatCount(12)).toBe('12')
    expect(formatCount(1500)).toBe('1.5k')
    expect(formatCount(25000)).toBe('2.5w')
    expect(formatCount(500000)).toBe('50w')
  })

  it('clamps the bounding box to what the API accepts', () => {
    const b = bboxOf(L.latLngBounds([-95, -250], [95, 250]))
    expect(b).toEqual({ west: -180, south: -90, east: 180, north: 90 })
  })
})

describe('graticule', () => {
  it('picks a round step for about eight lines across the view', async () => {
    const { graticuleStep } = await import('@/lib/basemap')
    expect(graticuleStep(360)).toBe(30)
    expect(graticuleStep(80)).toBe(10)
    expect(graticuleStep(0.05)).toBe(0.01)
    expect(graticuleStep(0.001)).toBe(0.0005)
  })
})

describe('drawing budget', () => {
  it('labels only the biggest aggregates, stable on ties', async () => {
    const { labelled } = await import('@/lib/cluster')
    const items = [5, 1, 100, 7, 100, 2].map((count, i) => ({ lat: i, lng: i, count }))
    expect([...labelled(items, 2)].sort()).toEqual([2, 4])
    expect([...labelled(items, 3)].sort()).toEqual([2, 3, 4])
    expect(labelled(items).has(1)).toBe(false) // a single point has no count label
  })

  it('single cameras stay DOM markers only while few', async () => {
    const { singlesAsDom, isSingle, SINGLE_DOM_BUDGET, SINGLE_DOM_BUDGET_EDIT } = await import('@/lib/cluster')
    const pt = (i: number) => ({ lat: i, lng: i, count: 1, channel_id: String(i) })
    expect(isSingle(pt(1))).toBe(true)
    expect(isSingle({ lat: 0, lng: 0, count: 1 })).toBe(false)
    const few = Array.from({ length: SINGLE_DOM_BUDGET }, (_, i) => pt(i))
    const many = Array.from({ length: SINGLE_DOM_BUDGET + 1 }, (_, i) => pt(i))
    expect(singlesAsDom(few, false)).toBe(true)
    expect(singlesAsDom(many, false)).toBe(false)
    expect(singlesAsDom(many, true)).toBe(SINGLE_DOM_BUDGET + 1 <= SINGLE_DOM_BUDGET_EDIT)
  })

  it('keys change with anything drawn', async () => {
    const { clusterKey } = await import('@/lib/cluster')
    const c = { lat: 1, lng: 2, count: 3, online: 1 }
    expect(clusterKey(c, 'c')).toBe(clusterKey({ ...c }, 'c'))
    expect(clusterKey(c, 'c')).not.toBe(clusterKey(c, 'cl'))
    expect(clusterKey(c, 'c')).not.toBe(clusterKey({ ...c, online: 2 }, 'c'))
    expect(clusterKey(c, 'c')).not.toBe(clusterKey({ ...c, lat: 1.000001 }, 'c'))
  })
})

describe('view requests asked ahead', () => {
  const q = (west: number, zoom = 5) => ({ west, south: 20, east: west + 30, north: 45, zoom })

  it('same view within a tolerance of its span, never across zooms', async () => {
    const { sameView } = await import('@/lib/mapfetch')
    expect(sameView(q(100), q(100.2))).toBe(true)
    expect(sameView(q(100), q(101))).toBe(false)
    expect(sameView(q(100, 5), q(100, 6))).toBe(false)
  })

  it('an answer asked ahead is used once, for its view, while young', async () => {
    const { ViewFetcher } = await import('@/lib/mapfetch')
    let now = 0
    const asked: number[] = []
    const f = new ViewFetcher(async (v) => { asked.push(v.west); return v.west }, 3000, () => now)
    const ahead = f.ahead(q(100))
    expect(f.has(q(100.1))).toBe(true)
    expect(f.get(q(100.1))).toBe(ahead) // the settled view reuses the request
    expect(f.has(q(100))).toBe(false) // used up
    await f.get(q(100))
    expect(asked).toEqual([100, 100])
    f.ahead(q(120))
    expect(await f.get(q(100))).toBe(100) // a different view asks anew
    f.ahead(q(100))
    now = 5000
    expect(f.has(q(100))).toBe(false) // too old
    await f.get(q(100))
    expect(asked).toEqual([100, 100, 120, 100, 100, 100])
  })

  it('a failed request asked ahead is not reused', async () => {
    const { ViewFetcher } = await import('@/lib/mapfetch')
    let n = 0
    const f = new ViewFetcher(async () => { n++; if (n === 1) throw new Error('down'); return n })
    await expect(f.ahead(q(100))).rejects.toThrow('down')
    expect(f.has(q(100))).toBe(false)
    expect(await f.get(q(100))).toBe(2)
  })
})
