/**
 * Small fetch wrapper: every API call goes through here so that the bearer token is
 * added in one place and a 401 anywhere sends the operator back to the login page
 * (an expired token must never leave a half-working console on screen).
 */
export class ApiError extends Error {
  status: number
  body: unknown
  constructor(status: number, message: string, body?: unknown) {
    super(message)
    this.status = status
    this.body = body
  }
}

export interface HttpOptions {
  base?: string
  getToken: () => string | null
  onUnauthorized: () => void
  fetchImpl?: typeof fetch
}

export type Query = Record<string, string | number | boolean | null | undefined>

export function buildQuery(q?: Query): string {
  if (!q) return ''
  const p = new URLSearchParams()
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || v === '') continue
    p.set(k, String(v))
  }
  const s = p.toString()
  return s ? `?${s}` : ''
}

/** Pull a human message out of FastAPI-style error bodies ({detail: str | [{msg}]}). */
export function errorMessage(body: unknown, fallback: string): string {
  if (body && typeof body === 'object' && 'detail' in body) {
    const d = (body as { detail: unknown }).detail
    if (typeof d === 'string') return d
    if (Array.isArray(d) && d.length && typeof d[0] === 'object' && d[0] && 'msg' in d[0])
      return d.map((x: { msg: string }) => x.msg).join('; ')
  }
  if (typeof body === 'string' && body) return body.slice(0, 200)
  return fallback
}

export function createHttp(opts: HttpOptions) {
  const base = opts.base ?? ''
  const f = opts.fetchImpl ?? ((...a: Parameters<typeof fetch>) => fetch(...a))

  async function raw(method: string, path: string, init: { query?: Query; body?: unknown; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json', ...(init.headers ?? {}) }
    const token = opts.getToken()
    if (token) headers.Authorization = `Bearer ${token}`
    let body: BodyInit | undefined
    if (init.body !== undefined) {
      headers['Content-Type'] = 'application/json'
      body = JSON.stringify(init.body)
    }
    const resp = await f(base + path + buildQuery(init.query), { method, headers, body })
    if (resp.status === 401) {
      opts.onUnauthorized()
      throw new ApiError(401, 'unauthorized')
    }
    if (!resp.ok) {
      let parsed: unknown = undefined
      try {
        const text = await resp.text()
        try { parsed = JSON.parse(text) } catch { parsed = text }
      } catch { /* body unreadable */ }
      throw new ApiError(resp.status, errorMessage(parsed, `HTTP ${resp.status}`), parsed)
    }
    return resp
  }

  async function json<T>(method: string, path: string, init: { query?: Query; body?: unknown } = {}): Promise<T> {
    const resp = await raw(method, path, init)
    if (resp.status === 204) return undefined as T
    const text = await resp.text()
    return (text ? JSON.parse(text) : undefined) as T
  }

  return {
    raw,
    get: <T>(path: string, query?: Query) => json<T>('GET', path, { query }),
    post: <T>(path: string, body?: unknown, query?: Query) => json<T>('POST', path, { body, query }),
    patch: <T>(path: string, body?: unknown) => json<T>('PATCH', path, { body }),
    put: <T>(path: string, body?: unknown) => json<T>('PUT', path, { body }),
    del: <T>(path: string) => json<T>('DELETE', path),
    /** Binary download (snapshots) with the same auth handling. */
    blob: async (path: string) => (await raw('GET', path, { headers: { Accept: '*/*' } })).blob(),
  }
}

export type Http = ReturnType<typeof createHttp>
