/** How a server-side map cluster is drawn: radius grows with log(count), colour with online ratio. */
export const ONLINE_COLOR = '#22c55e'
export const OFFLINE_COLOR = '#94a3b8'
export const MIXED_COLOR = '#f59e0b'

export function clusterRadius(count: number): number {
  if (!Number.isFinite(count) || count <= 1) return 7
  return Math.min(34, Math.round(9 + 4 * Math.log2(count)))
}

/** Online ratio in [0, 1]; a single point uses its status when `online` is absent. */
export function onlineRatio(c: { count: number; online?: number | null; status?: string | null }): number {
  if (c.online === undefined || c.online === null) {
    if (c.count <= 1) return c.status === 'online' ? 1 : 0
    return 0
  }
  if (c.count <= 0) return 0
  return Math.max(0, Math.min(1, c.online / c.count))
}

function mix(a: string, b: string, t: number): string {
  const pa = [1, 3, 5].map((i) => parseInt(a.slice(i, i + 2), 16))
  const pb = [1, 3, 5].map((i) => parseInt(b.slice(i, i + 2), 16))
  return '#' + pa.map((v, i) => Math.round(v + (pb[i] - v) * t).toString(16).padStart(2, '0')).join('')
}

/** All online: green; all offline: grey; in between: amber shading towards green as the ratio rises. */
export function clusterColor(ratio: number): string {
  if (ratio >= 1) return ONLINE_COLOR
  if (ratio <= 0) return OFFLINE_COLOR
  return ratio >= 0.5 ? mix(MIXED_COLOR, ONLINE_COLOR, (ratio - 0.5) * 2) : mix(OFFLINE_COLOR, MIXED_COLOR, ratio * 2)
}

export function formatCount(n: number): string {
  if (n >= 10000) return `${(n / 10000).toFixed(n >= 100000 ? 0 : 1)}w`
  if (n >= 1000) return `${(n / 1000).toFixed(1)}k`
  return String(n)
}

/**
 * How many DOM elements a map view may hold. Clusters are drawn on one shared canvas; the DOM is
 * kept for what needs it: the count labels of the biggest clusters, and single cameras while there
 * are few of them (draggable in edit mode, easy to hit). At 500,000 channels the server returns up
 * to 2,000 clusters, and 2,000 DOM markers cost a second per pan or zoom in Chromium.
 */
export const LABEL_BUDGET = 150
export const SINGLE_DOM_BUDGET = 300
export const SINGLE_DOM_BUDGET_EDIT = 1000

export interface ClusterLike { lat: number; lng: number; count: number; online?: number | null; status?: string | null; channel_id?: string | null }

/** A single camera (drawn as a point, has a popup and may be dragged), not an aggregate. */
export function isSingle(c: ClusterLike): boolean {
  return c.count <= 1 && !!c.channel_id
}

/**
 * Indices of the clusters that get a DOM count label: the `budget` largest aggregates (count > 1),
 * ties broken by order so the choice is stable between identical answers.
 */
export function labelled(items: readonly ClusterLike[], budget = LABEL_BUDGET): Set<number> {
  const idx: number[] = []
  items.forEach((c, i) => { if (c.count > 1) idx.push(i) })
  if (idx.length > budget) idx.sort((a, b) => items[b].count - items[a].count || a - b).length = budget
  return new Set(idx)
}

/** Whether single cameras are drawn as DOM markers for this answer (few enough of them). */
export function singlesAsDom(items: readonly ClusterLike[], editing: boolean): boolean {
  let n = 0
  for (const c of items) if (isSingle(c)) n++
  return n <= (editing ? SINGLE_DOM_BUDGET_EDIT : SINGLE_DOM_BUDGET)
}

/** Identity of one drawn item: same key, same drawing, so a redraw keeps its layers. */
export function clusterKey(c: ClusterLike, mode: string): string {
  return `${mode}|${c.lat}|${c.lng}|${c.count}|${c.online ?? ''}|${c.status ?? ''}|${c.channel_id ?? ''}`
}
