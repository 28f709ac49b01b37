import { describe, expect, it } from 'vitest'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import en from '@/i18n/en'
import zh from '@/i18n/zh-CN'

function keys(o: Record<string, any>, prefix = ''): string[] {
  return Object.entries(o).flatMap(([k, v]) => (v && typeof v === 'object' ? keys(v, `${prefix}${k}.`) : [`${prefix}${k}`]))
}
function get(o: Record<string, any>, path: string): unknown {
  return path.split('.').reduce<any>((a, k) => (a == null ? undefined : a[k]), o)
}
function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f: string) => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? files(p) : /\.(vue|ts)$/.test(f) ? [p] : []
  })
}

describe('i18n', () => {
  it('every key exists in both languages', () => {
    const a = keys(en).sort()
    const b = keys(zh).sort()
    expect(a.filter((k) => !b.includes(k))).toEqual([])
    expect(b.filter((k) => !a.includes(k))).toEqual([])
  })

  it('no empty strings and placeholders match', () => {
    for (const k of keys(en)) {
      const e = String(get(en, k))
      const z = String(get(zh, k))
      expect(e.length, k).toBeGreaterThan(0)
      expect(z.length, k).toBeGreaterThan(0)
      const ph = (s: string) => (s.match(/\{\w+\}/g) ?? []).sort().join()
      expect(ph(z), k).toBe(ph(e))
    }
  })

  it('every literal key used in the source exists', () => {
    const src = join(process.cwd(), 'src') // npm test runs in web/
    const used = new Set<string>()
    for (const f of files(src)) {
      const text = readFileSync(f, 'utf8')
      for (const m of text.matchAll(/\bt\(\s*'([a-zA-Z0-9_.]+)'/g)) used.add(m[1])
      for (const m of text.matchAll(/(?:label|title): '([a-z]+\.[a-zA-Z0-9_.]+)'/g)) used.add(m[1])
    }
    expect(used.size).toBeGreaterThan(50)
    // 't('ptz.' + cmd)' style: the prefix must name a group in both languages
    const ok = (o: Record<string, any>, k: string) => (k.endsWith('.') ? typeof get(o, k.slice(0, -1)) === 'object' : typeof get(o, k) === 'string')
    const missing = [...used].filter((k) => !ok(en, k) || !ok(zh, k))
    expect(missing).toEqual([])
  })
})
