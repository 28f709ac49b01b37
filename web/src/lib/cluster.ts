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
