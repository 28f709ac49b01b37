export function pct(num: number | undefined | null, den: number | undefined | null): number | null {
  if (!den || num === undefined || num === null) return null
  return Math.round((num / den) * 1000) / 10
}

export function fmtPct(v: number | null): string {
  return v === null ? '—' : `${v.toFixed(1)}%`
}

export function fmtTime(v: string | number | null | undefined): string {
  if (v === null || v === undefined || v === '') return '—'
  const d = typeof v === 'number' ? new Date(v < 1e12 ? v * 1000 : v) : new Date(v)
  if (Number.isNaN(d.getTime())) return String(v)
  const p = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
}

export function fmtBitrate(kbps: number | null | undefined): string {
  if (!kbps && kbps !== 0) return '—'
  return kbps >= 1000 ? `${(kbps / 1000).toFixed(2)} Mbit/s` : `${Math.round(kbps)} kbit/s`
}

export function num(v: unknown, d = 0): number {
  const n = typeof v === 'number' ? v : Number(v)
  return Number.isFinite(n) ? n : d
}
