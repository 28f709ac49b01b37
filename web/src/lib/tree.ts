/**
 * Rules for the lazy resource tree, free of Vue so they are unit-tested. GB/T 28181 catalogs
 * mix real cameras with containers (business groups 215, virtual organisations 216, civil
 * codes shorter than 20 digits, NVR sub-trees): only leaves can be played.
 */
import type { Channel } from '@/api'

export const PAGE = 200

export interface TNode {
  id: string
  label: string
  kind: 'device' | 'channel' | 'folder' | 'civil' | 'group' | 'more'
  leaf: boolean
  status?: string | null
  channelId?: string
  deviceId?: string
  code?: string
  count?: number
  online?: number
  /** for 'more' nodes: which list and which page comes next */
  next?: { source: string; key: string; page: number }
}

export function typeCode(id: string | null | undefined): number | null {
  if (!id || !/^\d{18,20}$/.test(id)) return null
  return Number(id.slice(10, 13))
}

export function isContainer(ch: Channel): boolean {
  if (ch.has_children === true) return true
  if (typeof ch.children === 'number' && ch.children > 0) return true
  if (Number(ch.parental) === 1) return true
  const tc = typeCode(ch.channel_id)
  if (tc === 215 || tc === 216 || tc === 200 || tc === 118 || tc === 111) return true
  if (ch.channel_id && /^\d+$/.test(ch.channel_id) && ch.channel_id.length <= 8) return true // civil code
  return false
}

export function channelNode(ch: Channel, deviceId?: string): TNode {
  const container = isContainer(ch)
  return {
    id: `ch:${ch.device_id ?? deviceId ?? ''}:${ch.channel_id}`,
    label: ch.name || ch.channel_id,
    kind: container ? 'folder' : 'channel',
    leaf: !container,
    status: ch.status ?? null,
    channelId: ch.channel_id,
    deviceId: ch.device_id ?? deviceId,
  }
}

/** A "load more" node when a level has more entries than one page. */
export function moreNode(source: string, key: string, page: number, loaded: number, total: number): TNode | null {
  if (loaded >= total) return null
  return { id: `more:${source}:${key}:${page}`, label: `${loaded} / ${total}`, kind: 'more', leaf: true, next: { source, key, page } }
}

export function statusClass(n: { status?: string | null; online?: number; count?: number }): string {
  if (n.status) return n.status === 'online' ? 'online' : ''
  if (n.online !== undefined && n.count !== undefined) return n.online > 0 ? 'online' : ''
  return ''
}
