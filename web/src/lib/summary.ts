import { num, pct } from './format'

/** Availability targets from the project's performance form: class 1 >= 98 %, class 2 >= 95 %. */
export const TARGETS: Record<string, number> = { '1': 98, '2': 95 }

export interface ClassRate { cls: string; total: number; online: number; rate: number | null; target: number | null; ok: boolean | null }

export interface SummaryView {
  devices: { total: number; online: number; rate: number | null }
  channels: { total: number; online: number; rate: number | null }
  classes: ClassRate[]
  geo: { count: number; rate: number | null }
  hd: { count: number; rate: number | null }
  alarmsToday: number
  streams: number | null
  viewers: number | null
  /** channels with no class set (the targets only count classified points) */
  unclassified: { total: number; online: number }
}

function pair(v: any): { total: number; online: number } {
  if (v && typeof v === 'object') return { total: num(v.total), online: num(v.online) }
  return { total: num(v), online: 0 }
}

/**
 * Normalise the summary answer. Every key may be missing (older servers, empty databases):
 * the dashboard must show dashes, not crash.
 */
export function summarize(s: Record<string, any> | null | undefined): SummaryView {
  const src = s ?? {}
  const devices = pair(src.devices)
  const channels = pair(src.channels)
  const classesSrc: Record<string, any> = src.classes ?? src.class_levels ?? {}
  const keys = new Set(['1', '2', '3', ...Object.keys(classesSrc).map(String)])
  const classes: ClassRate[] = [...keys].sort().map((cls) => {
    const p = pair(classesSrc[cls])
    const rate = pct(p.online, p.total)
    const target = TARGETS[cls] ?? null
    return { cls, ...p, rate, target, ok: rate === null || target === null ? null : rate >= target }
  })
  const geoCount = num(typeof src.geo_labelled === 'object' && src.geo_labelled ? src.geo_labelled.count ?? src.geo_labelled.total : src.geo_labelled)
  const hdCount = num(typeof src.hd === 'object' && src.hd ? src.hd.count ?? src.hd.total : src.hd)
  const classified = classes.reduce((a, c) => ({ total: a.total + c.total, online: a.online + c.online }), { total: 0, online: 0 })
  return {
    unclassified: { total: Math.max(0, channels.total - classified.total), online: Math.max(0, channels.online - classified.online) },
    devices: { ...devices, rate: pct(devices.online, devices.total) },
    channels: { ...channels, rate: pct(channels.online, channels.total) },
    classes,
    geo: { count: geoCount, rate: pct(geoCount, channels.total) },
    hd: { count: hdCount, rate: pct(hdCount, channels.total) },
    alarmsToday: num(src.alarms_today),
    streams: src.streams_active === undefined ? null : num(src.streams_active),
    viewers: src.viewers === undefined ? null : num(src.viewers),
  }
}
