/**
 * Which cluster request a map view needs, and reuse of a request already made for (nearly) that view.
 *
 * The map asks for a view's clusters as soon as it knows where the view will end up (at the start of
 * a zoom animation, when a drag is released) rather than after the animation and a debounce; when
 * `moveend` arrives the answer is usually there already and is reused instead of asked again.
 */
import L from 'leaflet'
import { bboxOf } from './basemap'

export interface ViewQuery { west: number; south: number; east: number; north: number; zoom: number }

/** The clusters query for the view `map` shows (or will show, centred on `center` at `zoom`). */
export function viewQuery(map: L.Map, center?: L.LatLng, zoom?: number): ViewQuery {
  const z = zoom ?? map.getZoom()
  const half = map.getSize().divideBy(2)
  const mid = map.project(center ?? map.getCenter(), z)
  const b = L.latLngBounds(map.unproject(mid.add([-half.x, half.y]), z), map.unproject(mid.add([half.x, -half.y]), z))
  return { ...bboxOf(b), zoom: Math.round(z) }
}

/**
 * Same zoom and each edge within `tolerance` of the view's span: the answer for one serves the other
 * (a view predicted from an animation's target differs from the settled one by rounding only).
 */
export function sameView(a: ViewQuery, b: ViewQuery, tolerance = 0.01): boolean {
  if (a.zoom !== b.zoom) return false
  const dx = Math.max(a.east - a.west, b.east - b.west, 1e-9) * tolerance
  const dy = Math.max(a.north - a.south, b.north - b.south, 1e-9) * tolerance
  return Math.abs(a.west - b.west) <= dx && Math.abs(a.east - b.east) <= dx
    && Math.abs(a.south - b.south) <= dy && Math.abs(a.north - b.north) <= dy
}

/**
 * Requests asked ahead of a move (`ahead`) and handed to the move's own refresh (`get`). Only an
 * answer asked ahead is reused, once, and only within `maxAgeMs`: this is prefetching, not a cache,
 * so every settled view still shows what the server says now.
 */
export class ViewFetcher<T> {
  private pending: { q: ViewQuery; at: number; answer: Promise<T> } | null = null

  constructor(private readonly fetcher: (q: ViewQuery) => Promise<T>, private readonly maxAgeMs = 3000,
              private readonly now: () => number = () => Date.now()) {}

  /** Ask now for a view the map is moving to. */
  ahead(q: ViewQuery): Promise<T> {
    const answer = this.fetcher(q)
    const entry = { q, at: this.now(), answer }
    this.pending = entry
    answer.catch(() => { if (this.pending === entry) this.pending = null }) // a failed request is not reused
    return answer
  }

  /** Whether an answer asked ahead for (nearly) this view is waiting to be used. */
  has(q: ViewQuery): boolean {
    const p = this.pending
    return !!p && this.now() - p.at <= this.maxAgeMs && sameView(p.q, q)
  }

  /** The answer for this view: the one asked ahead if it matches (used up), else a new request. */
  get(q: ViewQuery): Promise<T> {
    const p = this.pending
    this.pending = null
    if (p && this.now() - p.at <= this.maxAgeMs && sameView(p.q, q)) return p.answer
    return this.fetcher(q)
  }
}
