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
