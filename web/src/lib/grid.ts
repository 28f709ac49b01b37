/**
 * Split-screen grid of the live view, kept free of Vue so the rules are unit-tested:
 * which cell a new stream goes to, what happens to running streams when the split changes.
 */
export const SPLITS = [1, 4, 9, 16] as const
export type Split = (typeof SPLITS)[number]

export interface Cell { channelId: string | null; name?: string | null; key: number }

export function columnsFor(split: number, narrow = false): number {
  if (narrow) return 1
  return Math.max(1, Math.round(Math.sqrt(split)))
}

let keySeq = 0
export function emptyCell(): Cell {
  return { channelId: null, key: ++keySeq }
}

export class Grid {
  split: Split
  cells: Cell[]
  selected = 0

  constructor(split: Split = 4) {
    this.split = split
    this.cells = Array.from({ length: split }, emptyCell)
  }

  /**
   * Change the split. Running streams are packed to the front so none is lost when growing;
   * when shrinking, the ones that no longer fit are returned so the caller can stop them.
   */
  setSplit(split: Split): Cell[] {
    const busy = this.cells.filter((c) => c.channelId)
    const keep = busy.slice(0, split)
    const dropped = busy.slice(split)
    this.cells = [...keep, ...Array.from({ length: split - keep.length }, emptyCell)]
    this.split = split
    if (this.selected >= split) this.selected = 0
    return dropped
  }

  select(i: number): void {
    if (i >= 0 && i < this.cells.length) this.selected = i
  }

  /**
   * Put a channel in cell i (or the selected cell). The previous occupant is returned so its
   * player can be stopped. The selection then moves to the next free cell so that repeated
   * double-clicks fill the wall.
   */
  place(channelId: string, name?: string | null, i?: number): Cell | null {
    const idx = i ?? this.selected
    if (idx < 0 || idx >= this.cells.length) return null
    const prev = this.cells[idx].channelId ? this.cells[idx] : null
    this.cells[idx] = { channelId, name, key: ++keySeq }
    const next = this.nextFree(idx)
    this.selected = next ?? idx
    return prev
  }

  /** The first empty cell after `from` (wrapping), or null when the wall is full. */
  nextFree(from = -1): number | null {
    const n = this.cells.length
    for (let k = 1; k <= n; k++) {
      const j = (from + k + n) % n
      if (!this.cells[j].channelId) return j
    }
    return null
  }

  clear(i: number): Cell | null {
    if (i < 0 || i >= this.cells.length || !this.cells[i].channelId) return null
    const prev = this.cells[i]
    this.cells[i] = emptyCell()
    return prev
  }

  clearAll(): Cell[] {
    const busy = this.cells.filter((c) => c.channelId)
    this.cells = this.cells.map(() => emptyCell())
    return busy
  }
}
