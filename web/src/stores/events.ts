import { defineStore } from 'pinia'
import { ref } from 'vue'
import { getToken } from '@/api/token'

export interface PlatformEvent { type: string; at: number; data: Record<string, any> }
type Handler = (e: PlatformEvent) => void

export const EVENT_TYPES = ['device.status', 'channel.status', 'catalog.progress', 'alarm', 'position', 'stream.start', 'stream.stop']

/**
 * One EventSource for the whole console (the server counts subscribers; a page per tab
 * opening its own would multiply them). Pages subscribe by event type and unsubscribe on unmount.
 */
export const useEventsStore = defineStore('events', () => {
  const connected = ref(false)
  const received = ref(0)
  const handlers = new Map<string, Set<Handler>>()
  let es: EventSource | null = null
  let retry = 1000
  let timer: ReturnType<typeof setTimeout> | null = null

  function dispatch(raw: string, namedType?: string): void {
    let ev: PlatformEvent
    try {
      const parsed = JSON.parse(raw)
      ev = parsed && typeof parsed === 'object' && 'type' in parsed
        ? { type: parsed.type, at: parsed.at ?? Date.now() / 1000, data: parsed.data ?? {} }
        : { type: namedType ?? 'message', at: Date.now() / 1000, data: parsed ?? {} }
    } catch {
      return
    }
    received.value++
    for (const key of [ev.type, '*']) handlers.get(key)?.forEach((h) => { try { h(ev) } catch (e) { console.error(e) } })
  }

  function connect(): void {
    if (es || typeof EventSource === 'undefined') return
    const token = getToken()
    if (!token) return
    es = new EventSource(`/api/v1/events?token=${encodeURIComponent(token)}`)
    es.onopen = () => { connected.value = true; retry = 1000 }
    es.onmessage = (m) => dispatch(m.data)
    for (const t of EVENT_TYPES) es.addEventListener(t, (m) => dispatch((m as MessageEvent).data, t))
    es.onerror = () => {
      connected.value = false
      // The browser retries by itself unless the stream was refused (e.g. token expired): then we back off.
      if (es && es.readyState === EventSource.CLOSED) {
        es = null
        if (timer) clearTimeout(timer)
        timer = setTimeout(connect, retry)
        retry = Math.min(retry * 2, 30000)
      }
    }
  }

  function disconnect(): void {
    if (timer) clearTimeout(timer)
    timer = null
    es?.close()
    es = null
    connected.value = false
  }

  /** Subscribe to one type ('*' for all); returns the unsubscribe function. */
  function on(type: string, h: Handler): () => void {
    if (!handlers.has(type)) handlers.set(type, new Set())
    handlers.get(type)!.add(h)
    return () => handlers.get(type)?.delete(h)
  }

  return { connected, received, connect, disconnect, on, dispatch }
})
