import { describe, expect, it } from 'vitest'
import { Grid, columnsFor } from '@/lib/grid'

describe('live grid', () => {
  it('columns follow the split and collapse to one on phones', () => {
    expect([1, 4, 9, 16].map((s) => columnsFor(s))).toEqual([1, 2, 3, 4])
    expect(columnsFor(16, true)).toBe(1)
  })

  it('double-click fills the selected cell then moves to the next free one', () => {
    const g = new Grid(4)
    g.place('A')
    expect(g.cells[0].channelId).toBe('A')
    expect(g.selected).toBe(1)
    g.place('B')
    g.place('C')
    g.place('D')
    expect(g.cells.map((c) => c.channelId)).toEqual(['A', 'B', 'C', 'D'])
    // wall full: selection stays, next play replaces the selected cell and hands back the old one
    const prev = g.place('E')
    expect(prev?.channelId).toBe('D')
    expect(g.cells[3].channelId).toBe('E')
  })

  it('a drop targets the given cell and returns the replaced stream', () => {
    const g = new Grid(4)
    g.place('A', 'cam A', 2)
    expect(g.cells[2]).toMatchObject({ channelId: 'A', name: 'cam A' })
    const prev = g.place('B', null, 2)
    expect(prev?.channelId).toBe('A')
    expect(g.place('X', null, 9)).toBeNull()
  })

  it('shrinking keeps running streams packed at the front and returns the ones dropped', () => {
    const g = new Grid(9)
    g.place('A', null, 1)
    g.place('B', null, 5)
    g.place('C', null, 8)
    g.select(7)
    const dropped = g.setSplit(1)
    expect(g.cells.map((c) => c.channelId)).toEqual(['A'])
    expect(dropped.map((c) => c.channelId)).toEqual(['B', 'C'])
    expect(g.selected).toBe(0)
    g.setSplit(4)
    expect(g.cells).toHaveLength(4)
    expect(g.cells[0].channelId).toBe('A')
  })

  it('clear and clearAll free cells with new keys (player components get remounted)', () => {
    const g = new Grid(4)
    g.place('A', null, 0)
    const key = g.cells[0].key
    expect(g.clear(0)?.channelId).toBe('A')
    expect(g.cells[0].channelId).toBeNull()
    expect(g.cells[0].key).not.toBe(key)
    expect(g.clear(0)).toBeNull()
    g.place('B', null, 1)
    g.place('C', null, 3)
    expect(g.clearAll().map((c) => c.channelId)).toEqual(['B', 'C'])
    expect(g.nextFree()).toBe(0)
  })
})
