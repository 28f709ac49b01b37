/**
 * Typed endpoints of the platform API (/api/v1). Shapes are read tolerantly: the console
 * must keep working when the server adds fields or leaves some out.
 */
import { createHttp, type Query } from './http'
import { clearToken, getToken } from './token'

let unauthorizedHandler: () => void = () => {
  clearToken()
  if (!location.pathname.startsWith('/login')) {
    const back = encodeURIComponent(location.pathname + location.search)
    location.assign(`/login?redirect=${back}`)
  }
}

/** The router installs a softer handler (router.push) once it exists. */
export function setUnauthorizedHandler(fn: () => void): void {
  unauthorizedHandler = fn
}

export const http = createHttp({ base: '/api/v1', getToken, onUnauthorized: () => unauthorizedHandler() })

export interface Page<T> { items: T[]; total: number }
export type Status = 'online' | 'offline' | string

export interface Device {
  device_id: string
  name?: string | null
  status?: Status
  manufacturer?: string | null
  model?: string | null
  firmware?: string | null
  transport?: string | null
  stream_transport?: string | null
  host?: string | null
  port?: number | null
  gb_version?: string | null
  channel_count?: number | null
  class_level?: number | string | null
  district?: string | null
  owner_unit?: string | null
  keepalive_at?: string | null
  registered_at?: string | null
  catalog_synced_at?: string | null
  [k: string]: unknown
}

export interface Channel {
  channel_id: string
  device_id?: string
  name?: string | null
  status?: Status
  parent_id?: string | null
  civil_code?: string | null
  business_group_id?: string | null
  longitude?: number | null
  latitude?: number | null
  ptz_type?: number | string | null
  class_level?: number | string | null
  district?: string | null
  owner_unit?: string | null
  resolution?: string | null
  address?: string | null
  manufacturer?: string | null
  model?: string | null
  parental?: number | string | null
  has_children?: boolean
  children?: number
  [k: string]: unknown
}

export interface TreeNode { code: string; name?: string | null; count?: number; online?: number; [k: string]: unknown }

export interface Cluster { lat: number; lng: number; count: number; online?: number; channel_id?: string | null; device_id?: string | null; name?: string | null; status?: Status | null }

export interface PlayInfo {
  stream_id: string
  video_codec?: string | null
  audio_codec?: string | null
  width?: number | null
  height?: number | null
  transcoded?: boolean
  urls: Record<string, string>
  [k: string]: unknown
}

export interface Alarm { id: number; device_id?: string; channel_id?: string | null; priority?: string | number; method?: string | number; type?: string | number | null; description?: string | null; time?: string; longitude?: number | null; latitude?: number | null; acknowledged?: boolean; acknowledged_by?: string | null; [k: string]: unknown }
export interface Position { id?: number; device_id?: string; channel_id?: string | null; time?: string; longitude?: number; latitude?: number; speed?: number | null; direction?: number | null; altitude?: number | null; [k: string]: unknown }

export interface Me { username: string; role: string; [k: string]: unknown }

/** Some endpoints may answer a bare list rather than {items,total}: accept both. */
export function asPage<T>(r: Page<T> | T[] | null | undefined): Page<T> {
  if (!r) return { items: [], total: 0 }
  if (Array.isArray(r)) return { items: r, total: r.length }
  return { items: r.items ?? [], total: r.total ?? (r.items?.length ?? 0) }
}

export const api = {
  login: (username: string, password: string) =>
    http.post<{ access_token: string; token_type?: string; role?: string }>('/auth/login', { username, password }),
  me: () => http.get<Me>('/auth/me'),
  summary: () => http.get<Record<string, any>>('/summary'),

  devices: async (q: Query) => asPage(await http.get<Page<Device>>('/devices', q)),
  device: (id: string) => http.get<Device>(`/devices/${id}`),
  addDevice: (body: Partial<Device> & { password?: string }) => http.post<Device>('/devices', body),
  updateDevice: (id: string, body: Record<string, unknown>) => http.patch<Device>(`/devices/${id}`, body),
  deleteDevice: (id: string) => http.del<void>(`/devices/${id}`),
  refreshCatalog: (id: string) => http.post<unknown>(`/devices/${id}/catalog/refresh`),
  deviceInfo: (id: string) => http.get<Record<string, unknown>>(`/devices/${id}/info`),
  deviceStatus: (id: string) => http.get<Record<string, unknown>>(`/devices/${id}/status`),
  reboot: (id: string) => http.post<Record<string, unknown>>(`/devices/${id}/reboot`),
  deviceChannels: async (id: string, q: Query = {}) => {
    const r = await http.get<Page<Channel> | Channel[]>(`/devices/${id}/channels`, q)
    return asPage(r)
  },

  channels: async (q: Query) => asPage(await http.get<Page<Channel>>('/channels', q)),
  channel: (id: string) => http.get<Channel>(`/channels/${id}`),
  updateChannel: (id: string, body: Record<string, unknown>) => http.patch<Channel>(`/channels/${id}`, body),
  play: (id: string, body: Record<string, unknown> = {}) => http.post<PlayInfo>(`/channels/${id}/play`, body),
  stop: (id: string, streamId?: string) => http.post<unknown>(`/channels/${id}/stop`, streamId ? { stream_id: streamId } : {}),
  ptz: (id: string, command: string, speed: number) => http.post<Record<string, unknown>>(`/channels/${id}/ptz`, { command, speed }),
  preset: (id: string, op: 'set' | 'call' | 'delete', index: number) => http.post<Record<string, unknown>>(`/channels/${id}/preset`, { op, index }),
  snapshot: (id: string) => http.blob(`/channels/${id}/snapshot`),

  civilTree: async (parent?: string) => {
    const r = await http.get<TreeNode[] | Page<TreeNode>>('/tree/civil', { parent })
    return asPage(r).items
  },
  groupTree: async (parent?: string) => {
    const r = await http.get<TreeNode[] | Page<TreeNode>>('/tree/groups', { parent })
    return asPage(r).items
  },
  clusters: async (q: { west: number; south: number; east: number; north: number; zoom: number }) => {
    const r = await http.get<Cluster[] | Page<Cluster>>('/map/clusters', q)
    return asPage(r).items
  },

  alarms: async (q: Query) => asPage(await http.get<Page<Alarm>>('/alarms', q)),
  ackAlarm: (id: number) => http.post<unknown>(`/alarms/${id}/ack`),
  positions: async (q: Query) => asPage(await http.get<Page<Position>>('/positions', q)),
}
